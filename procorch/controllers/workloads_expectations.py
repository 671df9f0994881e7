"""Expectations: what a controller has asked for and not yet seen in its caches.

A ReplicaSet that created 3 pods must not create 3 more because its pod informer has not yet
delivered the first 3 (the watch is a little behind the writes). So before it acts it records
how many creations and which deletions it expects; informer handlers count them off as the
events arrive; and ``satisfied`` tells the reconcile whether the cache has caught up. Like
Kubernetes' ``UIDTrackingControllerExpectations``, expectations expire (after 5 minutes) so
that a lost event cannot wedge a controller forever, and deletions are tracked by pod uid so
that seeing a pod's deletionTimestamp and then its DELETED event counts once.

Concurrency: single event loop; no awaits inside.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TTL = 300.0


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    def __init__(
        self, *, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_key: dict[Hashable, _Expected] = {}

    def satisfied(self, key: Hashable) -> bool:
        """True when nothing is pending for ``key`` (or what was pending has expired)."""
        exp = self._by_key.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return self._clock() - exp.at > self.ttl

    def expect_creations(self, key: Hashable, count: int) -> None:
        self._by_key[key] = _Expected(adds=count, at=self._clock())

    def expect_deletions(self, key: Hashable, uids: Iterable[str]) -> None:
        self._by_key[key] = _Expected(deletes=set(uids), at=self._clock())

    def expect(self, key: Hashable, creations: int, deletion_uids: Iterable[str]) -> None:
        """Both at once, for a sync that creates and deletes (a DaemonSet's)."""
        self._by_key[key] = _Expected(adds=creations, deletes=set(deletion_uids), at=self._clock())

    def creation_observed(self, key: Hashable) -> None:
        exp = self._by_key.get(key)
        if exp is not None and exp.adds > 0:
            exp.adds -= 1

    def lower_creations(self, key: Hashable, count: int) -> None:
        """``count`` creations will never be observed (they failed or were skipped)."""
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds = max(0, exp.adds - count)

    def deletion_observed(self, key: Hashable, uid: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(uid)

    def forget(self, key: Hashable) -> None:
        self._by_key.pop(key, None)

    def pending(self, key: Hashable) -> tuple[int, int]:
        exp = self._by_key.get(key)
        return (0, 0) if exp is None else (exp.adds, len(exp.deletes))
