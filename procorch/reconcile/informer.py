"""Informers: a list+watch cache of one resource, with indexes and change callbacks.

An informer lists, then watches from the list's resourceVersion, applying each event to its
cache and calling its subscribers. When the watch ends it resumes from the last revision seen;
when that is too old (410 Gone) or an error occurs it re-lists, diffing the new list against
the cache so that subscribers still see every add, update and delete. ``synced`` is set after
the first list is in the cache: controllers wait on it before they reconcile.

A process holds one informer per resource (:class:`~procorch.reconcile.factory.InformerFactory`)
and its components read it through views of their own (:mod:`procorch.reconcile.views`), which
subscribe here and replay the cache to the handlers they are given. An index name means one
function for the whole process: a second, different function for it is refused.

Subscribers must not block: they are meant to enqueue keys (controllers reconcile from the
cache, never from event contents). Cached objects are shared between subscribers: do not mutate
them.

Concurrency: one task per informer (:meth:`run`), single event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import Callable, Iterable
from typing import Any

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.api.selectors import LabelSelector
from procorch.client.base import Client
from procorch.kit.logging import get_logger

log = get_logger("informer")

Obj = dict[str, Any]
Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous)
IndexFunc = Callable[[Obj], Iterable[str]]


def object_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    def __init__(
        self,
        client: Client,
        rt: ResourceType,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        watch_timeout: float = 300.0,
    ) -> None:
        self.client = client
        self.rt = rt
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self._cache: dict[tuple[str, str], Obj] = {}
        # Replaced, never mutated, so that subscribing or unsubscribing from inside a
        # handler does not disturb the event being delivered.
        self._handlers: tuple[Handler, ...] = ()
        self._indexers: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[tuple[str, str]]]] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""

    # -- configuration -----------------------------------------------------------------------

    def subscribe(self, handler: Handler) -> None:
        """Call ``handler`` for every change from now on (no replay of the cache)."""
        self._handlers = (*self._handlers, handler)

    def unsubscribe(self, handler: Handler) -> None:
        self._handlers = tuple(h for h in self._handlers if h is not handler)

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Index the cache by ``func`` under ``name``; again with the same function is a
        no-op, with another a ``ValueError`` (two owners of one name would see each other's
        values)."""
        current = self._indexers.get(name)
        if current is not None:
            if current == func:
                return
            raise ValueError(f"{self.rt.key}: index {name!r} is already defined by {current!r}")
        self._indexers[name] = func
        index: dict[str, set[tuple[str, str]]] = {}
        for key, obj in self._cache.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    # -- reads -------------------------------------------------------------------------------

    def get(self, name: str, namespace: str = "") -> Obj | None:
        return self._cache.get((namespace if self.rt.namespaced else "", name))

    def list(
        self, namespace: str | None = None, selector: LabelSelector | None = None
    ) -> builtins.list[Obj]:
        out = []
        for (ns, _), obj in self._cache.items():
            if namespace is not None and self.rt.namespaced and ns != namespace:
                continue
            if selector is not None and not selector.matches(
                (obj.get("metadata") or {}).get("labels")
            ):
                continue
            out.append(obj)
        return out

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        keys = self._indexes.get(name, {}).get(value, set())
        return [self._cache[k] for k in sorted(keys) if k in self._cache]

    def __len__(self) -> int:
        return len(self._cache)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled."""
        failures = 0
        while True:
            try:
                if not self.resource_version:
                    await self._relist()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                log.debug("watch expired; re-listing", resource=self.rt.key)
                self.resource_version = ""
            except Exception as exc:  # noqa: BLE001 - keep the cache alive through API errors
                failures += 1
                delay = min(30.0, 0.2 * 2 ** min(failures, 8)) * random.uniform(0.8, 1.2)
                log.warning(
                    "list/watch failed; retrying",
                    resource=self.rt.key,
                    error=repr(exc),
                    retry_in=round(delay, 2),
                )
                self.resource_version = ""
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listed = await self.client.list(
            self.rt,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        fresh = {object_key(o): o for o in listed.items}
        for key in [k for k in self._cache if k not in fresh]:
            self._apply("DELETED", self._cache[key])
        for key, obj in fresh.items():
            old = self._cache.get(key)
            if old is None:
                self._apply("ADDED", obj)
            elif _rv(old) != _rv(obj):
                self._apply("MODIFIED", obj)
        self.resource_version = listed.resource_version
        self.synced.set()

    async def _watch(self) -> None:
        async for event in self.client.watch(
            self.rt,
            namespace=self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.watch_timeout,
        ):
            if event.type == "BOOKMARK":
                self.resource_version = event.resource_version or self.resource_version
                continue
            self._apply(event.type, event.object)
            self.resource_version = event.resource_version or self.resource_version

    def _apply(self, etype: str, obj: Obj) -> None:
        key = object_key(obj)
        old = self._cache.get(key)
        if etype == "DELETED":
            if old is None:
                return
            del self._cache[key]
            self._unindex(key, old)
        else:
            if old is not None:
                self._unindex(key, old)
            self._cache[key] = obj
            self._index(key, obj)
            if old is None:
                etype = "ADDED"
            elif etype == "ADDED":
                etype = "MODIFIED"
        for handler in self._handlers:
            try:
                handler(etype, obj, old)
            except Exception:
                log.exception("informer handler failed", resource=self.rt.key)

    def _index(self, key: tuple[str, str], obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: tuple[str, str], obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                bucket = self._indexes[name].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._indexes[name][value]


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
