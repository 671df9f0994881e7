"""The GC policy of procorch's own processes: long-lived data is frozen after each full
collection, thawed now and then so that cycles are still found, and left as found."""

from __future__ import annotations

import asyncio
import gc

from procorch.kit.gcpolicy import GcPolicy


async def until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_heap_is_frozen_every_interval_and_thawed_on_schedule() -> None:
    policy = GcPolicy(freeze_interval=0.01, unfreeze_interval=3600)
    policy.start()
    try:
        assert gc.get_freeze_count() > 0  # everything that existed at start
        frozen_at_start = gc.get_freeze_count()
        heap = [{"metadata": {"labels": {"i": str(i)}}, "spec": [i]} for i in range(20_000)]
        # New long-lived objects join the frozen heap within an interval.
        await until(lambda: gc.get_freeze_count() >= frozen_at_start + 20_000)
        assert policy.freezes >= 2
        policy.unfreeze_interval = 0.0
        await until(lambda: policy.thaws >= 1)
        del heap
    finally:
        await policy.stop()
    assert gc.get_freeze_count() == 0


async def test_a_cycle_that_dies_while_frozen_is_collected_after_the_thaw() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collected: list[int] = []
    policy = GcPolicy(freeze_interval=0.01, unfreeze_interval=3600)
    a, b = Node(), Node()
    a.other, b.other = b, a
    import weakref

    ref = weakref.ref(a, lambda _: collected.append(1))
    policy.start()  # the cycle is frozen with everything else
    try:
        del a, b
        gc.collect()
        assert ref() is not None  # frozen: not looked at
        policy.unfreeze_interval = 0.0
        await until(lambda: policy.thaws >= 1)  # thawed, then collected in full
        assert ref() is None and collected == [1]
    finally:
        await policy.stop()
