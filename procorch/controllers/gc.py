"""The garbage collector: ownerReferences drive cascading deletion.

* An object whose owners are all gone is deleted (Background propagation: the owner went
  first, its dependents follow). Owners that are gone are checked with a live read before
  anything is deleted, so a stale cache never deletes a live object's dependents.
* An object with some owners gone loses the dangling references.
* An owner being deleted with the ``orphan`` finalizer: its dependents lose their reference to
  it (they keep running), then the finalizer is removed and the owner goes.
* An owner being deleted with the ``foregroundDeletion`` finalizer: its dependents are deleted
  (themselves in foreground), and once none that ``blockOwnerDeletion`` remains, the
  finalizer is removed and the owner goes.

Keys are (resource key, namespace, name). Every served resource is watched, custom
resources too: each CustomResourceDefinition seen adds a watch of its kind.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors, resources
from procorch.api.crd import definition as crd_definition
from procorch.api.resources import RESOURCES, ResourceType
from procorch.reconcile.controller import Controller
from procorch.reconcile.views import InformerView

Key = tuple[str, str, str]

CRDS = resources.must("apiextensions.k8s.io/customresourcedefinitions")
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


def _owner_uids(obj: dict[str, Any]) -> list[str]:
    return [
        str(r.get("uid"))
        for r in (obj.get("metadata") or {}).get("ownerReferences") or []
        if r.get("uid")
    ]


class GarbageCollector(Controller[Key]):
    name = "garbage-collector"
    workers = 2

    def setup(self) -> None:
        self._by_uid: dict[str, Key] = {}
        self._informers: dict[str, InformerView] = {}
        for rt in RESOURCES:
            if not rt.custom and rt.key not in self._informers:
                self._inform(self.watch(rt), rt)
        self.watch(CRDS).add_handler(self._crd_seen)

    def _inform(self, informer: InformerView, rt: ResourceType) -> None:
        informer.add_index("owner-uid", _owner_uids)
        informer.add_handler(self._handler(rt))
        self._informers[rt.key] = informer

    def _crd_seen(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """A CRD's kind can own and be owned: watch it from now on (kept after the CRD goes,
        so its objects' deletion is seen)."""
        if etype == "DELETED":
            return
        for rt in crd_definition.resource_types(obj)[:1]:  # the storage version
            if rt.key not in self._informers:
                self._inform(self.informers.get(rt), rt)

    def _handler(self, rt: ResourceType) -> Any:
        def handle(etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            meta = obj.get("metadata") or {}
            key: Key = (rt.key, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            uid = str(meta.get("uid") or "")
            if etype == "DELETED":
                self._by_uid.pop(uid, None)
                # Its dependents may be orphans now; its owners may be waiting on it.
                for dep in self._dependents(uid):
                    self.queue.add(self._key_of(dep))
                for owner_uid in _owner_uids(obj):
                    owner = self._by_uid.get(owner_uid)
                    if owner is not None:
                        self.queue.add(owner)
                return
            if uid:
                self._by_uid[uid] = key
            finalizers = meta.get("finalizers") or []
            if meta.get("deletionTimestamp") and (ORPHAN in finalizers or FOREGROUND in finalizers):
                self.queue.add(key)
            if meta.get("ownerReferences"):
                self.queue.add(key)
                if meta.get("deletionTimestamp"):
                    for owner_uid in _owner_uids(obj):
                        owner = self._by_uid.get(owner_uid)
                        if owner is not None:
                            self.queue.add(owner)

        return handle

    def _dependents(self, uid: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        out = []
        for informer in self._informers.values():
            for obj in informer.by_index("owner-uid", uid):
                out.append((informer.rt, obj))
        return out

    @staticmethod
    def _key_of(dep: tuple[ResourceType, dict[str, Any]]) -> Key:
        rt, obj = dep
        meta = obj.get("metadata") or {}
        return rt.key, str(meta.get("namespace") or ""), str(meta.get("name") or "")

    async def reconcile(self, key: Key) -> float | None:
        resource, namespace, name = key
        rt = resources.by_key(resource)
        if rt is None:
            return None
        obj = self._informers[resource].get(name, namespace)
        if obj is None:
            return None
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp") and ORPHAN in finalizers:
            await self._orphan_dependents(obj)
            await self._remove_finalizer(rt, obj, ORPHAN)
            return None
        if meta.get("deletionTimestamp") and FOREGROUND in finalizers:
            blocking = await self._delete_dependents_foreground(obj)
            if not blocking:
                await self._remove_finalizer(rt, obj, FOREGROUND)
            return None
        if meta.get("ownerReferences"):
            await self._check_owners(rt, obj)
        return None

    async def _owner_state(self, obj: dict[str, Any], ref: dict[str, Any]) -> str:
        """'alive', 'gone', or 'deleting-foreground' for one owner reference."""
        owner_rt = resources.by_kind(str(ref.get("apiVersion")), str(ref.get("kind")))
        if owner_rt is None:
            return "alive"  # an owner kind procorch does not serve: never collect for it
        namespace = (
            str((obj.get("metadata") or {}).get("namespace") or "") if owner_rt.namespaced else ""
        )
        informer = self._informers.get(owner_rt.key)
        cached = informer.get(str(ref.get("name")), namespace) if informer is not None else None
        if cached is None or cached["metadata"].get("uid") != ref.get("uid"):
            # Confirm with a live read before acting on an absence.
            try:
                live = await self.client.get(owner_rt, str(ref.get("name")), namespace=namespace)
            except errors.NotFound:
                return "gone"
            if live["metadata"].get("uid") != ref.get("uid"):
                return "gone"
            cached = live
        if cached["metadata"].get("deletionTimestamp") and FOREGROUND in (
            cached["metadata"].get("finalizers") or []
        ):
            return "deleting-foreground"
        return "alive"

    async def _check_owners(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or [])
        states = [await self._owner_state(obj, ref) for ref in refs]
        if all(s == "gone" for s in states):
            if meta.get("deletionTimestamp"):
                return
            self.log.info(
                "deleting orphaned dependent",
                kind=rt.kind,
                namespace=meta.get("namespace"),
                name=meta["name"],
            )
            try:
                await self.client.delete(
                    rt,
                    meta["name"],
                    namespace=meta.get("namespace", ""),
                    propagation_policy="Background",
                    uid=meta.get("uid"),
                )
            except errors.NotFound:
                pass
            return
        if (
            "deleting-foreground" in states
            and not meta.get("deletionTimestamp")
            and all(s != "alive" for s in states)
        ):
            await self.client.delete(
                rt,
                meta["name"],
                namespace=meta.get("namespace", ""),
                propagation_policy="Foreground",
                uid=meta.get("uid"),
            )
            return
        if "gone" in states:
            kept = [ref for ref, s in zip(refs, states) if s != "gone"]
            await self._set_owner_refs(rt, obj, kept)

    async def _set_owner_refs(
        self, rt: ResourceType, obj: dict[str, Any], refs: list[dict[str, Any]]
    ) -> None:
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "ownerReferences": refs or None,
                "resourceVersion": meta["resourceVersion"],
            }
        }
        await self.client.patch(
            rt,
            meta["name"],
            patch,
            namespace=meta.get("namespace", ""),
            patch_type="merge",
            field_manager="garbage-collector",
        )

    async def _orphan_dependents(self, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for dep_rt, dep in self._dependents(uid):
            kept = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            try:
                await self._set_owner_refs(dep_rt, dep, kept)
            except errors.NotFound:
                continue

    async def _delete_dependents_foreground(self, owner: dict[str, Any]) -> bool:
        """Delete the owner's dependents; True while some that block the owner remain."""
        uid = owner["metadata"]["uid"]
        blocking = False
        for dep_rt, dep in self._dependents(uid):
            meta = dep["metadata"]
            ref: dict[str, Any] = next(
                (r for r in meta.get("ownerReferences") or [] if r.get("uid") == uid), {}
            )
            if ref.get("blockOwnerDeletion"):
                blocking = True
            if meta.get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(
                    dep_rt,
                    meta["name"],
                    namespace=meta.get("namespace", ""),
                    propagation_policy="Foreground",
                    uid=meta.get("uid"),
                )
            except errors.NotFound:
                continue
        return blocking

    async def _remove_finalizer(
        self, rt: ResourceType, obj: dict[str, Any], finalizer: str
    ) -> None:
        meta = obj["metadata"]
        remaining = [f for f in meta.get("finalizers") or [] if f != finalizer]
        patch = {
            "metadata": {
                "finalizers": remaining or None,
                "resourceVersion": meta["resourceVersion"],
            }
        }
        try:
            await self.client.patch(
                rt,
                meta["name"],
                patch,
                namespace=meta.get("namespace", ""),
                patch_type="merge",
                field_manager="garbage-collector",
            )
        except errors.NotFound:
            pass
