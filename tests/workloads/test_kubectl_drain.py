"""cordon, drain and PodDisruptionBudgets with real kubectl against real processes: the
eviction subresource, the disruption controller's status, and a budget that blocks a drain.

One node here (the local one): a drained node's replacements stay Pending until it is
uncordoned, as on a one-node Kubernetes cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from procorch.api import errors
from procorch.api.resources import must
from tests.agent.conftest import Cluster, ready
from tests.conftest import Kubectl
from tests.workloads.conftest import apply, deployment, eventually, pods_of, processes

pytestmark = pytest.mark.kubectl

PDBS = must("policy/poddisruptionbudgets")
NODES = must("core/nodes")


def budget(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
    }


async def node_name(cluster: Cluster) -> str:
    nodes = (await cluster.client.list(NODES)).items
    assert len(nodes) == 1
    return str(nodes[0]["metadata"]["name"])


async def settled(cluster: Cluster, name: str, **want: int) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        pdb = await cluster.client.get(PDBS, name, namespace="default")
        status = pdb.get("status") or {}
        return status if all(status.get(k) == v for k, v in want.items()) else None

    result: dict[str, Any] = await eventually(check, what=f"budget {name} at {want}")
    return result


async def all_ready(cluster: Cluster, app: str, n: int) -> bool:
    pods = await pods_of(cluster, app)
    return len(pods) == n and all(ready(p) for p in pods)


async def first_budget_change(cluster: Cluster, after: str) -> dict[str, Any]:
    """The first version of a budget written after resourceVersion ``after``."""
    async with asyncio.timeout(10):
        async for event in cluster.client.watch(PDBS, namespace="default", resource_version=after):
            if event.type == "MODIFIED":
                return event.object
    raise AssertionError("no change to the budget")


async def evict(cluster: Cluster, pod: str) -> tuple[int, dict[str, Any]]:
    """POST an Eviction as kubectl drain does; (status code, body)."""
    url = f"{cluster.procorch.api_url}/api/v1/namespaces/default/pods/{pod}/eviction"
    token = cluster.procorch.control_plane.admin_token
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}, ssl=False
        ) as reply:
            return reply.status, await reply.json()


async def test_drain_evicts_every_pod_then_uncordon_lets_them_back(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, deployment("drained", replicas=2, command=["sleep", "611"]))
    await kubectl("rollout", "status", "deployment/drained", "--timeout=60s")
    node = await node_name(cluster)
    first = {p["metadata"]["name"] for p in await pods_of(cluster, "drained")}

    out = await kubectl("drain", node, "--ignore-daemonsets", "--timeout=60s")
    assert f"node/{node} cordoned" in out.stdout
    assert f"node/{node} drained" in out.stdout
    for name in first:
        assert f"pod/{name} evicted" in out.stdout
    assert processes("sleep 611") == []
    assert (await cluster.client.get(NODES, node))["spec"]["unschedulable"] is True
    # The replacements wait: the only node is cordoned.
    pods = await pods_of(cluster, "drained")
    assert {p["metadata"]["name"] for p in pods}.isdisjoint(first)
    assert all(p["status"].get("phase") == "Pending" for p in pods)
    table = (await kubectl("get", "nodes", "--no-headers")).stdout
    assert "SchedulingDisabled" in table

    await kubectl("uncordon", node)
    await eventually(lambda: all_ready(cluster, "drained", 2), what="pods back after uncordon")
    assert len(processes("sleep 611")) == 2


async def test_a_budget_that_allows_no_disruption_blocks_drain(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, deployment("guarded", replicas=2, command=["sleep", "612"]))
    await kubectl("rollout", "status", "deployment/guarded", "--timeout=60s")
    await cluster.client.create(
        PDBS, budget("guard", "guarded", minAvailable=2), namespace="default"
    )
    status = await settled(
        cluster, "guard", disruptionsAllowed=0, currentHealthy=2, desiredHealthy=2, expectedPods=2
    )
    assert status["conditions"][0]["reason"] == "InsufficientPods"
    table = (await kubectl("get", "pdb", "guard", "--no-headers")).stdout.split()
    assert table[:4] == ["guard", "2", "N/A", "0"]

    out = await kubectl(
        "drain", await node_name(cluster), "--ignore-daemonsets", "--timeout=3s", check=False
    )
    assert not out.ok
    assert "Cannot evict pod as it would violate the pod's disruption budget." in out.stderr
    assert len(processes("sleep 612")) == 2
    assert await all_ready(cluster, "guarded", 2)


async def test_eviction_spends_the_budget_then_answers_429(cluster: Cluster) -> None:
    # Pods that take two seconds to stop, so that an evicted one is still Terminating when
    # it is evicted again below.
    slow_stop = "trap 'sleep 2; exit 0' TERM; sleep 613 & wait"
    await cluster.apply(deployment("spent", replicas=3, command=["sh", "-c", slow_stop]))
    await eventually(lambda: all_ready(cluster, "spent", 3), what="3 ready pods")
    await cluster.client.create(
        PDBS, budget("spend", "spent", maxUnavailable="34%"), namespace="default"
    )
    # 34 % of 3 rounds up to 2 unavailable: 1 healthy pod is needed.
    await settled(cluster, "spend", disruptionsAllowed=2, desiredHealthy=1, expectedPods=3)
    names = sorted(p["metadata"]["name"] for p in await pods_of(cluster, "spent"))
    # Cordoned, so that no replacement becomes healthy while the budget is spent.
    node = await node_name(cluster)
    await cluster.client.patch(NODES, node, {"spec": {"unschedulable": True}})

    before = await cluster.client.get(PDBS, "spend", namespace="default")
    code, body = await evict(cluster, names[0])
    assert (code, body["status"]) == (201, "Success")
    # The eviction's own write to the budget (the controller soon drops the entry again,
    # once it sees the pod being deleted): one disruption spent, the pod recorded.
    written = await first_budget_change(cluster, before["metadata"]["resourceVersion"])
    assert names[0] in written["status"]["disruptedPods"]
    assert written["status"]["disruptionsAllowed"] == 1
    # Evicting the same pod twice does not spend twice: it is already being deleted.
    code, _ = await evict(cluster, names[0])
    assert code == 201
    pdb = await cluster.client.get(PDBS, "spend", namespace="default")
    assert pdb["status"]["disruptionsAllowed"] == 1
    code, body = await evict(cluster, names[1])
    assert code == 201
    code, body = await evict(cluster, names[2])
    assert code == 429
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert "needs 1 healthy pods" in body["details"]["causes"][0]["message"]
    # Uncordoned, the Deployment's replacements run and the budget comes back.
    await cluster.client.patch(NODES, node, {"spec": {"unschedulable": False}})
    await eventually(lambda: all_ready(cluster, "spent", 3), what="replacements ready")
    await settled(cluster, "spend", disruptionsAllowed=2, currentHealthy=3)


async def test_a_pod_under_two_budgets_cannot_be_evicted_and_bad_budgets_are_refused(
    cluster: Cluster,
) -> None:
    await cluster.apply(deployment("twice", replicas=1, command=["sleep", "614"]))
    await eventually(lambda: all_ready(cluster, "twice", 1), what="a ready pod")
    for name in ("one", "two"):
        await cluster.client.create(
            PDBS, budget(name, "twice", maxUnavailable=1), namespace="default"
        )
    await settled(cluster, "two", disruptionsAllowed=1)
    (pod,) = await pods_of(cluster, "twice")
    code, body = await evict(cluster, pod["metadata"]["name"])
    assert code == 500
    assert "more than one PodDisruptionBudget" in body["message"]

    with pytest.raises(errors.Invalid) as both:
        await cluster.client.create(
            PDBS, budget("both", "twice", minAvailable=1, maxUnavailable=1), namespace="default"
        )
    assert "minAvailable and maxUnavailable cannot be both set" in str(both.value)
    with pytest.raises(errors.Invalid) as over:
        await cluster.client.create(
            PDBS, budget("over", "twice", minAvailable="101%"), namespace="default"
        )
    assert "spec.minAvailable" in str(over.value)
    listed = (await cluster.client.list(PDBS, namespace="default")).items
    assert {p["metadata"]["name"] for p in listed} == {"one", "two"}  # nothing half-applied
