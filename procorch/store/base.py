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
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Key:
    """Where an object lives: resource key (``apps/deployments``), namespace ('' if none), name."""

    resource: str
    namespace: str
    name: str


def encode(obj: dict[str, Any]) -> bytes:
    """``obj`` as compact JSON in a bytes object of its own size.

    orjson returns its output in the buffer it wrote into, which is far larger than the
    output (4 KiB for a 318-byte ConfigMap, 64 KiB for a 5 KB one): fine for a response that
    is sent and dropped, ruinous for JSON kept as long as the object exists."""
    return memoryview(orjson.dumps(obj)).tobytes()


class Stored:
    """One stored version of an object: its JSON (``raw``), its revision, and the decoded
    object.

    A *lean* copy (:meth:`lean`) keeps only the JSON and decodes ``object`` afresh on each
    access: what the watch history keeps of versions that may no longer exist, so that its
    memory is the size of their JSON and the garbage collector has nothing in it to walk.
    Immutable by contract: never mutate ``object``.
    """

    __slots__ = ("_object", "raw", "revision")

    def __init__(self, object: dict[str, Any] | None, raw: bytes, revision: int) -> None:  # noqa: A002
        self._object = object
        self.raw = raw
        self.revision = revision

    @property
    def object(self) -> dict[str, Any]:
        decoded = self._object
        if decoded is None:
            decoded = orjson.loads(self.raw)
        return decoded

    def lean(self) -> Stored:
        return self if self._object is None else Stored(None, self.raw, self.revision)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Stored):
            return NotImplemented
        return self.revision == other.revision and self.raw == other.raw

    def __hash__(self) -> int:
        return hash((self.revision, self.raw))

    def __repr__(self) -> str:
        return f"Stored(revision={self.revision}, raw={self.raw[:60]!r}...)"


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
    def poll(self) -> Event | None:
        """The next event if one is already waiting, else ``None``; never waits."""

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
        self,
        resource: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, Collection[str]] | None = None,
    ) -> tuple[builtins.list[Stored], int]:
        """Every object of ``resource`` (in ``namespace`` if given) sorted by namespace/name,
        and the revision this snapshot is at. ``labels`` (key -> allowed values) narrows it
        to objects whose labels satisfy every term, from an index: a cheap pre-filter for
        label selectors, whose callers check the whole selector themselves."""

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
