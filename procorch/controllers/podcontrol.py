"""How the workload controllers create and delete their pods (Kubernetes' ``RealPodControl``
and ``slowStartBatch``), recording the Events kube-controller-manager records about the
owner: ``SuccessfulCreate``/``FailedCreate`` and ``SuccessfulDelete``/``FailedDelete``.

Used by the ReplicaSet, DaemonSet and Job controllers; what each expects to observe
(expectations) stays with the controller. Safe to run concurrently for different pods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder

PODS = must("core/pods")

Obj = dict[str, Any]


def namespace_terminating(exc: errors.ApiError) -> bool:
    """The create failed because its namespace is being deleted (every later one will too)."""
    causes = exc.details.get("causes") or []
    return any(c.get("reason") == "NamespaceTerminating" for c in causes if isinstance(c, dict))


class PodControl:
    def __init__(self, client: Client, events: EventRecorder, *, field_manager: str) -> None:
        self.client = client
        self.events = events
        self.field_manager = field_manager

    async def create(self, owner: Obj, pod: Obj) -> Obj | None:
        """Create ``pod`` for ``owner``; None when its namespace is being deleted (nothing
        recorded: every later create fails the same way). Other API errors are recorded as
        ``FailedCreate`` and raised."""
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        try:
            created = await self.client.create(
                PODS, pod, namespace=namespace, field_manager=self.field_manager
            )
        except errors.ApiError as exc:
            if namespace_terminating(exc):
                return None
            self.events.event(owner, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.events.event(
            owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
        )
        return created

    async def delete(self, owner: Obj, pod: Obj) -> bool:
        """Delete ``pod`` (this uid only); False when it was gone already. Other API errors
        are recorded as ``FailedDelete`` and raised."""
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS,
                str(meta["name"]),
                namespace=str(meta.get("namespace") or ""),
                uid=meta.get("uid"),
            )
        except errors.NotFound:
            return False
        except errors.ApiError as exc:
            self.events.event(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self.events.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
        return True


async def slow_start(
    count: int, create: Callable[[int], Awaitable[object]]
) -> tuple[int, errors.ApiError | None]:
    """Call ``create(i)`` for i in 0..count-1 in batches of 1, 2, 4, ..., stopping after a
    batch with a failure (``slowStartBatch``): a quota or admission error costs one call,
    not ``count``. How many succeeded, and the first API error; other errors propagate."""
    created = 0
    batch = min(count, 1)
    while batch > 0:
        results = await asyncio.gather(
            *(create(created + j) for j in range(batch)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, errors.ApiError):
                raise failure
        created += batch - len(failures)
        if failures:
            first = failures[0]
            assert isinstance(first, errors.ApiError)
            return created, first
        batch = min(2 * batch, count - created)
    return created, None
