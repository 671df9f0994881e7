"""The API's core verbs: authorization, get, list, create, update, and the shared write path.

:meth:`ServiceCore._commit_update` is the one place where a requested new state becomes a
stored one (system metadata kept, strategy applied, defaults, validation, managed fields,
compare-and-swap); patch, scale and server-side apply all end there. See :mod:`.service` for
the concurrency contract.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, Literal, Protocol

from procorch.api import errors, strategy
from procorch.api.crd.serving import TERMINATING
from procorch.api.errors import Warnings
from procorch.api.meta import deep_copy, generate_name, new_uid, rfc3339
from procorch.api.patch.managed import update_managed_fields
from procorch.api.registry import apply_defaults, schema_for, strategy_for, validate
from procorch.api.resources import EPHEMERAL, ResourceType
from procorch.api.shape import check_shape
from procorch.apiserver import scale
from procorch.apiserver.allocators import DEFAULT_SERVICE_CIDR, ServiceAllocators
from procorch.apiserver.auth import (
    Attributes,
    User,
    forbidden_message,
    node_owns,
    node_restriction,
)
from procorch.apiserver.filters import ObjectFilter
from procorch.apiserver.rbac import RbacAuthorizer
from procorch.apiserver.verbs_common import (
    RETRIES,
    PreconditionFailed,
    Result,
    WriteOptions,
    comparable,
    key_for,
    parse_rv,
    unsaved,
)
from procorch.store.base import Key, Store, Stored


class _AdmissionReads:
    """What admission reads of the store (:class:`procorch.api.strategy.Stored`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, key: str) -> list[dict[str, Any]]:
        return [stored.object for stored in self.store.list(key)[0]]

    def get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.store.get(Key(key, namespace, name))
        return None if found is None else found.object


