"""DELETE: graceful pod termination, finalizers, propagation policies, namespaces.

An object with finalizers (including the ``orphan``/``foregroundDeletion`` ones a propagation
policy adds) gets a ``deletionTimestamp`` and stays until they are removed; a pod bound to a
node gets a grace period and stays until its node agent confirms that it stopped; everything
else is removed at once. Garbage collection of dependents is the GC controller's job.
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any

from procorch.api import errors
from procorch.api.meta import deep_copy, now, rfc3339
from procorch.api.registry import strategy_for
from procorch.api.resources import ResourceType
from procorch.apiserver.auth import User, node_owns
from procorch.apiserver.verbs_common import (
    RETRIES,
    DeleteOptions,
    DeleteResult,
    PreconditionFailed,
    key_for,
    unsaved,
)
from procorch.apiserver.verbs_core import ServiceCore
from procorch.store.base import Stored


class DeletionVerbs(ServiceCore):
    # -- delete ------------------------------------------------------------------------------

    async def delete(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: DeleteOptions | None = None,
    ) -> DeleteResult:
        options = options or DeleteOptions()
        self.authorize(user, "delete", rt, namespace=namespace, name=name)
        if name in strategy_for(rt).protected_names:
            # Kubernetes' NamespaceLifecycle admission, which dry runs pass through too.
            raise errors.Forbidden(
                f'{rt.plural} "{name}" is forbidden: this {rt.singular_name} may not be deleted',
                details={"name": name, "kind": rt.plural},
            )
        for _attempt in range(RETRIES):
            current = self._get_or_404(rt, namespace, name)
            node_owns(user, rt.key, current.object, verb="delete")
            uid_holds = options.precondition_uid in (None, current.object["metadata"].get("uid"))
            try:
                return await self._delete_once(rt, current, options)
            except PreconditionFailed:
                raise
            except errors.Conflict:
                # A write that raced ours is retried on the fresh object, as Kubernetes'
                # GuaranteedUpdate does; a precondition that does not hold is the answer.
                if options.precondition_rv is not None or not uid_holds:
                    raise
                continue
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

    async def _delete_once(
        self, rt: ResourceType, current: Stored, options: DeleteOptions
    ) -> DeleteResult:
        old = current.object
        old_meta = old["metadata"]
        name = str(old_meta["name"])
        if options.precondition_uid is not None and options.precondition_uid != old_meta.get("uid"):
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {rt.group_resource} "{name}": Precondition '
                f"failed: UID in precondition: {options.precondition_uid}, UID in object meta: "
                f"{old_meta.get('uid')}"
            )
        if options.precondition_rv is not None and options.precondition_rv != str(current.revision):
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {rt.group_resource} "{name}": Precondition '
                f"failed: ResourceVersion in precondition: {options.precondition_rv}, "
                f"ResourceVersion in object meta: {current.revision}"
            )
        new = deep_copy(old)
        meta = new["metadata"]
        finalizers: builtins.list[str] = list(meta.get("finalizers") or [])
        policy = options.propagation_policy
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
            finalizers = [f for f in finalizers if f != "foregroundDeletion"]
        elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            finalizers = [f for f in finalizers if f != "orphan"]
        elif policy == "Background":
            finalizers = (
                [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
                if not old_meta.get("deletionTimestamp")
                else finalizers
            )
        if finalizers:
            meta["finalizers"] = finalizers
        else:
            meta.pop("finalizers", None)
        deleting = bool(old_meta.get("deletionTimestamp"))
        grace_period = strategy_for(rt).grace_period
        grace = 0 if grace_period is None else grace_period(old, options.grace_period_seconds)
        if strategy_for(rt).spec_finalizers:
            if not deleting:
                meta["deletionTimestamp"] = rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                return await self._write_deleting(rt, current, new, options)
            if (new.get("spec") or {}).get("finalizers"):
                # As Kubernetes' namespace registry: a second delete is refused while the
                # namespace controller is still removing the content.
                raise PreconditionFailed(
                    f'Operation cannot be fulfilled on namespaces "{name}": The system is '
                    "ensuring all content is removed from this namespace.  Upon completion, "
                    "this namespace will automatically be purged by the system.",
                    details={"name": name, "kind": "namespaces"},
                )
            if finalizers:
                return await self._write_deleting(rt, current, new, options)
            # Content gone and finalized: the namespace itself goes now (below).
        if grace:
            now_time = now()
            deadline = rfc3339(now_time + timedelta(seconds=grace))
            if not deleting or grace < int(old_meta.get("deletionGracePeriodSeconds") or 0):
                meta["deletionTimestamp"] = deadline
                meta["deletionGracePeriodSeconds"] = grace
            return await self._write_deleting(rt, current, new, options)
        if finalizers:
            if not deleting:
                meta["deletionTimestamp"] = rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
            elif grace_period is not None and meta.get("deletionGracePeriodSeconds"):
                # A forced delete of a terminating pod that still has finalizers.
                meta["deletionGracePeriodSeconds"] = 0
            return await self._write_deleting(rt, current, new, options)
        key = key_for(rt, str(old_meta.get("namespace") or ""), name)
        if options.dry_run:
            return DeleteResult(current, finished=True)
        stored = await self.store.delete(key, expected_rv=current.revision)
        self.allocators.released(rt, old)
        return DeleteResult(stored, finished=True)

    async def _write_deleting(
        self, rt: ResourceType, current: Stored, new: dict[str, Any], options: DeleteOptions
    ) -> DeleteResult:
        if new == current.object:
            return DeleteResult(current, finished=False)
        if options.dry_run:
            return DeleteResult(unsaved(new, self.store.revision), finished=False)
        key = key_for(rt, str(new["metadata"].get("namespace") or ""), str(new["metadata"]["name"]))
        stored = await self.store.update(key, new, expected_rv=current.revision)
        return DeleteResult(stored, finished=False)

    async def delete_collection(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        options: DeleteOptions | None = None,
    ) -> builtins.list[Stored]:
        self.authorize(user, "deletecollection", rt, namespace=namespace)
        items, _ = self.list(
            user, rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        deleted: builtins.list[Stored] = []
        for item in items:
            meta = item.object["metadata"]
            try:
                result = await self.delete(
                    user, rt, str(meta.get("namespace") or ""), str(meta["name"]), options
                )
            except errors.NotFound:
                continue
            deleted.append(result.stored)
        return deleted
