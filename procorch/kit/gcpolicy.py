"""Garbage collection for a long-running server with a large heap of long-lived objects.

procorch holds every stored object decoded in memory, and its informers hold theirs: tens of
thousands of dicts and lists that live for minutes or days. CPython's cyclic collector walks
all of them on every full (generation 2) collection, which under load came every few seconds
and took 160-730 ms with ~20,000 ConfigMaps: every request in flight waited that long (the
mixed API load's p99). Reference counting frees this data (JSON-like, acyclic) the moment it
is dropped; the cyclic collector only needs to look at it to find cycles, and the API server
makes almost none (collections under load found 0-18 unreachable objects).

:class:`GcPolicy` therefore freezes the heap once a second (``gc.freeze``: what exists moves
to the permanent generation, which collections skip), so a collection walks at most a
second's allocations. A cycle that becomes garbage while frozen is not collected then; every
``unfreeze_interval`` the heap is thawed and collected in full once (that one pause, every ten
minutes, is as long as each of the old ones was).

Used by ``procorch up`` (the process procorch owns), never by code embedding procorch
(``procorch.testing``), whose process is not ours to tune.

Concurrency: one task on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time

from procorch.kit.logging import get_logger

log = get_logger("kit.gc")


class GcPolicy:
    def __init__(self, *, freeze_interval: float = 1.0, unfreeze_interval: float = 600.0) -> None:
        self.freeze_interval = freeze_interval
        self.unfreeze_interval = unfreeze_interval
        self._task: asyncio.Task[None] | None = None
        self.freezes = 0
        self.thaws = 0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        self.freezes += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kit/gc-policy")

    async def _run(self) -> None:
        thawed_at = time.monotonic()
        while True:
            await asyncio.sleep(self.freeze_interval)
            if time.monotonic() - thawed_at >= self.unfreeze_interval:
                # The one full look at everything, for cycles that died while frozen.
                gc.unfreeze()
                started = time.perf_counter()
                found = gc.collect()
                self.thaws += 1
                thawed_at = time.monotonic()
                log.debug(
                    "full collection",
                    ms=round((time.perf_counter() - started) * 1000, 1),
                    unreachable=found,
                )
            gc.freeze()
            self.freezes += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        gc.unfreeze()
