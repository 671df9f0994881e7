"""Recording core/v1 Events about objects, as client-go's event recorder does.

``recorder.event(obj, "Normal", "Started", "Started container web")`` returns at once: events
go through a bounded queue to one writer task, so a component never blocks (or fails) because
the API is slow. Repeats of the same (object, type, reason, message) within ten minutes update
the existing Event's ``count`` and ``lastTimestamp`` instead of creating another, which is what
``kubectl describe`` shows as ``(x5 over 2m)``. Events are best-effort: a failed write is logged
at debug level and dropped.

A process has one recorder: each of its components records through
:meth:`EventRecorder.for_component`, which names the component (and host) in the Events it
writes but shares the queue, the repeat cache and the writer task.

Concurrency: single event loop; :meth:`EventRecorder.run` (of the recorder the others were
made from) is the one writer task.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from procorch.api import errors
from procorch.api.meta import rfc3339
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.kit.logging import get_logger

log = get_logger("events")

EVENTS = must("core/events")

# Kubernetes' event correlator merges repeats seen within this window.
_MERGE_WINDOW = 600.0
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Pending:
    involved: tuple[tuple[str, str], ...]
    namespace: str
    type: str
    reason: str
    message: str
    at: float
    component: str
    host: str


class _Sink:
    """The queue, the repeat cache and the drop count that recorders of one process share."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        # (component, host, involved uid, name, type, reason, message)
        #   -> (event name, namespace, count, first seen)
        self.seen: OrderedDict[tuple[str, ...], tuple[str, str, int, float]] = OrderedDict()
        self.dropped = 0


def involved_object(obj: dict[str, Any], *, field_path: str = "") -> dict[str, str]:
    """The ``involvedObject`` reference for ``obj``."""
    meta = obj.get("metadata") or {}
    ref = {
        "kind": str(obj.get("kind") or ""),
        "apiVersion": str(obj.get("apiVersion") or ""),
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
        "resourceVersion": str(meta.get("resourceVersion") or ""),
    }
    if meta.get("namespace"):
        ref["namespace"] = str(meta["namespace"])
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class EventRecorder:
    def __init__(
        self, client: Client, *, component: str, host: str = "", queue_size: int = 1000
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._sink = _Sink(queue_size)

    def for_component(self, component: str, *, host: str = "") -> EventRecorder:
        """A recorder that writes as ``component`` (on ``host``) through this one's queue and
        writer task: run only this one."""
        other = copy.copy(self)
        other.component = component
        other.host = host
        return other

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full."""
        return self._sink.dropped

    def event(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        field_path: str = "",
    ) -> None:
        """Queue an Event about ``obj`` (``type_`` is ``Normal`` or ``Warning``)."""
        ref = involved_object(obj, field_path=field_path)
        namespace = ref.get("namespace") or "default"
        pending = _Pending(
            tuple(sorted(ref.items())),
            namespace,
            type_,
            reason,
            message[:1024],
            time.time(),
            self.component,
            self.host,
        )
        try:
            self._sink.queue.put_nowait(pending)
        except asyncio.QueueFull:
            self._sink.dropped += 1

    async def run(self) -> None:
        """Write queued events until cancelled."""
        while True:
            pending = await self._sink.queue.get()
            try:
                await self._write(pending)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - events are best-effort
                log.debug("could not record event", reason=pending.reason, error=repr(exc))

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (up to ``timeout``) until the queue is empty: for orderly shutdown and tests."""
        deadline = time.monotonic() + timeout
        while not self._sink.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _write(self, p: _Pending) -> None:
        ref = dict(p.involved)
        key = (
            p.component,
            p.host,
            ref.get("uid", ""),
            ref.get("name", ""),
            p.type,
            p.reason,
            p.message,
        )
        stamp = rfc3339(_utc(p.at))
        seen = self._sink.seen.get(key)
        if seen is not None and p.at - seen[3] < _MERGE_WINDOW:
            name, namespace, count, first = seen
            try:
                current = await self.client.get(EVENTS, name, namespace=namespace)
            except errors.NotFound:
                current = None
            if current is not None:
                current["count"] = int(current.get("count") or count) + 1
                current["lastTimestamp"] = stamp
                try:
                    await self.client.update(EVENTS, current, namespace=namespace)
                    self._remember(key, (name, namespace, current["count"], first))
                    return
                except (errors.Conflict, errors.NotFound):
                    pass
        name = f"{ref.get('name') or 'event'}.{time.time_ns():x}{os.urandom(2).hex()}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": p.namespace},
            "involvedObject": ref,
            "reason": p.reason,
            "message": p.message,
            "type": p.type,
            "source": {"component": p.component, **({"host": p.host} if p.host else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": p.component,
            "reportingInstance": p.host,
        }
        await self.client.create(EVENTS, body, namespace=p.namespace)
        self._remember(key, (name, p.namespace, 1, p.at))

    def _remember(self, key: tuple[str, ...], value: tuple[str, str, int, float]) -> None:
        seen = self._sink.seen
        seen[key] = value
        seen.move_to_end(key)
        while len(seen) > _CACHE_SIZE:
            seen.popitem(last=False)


def _utc(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)
