"""A bounded pool of connections waiting on their clients, closed oldest first.

The API port (connections not yet authenticated) and the Ingress router (connections without
a request in progress) hold descriptors for clients that may never send anything useful. Both
bound them the same way: past ``limit`` the oldest are closed, so a flood of slow or silent
clients only ever evicts its own, while a real client, which sends its request as soon as it
connects, leaves the pool within milliseconds. Members younger than ``grace`` are spared until
there are twice ``limit`` of them: a burst accepted at once holds real clients that have not
spoken yet.

:func:`share_of_open_files` derives such a limit from the descriptor limit.

Concurrency: single event loop; ``evict`` is called synchronously and must close its member
(and may call :meth:`OldestFirst.discard` on it).
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from procorch.kit.logging import get_logger

log = get_logger("kit.oldest")

T = TypeVar("T", bound=Hashable)


def share_of_open_files(divisor: int, *, minimum: int = 16, maximum: int) -> int:
    """``1/divisor`` of the soft open-files limit, within ``minimum`` and ``maximum``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return maximum
    return max(minimum, min(maximum, soft // divisor))


class OldestFirst(Generic[T]):
    def __init__(
        self,
        *,
        limit: int,
        grace: float,
        evict: Callable[[T], None],
        clock: Callable[[], float],
        what: str,
    ) -> None:
        self.limit = limit
        self.grace = grace
        self._evict = evict
        self._clock = clock
        self._what = what  # for the log: "unauthenticated API connections"
        self._since: dict[T, float] = {}  # insertion order is age order: oldest first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._since)

    def __contains__(self, member: object) -> bool:
        return member in self._since

    def add(self, member: T) -> None:
        """``member`` (again) joins as the youngest; the oldest go if there are too many."""
        self._since.pop(member, None)
        now = self._since[member] = self._clock()
        excess = len(self._since) - self.limit
        if excess <= 0:
            return
        spare_young = len(self._since) <= 2 * self.limit
        settled = now - self.grace
        for oldest, since in list(self._since.items())[:excess]:
            if spare_young and since > settled:
                break
            self._close(oldest)

    def discard(self, member: T) -> None:
        self._since.pop(member, None)

    def evict_oldest(self) -> bool:
        """Close the oldest member whatever its age (no descriptor is left); False if none."""
        if not self._since:
            return False
        self._close(next(iter(self._since)))
        return True

    def _close(self, member: T) -> None:
        self._since.pop(member, None)
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning(
                f"closing the oldest {self._what} to admit new ones",
                limit=self.limit,
                evicted=self.evicted,
            )
        self._evict(member)
