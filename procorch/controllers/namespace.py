"""The namespace lifecycle controller: deleting a namespace deletes everything in it first.

When a Namespace has a ``deletionTimestamp`` (phase Terminating), the controller deletes every
namespaced object in it (pods gracefully, owners' dependents through the garbage collector as
usual), reports progress in the namespace's conditions, and once nothing is left removes the
``kubernetes`` finalizer through the ``finalize`` subresource, after which the namespace goes.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.meta import rfc3339
from procorch.api.resources import RESOURCES, must
from procorch.controllers.runtime import Controller

NAMESPACES = must("core/namespaces")

# Deleting these first lets owners take their dependents down in order, and events last.
_ORDER = ["apps/deployments", "batch/cronjobs", "apps/replicasets", "batch/jobs", "core/pods"]


def _deletion_order() -> list[Any]:
    namespaced = [r for r in RESOURCES if r.namespaced]
    first = [r for key in _ORDER for r in namespaced if r.key == key]
    last = [r for r in namespaced if r.key == "core/events"]
    rest = [r for r in namespaced if r not in first and r not in last]
    return first + rest + last


class NamespaceController(Controller[str]):
    name = "namespace"
    recheck_after = 1.0

    def setup(self) -> None:
        informer = self.watch(NAMESPACES)
        informer.add_handler(self._on_namespace)

    def _on_namespace(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if etype != "DELETED" and (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.add(str(obj["metadata"]["name"]))

    async def reconcile(self, key: str) -> float | None:
        ns = self.informers.get(NAMESPACES).get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        remaining: dict[str, int] = {}
        for rt in _deletion_order():
            listed = await self.client.list(rt, namespace=key)
            for obj in listed.items:
                meta = obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    try:
                        await self.client.delete(
                            rt, meta["name"], namespace=key, propagation_policy="Background"
                        )
                    except errors.NotFound:
                        continue
                remaining[rt.group_resource] = remaining.get(rt.group_resource, 0) + 1
        if remaining:
            await self._report(ns, remaining)
            return self.recheck_after
        finalizers = [
            f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"
        ]
        if "kubernetes" in ((ns.get("spec") or {}).get("finalizers") or []):
            body = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": key, "resourceVersion": ns["metadata"]["resourceVersion"]},
                "spec": {"finalizers": finalizers},
            }
            await self.client.update(NAMESPACES, body, subresource="finalize")
        try:
            await self.client.delete(NAMESPACES, key)
        except errors.NotFound:
            pass
        self.log.info("namespace deleted", namespace=key)
        return None

    async def _report(self, ns: dict[str, Any], remaining: dict[str, int]) -> None:
        summary = ", ".join(f"{k} has {v} resource instances" for k, v in sorted(remaining.items()))
        status = dict(ns.get("status") or {})
        conditions = [
            c
            for c in status.get("conditions") or []
            if c.get("type") != "NamespaceContentRemaining"
        ]
        previous = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "NamespaceContentRemaining"
            ),
            None,
        )
        message = f"Some resources are remaining: {summary}"
        if previous is not None and previous.get("message") == message:
            return
        conditions.append(
            {
                "type": "NamespaceContentRemaining",
                "status": "True",
                "lastTransitionTime": rfc3339(),
                "reason": "SomeResourcesRemain",
                "message": message,
            }
        )
        status["conditions"] = conditions
        body = {**ns, "status": status}
        try:
            await self.client.update_status(NAMESPACES, body)
        except (errors.Conflict, errors.NotFound):
            pass
