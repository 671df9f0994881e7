"""Garbage collection for a long-running server with a large heap of long-lived objects.

procorch holds every stored object decoded in memory, and its informers hold theirs: tens of
thousands of dicts and lists that live for minutes or days. CPython's cyclic collector walks
all of them on every full (generation 2) collection, which under load came every few seconds
and took 160-730 ms with ~20,000 ConfigMaps: every request in flight waited that long (the
mixed API load's p99). Reference counting frees this data (JSON-like, acyclic) the moment it
is dropped; the cyclic collector only needs to look at it to find cycles.

:class:`GcPolicy` therefore freezes the heap after each full collection (``gc.freeze``: the
survivors go to the permanent generation, which collections skip), so a full collection
walks only what was allocated since the last one. A cycle among frozen objects that becomes
garbage later is not collected while frozen; every ``unfreeze_interval`` the heap is thawed,
and the next full collection looks at everything once.

Used by ``procorch up`` and ``procorch agent`` (the processes procorch owns), never by code
embedding procorch (``procorch.testing``), whose process is not ours to tune.

Concurrency: one task on the event loop; the ``gc.callbacks`` hook only sets a flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from procorch.kit.logging import get_logger

log = get_logger("kit.gc")

class GcPolicy:
    def __init__(self, *, check_interval: float = 1.0, unfreeze_interval: float = 600.0) -> None:
        self.check_interval = check_interval
        self.unfreeze_interval = unfreeze_interval
        self._full_collection_done = False
        self._task: asyncio.Task[None] | None = None
        self.freezes = 0
        self.thaws = 0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self._full_collection_done = True

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        gc.collect()
        gc.freeze()
        self.freezes += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kit/gc-policy")

    async def _run(self) -> None:
        thawed_at = time.monotonic()
        while True:
            await asyncio.sleep(self.check_interval)
            if self._full_collection_done:
                self._full_collection_done = False
                gc.freeze()
                self.freezes += 1
            if time.monotonic() - thawed_at >= self.unfreeze_interval:
                gc.unfreeze()
                self.thaws += 1
                thawed_at = time.monotonic()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        gc.unfreeze()
