"""The node lifecycle controller against a node that stops: Unknown, tainted, its pods NotReady
then evicted once their toleration runs out, and replaced on a live node; tainted no more once
it is heard from again.

The local node is a real agent running real processes. The node that fails, "ghost", is
played by the test through the API, as an agent on another machine would be: it registers a
Node, renews its Lease and reports its pods Running, then goes silent; at the end it is deleted, and the pods left on it are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from procorch.api.meta import rfc3339, rfc3339_micro
from procorch.api.resources import must
from procorch.controllers import podgc
from procorch.launcher.up import Procorch, UpConfig
from tests.agent.conftest import FAST, Cluster, ready
from tests.workloads.conftest import deployment, eventually, pods_of, processes

NODES = must("core/nodes")
LEASES = must("coordination.k8s.io/leases")
PODS = must("core/pods")
GRACE = 3.0
GHOST = "ghost"


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    monkeypatch.setattr(podgc, "DEFAULT_SETTINGS", podgc.PodGCSettings(quarantine=1.0))
    agent = {**FAST, "lease_renew_interval": 0.3, "node_status_interval": 0.5}
    instance = Procorch(
        UpConfig(
            data_dir=tmp_path / "data",
            api_port=0,
            node=True,
            agent=agent,
            node_monitor_grace_period=GRACE,
        )
    )
    await instance.start()
    try:
        yield Cluster(instance, tmp_path)
    finally:
        await instance.stop()


def ghost_node() -> dict[str, Any]:
    now = rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": GHOST, "labels": {"kubernetes.io/hostname": GHOST}},
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "ready",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


async def heartbeat(cluster: Cluster, stop: asyncio.Event) -> float:
    """Renew the ghost's Lease as its agent would, until ``stop``; the loop time of the last
    renewal."""
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": GHOST, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": GHOST, "leaseDurationSeconds": 40},
    }
    await cluster.client.create(LEASES, lease, namespace="kube-node-lease")
    return await renew(cluster, stop)


async def renew(cluster: Cluster, stop: asyncio.Event) -> float:
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not stop.is_set():
        await cluster.client.patch(
            LEASES, GHOST, {"spec": {"renewTime": rfc3339_micro()}}, namespace="kube-node-lease"
        )
        last = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.3)
    return last


async def report_running(cluster: Cluster, pod: dict[str, Any]) -> None:
    """What the ghost's agent would write for a pod it started."""
    now = rfc3339()
    status = {
        "phase": "Running",
        "podIP": "127.1.250.1",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }
    await cluster.client.patch(
        PODS, pod["metadata"]["name"], {"status": status}, namespace="default", subresource="status"
    )


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


async def test_a_silent_node_is_tainted_its_pods_evicted_and_replaced_elsewhere(
    cluster: Cluster,
) -> None:
    local = (await cluster.client.list(NODES)).items[0]["metadata"]["name"]
    await cluster.client.create(NODES, ghost_node())
    # As an agent does: the status through its subresource (a create may not set it).
    await cluster.client.patch(
        NODES, GHOST, {"status": ghost_node()["status"]}, subresource="status"
    )
    stop = asyncio.Event()
    beating = asyncio.create_task(heartbeat(cluster, stop))
    try:
        # The pods land on the ghost: the local node is cordoned while they are scheduled.
        await cluster.client.patch(NODES, local, {"spec": {"unschedulable": True}})
        manifest = deployment("far", replicas=2, command=["sleep", "621"])
        manifest = manifest.replace(
            "      containers:",
            "      tolerations:\n"
            "      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,"
            " tolerationSeconds: 2}\n"
            "      containers:",
        )
        await cluster.apply(manifest)

        async def on_ghost() -> list[dict[str, Any]] | None:
            pods = await pods_of(cluster, "far")
            placed = [p for p in pods if (p.get("spec") or {}).get("nodeName") == GHOST]
            return placed if len(placed) == 2 else None

        far = await eventually(on_ghost, what="2 pods bound to the ghost")
        for pod in far:
            await report_running(cluster, pod)
            # Admission added the default toleration for not-ready, kept the pod's own.
            tolerations = pod["spec"]["tolerations"]
            assert {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            } in tolerations
            assert [t for t in tolerations if t["key"] == "node.kubernetes.io/unreachable"] == [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 2,
                }
            ]
        await cluster.client.patch(NODES, local, {"spec": {"unschedulable": False}})
        # Heard from: nothing happens to the ghost over more than a grace period.
        await asyncio.sleep(GRACE + 1)
        node = await cluster.client.get(NODES, GHOST)
        assert condition(node, "Ready")["status"] == "True"
        assert not (node.get("spec") or {}).get("taints")

        stop.set()
        silent = await beating

        async def unknown() -> dict[str, Any] | None:
            node = await cluster.client.get(NODES, GHOST)
            return node if condition(node, "Ready").get("status") == "Unknown" else None

        node = await eventually(unknown, timeout=GRACE + 10, what="the ghost Unknown")
        assert asyncio.get_running_loop().time() - silent >= GRACE
        ready_condition = condition(node, "Ready")
        assert ready_condition["reason"] == "NodeStatusUnknown"
        assert ready_condition["message"] == "Kubelet stopped posting node status."

        async def tainted() -> list[dict[str, Any]] | None:
            node = await cluster.client.get(NODES, GHOST)
            taints = (node.get("spec") or {}).get("taints") or []
            return taints if len(taints) == 2 else None

        taints = await eventually(tainted, what="the unreachable taints")
        assert {(t["key"], t["effect"]) for t in taints} == {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        }

        async def evicted() -> bool:
            pods = {p["metadata"]["name"]: p for p in await pods_of(cluster, "far")}
            gone = [pods.get(p["metadata"]["name"]) for p in far]
            return all(
                p is None or (p["metadata"].get("deletionTimestamp") and not ready(p)) for p in gone
            )

        await eventually(evicted, timeout=15, what="the ghost's pods not ready and evicted")

        async def replaced() -> bool:
            pods = await pods_of(cluster, "far")
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            return (
                len(live) == 2
                and all(p["spec"].get("nodeName") == local and ready(p) for p in live)
                and len(processes("sleep 621")) == 2
            )

        await eventually(replaced, what="replacements running on the local node")

        # Heard from again, Ready: the taints go.
        await cluster.client.patch(
            NODES, GHOST, {"status": ghost_node()["status"]}, subresource="status"
        )
        stop = asyncio.Event()
        beating = asyncio.create_task(renew(cluster, stop))

        async def untainted() -> bool:
            node = await cluster.client.get(NODES, GHOST)
            return not (node.get("spec") or {}).get("taints")

        await eventually(untainted, what="the taints removed")

        # The node goes for good: its pods, Terminating since their eviction, are removed
        # (PodGC) once it has stayed deleted for the quarantine.
        stop.set()
        await beating
        left = {p["metadata"]["name"]: p for p in await pods_of(cluster, "far")}
        assert all(left[p["metadata"]["name"]]["metadata"].get("deletionTimestamp") for p in far)
        await cluster.client.delete(NODES, GHOST)

        async def collected() -> bool:
            names = {p["metadata"]["name"] for p in await pods_of(cluster, "far")}
            return names.isdisjoint(p["metadata"]["name"] for p in far)

        await eventually(collected, timeout=15, what="the gone node's pods deleted")
        live = await pods_of(cluster, "far")
        assert len(live) == 2 and all(p["spec"]["nodeName"] == local for p in live)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await beating
