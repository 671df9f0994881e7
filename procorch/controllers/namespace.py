"""The namespace lifecycle controller: deleting a namespace deletes everything in it first.

When a Namespace has a ``deletionTimestamp`` (phase Terminating), the controller deletes every
namespaced object in it (pods gracefully, owners' dependents through the garbage collector as
usual) and reports progress in the namespace's conditions, as Kubernetes' namespace deleter
does: ``NamespaceContentRemaining`` lists what is left per resource and
``NamespaceFinalizersRemaining`` the finalizers that hold it (an object with finalizers stays,
deletionTimestamp set, until whoever owns them removes them). Only once nothing is left does it
remove the ``kubernetes`` finalizer through the ``finalize`` subresource; the API server then
removes the namespace (unless ``metadata.finalizers`` still hold it).

Concurrency: one worker; a namespace with content left is looked at again after
``recheck_after`` seconds.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.meta import rfc3339
from procorch.api.resources import RESOURCES, ResourceType, must
from procorch.reconcile.controller import Controller

NAMESPACES = must("core/namespaces")
KUBERNETES_FINALIZER = "kubernetes"

# Deleting these first lets owners take their dependents down in order, and events last.
_ORDER = [
    "apps/deployments",
    "apps/daemonsets",
    "batch/cronjobs",
    "apps/replicasets",
    "batch/jobs",
    "core/pods",
]

# The conditions Kubernetes' namespace deleter maintains, in its order, with the reason and
# message each carries while nothing is wrong (status "False").
_CONDITIONS: tuple[tuple[str, str, str], ...] = (
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    ("NamespaceDeletionContentFailure", "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
)  # fmt: skip


def _deletion_order() -> list[ResourceType]:
    namespaced = [r for r in RESOURCES if r.namespaced]
    first = [r for key in _ORDER for r in namespaced if r.key == key]
    last = [r for r in namespaced if r.key == "core/events"]
    rest = [r for r in namespaced if r not in first and r not in last]
    return first + rest + last


class _Remaining:
    """What a pass found still in the namespace, as the deleter's "content totals"."""

    def __init__(self) -> None:
        self.by_resource: dict[ResourceType, int] = {}
        self.by_finalizer: dict[str, int] = {}
        self.failures: list[str] = []

    def add(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        self.by_resource[rt] = self.by_resource.get(rt, 0) + 1
        for finalizer in (obj.get("metadata") or {}).get("finalizers") or []:
            self.by_finalizer[finalizer] = self.by_finalizer.get(finalizer, 0) + 1

    def __bool__(self) -> bool:
        return bool(self.by_resource or self.failures)

    def failing(self) -> dict[str, tuple[str, str]]:
        """Condition type -> (reason, message) for the conditions that are True."""
        out: dict[str, tuple[str, str]] = {}
        if self.failures:
            out["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(self.failures)} remaining: "
                + ", ".join(sorted(self.failures)),
            )
        if self.by_resource:
            # Kubernetes formats "<resource>.<group>", which leaves a trailing dot for core.
            parts = sorted(
                f"{rt.plural}.{rt.group} has {n} resource instances"
                for rt, n in self.by_resource.items()
            )
            out["NamespaceContentRemaining"] = (
                "SomeResourcesRemain",
                "Some resources are remaining: " + ", ".join(parts),
            )
        if self.by_finalizer:
            parts = sorted(f"{f} in {n} resource instances" for f, n in self.by_finalizer.items())
            out["NamespaceFinalizersRemaining"] = (
                "SomeFinalizersRemain",
                "Some content in the namespace has finalizers remaining: " + ", ".join(parts),
            )
        return out


def updated_conditions(
    current: list[dict[str, Any]], failing: dict[str, tuple[str, str]], *, now: str
) -> list[dict[str, Any]]:
    """The namespace's conditions after a pass (Kubernetes' ``updateConditions``): every
    deleter condition is present, True with its reason when failing, else False with the "ok"
    reason; ``lastTransitionTime`` moves only when the status flips; other conditions stay."""
    conditions = [dict(c) for c in current]
    by_type = {c.get("type"): c for c in conditions}
    for ctype, ok_reason, ok_message in _CONDITIONS:
        status, reason, message = "False", ok_reason, ok_message
        if ctype in failing:
            status = "True"
            reason, message = failing[ctype]
        old = by_type.get(ctype)
        if old is None:
            conditions.append(
                {
                    "type": ctype,
                    "status": status,
                    "lastTransitionTime": now,
                    "reason": reason,
                    "message": message,
                }
            )
            continue
        if old.get("status") != status:
            old["lastTransitionTime"] = now
        old.update(status=status, reason=reason, message=message)
    return conditions


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
        if KUBERNETES_FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None  # finalized already; only metadata.finalizers may still hold it
        remaining = await self._delete_content(key)
        ns = await self._report(ns, remaining)
        if remaining:
            return self.recheck_after
        finalizers = [
            f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != KUBERNETES_FINALIZER
        ]
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": key, "resourceVersion": ns["metadata"]["resourceVersion"]},
            "spec": {"finalizers": finalizers},
        }
        try:
            await self.client.update(NAMESPACES, body, subresource="finalize")
        except errors.NotFound:
            return None
        self.log.info("namespace content removed; finalized", namespace=key)
        return None

    async def _delete_content(self, namespace: str) -> _Remaining:
        remaining = _Remaining()
        for rt in _deletion_order():
            listed = await self.client.list(rt, namespace=namespace)
            for obj in listed.items:
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    remaining.add(rt, obj)
                    continue
                try:
                    result = await self.client.delete(
                        rt,
                        meta["name"],
                        namespace=namespace,
                        propagation_policy="Background",
                        uid=meta.get("uid"),
                    )
                except (errors.NotFound, errors.Conflict):
                    continue  # gone, or replaced by a newer object the next pass sees
                except errors.ApiError as exc:
                    remaining.failures.append(f"{rt.group_resource}: {exc.message}")
                    continue
                # A Status means it is gone; an object back means its deletion is pending.
                if result.get("kind") != "Status" and (result.get("metadata") or {}).get(
                    "deletionTimestamp"
                ):
                    remaining.add(rt, result)
        return remaining

    async def _report(self, ns: dict[str, Any], remaining: _Remaining) -> dict[str, Any]:
        """Write the deletion conditions if they changed; returns the freshest namespace."""
        status = dict(ns.get("status") or {})
        current = list(status.get("conditions") or [])
        conditions = updated_conditions(current, remaining.failing(), now=rfc3339())
        if conditions == current:
            return ns
        status["conditions"] = conditions
        try:
            return await self.client.update_status(NAMESPACES, {**ns, "status": status})
        except errors.NotFound:
            return ns
