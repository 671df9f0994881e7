"""CrashLoopBackOff: how long a container waits before it is started again.

kubelet's rule (``flowcontrol.Backoff`` as ``doBackOff`` uses it): a container that exited is
restarted at once if it has no back-off entry; each restart doubles the entry's delay (10 s,
20 s, ... up to 5 min), and the next restart waits until that delay has passed since the
container *finished*. An entry not touched for ``reset`` seconds (10 min: the container ran
that long) is forgotten, so the next crash restarts at once again. No I/O; the caller passes
the clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    updated: float


class RestartBackoff:
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

    def restarted(self, key: Hashable, now: float) -> None:
        """Record a restart: the next one waits twice as long (up to the cap)."""
        entry = self._live(key, now)
        if entry is None:
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(self.cap, entry.delay * 2)
            entry.updated = now

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
