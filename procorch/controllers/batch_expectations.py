"""What the Job controller has asked for and its caches have not shown yet.

The pod informer trails the controller's own writes by a little. Without memory of those
writes a Job would create its pods twice (the first ones not yet in the cache), or count a
finished pod twice (its finalizer removal not yet seen, the pod looking uncounted again). So,
as Kubernetes' job controller does:

* :class:`Expectations` counts pod creations and deletions still to be observed; a Job is not
  managed again until they are (or until they expire, so a lost event cannot wedge a Job);
* :class:`FinalizerExpectations` remembers the pods whose tracking finalizer was removed
  until the informer shows the pod without it (or gone); such pods are never counted again.

Concurrency: single event loop; no awaits inside.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TTL = 300.0


@dataclass
class _Pending:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    def __init__(
        self, *, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_key: dict[Hashable, _Pending] = {}

    def satisfied(self, key: Hashable) -> bool:
        pending = self._by_key.get(key)
        if pending is None or (pending.adds <= 0 and not pending.deletes):
            return True
        return self._clock() - pending.at > self.ttl

    def expect_creations(self, key: Hashable, count: int) -> None:
        self._by_key[key] = _Pending(adds=count, at=self._clock())

    def expect_deletions(self, key: Hashable, uids: Iterable[str]) -> None:
        self._by_key[key] = _Pending(deletes=set(uids), at=self._clock())

    def creation_observed(self, key: Hashable, count: int = 1) -> None:
        pending = self._by_key.get(key)
        if pending is not None:
            pending.adds = max(0, pending.adds - count)

    def deletion_observed(self, key: Hashable, uid: str) -> None:
        pending = self._by_key.get(key)
        if pending is not None:
            pending.deletes.discard(uid)

    def forget(self, key: Hashable) -> None:
        self._by_key.pop(key, None)


class FinalizerExpectations:
    def __init__(self) -> None:
        self._by_key: dict[Hashable, set[str]] = {}

    def expect_removed(self, key: Hashable, uids: Iterable[str]) -> None:
        self._by_key.setdefault(key, set()).update(uids)

    def removal_observed(self, key: Hashable, uid: str) -> None:
        uids = self._by_key.get(key)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self._by_key[key]

    def expected(self, key: Hashable) -> frozenset[str]:
        return frozenset(self._by_key.get(key, ()))

    def forget(self, key: Hashable) -> None:
        self._by_key.pop(key, None)
