"""The API's verbs over the store: get, list, watch, create, update, patch, delete.

This is the transport-free heart of the API server. The HTTP layer (:mod:`.http`) decodes a
request into a call here and encodes the result; the in-process client calls the same methods
directly, so both see identical semantics: authorization, validation, defaulting, admission,
managed fields, optimistic concurrency, graceful and finalizer-driven deletion.

A request that is refused changes nothing: every check runs before the single store write.

Concurrency: runs on the event loop. Writes that read-modify-write (updates without a
resourceVersion, patches) retry on a store Conflict, as Kubernetes' ``GuaranteedUpdate`` does.
Objects from the store are shared and never mutated here; they are copied first.
"""

from __future__ import annotations

import builtins

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import orjson

from procorch.api import errors, resources
from procorch.api.defaults import apply_defaults
from procorch.api.errors import Warnings
from procorch.api.meta import deep_copy, generate_name, new_uid, now, rfc3339
from procorch.api.patch.managed import server_side_apply, update_managed_fields
from procorch.api.patch.strategic import apply_patch
from procorch.api.resources import ResourceType
from procorch.api.schema import ANY as _ANY
from procorch.api.shape import FieldValidation, check_shape
from procorch.api.types import schema_for
from procorch.api.validation import validate
from procorch.apiserver import scale, strategy
from procorch.apiserver.auth import Attributes, Authorizer, MastersOnly, User, forbidden_message
from procorch.apiserver.filters import ObjectFilter
from procorch.store.base import Key, Store, Stored, WatchClosed

__all__ = ["ApiService", "DeleteOptions", "WatchClosed", "WatchStream", "WriteOptions"]

APPLY_PATCH = "application/apply-patch+yaml"
_PODS = resources.must("core/pods")
_RETRIES = 10

Propagation = Literal["Background", "Foreground", "Orphan"]


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: FieldValidation = "Warn"
    force: bool = False  # server-side apply: take fields over from other managers


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: Propagation | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


@dataclass
class Result:
    stored: Stored
    created: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def object(self) -> dict[str, Any]:
        return self.stored.object


@dataclass
class DeleteResult:
    stored: Stored
    finished: bool  # gone from the store (False: deletion pending on finalizers/grace)


def _key(rt: ResourceType, namespace: str, name: str) -> Key:
    return Key(rt.key, namespace if rt.namespaced else "", name)


def _unsaved(obj: dict[str, Any], revision: int) -> Stored:
    """A Stored for a dry run: what would have been written."""
    return Stored(object=obj, raw=orjson.dumps(obj), revision=revision)


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus what every write changes (resourceVersion, managedFields times)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    if meta.get("managedFields"):
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"} for entry in meta["managedFields"]
        ]
    return {**obj, "metadata": meta}


