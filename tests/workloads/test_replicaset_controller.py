"""The ReplicaSet controller on its own, against a real API (no node, so pods stay Pending):
adoption and release, status, a slow watch, failing creates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.apiserver.auth import SYSTEM
from procorch.apiserver.controlplane import ControlPlane
from procorch.client.base import WatchEvent
from procorch.client.local import LocalClient
from procorch.controllers.replicaset import ReplicaSetController
from procorch.kit.tasks import TaskSet
from procorch.reconcile.factory import InformerFactory
from tests.workloads.conftest import PODS, REPLICASETS, eventually


class FaultyClient(LocalClient):
    """The in-process client, with pod watch events held back and pod creates that fail."""

    watch_delay = 0.0
    fail_creates = False

    async def create(self, rt: ResourceType, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        if rt is PODS and self.fail_creates:
            raise errors.Forbidden('pods "x" is forbidden: exceeded quota: compute-resources')
        return await super().create(rt, obj, **kw)

    async def watch(self, rt: ResourceType, **kw: Any) -> AsyncIterator[WatchEvent]:  # type: ignore[override]
        async for event in super().watch(rt, **kw):
            if rt is PODS and self.watch_delay:
                await asyncio.sleep(self.watch_delay)
            yield event


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[FaultyClient, ReplicaSetController]]:
    (tmp_path / "cp").mkdir()
    control = ControlPlane(tmp_path / "cp", port=0)
    await control.start()
    client = FaultyClient(control.service, user=SYSTEM)
    tasks = TaskSet("test")
    controller = ReplicaSetController(client, InformerFactory(client, tasks))
    tasks.start("replicaset", controller.run())
    try:
        yield client, controller
    finally:
        await tasks.stop(timeout=5)
        await control.stop()


def replica_set(name: str, replicas: int, *, extra_label: bool = False) -> dict[str, Any]:
    labels = {"app": name, **({"tier": "web"} if extra_label else {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "command": ["sleep", "600"]}]},
            },
        },
    }


def bare_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "main", "command": ["sleep", "600"]}]},
    }


async def pods(client: LocalClient, app: str) -> list[dict[str, Any]]:
    return (await client.list(PODS, namespace="default", label_selector=f"app={app}")).items


async def owned(client: LocalClient, rs_uid: str) -> list[dict[str, Any]]:
    return [
        p
        for p in (await client.list(PODS, namespace="default")).items
        if any(r.get("uid") == rs_uid for r in p["metadata"].get("ownerReferences") or [])
    ]


async def test_adopts_matching_orphans_and_releases_pods_that_stop_matching(
    plane: tuple[FaultyClient, ReplicaSetController],
) -> None:
    client, _ = plane
    await client.create(PODS, bare_pod("stray", {"app": "web"}))
    rs = await client.create(REPLICASETS, replica_set("web", 3, extra_label=True))
    uid = rs["metadata"]["uid"]

    async def three_owned() -> list[dict[str, Any]]:
        mine = await owned(client, uid)
        return mine if len(mine) == 3 else []

    mine = await eventually(three_owned, what="3 owned pods")
    assert "stray" in {p["metadata"]["name"] for p in mine}  # adopted, not duplicated
    made = [p for p in mine if p["metadata"]["name"] != "stray"]
    assert all(p["metadata"]["name"].startswith("web-") for p in made)

    async def status() -> dict[str, Any] | None:
        got = await client.get(REPLICASETS, "web", namespace="default")
        s = got.get("status") or {}
        return s if s.get("replicas") == 3 and s.get("observedGeneration") == 1 else None

    # The adopted pod lacks the template's tier label: it is not "fully labeled".
    assert (await eventually(status, what="status"))["fullyLabeledReplicas"] == 2

    # A pod relabelled out of the selector is released (it keeps running) and replaced.
    victim = made[0]["metadata"]["name"]
    await client.patch(
        PODS, victim, {"metadata": {"labels": {"app": "other"}}}, namespace="default"
    )

    async def released() -> bool:
        p = await client.get(PODS, victim, namespace="default")
        return not p["metadata"].get("ownerReferences") and len(await owned(client, uid)) == 3

    await eventually(released, what="release and replacement")


async def test_a_slow_watch_never_causes_double_creates(
    plane: tuple[FaultyClient, ReplicaSetController],
) -> None:
    client, _ = plane
    client.watch_delay = 0.3  # every pod event reaches the controller late
    await client.create(REPLICASETS, replica_set("slow", 4))
    # Poke the ReplicaSet while its pods are still unseen: each poke is a reconcile.
    for i in range(5):
        await asyncio.sleep(0.1)
        await client.patch(
            REPLICASETS,
            "slow",
            {"metadata": {"annotations": {"poke": str(i)}}},
            namespace="default",
        )
    await eventually(lambda: _status_replicas(client, "slow", 4), timeout=20, what="4 replicas")
    assert len(await pods(client, "slow")) == 4


async def _status_replicas(client: LocalClient, name: str, n: int) -> bool:
    got = await client.get(REPLICASETS, name, namespace="default")
    return (got.get("status") or {}).get("replicas") == n


async def test_failed_creates_show_a_replica_failure_until_they_succeed(
    plane: tuple[FaultyClient, ReplicaSetController],
) -> None:
    client, _ = plane
    client.fail_creates = True
    await client.create(REPLICASETS, replica_set("quota", 2))

    async def failure() -> dict[str, Any] | None:
        got = await client.get(REPLICASETS, "quota", namespace="default")
        conds = (got.get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "ReplicaFailure"), None)

    cond = await eventually(failure, what="ReplicaFailure")
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
    assert "exceeded quota" in cond["message"]
    client.fail_creates = False

    async def recovered() -> bool:
        return await failure() is None and len(await pods(client, "quota")) == 2

    await eventually(recovered, what="recovery")  # retried with backoff, condition gone


async def test_scaling_down_through_the_scale_subresource_deletes_the_surplus(
    plane: tuple[FaultyClient, ReplicaSetController],
) -> None:
    client, _ = plane
    await client.create(REPLICASETS, replica_set("shrink", 5))
    await eventually(lambda: _status_replicas(client, "shrink", 5), what="5 replicas")
    await client.patch(
        REPLICASETS, "shrink", {"spec": {"replicas": 2}}, namespace="default", subresource="scale"
    )
    await eventually(lambda: _status_replicas(client, "shrink", 2), what="2 replicas")
    # Pods without a node have no grace period: they are gone, not just terminating.
    await eventually(lambda: _count(client, "shrink", 2), what="2 pods left")


async def _count(client: LocalClient, app: str, n: int) -> bool:
    return len(await pods(client, app)) == n
