"""Adoption and release of dependents through controller ownerReferences.

Kubernetes' ``ControllerRefManager``: a controller *claims* the objects its selector matches.
An orphan that matches is adopted (its ownerReferences gain a controller reference to us); an
object we control that no longer matches is released (our reference is removed, it keeps
running); objects controlled by someone else are left alone. Before the first adoption the
owner is re-read from the API (not the cache), so a controller that was just deleted, or
deleted and re-created under the same name, never adopts anything.

Writes are merge patches that carry the object's resourceVersion, so a concurrent change (a
status write, another controller's adoption) makes the patch fail with a Conflict and the
caller looks again, instead of overwriting someone's reference.

Concurrency: used from one reconcile at a time per owner; no shared state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procorch.api import errors
from procorch.api.meta import controller_ref, owner_ref
from procorch.api.resources import ResourceType
from procorch.client.base import Client

Obj = dict[str, Any]


class RefManager:
    def __init__(
        self,
        client: Client,
        *,
        owner: Obj,
        owner_rt: ResourceType,
        dependent_rt: ResourceType,
        matches: Callable[[Obj], bool],
        field_manager: str,
    ) -> None:
        self.client = client
        self.owner = owner
        self.owner_rt = owner_rt
        self.dependent_rt = dependent_rt
        self.matches = matches
        self.field_manager = field_manager
        meta = owner.get("metadata") or {}
        self.uid = str(meta.get("uid") or "")
        self.namespace = str(meta.get("namespace") or "")
        self.deleting = bool(meta.get("deletionTimestamp"))
        self._can_adopt: bool | None = None

    async def claim(self, candidates: list[Obj]) -> list[Obj]:
        """The candidates that are ours after adopting and releasing as needed."""
        claimed: list[Obj] = []
        for obj in candidates:
            meta = obj.get("metadata") or {}
            ref = controller_ref(obj)
            if ref is not None:
                if ref.get("uid") != self.uid:
                    continue  # someone else's
                if self.matches(obj):
                    claimed.append(obj)
                elif not meta.get("deletionTimestamp") and not self.deleting:
                    await self._release(obj)
                continue
            # An orphan.
            if self.deleting or meta.get("deletionTimestamp") or not self.matches(obj):
                continue
            if (meta.get("namespace") or "") != self.namespace:
                continue
            adopted = await self._adopt(obj)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _owner_may_adopt(self) -> bool:
        if self._can_adopt is None:
            try:
                fresh = await self.client.get(
                    self.owner_rt, str(self.owner["metadata"]["name"]), namespace=self.namespace
                )
            except errors.NotFound:
                fresh = None
            self._can_adopt = (
                fresh is not None
                and fresh["metadata"].get("uid") == self.uid
                and not fresh["metadata"].get("deletionTimestamp")
            )
        return self._can_adopt

    async def _adopt(self, obj: Obj) -> Obj | None:
        if not await self._owner_may_adopt():
            return None
        meta = obj["metadata"]
        refs = [dict(r) for r in meta.get("ownerReferences") or []]
        refs.append(owner_ref(self.owner, controller=True, block=True))
        try:
            return await self._set_refs(obj, refs)
        except errors.NotFound:
            return None

    async def _release(self, obj: Obj) -> None:
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != self.uid]
        try:
            await self._set_refs(obj, refs)
        except errors.NotFound:
            pass

    async def _set_refs(self, obj: Obj, refs: list[Obj]) -> Obj:
        meta = obj["metadata"]
        return await self.client.patch(
            self.dependent_rt,
            str(meta["name"]),
            {
                "metadata": {
                    "ownerReferences": refs or None,
                    "resourceVersion": meta["resourceVersion"],
                }
            },
            namespace=str(meta.get("namespace") or ""),
            patch_type="merge",
            field_manager=self.field_manager,
        )


def controller_index(obj: Obj) -> list[str]:
    """Index value: the uid of the object's controller, or ``orphan:<namespace>``."""
    ref = controller_ref(obj)
    if ref is not None:
        return [str(ref.get("uid") or "")]
    return [f"orphan:{(obj.get('metadata') or {}).get('namespace') or ''}"]


CONTROLLER_INDEX = "workloads/controller-uid"
