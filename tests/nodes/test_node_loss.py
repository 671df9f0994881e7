"""A node that drops off the network while its processes run: NotReady, its endpoints out of
the Services of every other node, its pods evicted and replaced on a live node, and fenced
(stopped) when it comes back.

Hosts are network namespaces (see conftest); taking a host's veth down cuts it off without
stopping anything on it. The control plane's grace period is 5 s and the pods tolerate the
unreachable taint for 3 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from procorch.api.resources import must
from procorch.launcher.up import Procorch
from tests.nodes.conftest import SERVER, Host, HostNetwork, fetch_each, join
from tests.nodes.test_join import ready_nodes
from tests.workloads.conftest import eventually

PODS = must("core/pods")
NODES = must("core/nodes")
DEPLOYMENTS = must("apps/deployments")
SERVICES = must("core/services")
SLICES = must("discovery.k8s.io/endpointslices")
MARK = "sleep 617"


def tolerant(replicas: int) -> dict[str, Any]:
    tolerations = [
        {
            "key": f"node.kubernetes.io/{taint}",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 3,
        }
        for taint in ("unreachable", "not-ready")
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tolerant", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "tolerant"}},
            "template": {
                "metadata": {"labels": {"app": "tolerant"}},
                "spec": {
                    "tolerations": tolerations,
                    "containers": [
                        {"name": "c", "command": MARK.split()},
                        {
                            "name": "web",
                            "command": ["python3", "-c", SERVER],
                            "ports": [{"containerPort": 8080}],
                        },
                    ],
                },
            },
        },
    }


def marked(network: HostNetwork, host: Any) -> list[int]:
    """The containers' processes on ``host``."""
    found = []
    for pid in network.pids(host):
        try:
            if " ".join(psutil.Process(pid).cmdline()) == MARK:
                found.append(pid)
        except psutil.NoSuchProcess:
            pass
    return found


TOLERANT_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "tolerant", "namespace": "default"},
    "spec": {"selector": {"app": "tolerant"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def ready_condition(node: dict[str, Any]) -> str:
    conditions = (node.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


async def two_nodes_one_pod_each(
    network: HostNetwork, plane: Procorch, tmp_path: Path
) -> tuple[Host, Host, str]:
    """Hosts node-a and node-b joined, and the ``tolerant`` Deployment with one pod Running
    on each: (node-a, node-b, the name of node-a's pod)."""
    a, b = network.add_host("node-a"), network.add_host("node-b")
    for host in (a, b):
        await join(network, plane, host, tmp_path)
    await ready_nodes(plane, "node-a", "node-b")
    await plane.admin.create(DEPLOYMENTS, tolerant(2), namespace="default")

    async def one_each() -> list[dict[str, Any]] | None:
        pods = (await plane.admin.list(PODS, namespace="default")).items
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        nodes = sorted(p["spec"]["nodeName"] for p in running)
        return running if nodes == ["node-a", "node-b"] else None

    running = await eventually(one_each, timeout=60, what="one pod Running on each node")
    on_a = next(p for p in running if p["spec"]["nodeName"] == "node-a")["metadata"]["name"]
    return a, b, str(on_a)


async def test_a_node_cut_off_is_replaced_elsewhere_and_stops_its_pods_when_it_is_back(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    a, b, on_a = await two_nodes_one_pod_each(network, plane, tmp_path)
    assert len(marked(network, a)) == 1
    service = await plane.admin.create(SERVICES, TOLERANT_SERVICE, namespace="default")
    url = f"http://{service['spec']['clusterIP']}/"

    async def pods() -> list[dict[str, Any]]:
        return (await plane.admin.list(PODS, namespace="default")).items

    names = {p["metadata"]["name"] for p in await pods()}
    on_b = (names - {on_a}).pop()

    async def both_serve() -> bool:
        return set(await fetch_each(network, b, [url] * 2)) == names

    await eventually(both_serve, timeout=30, what="node-b's proxy reaching both pods")

    network.link(a, up=False)  # node-a's processes keep running

    async def unknown() -> bool:
        return ready_condition(await plane.admin.get(NODES, "node-a")) == "Unknown"

    await eventually(unknown, timeout=30, what="node-a Unknown")

    async def out_of_endpoints() -> bool:
        slices = (await plane.admin.list(SLICES, namespace="default")).items
        endpoints = [e for s in slices for e in s.get("endpoints") or []]
        return not any(
            e.get("targetRef", {}).get("name") == on_a and e["conditions"].get("ready")
            for e in endpoints
        )

    await eventually(out_of_endpoints, timeout=10, what="node-a's endpoint not ready")
    # From the slice change on, no new connection goes to node-a (cut off, a connect there
    # would hang): each answers at once, from node-b's pod.
    assert await fetch_each(network, b, [url] * 6, timeout=1.0) == [on_b] * 6

    async def replaced() -> list[dict[str, Any]] | None:
        current = await pods()
        evicted = next((p for p in current if p["metadata"]["name"] == on_a), None)
        running_on_b = [
            p
            for p in current
            if p["spec"].get("nodeName") == "node-b"
            and (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ]
        terminating = evicted is not None and evicted["metadata"].get("deletionTimestamp")
        return running_on_b if terminating and len(running_on_b) == 2 else None

    await eventually(replaced, timeout=40, what="node-a's pod evicted and replaced on node-b")
    # Cut off, node-a has not heard: its container still runs (as on Kubernetes).
    assert len(marked(network, a)) == 1

    network.link(a, up=True)

    async def fenced() -> bool:
        names = {p["metadata"]["name"] for p in await pods()}
        return on_a not in names and not marked(network, a)

    await eventually(fenced, timeout=60, what="node-a stopped its evicted pod")
    assert len(marked(network, b)) == 2

    async def back() -> bool:
        return ready_condition(await plane.admin.get(NODES, "node-a")) == "True"

    await eventually(back, timeout=60, what="node-a Ready again")


async def test_a_node_whose_every_process_dies_is_replaced_and_cleans_up_when_restarted(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    a, b, on_a = await two_nodes_one_pod_each(network, plane, tmp_path)

    async def running_on(node: str) -> list[dict[str, Any]]:
        return [
            p
            for p in (await plane.admin.list(PODS, namespace="default")).items
            if p["spec"].get("nodeName") == node
            and (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ]

    # The machine dies: agent, supervisor and containers, all at once.
    for pid in network.pids(a):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    a.procs.clear()

    async def replaced() -> bool:
        return len(await running_on("node-b")) == 2

    await eventually(replaced, timeout=40, what="node-a's pod replaced on node-b")
    evicted = await plane.admin.get(PODS, on_a, namespace="default")
    assert evicted["metadata"].get("deletionTimestamp"), "evicted, waiting for its node"

    # The agent starts again with the same data dir: it finishes the evicted pod (whose
    # process is gone) and reports Ready; nothing runs twice.
    await join(network, plane, a, tmp_path)

    async def cleaned_up() -> bool:
        names = {p["metadata"]["name"] for p in (await plane.admin.list(PODS)).items}
        node = await plane.admin.get(NODES, "node-a")
        return on_a not in names and ready_condition(node) == "True"

    await eventually(cleaned_up, timeout=60, what="node-a back and its evicted pod gone")
    assert not marked(network, a)
    assert len(marked(network, b)) == 2
