"""Helpers for driving the scheduler against a real procorch API server.

Nothing runs the pods (there is no node agent in these tests): the Node objects are made
by hand and the pods only need to be bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.launcher.up import Procorch
from procorch.scheduler import Scheduler, SchedulerSettings

NODES = must("core/nodes")
PODS = must("core/pods")
EVENTS = must("core/events")
CONFIGMAPS = must("core/configmaps")
NS = "default"

FAST = SchedulerSettings(
    unschedulable_retry_interval=10.0, pod_initial_backoff=0.05, pod_max_backoff=0.2
)


class Harness:
    def __init__(self, procorch: Procorch, scheduler: Scheduler, events: EventRecorder) -> None:
        self.procorch = procorch
        self.client: Client = procorch.client
        self.scheduler = scheduler
        self.events = events

    async def node(
        self,
        name: str,
        *,
        ready: str = "True",
        labels: dict[str, str] | None = None,
        taints: list[dict[str, Any]] | None = None,
        unschedulable: bool = False,
        cpu: str = "4",
        memory: str = "8Gi",
        pods: str = "110",
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if taints:
            spec["taints"] = taints
        if unschedulable:
            spec["unschedulable"] = True
        await self.client.create(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels or {}},
                "spec": spec,
            },
        )
        resources = {"cpu": cpu, "memory": memory, "pods": pods}
        return await self.client.patch(
            NODES,
            name,
            {
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "conditions": [{"type": "Ready", "status": ready, "reason": "Test"}],
                }
            },
            subresource="status",
        )

    async def pod(
        self,
        name: str,
        *,
        requests: dict[str, str] | None = None,
        owner: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "main", "command": ["sleep", "1000"]}
        if requests:
            container["resources"] = {"requests": requests}
        meta: dict[str, Any] = {"name": name}
        if labels:
            meta["labels"] = labels
        if owner is not None:
            meta["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {"containers": [container], **spec},
        }
        return await self.client.create(PODS, body, namespace=NS)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.client.get(PODS, name, namespace=NS)

    async def bound(self, name: str, timeout: float = 5.0) -> str:
        """Wait for the pod to be bound; its node."""
        pod = await until(lambda: self.get(name), lambda p: p["spec"].get("nodeName"), timeout)
        return str(pod["spec"]["nodeName"])

    async def unschedulable(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for PodScheduled=False; the condition."""
        pod = await until(
            lambda: self.get(name), lambda p: unschedulable_condition(p) is not None, timeout
        )
        cond = unschedulable_condition(pod)
        assert cond is not None
        return cond

    async def failed_scheduling(self, name: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        async def events() -> list[dict[str, Any]]:
            listed = await self.client.list(EVENTS, namespace=NS)
            return [
                e
                for e in listed.items
                if e["involvedObject"]["name"] == name and e["reason"] == "FailedScheduling"
            ]

        return await until(events, bool, timeout)


def unschedulable_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return dict(cond)
    return None


async def until(
    read: Callable[[], Awaitable[Any]], check: Callable[[Any], Any], timeout: float
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(procorch: Procorch, settings: SchedulerSettings) -> AsyncIterator[Harness]:
    """A scheduler and its event recorder running on ``procorch``; on exit both are
    cancelled, must end cancelled, and must leave no task of theirs behind."""
    before = asyncio.all_tasks()
    events = EventRecorder(procorch.client, component="default-scheduler")
    scheduler = Scheduler(procorch.client, procorch.informers, events=events, settings=settings)
    runs = [
        asyncio.create_task(scheduler.run(), name="test/scheduler"),
        asyncio.create_task(events.run(), name="test/events"),
    ]
    try:
        yield Harness(procorch, scheduler, events)
    finally:
        for task in runs:
            task.cancel()
        results = await asyncio.gather(*runs, return_exceptions=True)
        for result in results:
            assert isinstance(result, asyncio.CancelledError), result
        # Every task the scheduler starts is named "scheduler:<name>/..." by its TaskSet.
        leaked = [
            t.get_name()
            for t in asyncio.all_tasks() - before
            if not t.done() and t.get_name().startswith(("scheduler:", "test/"))
        ]
        assert not leaked, f"scheduler leaked tasks: {leaked}"
