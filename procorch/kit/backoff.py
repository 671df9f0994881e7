"""Kubernetes' ``flowcontrol.Backoff``: a delay per key that doubles with each step up to a
cap, and is forgotten once the key has not stepped for ``reset`` seconds.

kubelet's CrashLoopBackOff uses it (``doBackOff``): a container that exited is restarted at
once if it has no entry; each restart doubles the entry's delay (10 s, 20 s, ... up to
5 min), and the next restart waits until that delay has passed since the container
*finished*; an entry not touched for 10 min (the container ran that long) is forgotten. The
DaemonSet controller uses it for failed daemon pods (1 s doubling to 15 min, counted from
the last deletion). No I/O; the caller passes the clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    updated: float


class FlowBackoff:
    def __init__(self, *, initial: float, cap: float, reset: float) -> None:
        self.initial = initial
        self.cap = cap
        self.reset = reset
        self._entries: dict[Hashable, _Entry] = {}

    def _live(self, key: Hashable, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.updated > self.reset:
            del self._entries[key]
            return None
        return entry

    def remaining(self, key: Hashable, *, finished_at: float, now: float) -> float:
        """Seconds until a container that finished at ``finished_at`` may start again."""
        entry = self._live(key, now)
        if entry is None:
            return 0.0
        return max(0.0, finished_at + entry.delay - now)

    def delay(self, key: Hashable, now: float) -> float:
        entry = self._live(key, now)
        return entry.delay if entry is not None else 0.0

    def step(self, key: Hashable, now: float) -> None:
        """Record a step (a restart, a deletion): the next waits twice as long (to the cap)."""
        entry = self._live(key, now)
        if entry is None:
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(self.cap, entry.delay * 2)
            entry.updated = now

    def since_step(self, key: Hashable, now: float) -> float:
        """Seconds left of the delay counted from the key's last step
        (``IsInBackOffSinceUpdate``); 0 when it may step again."""
        entry = self._live(key, now)
        if entry is None:
            return 0.0
        return max(0.0, entry.updated + entry.delay - now)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def collect(self, now: float) -> None:
        """Forget every entry that has not stepped for ``reset`` seconds (``GC``)."""
        for key in [k for k, e in self._entries.items() if now - e.updated > self.reset]:
            del self._entries[key]