class TokenIssuer(Protocol):
    """Issues ServiceAccount tokens (:class:`procorch.apiserver.tokens.Tokens`)."""

    def request(
        self, user: User, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


class ServiceCore:
    def __init__(
        self,
        store: Store,
        *,
        authorizer: RbacAuthorizer | None = None,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
    ) -> None:
        self.store = store
        self.authorizer = authorizer or RbacAuthorizer(store)
        # serviceaccounts/token, once the control plane has loaded its token key.
        self.tokens: TokenIssuer | None = None
        # Services' cluster IPs and node ports (allocated around the store write).
        self.allocators = ServiceAllocators(store, service_cidr=service_cidr)

    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        return key_for(rt, namespace, name)

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
        if rt.key == "core/namespaces" and name:
            namespace = name  # a namespace is in itself, as Kubernetes' request info has it
        elif not rt.namespaced:
            namespace = ""
        attrs = Attributes(
            verb=verb,
            group=rt.group,
            resource=rt.plural,
            subresource=subresource,
            namespace=namespace,
            name=name,
        )
        ok, _reason = self.authorizer.allowed(user, attrs)
        if not ok:
            raise errors.Forbidden(
                forbidden_message(user, attrs),
                details={"name": name, "kind": rt.plural, "group": rt.group}
                if name
                else {"kind": rt.plural, "group": rt.group},
            )

    def authorize_collection(
        self, user: User, verb: str, rt: ResourceType, namespace: str, selector: ObjectFilter
    ) -> None:
        """A list or watch: pinned to one name by ``metadata.name=...``, it is authorized for
        that name, as Kubernetes' request info takes it (so a rule with ``resourceNames``
        allows ``kubectl get x NAME -w``)."""
        name = selector.fields.exact_value("metadata.name") or ""
        self.authorize(user, verb, rt, namespace=namespace, name=name)

    def request_token(
        self, user: User, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A TokenRequest for the ServiceAccount ``namespace/name`` (``kubectl create token``)."""
        if self.tokens is None:
            raise errors.ServiceUnavailable("no token key loaded")
        return self.tokens.request(user, namespace, name, body)

    def rbac_escalation(self, user: User, rt: ResourceType, obj: dict[str, Any]) -> None:
        """No role or binding grants more than its writer holds (see
        :meth:`RbacAuthorizer.check_escalation`)."""
        self.authorizer.check_escalation(user, rt, obj)

    # -- reads -------------------------------------------------------------------------------

    def get(
        self, user: User, rt: ResourceType, namespace: str, name: str, *, subresource: str = ""
    ) -> Stored:
        self.authorize(user, "get", rt, namespace=namespace, name=name, subresource=subresource)
        stored = self._get_or_404(rt, namespace, name)
        if subresource == "scale":
            return scale.to_scale(rt, stored)
        return stored

    def _get_or_404(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.store.get(key_for(rt, namespace, name))
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
        selector = ObjectFilter.parse(
            rt, label_selector=label_selector, field_selector=field_selector
        )
        self.authorize_collection(user, "list", rt, namespace, selector)
        items, revision = self.store.list(
            rt.key, namespace if rt.namespaced and namespace else None, labels=selector.index_terms
        )
        return selector.select(items), revision

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
        if rt.custom and rt.key in TERMINATING:
            raise errors.MethodNotAllowed(
                "create not allowed while custom resource definition is terminating"
            )
        warnings = Warnings()
        obj = self._decode_new(rt, namespace, body, opts, warnings)
        meta = obj["metadata"]
        if _names_a_version(meta.pop("resourceVersion", None)):
            raise errors.BadRequest("resourceVersion should not be set on objects to be created")
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = rfc3339()
        for stale in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(stale, None)
        generated = not meta.get("name") and bool(meta.get("generateName"))
        if generated:
            meta["name"] = generate_name(str(meta["generateName"]))
        node_restriction(user, rt.group, rt.plural, str(meta.get("name") or ""))
        requested = self._as_requested(rt, obj)
        strategy.prepare_create(rt, strategy_for(rt), obj)
        return await self._create_prepared(
            rt,
            obj,
            opts,
            warnings,
            user=user,
            manager_op="Update",
            generated=generated,
            requested=requested,
        )

    async def _create_prepared(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        opts: WriteOptions,
        warnings: Warnings,
        *,
        user: User,
        manager_op: Literal["Update", "Apply"],
        generated: bool = False,
        requested: dict[str, Any] | None = None,
    ) -> Result:
        """Default, validate, admit and store a new object the strategy has prepared.

        For an ``Update`` (a plain create), ``requested`` is the object as the request made it
        (see :meth:`_as_requested`): the writer owns its fields, not what the strategy added.
        """
        meta = obj["metadata"]
        apply_defaults(rt.api_version, rt.kind, obj)
        self._validate(rt, obj, old=None)
        self.rbac_escalation(user, rt, obj)
        self._admit(rt, obj)
        if manager_op == "Update":
            self._track_fields(
                rt,
                old=None,
                new=requested if requested is not None else obj,
                manager=opts.field_manager,
                into=obj,
            )
        key = key_for(rt, str(meta.get("namespace") or ""), str(meta["name"]))
        inert = strategy_for(rt).not_run
        if inert:
            warnings.add(inert)
        if opts.dry_run:
            if self.store.get(key) is not None:
                raise errors.AlreadyExists.of(rt.plural, key.name, group=rt.group)
            with self.allocators.creating(rt, obj, dry_run=True):
                pass
            return Result(unsaved(obj, self.store.revision), created=True, warnings=warnings.items)
        with self.allocators.creating(rt, obj, dry_run=False):
            for _attempt in range(RETRIES):
                try:
                    stored = await self.store.create(key, obj)
                    return Result(stored, created=True, warnings=warnings.items)
                except errors.AlreadyExists:
                    if not generated:
                        raise errors.AlreadyExists.of(rt.plural, key.name, group=rt.group) from None
                    meta["name"] = generate_name(str(meta["generateName"]))
                    rename = strategy_for(rt).on_rename
                    if rename is not None:
                        rename(obj)
                    key = key_for(rt, key.namespace, str(meta["name"]))
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
        meta = self._metadata_of(rt, body)
        self._check_namespace(rt, namespace, meta)
        check_shape(
            rt.api_version, rt.kind, body, field_validation=opts.field_validation, warnings=warnings
        )
        return body

    @staticmethod
    def _metadata_of(rt: ResourceType, body: dict[str, Any]) -> dict[str, Any]:
        """The body's ``metadata`` (made ``{}`` when absent or null); 422 if it is not an
        object."""
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.Invalid(
                kind=rt.kind,
                name="",
                causes=[errors.type_invalid("metadata", meta, "must be an object")],
                group=rt.group,
            )
        return meta

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

    def _validate(
        self, rt: ResourceType, obj: dict[str, Any], *, old: dict[str, Any] | None
    ) -> None:
        causes = validate(rt.api_version, rt.kind, obj, old=old)
        if causes:
            raise errors.Invalid(
                kind=rt.kind,
                name=str(obj["metadata"].get("name") or ""),
                causes=causes,
                group=rt.group,
            )

    def _admit(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Admission for creates (after field tracking, as in Kubernetes, so what it adds
        belongs to no manager): the kind's own (its strategy's ``admit``), then
        NamespaceLifecycle: the namespace must exist and not be terminating."""
        admit = strategy_for(rt).admit
        if admit is not None:
            admit(obj, _AdmissionReads(self.store))
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
            name = str(obj["metadata"].get("name", ""))
            details: dict[str, Any] = {
                "name": name,
                "kind": rt.plural,
                "causes": [
                    {
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {namespace} is being terminated",
                        "field": "metadata.namespace",
                    }
                ],
            }
            if rt.group:
                details["group"] = rt.group
            raise errors.Forbidden(
                f'{rt.group_resource} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                details=details,
            )

    @staticmethod
    def _as_requested(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as the request made it, for field ownership: its body with Kubernetes'
        defaults, but without what the registry strategy then adds or keeps.

        Kubernetes defaults a body while decoding it, runs the field manager on that, and only
        then calls the strategy (``PrepareForCreate``/``PrepareForUpdate``). So the writer owns
        the defaults it was given, as on a real cluster, but never what the server generated:
        a Job's selector and controller-uid labels, a namespace's ``kubernetes`` finalizer,
        an initial status. (Owning those broke ``kubectl apply --server-side`` after a
        client-side apply: the migrated ownership made the next apply prune them.)
        """
        requested = deep_copy(obj)
        apply_defaults(rt.api_version, rt.kind, requested)
        return requested

    def _track_fields(
        self,
        rt: ResourceType,
        *,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        subresource: str = "",
        into: dict[str, Any] | None = None,
    ) -> None:
        """Record ``manager``'s write of ``new`` over ``old`` in the ``managedFields`` of
        ``into`` (default: ``new`` itself)."""
        target = new if into is None else into
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
            target["metadata"]["managedFields"] = managed
        else:
            target["metadata"].pop("managedFields", None)

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
            return await self._update_scale(user, rt, namespace, name, body, opts)
        warnings = Warnings()
        self._check_type_meta(rt, body)
        meta = self._metadata_of(rt, body)
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._check_namespace(rt, namespace, meta)
        check_shape(
            rt.api_version, rt.kind, body, field_validation=opts.field_validation, warnings=warnings
        )
        expected = parse_rv(meta.get("resourceVersion"))
        for _attempt in range(RETRIES):
            current = self._get_or_404(rt, namespace, name)
            try:
                result = await self._commit_update(
                    rt,
                    current,
                    deep_copy(body) if expected is None else body,
                    opts,
                    user=user,
                    expected_rv=expected if expected is not None else current.revision,
                    subresource=subresource,
                )
            except PreconditionFailed:
                raise
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
        user: User,
        expected_rv: int,
        subresource: str,
        managed: bool = False,
    ) -> Result:
        """Turn a requested new state into the stored one and write it (CAS on expected_rv).

        ``managed`` means server-side apply already computed ``managedFields``.
        """
        old = current.object
        node_owns(user, rt.key, old, verb="update")
        if expected_rv != current.revision:
            raise errors.Conflict.modified(rt.plural, str(old["metadata"]["name"]), group=rt.group)
        requested: dict[str, Any] | None = None
        if subresource == "status":
            new = strategy.prepare_status_update(new, old)
        elif subresource == EPHEMERAL:
            new = strategy.prepare_ephemeral_update(new, old)
        elif subresource == "finalize":
            new = strategy.prepare_finalize(new, old)
        else:
            self._keep_system_metadata(rt, new, old)
            # Defaults first, as Kubernetes decodes (and defaults) before PrepareForUpdate:
            # a patch or an apply that drops a defaulted field changes nothing, so it must
            # not bump ``generation`` either.
            apply_defaults(rt.api_version, rt.kind, new)
            if not managed:
                requested = deep_copy(new)
            strategy.prepare_update(rt, strategy_for(rt), new, old)
            self.allocators.prepare_update(rt, new, old)
        apply_defaults(rt.api_version, rt.kind, new)
        self._validate(rt, new, old=old)
        if subresource == "":
            self.rbac_escalation(user, rt, new)
        if not managed:
            if comparable(new) == comparable(old):
                return Result(current)  # a no-op write: no new revision, no watch event
            self._track_fields(
                rt,
                old=old,
                new=requested if requested is not None else new,
                manager=opts.field_manager,
                subresource=subresource if subresource == "status" else "",
                into=new,
            )
        if comparable(new) == comparable(old):
            return Result(current)
        key = key_for(rt, str(old["metadata"].get("namespace") or ""), str(old["metadata"]["name"]))
        if (
            new["metadata"].get("deletionTimestamp")
            and not self._finalizers_pending(rt, new)
            and not self._graceful(rt, new)
        ):
            # The last finalizer is gone from an object being deleted: it goes now.
            if opts.dry_run:
                return Result(unsaved(new, self.store.revision))
            stored = await self.store.delete(key, expected_rv=current.revision)
            self.allocators.released(rt, old)
            return Result(stored)
        warning = strategy_for(rt).not_run if subresource == "" else ""
        inert = [warning] if warning else []
        with self.allocators.updating(rt, new, old, dry_run=opts.dry_run):
            if opts.dry_run:
                return Result(unsaved(new, self.store.revision), warnings=inert)
            stored = await self.store.update(key, new, expected_rv=current.revision)
        return Result(stored, warnings=inert)

    @staticmethod
    def _finalizers_pending(rt: ResourceType, obj: dict[str, Any]) -> bool:
        """Whether something still holds a deleting object: ``metadata.finalizers``, and for a
        Namespace also ``spec.finalizers`` (the ``kubernetes`` one stays until the namespace
        controller has removed the content), as Kubernetes' namespace registry checks."""
        if (obj.get("metadata") or {}).get("finalizers"):
            return True
        return strategy_for(rt).spec_finalizers and bool((obj.get("spec") or {}).get("finalizers"))

    @staticmethod
    def _graceful(rt: ResourceType, obj: dict[str, Any]) -> bool:
        """An object in graceful termination (a pod) stays until its end is confirmed."""
        return strategy_for(rt).grace_period is not None and bool(
            (obj.get("metadata") or {}).get("deletionGracePeriodSeconds")
        )

    @staticmethod
    def _keep_system_metadata(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
        meta = new["metadata"]
        old_meta = old["metadata"]
        uid = meta.get("uid")
        if uid and uid != old_meta.get("uid"):
            raise PreconditionFailed(
                f'Operation cannot be fulfilled on {rt.group_resource} "{old_meta["name"]}": '
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{old_meta.get('uid')}"
            )
        for name in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
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
                found = ", ".join(json.dumps(f) for f in sorted(added))
                raise errors.Invalid(
                    kind=rt.kind,
                    name=str(old_meta["name"]),
                    causes=[
                        errors.forbidden(
                            "metadata.finalizers",
                            f"no new finalizers can be added if the object is being "
                            f"deleted, found new finalizers []string{{{found}}}",
                        )
                    ],
                    group=rt.group,
                )

    async def _update_scale(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions,
    ) -> Result:
        if rt.subresource("scale") is None:
            raise errors.NotFound("the server could not find the requested resource")
        replicas = scale.replicas_of(body)
        expected = parse_rv((body.get("metadata") or {}).get("resourceVersion"))
        for _attempt in range(RETRIES):
            current = self._get_or_404(rt, namespace, name)
            new = scale.with_replicas(current.object, replicas, rt.scale_paths[0])
            try:
                result = await self._commit_update(
                    rt,
                    current,
                    new,
                    opts,
                    user=user,
                    expected_rv=expected if expected is not None else current.revision,
                    subresource="",
                )
            except errors.Conflict:
                if expected is not None:
                    raise
                continue
            return Result(scale.to_scale(rt, result.stored), warnings=result.warnings)
        raise errors.Conflict.modified(rt.plural, name, group=rt.group)


def _names_a_version(value: Any) -> bool:
    """Whether a create's ``metadata.resourceVersion`` names a version, as kube-apiserver's
    storage reads it: a decimal ``uint64`` other than 0. Anything else (text, "0", a
    negative number) is ignored, as there."""
    text = value if isinstance(value, str) else ""
    return text.isascii() and text.isdigit() and 0 < int(text) < 2**64
