"""The scheduler against a real API server: which node a pod is bound to, and the exact
condition and event when none will take it."""

from __future__ import annotations

import asyncio

from scheduler_harness import CONFIGMAPS, NS, PODS, Harness, unschedulable_condition, until


async def test_binds_pods_to_the_only_ready_node(harness: Harness) -> None:
    await harness.node("not-ready", ready="False")
    await harness.node("ready")
    await harness.node("unknown", ready="Unknown")
    for i in range(6):
        await harness.pod(f"web-{i}")
    for i in range(6):
        assert await harness.bound(f"web-{i}") == "ready"
    pod = await harness.get("web-0")
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"


async def test_pods_of_one_owner_are_spread_over_the_nodes(harness: Harness) -> None:
    await harness.node("n1")
    await harness.node("n2")
    # A real object as the owner, so the garbage collector leaves the pods alone.
    owner = await harness.client.create(
        CONFIGMAPS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
        namespace=NS,
    )
    await asyncio.gather(*(harness.pod(f"replica-{i}", owner=owner) for i in range(4)))
    nodes = [await harness.bound(f"replica-{i}") for i in range(4)]
    assert sorted(nodes) == ["n1", "n1", "n2", "n2"]


async def test_pods_requesting_resources_fill_a_node_then_wait_for_room(harness: Harness) -> None:
    await harness.node("n1", cpu="4")
    await harness.pod("a", requests={"cpu": "1500m"})
    await harness.pod("b", requests={"cpu": "1500m"})
    assert await harness.bound("a") == "n1"
    assert await harness.bound("b") == "n1"
    await harness.pod("c", requests={"cpu": "1500m"})
    cond = await harness.unschedulable("c")
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    # A pod deleted makes room, and the waiting pod is retried at once.
    await harness.client.delete(PODS, "a", namespace=NS, grace_period_seconds=0)
    assert await harness.bound("c") == "n1"


async def test_a_pod_for_another_scheduler_is_left_alone(harness: Harness) -> None:
    await harness.node("n1")
    await harness.pod("theirs", schedulerName="other-scheduler")
    await harness.pod("ours")
    assert await harness.bound("ours") == "n1"
    await asyncio.sleep(0.2)
    pod = await harness.get("theirs")
    assert not pod["spec"].get("nodeName") and unschedulable_condition(pod) is None


async def test_a_gated_pod_waits_until_its_gates_are_removed(harness: Harness) -> None:
    await harness.node("n1")
    await harness.pod("gated", schedulingGates=[{"name": "example.com/wait"}])
    await asyncio.sleep(0.2)
    assert not (await harness.get("gated"))["spec"].get("nodeName")
    await harness.client.patch(
        PODS, "gated", {"spec": {"schedulingGates": None}}, namespace=NS, patch_type="merge"
    )
    assert await harness.bound("gated") == "n1"


# -- refusing --------------------------------------------------------------------------------


async def test_pod_that_does_not_fit_reports_insufficient_memory(harness: Harness) -> None:
    await harness.node("n1", memory="8Gi")
    await harness.pod("huge", requests={"memory": "16Gi"})
    message = "0/1 nodes are available: 1 Insufficient memory."
    cond = await harness.unschedulable("huge")
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == message
    assert cond["lastTransitionTime"]
    events = await harness.failed_scheduling("huge")
    assert [(e["type"], e["message"]) for e in events] == [("Warning", message)]
    assert events[0]["source"]["component"] == "default-scheduler"
    pod = await harness.get("huge")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


async def test_node_selector_mismatch_is_reported_and_a_matching_pod_binds(
    harness: Harness,
) -> None:
    await harness.node("n1", labels={"disk": "hdd"})
    await harness.pod("wants-ssd", nodeSelector={"disk": "ssd"})
    await harness.pod("wants-hdd", nodeSelector={"disk": "hdd"})
    assert await harness.bound("wants-hdd") == "n1"
    cond = await harness.unschedulable("wants-ssd")
    assert cond["message"] == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    )


async def test_required_node_affinity_picks_the_matching_node(harness: Harness) -> None:
    await harness.node("small", labels={"cores": "2"})
    await harness.node("big", labels={"cores": "16"})
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}
                ]
            }
        }
    }
    for i in range(3):
        await harness.pod(f"heavy-{i}", affinity=affinity)
    for i in range(3):
        assert await harness.bound(f"heavy-{i}") == "big"


async def test_taint_repels_pods_without_a_toleration(harness: Harness) -> None:
    await harness.node("gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    await harness.pod("plain")
    await harness.pod(
        "tolerant",
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
        ],
    )
    assert await harness.bound("tolerant") == "gpu"
    cond = await harness.unschedulable("plain")
    assert (
        cond["message"]
        == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."
    )


async def test_unschedulable_node_takes_no_pods(harness: Harness) -> None:
    await harness.node("cordoned", unschedulable=True)
    await harness.pod("p")
    cond = await harness.unschedulable("p")
    assert cond["message"] == "0/1 nodes are available: 1 node(s) were unschedulable."


async def test_reasons_from_several_nodes_are_counted_and_sorted(harness: Harness) -> None:
    await harness.node("a", memory="1Gi")
    await harness.node("b", labels={"disk": "hdd"})
    await harness.node("c", labels={"disk": "hdd"})
    await harness.node("d", ready="False")
    await harness.pod(
        "picky",
        requests={"memory": "2Gi"},
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "disk", "operator": "NotIn", "values": ["hdd"]}
                            ]
                        }
                    ]
                }
            }
        },
    )
    cond = await harness.unschedulable("picky")
    assert cond["message"] == (
        "0/4 nodes are available: 1 Insufficient memory, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )


async def test_status_write_keeps_the_other_conditions(harness: Harness) -> None:
    await harness.pod("p")
    await harness.client.patch(
        PODS,
        "p",
        {"status": {"conditions": [{"type": "example.com/Custom", "status": "True"}]}},
        namespace=NS,
        patch_type="strategic",
        subresource="status",
    )
    await harness.node("cordoned", unschedulable=True)
    await until(
        lambda: harness.get("p"),
        lambda p: (unschedulable_condition(p) or {}).get("message", "").startswith("0/1"),
        5.0,
    )
    types = {c["type"] for c in (await harness.get("p"))["status"]["conditions"]}
    assert types == {"example.com/Custom", "PodScheduled"}


async def test_pods_bound_without_the_scheduler_count_against_the_node(harness: Harness) -> None:
    await harness.node("n1", cpu="4")
    await harness.pod("pinned", requests={"cpu": "3"}, nodeName="n1")
    await harness.pod("extra", requests={"cpu": "2"})
    cond = await harness.unschedulable("extra")
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
