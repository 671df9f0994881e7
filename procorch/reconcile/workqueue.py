"""A de-duplicating work queue with delayed adds and per-key exponential backoff.

The semantics are client-go's ``workqueue``: a key is queued at most once; a key being
processed is never handed to a second worker (if it is added meanwhile, it is queued again
when the first worker calls :meth:`done`); ``add_after`` schedules a key for later without a
task per key; ``add_rate_limited`` backs a key off exponentially (with jitter) until
:meth:`forget` resets it.

Concurrency: single event loop; any number of workers may call :meth:`get` concurrently.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and drained."""


class Backoff:
    """Exponential backoff per key: ``base * 2**failures`` capped at ``cap``, with jitter."""

    def __init__(self, *, base: float = 0.005, cap: float = 300.0, jitter: float = 0.1) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._failures: dict[Hashable, int] = {}

    def next(self, key: Hashable) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.cap, self.base * (2**n))
        return delay * (1 + random.uniform(0, self.jitter))

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    def __init__(self, *, name: str = "", backoff: Backoff | None = None) -> None:
        self.name = name
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added while processing: requeue on done()
        self._waiting: list[tuple[float, int, K]] = []  # heap of (due, seq, key)
        self._seq = itertools.count()
        self._getters: deque[asyncio.Future[None]] = deque()
        # uvloop's call_at returns a plain Handle (no ``when()``) for a time already past, so
        # the timer's due time is kept here.
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0
        self._shutdown = False
        self.backoff = backoff or Backoff()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        heapq.heappush(self._waiting, (loop.time() + delay, next(self._seq), key))
        self._arm_timer()

    def add_rate_limited(self, key: K) -> float:
        delay = self.backoff.next(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self.backoff.forget(key)

    async def get(self) -> K:
        while not self._queue:
            if self._shutdown:
                raise ShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._notify()  # we were handed a key we will not take: pass it on
                else:
                    self._drop_getter(waiter)
                raise
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def _drop_getter(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._getters.remove(waiter)
        except ValueError:
            pass

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        self._shutdown = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._notify()

    def _notify(self) -> None:
        # Wake one getter per queued key (all of them on shutdown).
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not self._shutdown:
                    return

    def _arm_timer(self) -> None:
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        due = self._waiting[0][0]
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer = loop.call_at(due, self._fire)
        self._timer_due = due

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, key = heapq.heappop(self._waiting)
            self.add(key)
        self._arm_timer()
