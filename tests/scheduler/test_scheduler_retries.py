"""The scheduler against a real API server: pending pods are retried when something
changes, nothing is rewritten when nothing did, and bursts are bound promptly."""

from __future__ import annotations

import asyncio
import time

from scheduler_harness import NODES, NS, PODS, Harness, unschedulable_condition, until

from procorch.api import errors


async def test_pending_pod_is_scheduled_once_a_fitting_node_appears(harness: Harness) -> None:
    await harness.pod("early")
    cond = await harness.unschedulable("early")
    assert cond["message"] == "no nodes available to schedule pods"
    await harness.node("late")
    assert await harness.bound("early", timeout=3.0) == "late"


async def test_pending_pod_is_scheduled_once_its_node_becomes_ready(harness: Harness) -> None:
    await harness.node("n1", ready="False")
    await harness.pod("p")
    cond = await harness.unschedulable("p")
    assert "node.kubernetes.io/not-ready" in cond["message"]
    await harness.client.patch(
        NODES,
        "n1",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Test"}]}},
        subresource="status",
        patch_type="strategic",
    )
    assert await harness.bound("p", timeout=3.0) == "n1"


async def test_retries_do_not_rewrite_an_unchanged_condition_or_event(
    quick_retry: Harness,
) -> None:
    h = quick_retry
    await h.node("cordoned", unschedulable=True)
    await h.pod("stuck")
    await h.unschedulable("stuck")
    await h.events.flush()
    version = (await h.get("stuck"))["metadata"]["resourceVersion"]
    # Retried every 0.1 s and on every node change, yet nothing is written again.
    for i in range(5):
        await h.client.patch(NODES, "cordoned", {"metadata": {"labels": {"n": str(i)}}})
        await asyncio.sleep(0.1)
    await h.events.flush()
    assert (await h.get("stuck"))["metadata"]["resourceVersion"] == version
    events = await h.failed_scheduling("stuck")
    assert len(events) == 1 and events[0]["count"] == 1


async def test_changed_reason_rewrites_condition_and_keeps_transition_time(
    quick_retry: Harness,
) -> None:
    h = quick_retry
    await h.node("n1", memory="1Gi")
    await h.pod("p", requests={"memory": "2Gi"}, nodeSelector={"disk": "ssd"})
    first = await h.unschedulable("p")
    assert first["message"] == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    )
    await h.client.patch(NODES, "n1", {"metadata": {"labels": {"disk": "ssd"}}})
    second = await until(
        lambda: h.get("p"),
        lambda p: (unschedulable_condition(p) or {}).get("message") != first["message"],
        5.0,
    )
    cond = unschedulable_condition(second)
    assert cond is not None
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient memory."
    assert cond["lastTransitionTime"] == first["lastTransitionTime"]


async def test_a_burst_of_200_pods_is_bound_promptly(harness: Harness) -> None:
    await harness.node("big", pods="500", cpu="64", memory="256Gi")
    started = time.monotonic()
    names = [f"burst-{i:03d}" for i in range(200)]
    for chunk in range(0, 200, 50):
        await asyncio.gather(*(harness.pod(n) for n in names[chunk : chunk + 50]))

    async def unbound() -> int:
        listed = await harness.client.list(PODS, namespace=NS)
        return sum(1 for p in listed.items if not p["spec"].get("nodeName"))

    await until(unbound, lambda n: n == 0, 10.0)
    elapsed = time.monotonic() - started
    listed = await harness.client.list(PODS, namespace=NS)
    assert len(listed.items) == 200
    assert {p["spec"]["nodeName"] for p in listed.items} == {"big"}
    assert elapsed < 10.0


async def test_a_deleted_pending_pod_leaves_the_queue(harness: Harness) -> None:
    await harness.node("n1")
    await harness.pod("doomed", requests={"memory": "100Gi"})
    await harness.unschedulable("doomed")
    assert ("default", "doomed") in harness.scheduler.queue
    await harness.client.delete(PODS, "doomed", namespace=NS, grace_period_seconds=0)

    async def gone() -> bool:
        try:
            await harness.get("doomed")
        except errors.NotFound:
            return True
        return False

    await until(gone, bool, 5.0)
    await until(
        lambda: asyncio.sleep(0, ("default", "doomed") in harness.scheduler.queue),
        lambda queued: not queued,
        5.0,
    )


async def test_a_pod_that_finishes_makes_room_for_a_waiting_one(harness: Harness) -> None:
    await harness.node("n1", memory="4Gi")
    await harness.pod("job", requests={"memory": "3Gi"})
    assert await harness.bound("job") == "n1"
    await harness.pod("next", requests={"memory": "3Gi"})
    cond = await harness.unschedulable("next")
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient memory."
    await harness.client.patch(
        PODS, "job", {"status": {"phase": "Succeeded"}}, namespace=NS, subresource="status"
    )
    assert await harness.bound("next", timeout=3.0) == "n1"
