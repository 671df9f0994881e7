"""Watch fan-out and the bounded per-resource event history that watches replay from.

Each resource keeps its own history (as kube-apiserver's watch cache does), so a chatty
resource such as Leases or Events cannot push another resource's history out. A watch from
revision ``R`` replays the kept events after ``R``, then receives new events as they are
published; ``R`` older than what was dropped from that resource's history is ``Gone``.

The history is bounded by what exists, not by what once existed: a resource keeps at most
``HISTORY_PER_OBJECT`` events per live object (never fewer than ``MIN_HISTORY``, never more
than ``history_size``), and at most ``history_bytes`` of JSON. It keeps lean copies
(:meth:`Stored.lean`): the JSON of each version, decoded only when a replay needs it, so a
churn of creates and deletes leaves behind about a kilobyte per kept event, not the objects.

A watcher that falls ``max_backlog`` events behind is closed (its client re-lists), so one slow
reader can never make the store hold unbounded memory.

Concurrency: single event loop; :meth:`WatchHub.publish` is called by the store's writer after
a commit, in revision order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from procorch.api.errors import Gone
from procorch.store.base import Event, Watch, WatchClosed


class QueueWatch(Watch):
    def __init__(
        self,
        hub: WatchHub,
        *,
        resource: str,
        namespace: str | None,
        backlog: Iterable[Event],
        max_backlog: int,
    ) -> None:
        self._hub = hub
        self.resource = resource
        self.namespace = namespace
        self._queue: deque[Event] = deque(backlog)
        self._max_backlog = max_backlog
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._closed_reason: str | None = None

    @property
    def closed_reason(self) -> str | None:
        return self._closed_reason

    def idle(self) -> bool:
        return not self._queue

    def push(self, event: Event) -> None:
        if self._closed:
            return
        if self.namespace is not None and event.key.namespace != self.namespace:
            return
        if len(self._queue) >= self._max_backlog:
            self._close(reason=f"watcher fell {self._max_backlog} events behind")
            return
        self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self._close(reason=None)

    def _close(self, *, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._closed_reason = reason
        self._hub._remove(self)
        self._wake()

    def poll(self) -> Event | None:
        return self._queue.popleft() if self._queue else None

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event; ``None`` when ``timeout`` passes first. Raises
        :class:`WatchClosed` once the watch is closed and drained."""
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise WatchClosed(self._closed_reason)
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                # asyncio.wait never cancels the waiter, so a timeout loses nothing.
                done, _ = await asyncio.wait([waiter], timeout=timeout)
            finally:
                self._waiter = None
                if not waiter.done():
                    waiter.cancel()
            if not done:
                return None

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                event = await self.next()
                if event is not None:
                    yield event
        except WatchClosed:
            return
        finally:
            self.close()


MIN_HISTORY = 1_000
HISTORY_PER_OBJECT = 2


class WatchHub:
    def __init__(
        self,
        *,
        history_size: int,
        max_backlog: int,
        base_revision: int,
        live: Callable[[str], int] = lambda resource: 0,
        history_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._history_size = history_size
        self._history_bytes = history_bytes
        self._live = live
        self._max_backlog = max_backlog
        self._base_revision = base_revision
        self._history: dict[str, deque[Event]] = {}
        self._bytes: dict[str, int] = {}
        self._compacted: dict[str, int] = {}
        self._watchers: dict[str, set[QueueWatch]] = {}

    def history_limit(self, resource: str) -> int:
        """How many events of ``resource`` are kept now (it follows the live count)."""
        wanted = max(MIN_HISTORY, HISTORY_PER_OBJECT * self._live(resource))
        return min(self._history_size, wanted)

    def history_stats(self, resource: str) -> tuple[int, int]:
        """(events kept, bytes of JSON they hold) for ``resource``."""
        return len(self._history.get(resource, ())), self._bytes.get(resource, 0)

    def compacted(self, resource: str) -> int:
        """The newest revision of ``resource`` whose events may have been dropped."""
        return self._compacted.get(resource, self._base_revision)

    def publish(self, events: Iterable[Event]) -> None:
        trim: set[str] = set()
        for event in events:
            resource = event.key.resource
            history = self._history.get(resource)
            if history is None:
                history = self._history[resource] = deque()
            history.append(
                Event(
                    type=event.type,
                    key=event.key,
                    current=event.current.lean(),
                    previous=None if event.previous is None else event.previous.lean(),
                )
            )
            self._bytes[resource] = self._bytes.get(resource, 0) + len(event.current.raw)
            trim.add(resource)
            for watcher in list(self._watchers.get(resource, ())):
                watcher.push(event)
        for resource in trim:
            self._trim(resource)

    def _trim(self, resource: str) -> None:
        history = self._history[resource]
        limit = self.history_limit(resource)
        size = self._bytes[resource]
        while history and (len(history) > limit or size > self._history_bytes):
            dropped = history.popleft()
            size -= len(dropped.current.raw)
            self._compacted[resource] = dropped.revision
        self._bytes[resource] = size

    def open(self, resource: str, *, since: int, namespace: str | None) -> QueueWatch:
        oldest = self.compacted(resource)
        if since < oldest:
            raise Gone(f"too old resource version: {since} ({oldest})")
        backlog: list[Event] = []
        for event in reversed(self._history.get(resource, ())):
            if event.revision <= since:
                break
            if namespace is None or event.key.namespace == namespace:
                backlog.append(event)
        backlog.reverse()
        watcher = QueueWatch(
            self,
            resource=resource,
            namespace=namespace,
            backlog=backlog,
            max_backlog=max(self._max_backlog, len(backlog) + 1),
        )
        self._watchers.setdefault(resource, set()).add(watcher)
        return watcher

    def close_all(self) -> None:
        for watchers in list(self._watchers.values()):
            for watcher in list(watchers):
                watcher.close()

    def _remove(self, watcher: QueueWatch) -> None:
        watchers = self._watchers.get(watcher.resource)
        if watchers is not None:
            watchers.discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
