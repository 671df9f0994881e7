"""The scheduling queue: order, backoff, and parking unschedulable pods."""

from __future__ import annotations

import asyncio

import pytest

from procorch.scheduler.queue import (
    ACTIVE,
    BACKOFF,
    UNSCHEDULABLE,
    QueueClosed,
    SchedulingQueue,
)


def make(*, initial: float = 0.05, maximum: float = 0.2, retry: float = 5.0) -> SchedulingQueue:
    return SchedulingQueue(initial_backoff=initial, max_backoff=maximum, retry_interval=retry)


async def pop_now(queue: SchedulingQueue) -> tuple[str, str]:
    return await asyncio.wait_for(queue.pop(), 0.5)


async def test_higher_priority_first_then_creation_order_then_arrival() -> None:
    queue = make()
    queue.add(("ns", "late"), created="2024-01-01T00:00:05Z")
    queue.add(("ns", "early"), created="2024-01-01T00:00:01Z")
    queue.add(("ns", "same-second-1"), created="2024-01-01T00:00:03Z")
    queue.add(("ns", "same-second-2"), created="2024-01-01T00:00:03Z")
    queue.add(("ns", "urgent"), priority=1000, created="2024-01-01T00:00:09Z")
    order = [(await pop_now(queue))[1] for _ in range(5)]
    assert order == ["urgent", "early", "same-second-1", "same-second-2", "late"]
    for key in order:
        queue.remove(("ns", key))
    assert len(queue) == 0


async def test_adding_a_queued_pod_again_does_not_duplicate_it() -> None:
    queue = make()
    queue.add(("ns", "a"))
    queue.add(("ns", "a"))
    assert await pop_now(queue) == ("ns", "a")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.pop(), 0.05)


async def test_removed_pod_is_never_handed_out() -> None:
    queue = make()
    queue.add(("ns", "gone"))
    queue.add(("ns", "kept"))
    queue.remove(("ns", "gone"))
    assert await pop_now(queue) == ("ns", "kept")


async def test_unschedulable_pod_waits_for_a_change_then_its_backoff() -> None:
    queue = make(initial=0.1, maximum=0.4)
    key = ("ns", "p")
    queue.add(key)
    await pop_now(queue)
    queue.unschedulable(key)
    assert queue.state(key) == UNSCHEDULABLE
    # A change right after the failure: it must first sit out its backoff.
    assert queue.move_all() == 1
    assert queue.state(key) == BACKOFF
    assert await asyncio.wait_for(queue.pop(), 0.5) == key
    # The second failure backs off twice as long; a change after that retries at once.
    queue.unschedulable(key)
    await asyncio.sleep(0.25)
    queue.move_all()
    assert queue.state(key) == ACTIVE
    assert await pop_now(queue) == key


async def test_unschedulable_pod_is_retried_after_the_retry_interval_without_changes() -> None:
    queue = make(initial=0.01, maximum=0.01, retry=0.1)
    key = ("ns", "p")
    queue.add(key)
    await pop_now(queue)
    queue.unschedulable(key)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(queue.pop(), 1.0) == key
    assert loop.time() - started >= 0.09


async def test_pod_update_activates_only_an_unschedulable_pod() -> None:
    queue = make(initial=0.0, maximum=0.0)
    key = ("ns", "p")
    queue.add(key)
    queue.activate(key)  # already active: nothing happens
    await pop_now(queue)
    queue.unschedulable(key)
    queue.activate(key)
    assert queue.state(key) == ACTIVE


async def test_backoff_readds_a_pod_whose_binding_failed() -> None:
    queue = make(initial=0.05)
    key = ("ns", "p")
    queue.backoff(key, priority=5, created="t")
    assert queue.state(key) == BACKOFF
    assert await pop_now(queue) == key


async def test_close_wakes_the_consumer() -> None:
    queue = make()
    waiter = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(waiter, 0.5)
