"""The store interface: versioned objects, compare-and-swap writes, watches from a revision.

The contract every backend keeps (etcd-style):

* One monotonically increasing revision for the whole store. Every write (create, update,
  delete) takes the next revision, and an object's ``metadata.resourceVersion`` is the
  revision of its last write, set by the store.
* Writes are compare-and-swap: ``update``/``delete`` with ``expected_rv`` fail with
  :class:`~procorch.api.errors.Conflict` when the object has moved on.
* A write returns only once it is durable.
* ``watch(resource, since=R)`` yields every change of that resource after revision ``R`` in
  revision order, then streams new ones; ``R`` older than the kept history raises
  :class:`~procorch.api.errors.Gone`.
* Objects handed out are shared and must never be mutated by the caller; each carries its
  serialized JSON (``raw``) so that responses need not re-encode it.

Only the API server imports this package (DESIGN.md layers).
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Key:
    """Where an object lives: resource key (``apps/deployments``), namespace ('' if none), name."""

    resource: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored version of an object: the decoded object, its JSON, and its revision."""

    object: dict[str, Any]
    raw: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    key: Key
    current: Stored  # for DELETED: the last state, stamped with the deletion's revision
    previous: Stored | None

    @property
    def revision(self) -> int:
        return self.current.revision


class WatchClosed(Exception):
    """The watch ended: closed by its owner, or by the store (``reason`` says why)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "watch closed")
        self.reason = reason


class Watch(abc.ABC):
    """A stream of events; iterate it (or call :meth:`next`), and close it when done."""

    @abc.abstractmethod
    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` after ``timeout``; :class:`WatchClosed` at the end."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def idle(self) -> bool:
        """True when every event up to the store's current revision has been taken."""

    @property
    @abc.abstractmethod
    def closed_reason(self) -> str | None:
        """Why the store ended this watch (e.g. it fell too far behind), if it did."""


class Store(abc.ABC):
    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The revision of the last committed write."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def get(self, key: Key) -> Stored | None: ...

    @abc.abstractmethod
    def list(
        self, resource: str, namespace: str | None = None
    ) -> tuple[builtins.list[Stored], int]:
        """Every object of ``resource`` (in ``namespace`` if given) sorted by namespace/name,
        and the revision this snapshot is at."""

    @abc.abstractmethod
    def count(self, resource: str, namespace: str | None = None) -> int: ...

    @abc.abstractmethod
    def namespaces_in_use(self, resource: str) -> set[str]: ...

    @abc.abstractmethod
    async def create(self, key: Key, obj: dict[str, Any]) -> Stored:
        """Store a new object; AlreadyExists if the key is taken."""

    @abc.abstractmethod
    async def update(
        self, key: Key, obj: dict[str, Any], *, expected_rv: int | None = None
    ) -> Stored:
        """Replace an object; NotFound if absent, Conflict if ``expected_rv`` is stale."""

    @abc.abstractmethod
    async def delete(
        self, key: Key, *, expected_rv: int | None = None, expected_uid: str | None = None
    ) -> Stored:
        """Remove an object and return its last state; NotFound / Conflict as above."""

    @abc.abstractmethod
    def watch(self, resource: str, *, since: int, namespace: str | None = None) -> Watch:
        """Events of ``resource`` after revision ``since``; Gone if that is too old."""
