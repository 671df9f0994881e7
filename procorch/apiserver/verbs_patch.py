"""PATCH: JSON merge, JSON patch and strategic merge patch, and server-side apply.

Every patch is applied to the current object and then written as an update with
compare-and-swap on the revision it was computed from, retried on a race, as Kubernetes does.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors, strategy
from procorch.api.conditions import replaced
from procorch.api.errors import Warnings
from procorch.api.meta import deep_copy, new_uid, rfc3339
from procorch.api.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH
from procorch.api.patch.managed import server_side_apply
from procorch.api.patch.strategic import apply_patch
from procorch.api.registry import schema_for, strategy_for
from procorch.api.resources import EPHEMERAL, ResourceType
from procorch.api.schema import ANY
from procorch.api.shape import check_shape
from procorch.apiserver import scale
from procorch.apiserver.auth import User
from procorch.apiserver.verbs_common import (
    APPLY_PATCH,
    PODS,
    RETRIES,
    PreconditionFailed,
    Result,
    WriteOptions,
    key_for,
    parse_rv,
)
from procorch.apiserver.verbs_core import ServiceCore


class PatchVerbs(ServiceCore):
    # -- patch -------------------------------------------------------------------------------

    async def patch(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        opts: WriteOptions | None = None,
        *,
        subresource: str = "",
    ) -> Result:
        opts = opts or WriteOptions()
        self.authorize(user, "patch", rt, namespace=namespace, name=name, subresource=subresource)
        if content_type == APPLY_PATCH:
            return await self._server_side_apply(
                user, rt, namespace, name, body, opts, subresource=subresource
            )
        if rt.custom and content_type == STRATEGIC_PATCH:
            # As kube-apiserver: a custom resource has no strategic merge keys.
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}"
            )
        schema = schema_for(rt.api_version, rt.kind)
        for _attempt in range(RETRIES):
            current = self._get_or_404(rt, namespace, name)
            warnings = Warnings()
            if subresource == "scale":
                base = scale.to_scale(rt, current).object
                patched = apply_patch(content_type, base, body, scale.SCALE_SCHEMA)
                new = scale.with_replicas(
                    current.object, scale.replicas_of(patched), rt.scale_paths[0]
                )
                explicit = parse_rv((patched.get("metadata") or {}).get("resourceVersion"))
            else:
                patched = apply_patch(
                    content_type,
                    deep_copy(current.object),
                    body,
                    schema if schema is not None else ANY,
                )
                if not isinstance(patched, dict):
                    raise errors.BadRequest("the patch must produce an object")
                self._check_patched_identity(rt, current.object, patched)
                check_shape(
                    rt.api_version,
                    rt.kind,
                    patched,
                    field_validation=opts.field_validation,
                    warnings=warnings,
                )
                explicit = parse_rv((patched.get("metadata") or {}).get("resourceVersion"))
                new = patched
            if explicit is not None and explicit != current.revision:
                raise errors.Conflict.modified(rt.plural, name, group=rt.group)
            try:
                result = await self._commit_update(
                    rt,
                    current,
                    new,
                    opts,
                    user=user,
                    expected_rv=current.revision,
                    subresource=subresource if subresource in ("status", EPHEMERAL) else "",
                )
            except PreconditionFailed:
                raise
            except errors.Conflict:
                # Lost a race with another writer. Patch again onto the newer object: a
                # resourceVersion the patch itself carries is checked again there (the patched
                # object otherwise just carries the version it was computed from).
                continue
            if subresource == "scale":
                result = Result(scale.to_scale(rt, result.stored))
            result.warnings = warnings.items + result.warnings
            return result
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

    @staticmethod
    def _check_patched_identity(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_meta, new_meta = old["metadata"], new.get("metadata")
        if not isinstance(new_meta, dict):
            raise errors.BadRequest("the patch removed the object's metadata")
        causes = []
        for name in ("name", "namespace"):
            if new_meta.get(name, "") != old_meta.get(name, ""):
                causes.append(
                    errors.invalid(f"metadata.{name}", new_meta.get(name), "field is immutable")
                )
        if new.get("apiVersion") != old.get("apiVersion") or new.get("kind") != old.get("kind"):
            raise errors.BadRequest("a patch may not change apiVersion or kind")
        if causes:
            raise errors.Invalid(
                kind=rt.kind, name=str(old_meta["name"]), causes=causes, group=rt.group
            )

    async def _server_side_apply(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str,
    ) -> Result:
        if not opts.field_manager:
            raise errors.BadRequest("PATCH request must include a fieldManager for apply")
        if not isinstance(body, dict):
            raise errors.BadRequest("an apply patch must be an object")
        if not body.get("apiVersion") or not body.get("kind"):
            raise errors.BadRequest("apiVersion and kind must be set in an apply configuration")
        self._check_type_meta(rt, body)
        meta = self._metadata_of(rt, body)
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._check_namespace(rt, namespace, meta)
        warnings = Warnings()
        check_shape(
            rt.api_version, rt.kind, body, field_validation=opts.field_validation, warnings=warnings
        )
        schema = schema_for(rt.api_version, rt.kind)
        if schema is None and rt.custom:
            schema = ANY  # a CRD's lists are atomic unless it says otherwise
        if schema is None:
            raise errors.UnsupportedMediaType(f"server-side apply is not supported for {rt.kind}")
        for _attempt in range(RETRIES):
            current = self.store.get(key_for(rt, namespace, name))
            if current is None:
                self.authorize(user, "create", rt, namespace=namespace)
                obj = server_side_apply(
                    live=None,
                    config=deep_copy(body),
                    manager=opts.field_manager,
                    force=opts.force,
                    api_version=rt.api_version,
                    now=rfc3339(),
                    schema=schema,
                    subresource=subresource,
                    has_status=rt.has_status(),
                )
                obj["metadata"]["uid"] = new_uid()
                obj["metadata"]["creationTimestamp"] = rfc3339()
                obj["metadata"].pop("resourceVersion", None)
                strategy.prepare_create(rt, strategy_for(rt), obj)
                try:
                    result = await self._create_prepared(
                        rt, obj, opts, warnings, user=user, manager_op="Apply"
                    )
                except errors.AlreadyExists:
                    continue
                return result
            new = server_side_apply(
                live=deep_copy(current.object),
                config=deep_copy(body),
                manager=opts.field_manager,
                force=opts.force,
                api_version=rt.api_version,
                now=rfc3339(),
                schema=schema,
                subresource=subresource,
                has_status=rt.has_status(),
            )
            explicit = parse_rv(meta.get("resourceVersion"))
            if explicit is not None and explicit != current.revision:
                raise errors.Conflict.modified(rt.plural, name, group=rt.group)
            try:
                result = await self._commit_update(
                    rt,
                    current,
                    new,
                    opts,
                    user=user,
                    expected_rv=current.revision,
                    subresource=subresource if subresource == "status" else "",
                    managed=True,
                )
            except PreconditionFailed:
                raise
            except errors.Conflict as exc:
                if explicit is not None or (exc.details or {}).get("causes"):
                    raise
                continue
            result.warnings = warnings.items + result.warnings
            return result
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

    # -- pods/binding --------------------------------------------------------------------------

    async def bind(
        self,
        user: User,
        namespace: str,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions | None = None,
    ) -> dict[str, Any]:
        """Assign a pod to a node (the scheduler's write), as the ``binding`` subresource."""
        rt = PODS
        self.authorize(user, "create", rt, namespace=namespace, name=name, subresource="binding")
        target = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not target:
            raise errors.Invalid(kind="Binding", name=name, causes=[errors.required("target.name")])
        for _attempt in range(RETRIES):
            current = self._get_or_404(rt, namespace, name)
            pod = deep_copy(current.object)
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
            assigned = (pod.get("spec") or {}).get("nodeName")
            if assigned:
                raise errors.Conflict(f'pod {name} is already assigned to node "{assigned}"')
            pod.setdefault("spec", {})["nodeName"] = target
            extra = (body.get("metadata") or {}).get("annotations") or {}
            if extra:
                pod["metadata"].setdefault("annotations", {}).update(extra)
            status = pod.setdefault("status", {})
            scheduled = {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(),
            }
            status["conditions"] = replaced(status.get("conditions"), scheduled)
            if opts is not None and opts.dry_run:
                break
            try:
                await self.store.update(
                    key_for(rt, namespace, name), pod, expected_rv=current.revision
                )
            except errors.Conflict:
                continue
            break
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
