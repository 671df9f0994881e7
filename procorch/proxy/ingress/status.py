"""The router's writes to the API: the default IngressClass, and Ingresses' load-balancer status.

:func:`ensure_default_class` creates the IngressClass ``procorch`` (controller
``procorch.io/ingress``, annotated as the cluster's default class) when it is missing; an
existing one is left as the user has it.

:class:`StatusWriter` is a small level-based controller: for each Ingress key it compares
``status.loadBalancer.ingress`` with what it should be (where this router listens, for the
Ingresses it serves) and merge-patches the status subresource when they differ. An Ingress that
stops being ours (its class changed) has our status removed, and only ours: another
controller's address is left alone.

Concurrency: one worker task (:meth:`StatusWriter.run`); keys are de-duplicated by the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.kit.logging import get_logger
from procorch.proxy.ingress.settings import CONTROLLER
from procorch.reconcile.views import InformerView
from procorch.reconcile.workqueue import Backoff, ShutDown, WorkQueue

log = get_logger("proxy.ingress.status")

INGRESSES = must("networking.k8s.io/ingresses")
INGRESS_CLASSES = must("networking.k8s.io/ingressclasses")

Obj = dict[str, Any]
Key = tuple[str, str]
LoadBalancer = list[dict[str, Any]]


async def ensure_default_class(client: Client, name: str) -> None:
    try:
        await client.get(INGRESS_CLASSES, name)
        return
    except errors.NotFound:
        pass
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": name,
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            "labels": {"app.kubernetes.io/managed-by": "procorch"},
        },
        "spec": {"controller": CONTROLLER},
    }
    try:
        await client.create(INGRESS_CLASSES, body, field_manager="procorch-ingress")
        log.info("created the default IngressClass", name=name)
    except errors.AlreadyExists:
        pass
    except errors.Forbidden:
        # A joined node may not create cluster objects; its control plane makes this one.
        log.debug("may not create the default IngressClass", name=name)


class StatusWriter:
    def __init__(
        self,
        client: Client,
        ingresses: InformerView,
        *,
        desired: Callable[[Obj], LoadBalancer | None],
        ours: Callable[[Obj], LoadBalancer],
    ) -> None:
        """``desired(ingress)``: the status this router wants, None when the Ingress is not
        ours; ``ours(ingress)``: what this router would write (to recognise its own)."""
        self.client = client
        self.ingresses = ingresses
        self.desired = desired
        self.ours = ours
        self.queue: WorkQueue[Key] = WorkQueue(name="ingress-status", backoff=Backoff(cap=30.0))

    def enqueue(self, ingress: Obj) -> None:
        meta = ingress.get("metadata") or {}
        self.queue.add((str(meta.get("namespace") or ""), str(meta.get("name") or "")))

    def enqueue_all(self) -> None:
        for ingress in self.ingresses.list():
            self.enqueue(ingress)

    async def run(self) -> None:
        try:
            while True:
                try:
                    key = await self.queue.get()
                except ShutDown:
                    return
                try:
                    await self.reconcile(key)
                except asyncio.CancelledError:
                    raise
                except errors.NotFound:
                    self.queue.forget(key)
                except Exception as exc:  # noqa: BLE001 - retried with backoff
                    delay = self.queue.add_rate_limited(key)
                    log.warning(
                        "could not write Ingress status",
                        namespace=key[0],
                        name=key[1],
                        error=repr(exc),
                        retry_in=round(delay, 2),
                    )
                else:
                    self.queue.forget(key)
                finally:
                    self.queue.done(key)
        finally:
            self.queue.shutdown()

    async def reconcile(self, key: Key) -> None:
        ingress = self.ingresses.get(key[1], key[0])
        if ingress is None or (ingress.get("metadata") or {}).get("deletionTimestamp"):
            return
        current = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        want = self.desired(ingress)
        if want is None:
            if not current or current != self.ours(ingress):
                return
            want = []
        if current == want:
            return
        patch = {"status": {"loadBalancer": {"ingress": want or None}}}
        await self.client.patch(
            INGRESSES,
            key[1],
            patch,
            namespace=key[0],
            subresource="status",
            patch_type="merge",
            field_manager="procorch-ingress",
        )
