"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Modelled on kube-scheduler's ``PriorityQueue``. Every pod the scheduler is responsible for
and that is not bound is in exactly one state:

* **active**: waiting its turn, ordered by ``spec.priority`` (higher first), then creation
  time, then the order the scheduler first saw it (FIFO);
* **backoff**: it failed recently and waits ``initial * 2**(attempts-1)`` seconds (capped)
  before it becomes active again;
* **unschedulable**: no node could take it; it waits for a change that may help
  (:meth:`move_all`, :meth:`activate`), and at most ``retry_interval`` seconds. A change
  moves it to *active*, or to *backoff* while its last failure is too recent, so a flurry of
  events never turns into a hot loop;
* **popped**: handed out by :meth:`pop`; the caller settles it at once (without awaiting)
  with :meth:`unschedulable`, :meth:`backoff` or :meth:`remove`.

Concurrency: single event loop, one consumer awaiting :meth:`pop`; informer handlers call
the other methods synchronously. Timers are ``loop.call_at`` handles owned by the queue;
:meth:`close` cancels them and wakes the consumer with :class:`QueueClosed`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass

Key = tuple[str, str]  # (namespace, name)

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
POPPED = "popped"

_TIMER_SLACK = 0.001


class QueueClosed(Exception):
    """Raised by :meth:`SchedulingQueue.pop` once the queue is closed."""


@dataclass(slots=True)
class _Entry:
    key: Key
    priority: int
    created: str
    seq: int
    state: str = ACTIVE
    token: int = 0  # bumped on every state change: stale heap items and timers are ignored
    attempts: int = 0
    failed_at: float = 0.0


class SchedulingQueue:
    def __init__(
        self,
        *,
        initial_backoff: float,
        max_backoff: float,
        retry_interval: float,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.retry_interval = retry_interval
        self._entries: dict[Key, _Entry] = {}
        self._active: list[tuple[int, str, int, int, Key]] = []  # heap
        self._unschedulable: set[Key] = set()
        self._timers: list[tuple[float, int, int, Key]] = []  # heap of (due, seq, token, key)
        self._timer: asyncio.TimerHandle | None = None
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._closed = False

    # -- reads ---------------------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def state(self, key: Key) -> str | None:
        entry = self._entries.get(key)
        return entry.state if entry is not None else None

    def backoff_for(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return min(self.max_backoff, self.initial_backoff * 2 ** (attempts - 1))

    # -- writes from the informers ---------------------------------------------------------------

    def add(self, key: Key, *, priority: int = 0, created: str = "") -> None:
        """A pending pod to schedule; no-op when it is queued already."""
        if self._closed or key in self._entries:
            return
        entry = _Entry(key, priority, created, next(self._seq))
        self._entries[key] = entry
        self._make_active(entry)

    def activate(self, key: Key) -> None:
        """The pod changed: if it was waiting as unschedulable, give it another go."""
        entry = self._entries.get(key)
        if entry is not None and entry.state == UNSCHEDULABLE:
            self._move(entry)

    def move_all(self) -> int:
        """Something changed that may let unschedulable pods fit: retry them all (subject
        to backoff). Returns how many were moved."""
        keys = list(self._unschedulable)
        for key in keys:
            self._move(self._entries[key])
        return len(keys)

    def remove(self, key: Key) -> None:
        """Forget the pod: it is bound, gone, or not this scheduler's any more."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.token += 1
            self._unschedulable.discard(key)

    # -- the consumer ------------------------------------------------------------------------------

    async def pop(self) -> Key:
        """The next pod to try; waits while none is active."""
        while True:
            while self._active:
                _, _, _, token, key = heapq.heappop(self._active)
                entry = self._entries.get(key)
                if entry is not None and entry.state == ACTIVE and entry.token == token:
                    entry.state = POPPED
                    return key
            if self._closed:
                raise QueueClosed
            self._wakeup.clear()
            await self._wakeup.wait()

    def unschedulable(self, key: Key) -> None:
        """No node could take the popped pod: park it until something changes."""
        entry = self._entries.get(key)
        if entry is None:
            return
        self._failed(entry)
        entry.state = UNSCHEDULABLE
        self._unschedulable.add(key)
        self._at(self._now() + self.retry_interval, entry)

    def backoff(self, key: Key, *, priority: int = 0, created: str = "") -> None:
        """The attempt failed for another reason (an API error): try again after backoff.
        Re-adds a pod that was removed when its binding was started."""
        if self._closed:
            return
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(key, priority, created, next(self._seq))
        self._unschedulable.discard(key)
        self._failed(entry)
        entry.state = BACKOFF
        self._at(entry.failed_at + self.backoff_for(entry.attempts), entry)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wakeup.set()

    # -- internals ---------------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _failed(self, entry: _Entry) -> None:
        entry.attempts += 1
        entry.failed_at = self._now()
        entry.token += 1

    def _make_active(self, entry: _Entry) -> None:
        self._unschedulable.discard(entry.key)
        entry.state = ACTIVE
        entry.token += 1
        item = (-entry.priority, entry.created, entry.seq, entry.token, entry.key)
        heapq.heappush(self._active, item)
        self._wakeup.set()

    def _move(self, entry: _Entry) -> None:
        due = entry.failed_at + self.backoff_for(entry.attempts)
        if due <= self._now() + _TIMER_SLACK:
            self._make_active(entry)
            return
        self._unschedulable.discard(entry.key)
        entry.state = BACKOFF
        entry.token += 1
        self._at(due, entry)

    def _at(self, due: float, entry: _Entry) -> None:
        if self._closed:
            return
        heapq.heappush(self._timers, (due, next(self._seq), entry.token, entry.key))
        self._arm()

    def _arm(self) -> None:
        if not self._timers or self._closed:
            return
        due = self._timers[0][0]
        if self._timer is not None:
            if self._timer.when() <= due:
                return
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        # The loop may run a timer up to its clock resolution early: allow for it, or the
        # timer would be re-armed for the same instant again and again.
        now = self._now() + _TIMER_SLACK
        while self._timers and self._timers[0][0] <= now:
            _, _, token, key = heapq.heappop(self._timers)
            entry = self._entries.get(key)
            if entry is None or entry.token != token:
                continue
            if entry.state == BACKOFF:
                self._make_active(entry)
            elif entry.state == UNSCHEDULABLE:
                self._move(entry)
        self._arm()
