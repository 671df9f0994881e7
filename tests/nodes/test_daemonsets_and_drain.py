"""DaemonSets and drain over nodes on several hosts, driven with the real kubectl.

Each host is a network namespace of its own running a real ``procorch agent`` (see conftest).
A DaemonSet runs one pod on each node that should run one: a node that joins later gets its
pod, a node whose labels stop matching loses it, and a rolling update replaces them one node
at a time. ``kubectl drain`` moves a node's pods to the other node through the Eviction API,
and a PodDisruptionBudget that allows no disruption stops it with Kubernetes' answer.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from procorch.api.resources import must
from procorch.launcher.up import Procorch
from tests.conftest import KUBECTL, Kubectl
from tests.nodes.conftest import HostNetwork, join
from tests.nodes.test_join import ready_nodes, web
from tests.workloads.conftest import eventually

PODS = must("core/pods")
DAEMON_SETS = must("apps/daemonsets")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed here")


def daemon_set(name: str, node_selector: dict[str, str] | None = None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "main", "command": ["sleep", "600"]}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }
    )


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


async def live_pods(plane: Procorch, app: str) -> list[dict[str, Any]]:
    pods = (await plane.admin.list(PODS, namespace="default", label_selector=f"app={app}")).items
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


async def one_ready_pod_on_each(plane: Procorch, app: str, nodes: set[str]) -> dict[str, Any]:
    """Wait until ``app`` has exactly one live, Ready pod on each of ``nodes`` and none
    elsewhere; the pods by node."""

    async def check() -> dict[str, Any] | None:
        pods = await live_pods(plane, app)
        by_node = {p["spec"].get("nodeName"): p for p in pods}
        if len(pods) != len(nodes) or set(by_node) != nodes:
            return None
        return by_node if all(ready(p) for p in pods) else None

    result: dict[str, Any] = await eventually(
        check, timeout=60, what=f"one Ready {app} pod on each of {sorted(nodes)}"
    )
    return result


async def test_a_daemon_set_runs_one_pod_per_eligible_node_and_rolls_out_node_by_node(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    kubectl = Kubectl(plane.kubeconfig_path, tmp_path / "kube-cache")
    a, b, c = (network.add_host(n) for n in ("node-a", "node-b", "node-c"))
    await asyncio.gather(join(network, plane, a, tmp_path), join(network, plane, b, tmp_path))
    await ready_nodes(plane, "node-a", "node-b")

    await kubectl("apply", "-f", "-", input=daemon_set("daemon"))
    await kubectl("apply", "-f", "-", input=daemon_set("edge", {"role": "edge"}))
    first = await one_ready_pod_on_each(plane, "daemon", {"node-a", "node-b"})

    # A node that joins later gets its pod.
    await join(network, plane, c, tmp_path)
    await ready_nodes(plane, "node-c")
    pods = await one_ready_pod_on_each(plane, "daemon", {"node-a", "node-b", "node-c"})
    assert pods["node-a"]["metadata"]["uid"] == first["node-a"]["metadata"]["uid"]
    await kubectl("rollout", "status", "ds/daemon", "--timeout=60s")
    table = await kubectl("get", "ds", "daemon", "--no-headers")
    assert table.stdout.split()[1:6] == ["3", "3", "3", "3", "3"], table.stdout

    # nodeSelector: a node labelled role=edge gets the edge pod; unlabelled, it loses it.
    assert await live_pods(plane, "edge") == []
    await kubectl("label", "node", "node-b", "role=edge")
    await one_ready_pod_on_each(plane, "edge", {"node-b"})
    table = await kubectl("get", "ds", "edge", "--no-headers")
    assert table.stdout.split()[1:7] == ["1", "1", "1", "1", "1", "role=edge"], table.stdout
    await kubectl("label", "node", "node-b", "role-")

    async def edge_gone() -> bool:
        return await live_pods(plane, "edge") == []

    await eventually(edge_gone, timeout=30, what="edge pod removed from node-b")

    # A rolling update (maxUnavailable 1): at no moment are two nodes without a Ready pod.
    listed = await plane.admin.list(PODS, namespace="default", label_selector="app=daemon")
    state = {p["metadata"]["uid"]: p for p in listed.items}
    worst = 0

    async def follow() -> None:
        nonlocal worst
        async for event in plane.admin.watch(
            PODS,
            namespace="default",
            label_selector="app=daemon",
            resource_version=listed.resource_version,
        ):
            if event.type == "DELETED":
                state.pop(event.object["metadata"]["uid"], None)
            else:
                state[event.object["metadata"]["uid"]] = event.object
            serving = {p["spec"].get("nodeName") for p in state.values() if ready(p)}
            worst = max(worst, 3 - len(serving & {"node-a", "node-b", "node-c"}))

    watcher = asyncio.create_task(follow())
    try:
        await kubectl("set", "env", "ds/daemon", "VERSION=2")
        await kubectl("rollout", "status", "ds/daemon", "--timeout=90s")
    finally:
        watcher.cancel()
    updated = await one_ready_pod_on_each(plane, "daemon", {"node-a", "node-b", "node-c"})
    for pod in updated.values():
        env = pod["spec"]["containers"][0].get("env") or []
        assert {"name": "VERSION", "value": "2"} in env
    assert worst == 1, f"{worst} nodes were without a Ready pod at once (maxUnavailable 1)"

    history = await kubectl("rollout", "history", "ds/daemon")
    assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line.strip()] == [
        "1",
        "2",
    ]
    await kubectl("rollout", "undo", "ds/daemon")
    await kubectl("rollout", "status", "ds/daemon", "--timeout=90s")
    restored = await one_ready_pod_on_each(plane, "daemon", {"node-a", "node-b", "node-c"})
    for pod in restored.values():
        assert not pod["spec"]["containers"][0].get("env")

    # Deleting the DaemonSet takes its pods and revisions with it.
    await kubectl("delete", "ds", "daemon", "edge", "--wait=true")

    async def all_gone() -> bool:
        revisions = await kubectl("get", "controllerrevisions", "-o", "name")
        return await live_pods(plane, "daemon") == [] and revisions.stdout.strip() == ""

    await eventually(all_gone, timeout=30, what="pods and revisions of the DaemonSet deleted")


def budget(**spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
        }
    )


async def test_drain_moves_pods_to_the_other_node_within_a_budget_and_a_full_budget_stops_it(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    kubectl = Kubectl(plane.kubeconfig_path, tmp_path / "kube-cache")
    a, b = network.add_host("node-a"), network.add_host("node-b")
    await asyncio.gather(join(network, plane, a, tmp_path), join(network, plane, b, tmp_path))
    await ready_nodes(plane, "node-a", "node-b")
    await kubectl("apply", "-f", "-", input=json.dumps(web(2)))
    await kubectl("apply", "-f", "-", input=daemon_set("daemon"))
    await kubectl("apply", "-f", "-", input=budget(minAvailable=1))
    spread = await one_ready_pod_on_each(plane, "web", {"node-a", "node-b"})
    await one_ready_pod_on_each(plane, "daemon", {"node-a", "node-b"})

    async def allowed(n: int) -> bool:
        out = await kubectl("get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}")
        return out.stdout == str(n)

    await eventually(lambda: allowed(1), timeout=30, what="1 disruption allowed")

    # Drain node-a: its web pod is evicted and replaced on node-b; the daemon pod stays.
    out = await kubectl("drain", "node-a", "--ignore-daemonsets", "--timeout=60s")
    assert f"evicting pod default/{spread['node-a']['metadata']['name']}" in out.stdout + out.stderr
    assert "node/node-a drained" in out.stdout

    async def moved() -> bool:
        pods = await live_pods(plane, "web")
        return len(pods) == 2 and all(
            p["spec"].get("nodeName") == "node-b" and ready(p) for p in pods
        )

    await eventually(moved, timeout=60, what="both web pods Ready on node-b")
    await one_ready_pod_on_each(plane, "daemon", {"node-a", "node-b"})
    nodes = await kubectl("get", "node", "node-a", "--no-headers")
    assert "SchedulingDisabled" in nodes.stdout

    # A budget that allows no disruption: the drain of node-b is refused and times out,
    # and every pod keeps running.
    await kubectl("uncordon", "node-a")
    await kubectl("apply", "-f", "-", input=budget(minAvailable=2))
    await eventually(lambda: allowed(0), timeout=30, what="0 disruptions allowed")
    blocked = await kubectl(
        "drain", "node-b", "--ignore-daemonsets", "--timeout=5s", check=False, timeout=30
    )
    assert blocked.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in blocked.stderr
    pods = await live_pods(plane, "web")
    assert len(pods) == 2 and all(p["spec"].get("nodeName") == "node-b" for p in pods)
    assert all(ready(p) for p in pods)