class ApiService:
    def __init__(self, store: Store, *, authorizer: Authorizer | None = None) -> None:
        self.store = store
        self.authorizer: Authorizer = authorizer or MastersOnly()

    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        return _key(rt, namespace, name)

    # -- authorization ---------------------------------------------------------------------

    def authorize(
        self,
        user: User,
        verb: str,
        rt: ResourceType,
        *,
        namespace: str = "",
        name: str = "",
        subresource: str = "",
    ) -> None:
        attrs = Attributes(
            verb=verb,
            group=rt.group,
            resource=rt.plural,
            subresource=subresource,
            namespace=namespace if rt.namespaced else "",
            name=name,
        )
        ok, _reason = self.authorizer.allowed(user, attrs)
        if not ok:
            raise errors.Forbidden(
                forbidden_message(user, attrs),
                details={"name": name, "kind": rt.plural, "group": rt.group} if name
                else {"kind": rt.plural, "group": rt.group},
            )

    # -- reads -------------------------------------------------------------------------------

    def get(self, user: User, rt: ResourceType, namespace: str, name: str,
            *, subresource: str = "") -> Stored:
        self.authorize(user, "get", rt, namespace=namespace, name=name, subresource=subresource)
        stored = self._get_or_404(rt, namespace, name)
        if subresource == "scale":
            return scale.to_scale(rt, stored)
        return stored

    def _get_or_404(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.store.get(_key(rt, namespace, name))
        if stored is None:
            raise errors.NotFound.of(rt.plural, name, group=rt.group)
        return stored

    def list(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[builtins.list[Stored], int]:
        self.authorize(user, "list", rt, namespace=namespace)
        selector = ObjectFilter.parse(rt, label_selector=label_selector,
                                      field_selector=field_selector)
        items, revision = self.store.list(rt.key, namespace if rt.namespaced and namespace else None)
        if not selector.empty:
            items = [s for s in items if selector.matches(s.object)]
        return items, revision

    # -- create ------------------------------------------------------------------------------

    async def create(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        body: dict[str, Any],
        opts: WriteOptions | None = None,
    ) -> Result:
        """Create ``body`` (which the service takes ownership of and may modify)."""
        opts = opts or WriteOptions()
        self.authorize(user, "create", rt, namespace=namespace)
        warnings = Warnings()
        obj = self._decode_new(rt, namespace, body, opts, warnings)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.BadRequest("resourceVersion should not be set on objects to be created")
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = rfc3339()
        for stale in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(stale, None)
        generated = not meta.get("name") and bool(meta.get("generateName"))
        if generated:
            meta["name"] = generate_name(str(meta["generateName"]))
        strategy.prepare_create(rt, obj)
        return await self._create_prepared(rt, obj, opts, warnings, manager_op="Update",
                                           generated=generated)

    async def _create_prepared(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        opts: WriteOptions,
        warnings: Warnings,
        *,
        manager_op: Literal["Update", "Apply"],
        generated: bool = False,
    ) -> Result:
        meta = obj["metadata"]
        apply_defaults(rt.api_version, rt.kind, obj)
        self._validate(rt, obj, old=None)
        self._admit(rt, obj)
        if manager_op == "Update":
            self._track_fields(rt, old=None, new=obj, manager=opts.field_manager)
        key = _key(rt, str(meta.get("namespace") or ""), str(meta["name"]))
        if opts.dry_run:
            if self.store.get(key) is not None:
                raise errors.AlreadyExists.of(rt.plural, key.name, group=rt.group)
            return Result(_unsaved(obj, self.store.revision), created=True,
                          warnings=warnings.items)
        for _attempt in range(_RETRIES):
            try:
                stored = await self.store.create(key, obj)
                return Result(stored, created=True, warnings=warnings.items)
            except errors.AlreadyExists:
                if not generated:
                    raise errors.AlreadyExists.of(rt.plural, key.name, group=rt.group) from None
                meta["name"] = generate_name(str(meta["generateName"]))
                strategy.rename(rt, obj)
                key = _key(rt, key.namespace, str(meta["name"]))
        raise errors.AlreadyExists.of(rt.plural, key.name, group=rt.group)

    def _decode_new(
        self,
        rt: ResourceType,
        namespace: str,
        body: dict[str, Any],
        opts: WriteOptions,
        warnings: Warnings,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.BadRequest(f"the body of the request must be a {rt.kind} object")
        self._check_type_meta(rt, body)
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.Invalid(kind=rt.kind, name="", causes=[
                errors.type_invalid("metadata", meta, "must be an object")])
        self._check_namespace(rt, namespace, meta)
        check_shape(rt.api_version, rt.kind, body, field_validation=opts.field_validation,
                    warnings=warnings)
        return body

    @staticmethod
    def _check_type_meta(rt: ResourceType, body: dict[str, Any]) -> None:
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version in (None, ""):
            body["apiVersion"] = rt.api_version
        elif api_version != rt.api_version:
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind in (None, ""):
            body["kind"] = rt.kind
        elif kind != rt.kind:
            raise errors.BadRequest(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )

    @staticmethod
    def _check_namespace(rt: ResourceType, namespace: str, meta: dict[str, Any]) -> None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        given = meta.get("namespace")
        if given and namespace and given != namespace:
            raise errors.BadRequest(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = given or namespace
        if not meta["namespace"]:
            raise errors.BadRequest(f"a namespace is required to create a {rt.kind}")

    def _validate(self, rt: ResourceType, obj: dict[str, Any], *,
                  old: dict[str, Any] | None) -> None:
        causes = validate(rt.api_version, rt.kind, obj, old=old)
        if causes:
            raise errors.Invalid(
                kind=rt.kind,
                name=str(obj["metadata"].get("name") or ""),
                causes=causes,
                group=rt.group,
            )

    def _admit(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Admission for creates: the namespace must exist and not be terminating."""
        if not rt.namespaced:
            return
        namespace = str(obj["metadata"].get("namespace") or "")
        ns = self.store.get(Key("core/namespaces", "", namespace))
        if ns is None:
            raise errors.NotFound(
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )
        if (ns.object.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.Forbidden(
                f'{rt.plural} "{obj["metadata"].get("name", "")}" is forbidden: unable to create '
                f"new content in namespace {namespace} because it is being terminated",
                details={"name": str(obj["metadata"].get("name", "")), "kind": rt.plural},
            )

    def _track_fields(
        self,
        rt: ResourceType,
        *,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        subresource: str = "",
    ) -> None:
        schema = schema_for(rt.api_version, rt.kind)
        if schema is None or not manager:
            return
        managed = update_managed_fields(
            old=old,
            new=new,
            manager=manager,
            operation="Update",
            subresource=subresource,
            api_version=rt.api_version,
            now=rfc3339(),
            schema=schema,
            has_status=rt.has_status(),
        )
        if managed:
            new["metadata"]["managedFields"] = managed
        else:
            new["metadata"].pop("managedFields", None)

    # -- update ------------------------------------------------------------------------------

    async def update(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions | None = None,
        *,
        subresource: str = "",
    ) -> Result:
        opts = opts or WriteOptions()
        verb_sub = subresource
        self.authorize(user, "update", rt, namespace=namespace, name=name, subresource=verb_sub)
        if not isinstance(body, dict):
            raise errors.BadRequest(f"the body of the request must be a {rt.kind} object")
        if subresource == "scale":
            return await self._update_scale(rt, namespace, name, body, opts)
        warnings = Warnings()
        self._check_type_meta(rt, body)
        meta = body.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._check_namespace(rt, namespace, meta)
        check_shape(rt.api_version, rt.kind, body, field_validation=opts.field_validation,
                    warnings=warnings)
        expected = _parse_rv(meta.get("resourceVersion"))
        for _attempt in range(_RETRIES):
            current = self._get_or_404(rt, namespace, name)
            try:
                result = await self._commit_update(
                    rt, current, deep_copy(body) if expected is None else body, opts,
                    expected_rv=expected if expected is not None else current.revision,
                    subresource=subresource,
                )
            except errors.Conflict:
                if expected is not None:
                    raise
                continue
            result.warnings = warnings.items + result.warnings
            return result
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

    async def _commit_update(
        self,
        rt: ResourceType,
        current: Stored,
        new: dict[str, Any],
        opts: WriteOptions,
        *,
        expected_rv: int,
        subresource: str,
        managed: bool = False,
    ) -> Result:
        """Turn a requested new state into the stored one and write it (CAS on expected_rv).

        ``managed`` means server-side apply already computed ``managedFields``.
        """
        old = current.object
        if expected_rv != current.revision:
            raise errors.Conflict.modified(rt.plural, str(old["metadata"]["name"]),
                                           group=rt.group)
        if subresource == "status":
            new = strategy.prepare_status_update(new, old)
        elif subresource == "finalize":
            new = strategy.prepare_finalize(new, old)
        else:
            self._keep_system_metadata(rt, new, old)
            strategy.prepare_update(rt, new, old)
        apply_defaults(rt.api_version, rt.kind, new)
        self._validate(rt, new, old=old)
        if not managed:
            if _comparable(new) == _comparable(old):
                return Result(current)  # a no-op write: no new revision, no watch event
            self._track_fields(rt, old=old, new=new, manager=opts.field_manager,
                               subresource=subresource if subresource == "status" else "")
        if _comparable(new) == _comparable(old):
            return Result(current)
        key = _key(rt, str(old["metadata"].get("namespace") or ""),
                   str(old["metadata"]["name"]))
        finalizers = new["metadata"].get("finalizers") or []
        if new["metadata"].get("deletionTimestamp") and not finalizers and not self._graceful(
            rt, new
        ):
            # The last finalizer is gone from an object being deleted: it goes now.
            if opts.dry_run:
                return Result(_unsaved(new, self.store.revision))
            stored = await self.store.delete(key, expected_rv=current.revision)
            return Result(stored)
        if opts.dry_run:
            return Result(_unsaved(new, self.store.revision))
        stored = await self.store.update(key, new, expected_rv=current.revision)
        return Result(stored)

    @staticmethod
    def _graceful(rt: ResourceType, obj: dict[str, Any]) -> bool:
        """A pod in graceful termination stays until its node agent confirms the end."""
        return rt.kind == "Pod" and bool((obj.get("metadata") or {}).get(
            "deletionGracePeriodSeconds"))

    @staticmethod
    def _keep_system_metadata(rt: ResourceType, new: dict[str, Any],
                              old: dict[str, Any]) -> None:
        meta = new["metadata"]
        old_meta = old["metadata"]
        uid = meta.get("uid")
        if uid and uid != old_meta.get("uid"):
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {rt.group_resource} "{old_meta["name"]}": '
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{old_meta.get('uid')}"
            )
        for name in ("uid", "creationTimestamp", "deletionTimestamp",
                     "deletionGracePeriodSeconds", "generation"):
            if name in old_meta:
                meta[name] = old_meta[name]
            else:
                meta.pop(name, None)
        meta.pop("selfLink", None)
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        if old_meta.get("deletionTimestamp"):
            # A deleting object may lose finalizers, never gain new ones.
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.Invalid(kind=rt.kind, name=str(old_meta["name"]), causes=[
                    errors.forbidden("metadata.finalizers",
                                     f"no new finalizers can be added if the object is being "
                                     f"deleted, found new finalizers {sorted(added)!r}")])

    async def _update_scale(
        self, rt: ResourceType, namespace: str, name: str, body: dict[str, Any],
        opts: WriteOptions,
    ) -> Result:
        if rt.subresource("scale") is None:
            raise errors.NotFound(f"the server could not find the requested resource")
        replicas = scale.replicas_of(body)
        expected = _parse_rv((body.get("metadata") or {}).get("resourceVersion"))
        for _attempt in range(_RETRIES):
            current = self._get_or_404(rt, namespace, name)
            new = scale.with_replicas(current.object, replicas)
            try:
                result = await self._commit_update(
                    rt, current, new, opts,
                    expected_rv=expected if expected is not None else current.revision,
                    subresource="",
                )
            except errors.Conflict:
                if expected is not None:
                    raise
                continue
            return Result(scale.to_scale(rt, result.stored), warnings=result.warnings)
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

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
            return await self._server_side_apply(user, rt, namespace, name, body, opts,
                                                 subresource=subresource)
        schema = schema_for(rt.api_version, rt.kind)
        for _attempt in range(_RETRIES):
            current = self._get_or_404(rt, namespace, name)
            warnings = Warnings()
            if subresource == "scale":
                base = scale.to_scale(rt, current).object
                patched = apply_patch(content_type, base, body, scale.SCALE_SCHEMA)
                new = scale.with_replicas(current.object, scale.replicas_of(patched))
                explicit = _parse_rv((patched.get("metadata") or {}).get("resourceVersion"))
            else:
                patched = apply_patch(content_type, deep_copy(current.object), body,
                                      schema if schema is not None else _ANY)
                if not isinstance(patched, dict):
                    raise errors.BadRequest("the patch must produce an object")
                self._check_patched_identity(rt, current.object, patched)
                check_shape(rt.api_version, rt.kind, patched,
                            field_validation=opts.field_validation, warnings=warnings)
                explicit = _parse_rv((patched.get("metadata") or {}).get("resourceVersion"))
                new = patched
            if explicit is not None and explicit != current.revision:
                raise errors.Conflict.modified(rt.plural, name, group=rt.group)
            try:
                result = await self._commit_update(
                    rt, current, new, opts, expected_rv=current.revision,
                    subresource=subresource if subresource in ("status",) else "",
                )
            except errors.Conflict:
                if explicit is not None:
                    raise
                continue
            if subresource == "scale":
                result = Result(scale.to_scale(rt, result.stored))
            result.warnings = warnings.items + result.warnings
            return result
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

    @staticmethod
    def _check_patched_identity(rt: ResourceType, old: dict[str, Any],
                                new: dict[str, Any]) -> None:
        old_meta, new_meta = old["metadata"], new.get("metadata")
        if not isinstance(new_meta, dict):
            raise errors.BadRequest("the patch removed the object's metadata")
        causes = []
        for name in ("name", "namespace"):
            if new_meta.get(name, "") != old_meta.get(name, ""):
                causes.append(errors.invalid(f"metadata.{name}", new_meta.get(name),
                                             "field is immutable"))
        if new.get("apiVersion") != old.get("apiVersion") or new.get("kind") != old.get("kind"):
            raise errors.BadRequest("a patch may not change apiVersion or kind")
        if causes:
            raise errors.Invalid(kind=rt.kind, name=str(old_meta["name"]), causes=causes,
                                 group=rt.group)

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
            raise errors.BadRequest(
                "apiVersion and kind must be set in an apply configuration")
        self._check_type_meta(rt, body)
        meta = body.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._check_namespace(rt, namespace, meta)
        warnings = Warnings()
        check_shape(rt.api_version, rt.kind, body, field_validation=opts.field_validation,
                    warnings=warnings)
        schema = schema_for(rt.api_version, rt.kind)
        if schema is None:
            raise errors.UnsupportedMediaType(f"server-side apply is not supported for {rt.kind}")
        for _attempt in range(_RETRIES):
            current = self.store.get(_key(rt, namespace, name))
            if current is None:
                self.authorize(user, "create", rt, namespace=namespace)
                obj = server_side_apply(live=None, config=deep_copy(body),
                                        manager=opts.field_manager, force=opts.force,
                                        api_version=rt.api_version, now=rfc3339(),
                                        schema=schema, subresource=subresource,
                                        has_status=rt.has_status())
                obj["metadata"]["uid"] = new_uid()
                obj["metadata"]["creationTimestamp"] = rfc3339()
                obj["metadata"].pop("resourceVersion", None)
                strategy.prepare_create(rt, obj)
                try:
                    result = await self._create_prepared(rt, obj, opts, warnings,
                                                         manager_op="Apply")
                except errors.AlreadyExists:
                    continue
                return result
            new = server_side_apply(live=deep_copy(current.object), config=deep_copy(body),
                                    manager=opts.field_manager, force=opts.force,
                                    api_version=rt.api_version, now=rfc3339(), schema=schema,
                                    subresource=subresource, has_status=rt.has_status())
            explicit = _parse_rv(meta.get("resourceVersion"))
            if explicit is not None and explicit != current.revision:
                raise errors.Conflict.modified(rt.plural, name, group=rt.group)
            try:
                result = await self._commit_update(
                    rt, current, new, opts, expected_rv=current.revision,
                    subresource=subresource if subresource == "status" else "", managed=True,
                )
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
        rt = _PODS
        self.authorize(user, "create", rt, namespace=namespace, name=name,
                       subresource="binding")
        target = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) \
            else None
        if not target:
            raise errors.Invalid(kind="Binding", name=name,
                                 causes=[errors.required("target.name")])
        for _attempt in range(_RETRIES):
            current = self._get_or_404(rt, namespace, name)
            pod = deep_copy(current.object)
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.Conflict(
                    f"pod {name} is being deleted, cannot be assigned to a host")
            assigned = (pod.get("spec") or {}).get("nodeName")
            if assigned:
                raise errors.Conflict(f'pod {name} is already assigned to node "{assigned}"')
            pod.setdefault("spec", {})["nodeName"] = target
            extra = ((body.get("metadata") or {}).get("annotations") or {})
            if extra:
                pod["metadata"].setdefault("annotations", {}).update(extra)
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or []
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": None, "lastTransitionTime": rfc3339()})
            status["conditions"] = conditions
            if opts is not None and opts.dry_run:
                break
            try:
                await self.store.update(_key(rt, namespace, name), pod,
                                        expected_rv=current.revision)
            except errors.Conflict:
                continue
            break
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}

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
        for _attempt in range(_RETRIES):
            current = self._get_or_404(rt, namespace, name)
            try:
                return await self._delete_once(rt, current, options)
            except errors.Conflict:
                if options.precondition_rv is not None or options.precondition_uid is not None:
                    raise
                continue
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)

    async def _delete_once(
        self, rt: ResourceType, current: Stored, options: DeleteOptions
    ) -> DeleteResult:
        old = current.object
        old_meta = old["metadata"]
        name = str(old_meta["name"])
        if options.precondition_uid is not None and options.precondition_uid != old_meta.get(
            "uid"
        ):
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {rt.group_resource} "{name}": Precondition '
                f"failed: UID in precondition: {options.precondition_uid}, UID in object meta: "
                f"{old_meta.get('uid')}"
            )
        if options.precondition_rv is not None and options.precondition_rv != str(
            current.revision
        ):
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
            finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")] \
                if not old_meta.get("deletionTimestamp") else finalizers
        if finalizers:
            meta["finalizers"] = finalizers
        else:
            meta.pop("finalizers", None)
        deleting = bool(old_meta.get("deletionTimestamp"))
        grace = self._grace_period(rt, old, options)
        if rt.kind == "Namespace":
            if not deleting:
                meta["deletionTimestamp"] = rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                return await self._write_deleting(rt, current, new, options)
            if (new.get("spec") or {}).get("finalizers") or finalizers:
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
            elif rt.kind == "Pod" and meta.get("deletionGracePeriodSeconds"):
                # A forced delete of a terminating pod that still has finalizers.
                meta["deletionGracePeriodSeconds"] = 0
            return await self._write_deleting(rt, current, new, options)
        key = _key(rt, str(old_meta.get("namespace") or ""), name)
        if options.dry_run:
            return DeleteResult(current, finished=True)
        stored = await self.store.delete(key, expected_rv=current.revision)
        return DeleteResult(stored, finished=True)

    async def _write_deleting(
        self, rt: ResourceType, current: Stored, new: dict[str, Any], options: DeleteOptions
    ) -> DeleteResult:
        if new == current.object:
            return DeleteResult(current, finished=False)
        if options.dry_run:
            return DeleteResult(_unsaved(new, self.store.revision), finished=False)
        key = _key(rt, str(new["metadata"].get("namespace") or ""), str(new["metadata"]["name"]))
        stored = await self.store.update(key, new, expected_rv=current.revision)
        return DeleteResult(stored, finished=False)

    @staticmethod
    def _grace_period(rt: ResourceType, obj: dict[str, Any], options: DeleteOptions) -> int:
        """Seconds of graceful termination: pods on a node only, as in Kubernetes."""
        if rt.kind != "Pod":
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if options.grace_period_seconds is not None:
            return max(0, options.grace_period_seconds)
        configured = spec.get("terminationGracePeriodSeconds")
        return 30 if configured is None else max(0, int(configured))

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
        items, _ = self.list(user, rt, namespace, label_selector=label_selector,
                             field_selector=field_selector)
        deleted: builtins.list[Stored] = []
        for item in items:
            meta = item.object["metadata"]
            try:
                result = await self.delete(user, rt, str(meta.get("namespace") or ""),
                                           str(meta["name"]), options)
            except errors.NotFound:
                continue
            deleted.append(result.stored)
        return deleted

    # -- watch -------------------------------------------------------------------------------

    def watch(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> "WatchStream":
        self.authorize(user, "watch", rt, namespace=namespace)
        selector = ObjectFilter.parse(rt, label_selector=label_selector,
                                      field_selector=field_selector)
        ns = namespace if rt.namespaced and namespace else None
        initial: builtins.list[Stored] = []
        if resource_version in ("", "0"):
            items, revision = self.store.list(rt.key, ns)
            initial = [s for s in items if selector.matches(s.object)]
        else:
            revision = _parse_rv(resource_version) or 0
        watch = self.store.watch(rt.key, since=revision, namespace=ns)
        return WatchStream(self.store, watch, initial=initial, matches=selector.matches,
                           filtered=not selector.empty)


class WatchStream:
    """Events for one watch request, translated through its selectors.

    An object that stops matching a selector is reported DELETED and one that starts matching
    ADDED, as Kubernetes' watch cache does.
    """

    def __init__(
        self,
        store: Store,
        watch: Any,
        *,
        initial: list[Stored],
        matches: Callable[[dict[str, Any]], bool],
        filtered: bool,
    ) -> None:
        self._store = store
        self._watch = watch
        self._initial = list(reversed(initial))
        self._matches = matches
        self._filtered = filtered

    def idle(self) -> bool:
        return not self._initial and bool(self._watch.idle())

    @property
    def revision(self) -> int:
        return self._store.revision

    async def next(self, timeout: float | None = None) -> tuple[str, Stored] | None:
        """(type, object), or None after ``timeout``; raises WatchClosed at the end."""
        if self._initial:
            return "ADDED", self._initial.pop()
        while True:
            event = await self._watch.next(timeout)
            if event is None:
                return None
            if not self._filtered:
                return event.type, event.current
            now_matches = event.type != "DELETED" and self._matches(event.current.object)
            was_matching = event.previous is not None and self._matches(event.previous.object)
            if event.type == "DELETED":
                if was_matching or self._matches(event.current.object):
                    return "DELETED", event.current
            elif now_matches and was_matching:
                return "MODIFIED", event.current
            elif now_matches:
                return "ADDED", event.current
            elif was_matching:
                return "DELETED", event.current

    def close(self) -> None:
        self._watch.close()


def _parse_rv(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise errors.BadRequest(f'invalid resourceVersion "{value}"') from None

