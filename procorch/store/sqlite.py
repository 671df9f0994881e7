"""The default store: SQLite in WAL mode for durability, memory for reads, group commit.

Every object lives in memory (decoded and as JSON bytes), so gets, lists and watches never touch
the disk; SQLite is the durable record that is read once at start-up.

Writes are batched (group commit). A batch takes every write that is waiting, checks each
one's preconditions against the state as the writes before it in the same batch leave it,
gives each the next revision, and commits the whole batch in one SQLite transaction with
``synchronous=FULL``. Only after the commit returns are the writes applied to memory,
published to watchers and acknowledged — so an acknowledged write survives ``kill -9`` and
power loss, and 50 concurrent writers cost one fsync, not fifty. One batch is in flight at a
time; the writes that arrive meanwhile make the next, started as soon as it returns.

The path is callbacks, not a writer task, because each hand-off between tasks costs a turn
of the event loop, and under load a turn is the time it takes to serve every request that
is ready (tens of milliseconds with 50 busy clients). A writer resumes two turns after the one
in which it submits: the next stages, commits and acknowledges the batch of every write
submitted in that turn, and the one after runs the woken writers.

Where the COMMIT runs depends on the disk. A COMMIT (its fsync) took 0.2-0.4 ms on the
project's benchmark machine, much less than a turn, so by default it runs on the
event loop: handing it to a thread costs the batch at least one more turn (the thread's
completion is only seen at the loop's next poll) plus up to the interpreter's 5 ms switch
interval for the thread to take the GIL back. When
the smoothed COMMIT time passes ``inline_commit_limit`` (a slow or busy disk), COMMITs go to
the writer thread for a second, and one more inline COMMIT then looks again. WAL checkpoints,
the one part of a write that can take milliseconds, never run on the loop: SQLite's
automatic checkpoint is off, and a second connection on the checkpoint thread runs a
passive checkpoint every ``checkpoint_rows`` rows written (about SQLite's default of 1,000
WAL pages), which never blocks the writer.

Concurrency: all public methods run on the event loop; only ``_commit``/``_load``/``_close_db``
run on the writer thread, touching nothing but the SQLite connection, and never while the loop
uses it (a batch's COMMIT is the only thing in flight between staging and ``_committed``, and
an inline COMMIT is never started while one is in flight).
``_checkpoint`` runs on its own thread with its own connection, which nothing else touches.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import sqlite3
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from procorch.api.errors import AlreadyExists, Conflict, InternalError, NotFound
from procorch.kit.logging import get_logger
from procorch.store.base import Event, EventType, Key, Store, Stored, Watch, encode
from procorch.store.index import LabelTerms, ResourceIndex
from procorch.store.watch import WatchHub

log = get_logger("store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

OpKind = Literal["create", "update", "delete"]


@dataclass(eq=False)
class _Op:
    kind: OpKind
    key: Key
    obj: dict[str, Any] | None
    expected_rv: int | None
    expected_uid: str | None
    future: asyncio.Future[Stored] = field(repr=False)


def _resource_name(resource: str) -> str:
    """``apps/deployments`` -> ``deployments.apps`` (core: ``pods``), for error messages."""
    group, _, plural = resource.partition("/")
    return plural if group == "core" else f"{plural}.{group}"


def _chunks(rows: builtins.list[Any], size: int) -> builtins.list[builtins.list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _stamp(obj: dict[str, Any], revision: int) -> Stored:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = obj["metadata"] = {}
    metadata["resourceVersion"] = str(revision)
    return Stored(object=obj, raw=encode(obj), revision=revision)


class SQLiteStore(Store):
    """See the module docstring. ``path`` is the database file (its folder must exist)."""

    def __init__(
        self,
        path: Path,
        *,
        history_size: int = 10_000,
        max_watch_backlog: int = 100_000,
        max_batch: int = 1_000,
        inline_commit_limit: float = 0.002,
        checkpoint_rows: int = 1_000,
    ) -> None:
        self.path = path
        self._history_size = history_size
        self._max_watch_backlog = max_watch_backlog
        self._max_batch = max_batch
        self._data: dict[str, ResourceIndex] = {}  # resource -> its objects
        self._revision = 0
        self._conn: sqlite3.Connection | None = None
        self._rows_per_statement = 199
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-wal")
        self._checkpoint_conn: sqlite3.Connection | None = None  # the checkpoint thread's
        self._checkpoint_rows = checkpoint_rows
        self._rows_since_checkpoint = 0
        self._checkpointing = False
        self._pending: deque[_Op] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._in_flight = False  # a batch's COMMIT is on the writer thread
        self._inline_commit_limit = inline_commit_limit
        self._commit_seconds: float | None = None  # recent inline COMMITs, smoothed
        self._inline_after = 0.0  # monotonic time before which COMMITs go to the thread
        self.inline_commits = 0  # for tests and benchmarks, as are these
        self.checkpoints = 0
        self._drained: asyncio.Event | None = None  # set when nothing is pending or in flight
        self._hub: WatchHub | None = None
        self._closing = False
        self.commits = 0  # number of transactions, for tests and benchmarks
        self.committed_writes = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        rows, revision = await loop.run_in_executor(self._executor, self._load)
        for resource, namespace, name, rev, data in rows:
            obj = orjson.loads(data)
            self._index(resource).put(
                namespace, name, Stored(object=obj, raw=bytes(data), revision=rev)
            )
        self._revision = revision
        self._hub = WatchHub(
            history_size=self._history_size,
            max_backlog=self._max_watch_backlog,
            base_revision=revision,
            live=self.count,
        )
        self._drained = asyncio.Event()
        self._drained.set()
        self._loop = loop
        log.info("store opened", path=str(self.path), objects=len(rows), revision=revision)

    async def close(self) -> None:
        """Finish the writes already accepted, then close the database."""
        self._closing = True
        if self._drained is not None:
            await self._drained.wait()
        if self._hub is not None:
            self._hub.close_all()
        loop = asyncio.get_running_loop()
        # Queued behind a checkpoint in progress, if any.
        await asyncio.wrap_future(self._checkpointer.submit(self._close_checkpoint_conn))
        self._checkpointer.shutdown()
        await loop.run_in_executor(self._executor, self._close_db)
        self._executor.shutdown(wait=True)

    def _load(self) -> tuple[builtins.list[tuple[str, str, str, int, bytes]], int]:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint
        conn.executescript(_SCHEMA)
        # Five bound values per row; SQLite builds before 3.32 allow only 999 per statement.
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._rows_per_statement = max(1, min(limit, 32_766) // 5)
        self._conn = conn
        rows = conn.execute(
            "SELECT resource, namespace, name, revision, data FROM objects"
        ).fetchall()
        row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        revision = int(row[0]) if row else 0
        revision = max([revision, *(r[3] for r in rows)])
        return rows, revision

    def _close_db(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the last connection's close checkpoints the whole WAL
            self._conn = None

    def _close_checkpoint_conn(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    # -- reads -------------------------------------------------------------------------------

    def _index(self, resource: str) -> ResourceIndex:
        index = self._data.get(resource)
        if index is None:
            index = self._data[resource] = ResourceIndex()
        return index

    def get(self, key: Key) -> Stored | None:
        index = self._data.get(key.resource)
        return None if index is None else index.get(key.namespace, key.name)

    def list(
        self, resource: str, namespace: str | None = None, *, labels: LabelTerms | None = None
    ) -> tuple[builtins.list[Stored], int]:
        index = self._data.get(resource)
        items = [] if index is None else index.list(namespace, labels)
        return items, self._revision

    def count(self, resource: str, namespace: str | None = None) -> int:
        index = self._data.get(resource)
        return 0 if index is None else index.count(namespace)

    def namespaces_in_use(self, resource: str) -> set[str]:
        index = self._data.get(resource)
        return set() if index is None else index.namespaces()

    def watch(self, resource: str, *, since: int, namespace: str | None = None) -> Watch:
        assert self._hub is not None, "store not started"
        return self._hub.open(resource, since=since, namespace=namespace)

    # -- writes ------------------------------------------------------------------------------

    async def create(self, key: Key, obj: dict[str, Any]) -> Stored:
        return await self._submit("create", key, obj)

    async def update(
        self, key: Key, obj: dict[str, Any], *, expected_rv: int | None = None
    ) -> Stored:
        return await self._submit("update", key, obj, expected_rv=expected_rv)

    async def delete(
        self, key: Key, *, expected_rv: int | None = None, expected_uid: str | None = None
    ) -> Stored:
        return await self._submit(
            "delete", key, None, expected_rv=expected_rv, expected_uid=expected_uid
        )

    async def _submit(
        self,
        kind: OpKind,
        key: Key,
        obj: dict[str, Any] | None,
        *,
        expected_rv: int | None = None,
        expected_uid: str | None = None,
    ) -> Stored:
        loop = self._loop
        if self._closing or loop is None or self._drained is None:
            raise InternalError("the store is closed")
        future: asyncio.Future[Stored] = loop.create_future()
        self._pending.append(_Op(kind, key, obj, expected_rv, expected_uid, future))
        self._drained.clear()
        if not self._in_flight and not self._flush_scheduled:
            # Next turn, so that every write submitted in this one shares the batch.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        # A caller that gives up cancels only its wait: the write stays queued and is
        # committed (it may already be on disk), and ``_apply`` skips a cancelled future.
        # (Not asyncio.shield, which would cost the acknowledgement one more turn.)
        return await future

    def _flush(self) -> None:
        """Plan, stage and hand the waiting writes' COMMIT to the writer thread."""
        self._flush_scheduled = False
        assert self._drained is not None
        while self._pending and not self._in_flight:
            batch = [
                self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))
            ]
            planned = self._plan(batch)
            if not planned:
                continue
            try:
                self._start_commit(planned)
            except Exception as exc:  # noqa: BLE001 - every waiting writer gets the error
                self._failed(planned, exc)
        if not self._pending and not self._in_flight:
            self._drained.set()

    def _start_commit(self, planned: builtins.list[tuple[_Op, Stored, Stored | None]]) -> None:
        """Stage the batch on the loop and COMMIT it: here, acknowledging at once, or on the
        writer thread, whose completion comes back to :meth:`_committed` on the loop."""
        loop = self._loop
        assert loop is not None
        revision = planned[-1][1].revision
        self._stage([(op.kind, op.key, stored) for op, stored, _ in planned], revision)
        if self._commits_inline():
            started = time.perf_counter()
            try:
                self._commit()
            except Exception as exc:  # noqa: BLE001 - every waiting writer gets the error
                self._failed(planned, exc)
                return
            self._timed_inline(time.perf_counter() - started)
            self._apply(planned, revision)
            self._wrote(len(planned))
            return
        done = self._executor.submit(self._commit)
        self._in_flight = True
        committed = functools.partial(self._committed, planned=planned, revision=revision)
        done.add_done_callback(lambda done: loop.call_soon_threadsafe(committed, done))

    def _commits_inline(self) -> bool:
        return self._inline_commit_limit > 0 and time.monotonic() >= self._inline_after

    def _timed_inline(self, seconds: float) -> None:
        self.inline_commits += 1
        last = self._commit_seconds
        # Weighted so that one COMMIT that waited on the disk (10 ms was seen) does not
        # send the next second's COMMITs to the thread; a disk that stays slow does.
        smoothed = seconds if last is None else 0.9 * last + 0.1 * seconds
        if smoothed > self._inline_commit_limit:
            # The disk got slow: the thread for a while, then one inline COMMIT to see.
            self._inline_after = time.monotonic() + 1.0
            self._commit_seconds = None
            log.debug("commits go to the writer thread", ms=round(smoothed * 1000, 2))
        else:
            self._commit_seconds = smoothed

    def _wrote(self, rows: int) -> None:
        """Count rows into the WAL; past ``checkpoint_rows``, checkpoint it on its thread."""
        self._rows_since_checkpoint += rows
        if self._rows_since_checkpoint < self._checkpoint_rows or self._checkpointing:
            return
        loop = self._loop
        assert loop is not None
        self._rows_since_checkpoint = 0
        self._checkpointing = True
        done = self._checkpointer.submit(self._checkpoint)
        done.add_done_callback(lambda done: loop.call_soon_threadsafe(self._checkpointed, done))

    def _checkpoint(self) -> None:
        """On the checkpoint thread: copy the WAL's committed pages into the database file.
        PASSIVE waits for no one; the next transaction after a complete one restarts the WAL."""
        if self._checkpoint_conn is None:
            self._checkpoint_conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._checkpoint_conn.execute("PRAGMA synchronous=FULL")
        self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _checkpointed(self, done: Future[None]) -> None:
        self._checkpointing = False
        self.checkpoints += 1
        error = done.exception()
        if error is not None:  # the WAL grows until the next one; no write is lost
            log.warning("WAL checkpoint failed", error=repr(error))

    def _committed(
        self,
        done: Future[None],
        *,
        planned: builtins.list[tuple[_Op, Stored, Stored | None]],
        revision: int,
    ) -> None:
        """On the loop, once the writer thread's COMMIT returned: acknowledge or fail the
        batch, then start the next with whatever arrived meanwhile."""
        self._in_flight = False
        try:
            error = done.exception()
            if error is None:
                self._apply(planned, revision)
                self._wrote(len(planned))
            else:
                self._failed(planned, error)
        finally:
            self._flush()

    def _failed(
        self, planned: builtins.list[tuple[_Op, Stored, Stored | None]], exc: BaseException
    ) -> None:
        self._rollback()
        log.error("commit failed", error=repr(exc), writes=len(planned))
        for op, _, _ in planned:
            if not op.future.done():
                op.future.set_exception(InternalError(f"storage error: {exc}"))

    def _plan(self, batch: builtins.list[_Op]) -> builtins.list[tuple[_Op, Stored, Stored | None]]:
        """Check preconditions in order and stamp revisions; nothing is applied yet."""
        overlay: dict[Key, Stored | None] = {}
        planned: builtins.list[tuple[_Op, Stored, Stored | None]] = []
        revision = self._revision
        for op in batch:
            current = overlay[op.key] if op.key in overlay else self.get(op.key)
            error = self._precondition(op, current)
            if error is not None:
                if not op.future.done():
                    op.future.set_exception(error)
                continue
            revision += 1
            if op.kind == "delete":
                assert current is not None
                last = dict(current.object)
                last["metadata"] = dict(last.get("metadata") or {})
                stored = _stamp(last, revision)
                overlay[op.key] = None
            else:
                assert op.obj is not None
                stored = _stamp(op.obj, revision)
                overlay[op.key] = stored
            planned.append((op, stored, current))
        return planned

    @staticmethod
    def _precondition(op: _Op, current: Stored | None) -> Exception | None:
        name = _resource_name(op.key.resource)
        if op.kind == "create":
            if current is not None:
                return AlreadyExists(
                    f'{name} "{op.key.name}" already exists',
                    details={"name": op.key.name, "kind": name.split(".")[0]},
                )
            return None
        if current is None:
            return NotFound(
                f'{name} "{op.key.name}" not found',
                details={"name": op.key.name, "kind": name.split(".")[0]},
            )
        if op.expected_rv is not None and op.expected_rv != current.revision:
            return Conflict(
                f'Operation cannot be fulfilled on {name} "{op.key.name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                details={"name": op.key.name, "kind": name.split(".")[0]},
            )
        if op.expected_uid is not None:
            uid = (current.object.get("metadata") or {}).get("uid")
            if uid != op.expected_uid:
                return Conflict(
                    f'Operation cannot be fulfilled on {name} "{op.key.name}": Precondition '
                    f"failed: UID in precondition: {op.expected_uid}, UID in object meta: {uid}",
                    details={"name": op.key.name, "kind": name.split(".")[0]},
                )
        return None

    def _stage(self, rows: builtins.list[tuple[OpKind, Key, Stored]], revision: int) -> None:
        """Open the batch's transaction and write it, on the event loop; only the COMMIT,
        whose fsync is what takes time, goes to the writer thread (:meth:`_commit`).

        Statements here touch no disk but the WAL's page cache and take microseconds. On the
        writer thread each SQLite step must take the GIL back, and while the loop is busy
        that waits up to the interpreter's 5 ms switch interval: a statement per write there
        made a batch of 50 take ~250 ms under load. So the batch's final state per key goes
        in as one multi-row ``INSERT OR REPLACE`` and one multi-row ``DELETE`` (per chunk of
        the variable limit), here."""
        final: dict[Key, Stored | None] = {}
        for kind, key, stored in rows:
            final[key] = None if kind == "delete" else stored
        upserts = [
            (k.resource, k.namespace, k.name, s.revision, s.raw)
            for k, s in final.items()
            if s is not None
        ]
        deletes = [(k.resource, k.namespace, k.name) for k, s in final.items() if s is None]
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        for chunk in _chunks(upserts, self._rows_per_statement):
            conn.execute(
                "INSERT OR REPLACE INTO objects (resource, namespace, name, revision, data) "
                "VALUES " + ",".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
        for chunk in _chunks(deletes, self._rows_per_statement):
            conn.execute(
                "DELETE FROM objects WHERE (resource, namespace, name) IN (VALUES "
                + ",".join(["(?, ?, ?)"] * len(chunk))
                + ")",
                [value for row in chunk for value in row],
            )
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?)", (revision,))

    def _commit(self) -> None:
        """On the writer thread: the staged transaction's COMMIT (the fsync)."""
        assert self._conn is not None
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _apply(
        self, planned: builtins.list[tuple[_Op, Stored, Stored | None]], revision: int
    ) -> None:
        events: builtins.list[Event] = []
        for op, stored, previous in planned:
            key = op.key
            index = self._index(key.resource)
            etype: EventType
            if op.kind == "delete":
                index.remove(key.namespace, key.name)
                etype = "DELETED"
            else:
                index.put(key.namespace, key.name, stored)
                etype = "ADDED" if op.kind == "create" else "MODIFIED"
            events.append(Event(type=etype, key=key, current=stored, previous=previous))
        self._revision = revision
        self.commits += 1
        self.committed_writes += len(planned)
        assert self._hub is not None
        self._hub.publish(events)
        for op, stored, _ in planned:
            if not op.future.done():
                op.future.set_result(stored)
