"""The Controller base: shared informers, a work queue, workers, reconcile results.

A controller declares which informers it needs, maps their events to keys, and implements
``reconcile(key)``: read the current state from the caches, act through the client, write
status, and return ``None`` (done) or a number of seconds after which to look again. It never
trusts an event's content, only the cache (level-based). The queue guarantees that one key is
never reconciled by two workers at once; a failure requeues the key with jittered exponential
backoff, and a :class:`PermanentError` is logged once and not retried.

Events go through ``events``: the process's one :class:`EventRecorder` when the launcher
passes it (the controller writes as its ``component``, the recorder runs elsewhere), or a
recorder of the controller's own, which :meth:`Controller.run` runs.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.kit.logging import get_logger
from procorch.reconcile.factory import InformerFactory
from procorch.reconcile.views import InformerView
from procorch.reconcile.workqueue import Backoff, ShutDown, WorkQueue

K = TypeVar("K", bound=Hashable)


class PermanentError(Exception):
    """Reconciling this key cannot succeed until its object changes: do not retry."""


class Controller(abc.ABC, Generic[K]):
    name: str = "controller"
    workers: int = 1
    component: str = ""
    """The source its Events name (kube-controller-manager's, e.g. ``replicaset-controller``);
    defaults to ``name``."""

    def __init__(
        self, client: Client, informers: InformerFactory, *, events: EventRecorder | None = None
    ) -> None:
        self.client = client
        self.informers = informers
        component = self.component or self.name
        self._own_recorder = events is None
        self.events = (
            EventRecorder(client, component=component)
            if events is None
            else events.for_component(component)
        )
        self.queue: WorkQueue[K] = WorkQueue(name=self.name, backoff=Backoff(base=0.005, cap=60.0))
        self.log = get_logger(f"controller.{self.name}")
        self._watched: list[InformerView] = []

    def watch(self, rt: ResourceType) -> InformerView:
        """A view of the process's informer for ``rt``; the controller waits for it to
        sync."""
        view = self.informers.get(rt)
        self._watched.append(view)
        return view

    @abc.abstractmethod
    def setup(self) -> None:
        """Get informers with :meth:`watch` and add handlers that enqueue keys."""

    @abc.abstractmethod
    async def reconcile(self, key: K) -> float | None:
        """Make the world match the spec for ``key``; seconds until the next look, or None."""

    async def run(self) -> None:
        self.setup()
        await self.informers.wait_synced(self._watched)
        self.log.debug("caches synced; starting workers", workers=self.workers)
        workers = [
            asyncio.create_task(self._worker(), name=f"{self.name}/worker-{i}")
            for i in range(self.workers)
        ]
        if self._own_recorder:
            workers.append(asyncio.create_task(self.events.run(), name=f"{self.name}/events"))
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                again = await self.reconcile(key)
            except asyncio.CancelledError:
                self.queue.done(key)
                raise
            except PermanentError as exc:
                self.log.warning("reconcile failed permanently", key=str(key), error=str(exc))
                self.queue.forget(key)
            except (errors.Conflict, errors.NotFound, errors.AlreadyExists) as exc:
                # Someone else moved first: look again soon, from the fresher cache.
                delay = self.queue.add_rate_limited(key)
                self.log.debug(
                    "reconcile raced; requeued",
                    key=str(key),
                    error=str(exc),
                    retry_in=round(delay, 3),
                )
            except Exception as exc:  # noqa: BLE001 - a bad object must not kill the worker
                delay = self.queue.add_rate_limited(key)
                self.log.warning(
                    "reconcile failed; requeued",
                    key=str(key),
                    error=repr(exc),
                    retry_in=round(delay, 3),
                )
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)


def key_of(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
