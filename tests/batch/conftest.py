"""Jobs and CronJobs against a real procorch: the control plane alone (``procorch``) or with
its node running pods as processes (``cluster``, and ``kubectl`` driving it).

The Job failure back-off is shortened for the suite through ``PROCORCH_JOB_BACKOFF`` (the
controllers read it when procorch starts), so retries take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import yaml

from procorch.api.resources import must
from procorch.client.base import Client
from tests.agent.conftest import cluster, kubectl  # noqa: F401 - the fixtures

JOBS = must("batch/jobs")
CRONJOBS = must("batch/cronjobs")
PODS = must("core/pods")
EVENTS = must("core/events")
PY = sys.executable

T = TypeVar("T")


@pytest.fixture(autouse=True)
def fast_job_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROCORCH_JOB_BACKOFF", "0.2")
    monkeypatch.setenv("PROCORCH_JOB_BACKOFF_MAX", "1")
    yield


async def wait_for(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout} s; last: {last!r}")


def job_yaml(name: str, command: str, **spec: Any) -> dict[str, Any]:
    """A Job running ``sh -c command`` (restartPolicy Never unless given)."""
    template_spec: dict[str, Any] = {
        "restartPolicy": spec.pop("restartPolicy", "Never"),
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "main", "command": ["sh", "-c", command]}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": template_spec}, **spec},
    }


def cronjob_yaml(name: str, schedule: str, command: str = "true", **spec: Any) -> dict[str, Any]:
    job_spec = job_yaml("x", command, **spec.pop("job", {}))["spec"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": job_spec}, **spec},
    }


def dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return dict(cond)
    return None


async def get_job(client: Client, name: str) -> dict[str, Any]:
    return await client.get(JOBS, name, namespace="default")


async def job_pods(client: Client, name: str) -> list[dict[str, Any]]:
    listed = await client.list(PODS, namespace="default", label_selector=f"job-name={name}")
    return listed.items


async def wait_job(
    client: Client, name: str, ctype: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await get_job(client, name)
        return job if condition(job, ctype) else None

    return await wait_for(check, timeout=timeout, what=f"job/{name} {ctype}")


async def events_for(client: Client, name: str) -> list[dict[str, Any]]:
    listed = await client.list(
        EVENTS, namespace="default", field_selector=f"involvedObject.name={name}"
    )
    return listed.items


async def wait_event(
    client: Client, name: str, reason: str, *, timeout: float = 20.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        for event in await events_for(client, name):
            if event.get("reason") == reason:
                return event
        return None

    return await wait_for(check, timeout=timeout, what=f"event {reason} on {name}")
