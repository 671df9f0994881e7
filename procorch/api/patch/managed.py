"""Field ownership (``metadata.managedFields``) and server-side apply.

Kubernetes' field manager, re-implemented over :mod:`procorch.api.patch.typed`:

* :func:`update_managed_fields`: after a create, update or non-apply patch, the writer
  (``operation: Update``) takes ownership of every field whose value it set or changed; those
  fields leave the other managers' sets; empty entries are dropped; at most ten ``Update``
  entries are kept (older ones fold into ``ancient-changes``).
* :func:`server_side_apply`: ``application/apply-patch+yaml``. The configuration is merged
  into the live object by the schema's list semantics; a field whose value would change and
  that another manager owns is a conflict (409 with Kubernetes' exact ``Status``) unless
  ``force``; fields this manager applied before and leaves out now are removed unless someone
  else still owns them. The ``kubectl`` manager may take over fields recorded in the
  client-side-apply annotation, and keeps that annotation in sync, as Kubernetes does.

Never tracked: ``apiVersion``, ``kind``, ``metadata.{name,namespace,uid,resourceVersion,
generation,creationTimestamp,selfLink,managedFields}``, and the *reset fields* of the endpoint:
``status`` on the main resource of a kind with a status subresource, ``spec`` on ``/status``.

The caller (the API server) owns everything around: preconditions, defaulting, validation,
resetting status, dry runs. Pure data; inputs are never mutated.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import yaml

from procorch.api import errors, kyaml
from procorch.api.patch.entries import (
    Entry,
    ManagerId,
    Managers,
    conflict_error,
    decode,
    encode,
    identity_json,
    seconds,
    starting_managers,
)
from procorch.api.patch.fieldpath import (
    FieldsError,
    FieldSet,
    Path,
    path_of,
    recursive_difference,
)
from procorch.api.patch.typed import (
    ShapeError,
    compare,
    ensure_named_fields,
    field_set,
    json_equal,
    merge,
    remove_items,
)
from procorch.api.schema import SchemaNode

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
BEFORE_FIRST_APPLY = "before-first-apply"
ANCIENT_CHANGES = "ancient-changes"

_STRIPPED: FieldSet = {
    path_of("apiVersion"),
    path_of("kind"),
    path_of("metadata"),
    path_of("metadata", "name"),
    path_of("metadata", "namespace"),
    path_of("metadata", "creationTimestamp"),
    path_of("metadata", "selfLink"),
    path_of("metadata", "uid"),
    path_of("metadata", "clusterName"),
    path_of("metadata", "generation"),
    path_of("metadata", "managedFields"),
    path_of("metadata", "resourceVersion"),
}

_CURRENT_OPERATION: ManagerId = ("\x00current-operation", "Update", "", "")


class _Conflicts(Exception):
    def __init__(self, items: list[tuple[ManagerId, Path]]) -> None:
        super().__init__(f"{len(items)} conflicts")
        self.items = items


# ---- public API ----------------------------------------------------------------------------


def update_managed_fields(
    *,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    operation: str = "Update",
    subresource: str = "",
    api_version: str,
    now: str,
    schema: SchemaNode,
    has_status: bool = False,
    reset_fields: Collection[tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """The new ``metadata.managedFields`` after ``manager`` wrote ``new`` over ``old``.

    ``old`` is ``None`` for a create. ``new`` may carry ``managedFields`` of its own: a client
    may replace them (``[]`` or ``[{}]`` clears them) except through a subresource. An empty
    list means the object should carry no ``managedFields`` at all.
    """
    if operation != "Update":
        raise ValueError("update_managed_fields records Update operations; use server_side_apply")
    reset = _reset_paths(has_status=has_status, subresource=subresource, reset_fields=reset_fields)
    old_entries = _managed_of(old)
    managers = starting_managers(old_entries, _managed_of(new), subresource)
    if not managers and old is not None:
        # Kubernetes leaves an existing untracked object untracked until its first apply.
        return []
    ident: ManagerId = (manager or "unknown", "Update", api_version, subresource)
    try:
        managers = _update(
            _without_managed(old or {}),
            _without_managed(new),
            managers,
            ident=ident,
            api_version=api_version,
            now=now,
            schema=schema,
            reset=reset,
        )
    except ShapeError:
        # As Kubernetes' UpdateNoErrors: a write never fails over bookkeeping; keep the old.
        return copy.deepcopy(old_entries) if isinstance(old_entries, list) else []
    return encode(managers)


def server_side_apply(
    *,
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    force: bool,
    api_version: str,
    now: str,
    schema: SchemaNode,
    subresource: str = "",
    has_status: bool = False,
    reset_fields: Collection[tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Apply ``config`` for ``manager``; returns the new object with its ``managedFields``.

    ``live`` is ``None`` when the object does not exist yet (apply creates it). Raises
    :class:`errors.Conflict` on conflicts (unless ``force``) and :class:`errors.BadRequest`
    for a configuration that is not a valid apply patch.
    """
    _check_config(config, api_version=api_version, live=live)
    reset = _reset_paths(has_status=has_status, subresource=subresource, reset_fields=reset_fields)
    try:
        config_fields = field_set(config, schema, allow_duplicates=False)
    except ShapeError as exc:
        raise errors.BadRequest(f"failed to create typed patch object: {exc}") from exc
    config_fields = recursive_difference(config_fields, reset)
    live_obj = _without_managed(live or {})
    try:
        managers = decode(_managed_of(live))
    except (FieldsError, TypeError, ValueError) as exc:
        raise errors.InternalError(f"failed to decode managed fields: {exc}") from exc
    ident: ManagerId = (manager, "Apply", "", subresource)
    try:
        if not managers:
            # Fields that existed before anyone applied belong to "before-first-apply", so
            # that a first applier conflicts with them instead of silently taking them.
            managers = _update(
                {},
                live_obj,
                managers,
                ident=(BEFORE_FIRST_APPLY, "Update", api_version, subresource),
                api_version=api_version,
                now=now,
                schema=schema,
                reset=reset,
            )
        try:
            result, managers = _apply(
                live_obj,
                config,
                config_fields,
                managers,
                ident=ident,
                force=force,
                api_version=api_version,
                now=now,
                schema=schema,
                reset=reset,
            )
        except _Conflicts as exc:
            allowed = _allowed_from_last_applied(live_obj, api_version, schema)
            if manager != "kubectl" or allowed is None:
                raise conflict_error(exc.items) from None
            remaining = [(m, p) for m, p in exc.items if p not in allowed]
            if remaining:
                raise conflict_error(remaining) from None
            result, managers = _apply(
                live_obj,
                config,
                config_fields,
                managers,
                ident=ident,
                force=True,
                api_version=api_version,
                now=now,
                schema=schema,
                reset=reset,
            )
    except ShapeError as exc:
        raise errors.InternalError(f"failed to apply to the live object: {exc}") from exc
    if manager == "kubectl":
        _sync_last_applied(result, config)
    encoded = encode(managers)
    meta = result.setdefault("metadata", {})
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
    return result


def decode_apply_body(body: bytes | str | Any) -> dict[str, Any]:
    """The configuration of an ``application/apply-patch+yaml`` body (JSON or YAML)."""
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text)
        except ValueError:
            body = _load_yaml(text)
    if not isinstance(body, dict):
        raise errors.BadRequest("error decoding patch: the apply configuration must be an object")
    return body


# ---- the field manager ---------------------------------------------------------------------


def _reset_paths(
    *, has_status: bool, subresource: str, reset_fields: Collection[tuple[str, ...]] | None
) -> list[Path]:
    if reset_fields is not None:
        return [path_of(*p) for p in reset_fields]
    if subresource == "status":
        return [path_of("spec")]
    if not subresource and has_status:
        return [path_of("status")]
    return []


def _update_step(
    old: Any,
    new: Any,
    managers: Managers,
    *,
    workflow: ManagerId,
    force: bool,
    schema: SchemaNode,
    reset: list[Path],
) -> tuple[Managers, FieldSet]:
    """Take what changed from every manager but ``workflow``; returns them and the changes."""
    diff = compare(old, new, schema).exclude(reset)
    changed = diff.modified | diff.added
    conflicts: list[tuple[ManagerId, Path]] = []
    for ident, entry in managers.items():
        if ident != workflow:
            conflicts.extend((ident, p) for p in entry.fields & changed)
    if conflicts and not force:
        raise _Conflicts(conflicts)
    out: Managers = {}
    for ident, entry in managers.items():
        fields = entry.fields if ident == workflow else entry.fields - changed - diff.removed
        if fields:
            out[ident] = replace(entry, fields=fields)
    return out, changed


def _update(
    old: dict[str, Any],
    new: dict[str, Any],
    managers: Managers,
    *,
    ident: ManagerId,
    api_version: str,
    now: str,
    schema: SchemaNode,
    reset: list[Path],
) -> Managers:
    managers, changed = _update_step(
        old, new, managers, workflow=_CURRENT_OPERATION, force=True, schema=schema, reset=reset
    )
    taken = recursive_difference(changed, reset) - _STRIPPED
    if taken:
        previous = managers.get(ident)
        fields = taken | previous.fields if previous else taken
        managers[ident] = Entry(fields, api_version, False, now)
    return _cap_update_managers(managers)


def _apply(
    live: dict[str, Any],
    config: dict[str, Any],
    config_fields: FieldSet,
    managers: Managers,
    *,
    ident: ManagerId,
    force: bool,
    api_version: str,
    now: str,
    schema: SchemaNode,
    reset: list[Path],
) -> tuple[dict[str, Any], Managers]:
    merged = merge(live, config, schema)
    last = managers.get(ident)
    managers = dict(managers)
    managers[ident] = Entry(config_fields, api_version, True, last.time if last else None)
    pruned = _prune(merged, managers, last.fields if last else set(), schema)
    managers, _ = _update_step(
        live, pruned, managers, workflow=ident, force=force, schema=schema, reset=reset
    )
    entry = managers.get(ident)
    if entry is not None:
        fields = entry.fields - _STRIPPED
        time = entry.time if json_equal(live, pruned) else now
        if fields:
            managers[ident] = replace(entry, fields=fields, time=time)
        else:
            del managers[ident]
    return pruned, managers


def _prune(merged: Any, managers: Managers, last: FieldSet, schema: SchemaNode) -> Any:
    """Remove what the applier applied last time and dropped now, unless someone owns it.

    Mirrors Kubernetes: remove everything of the last set, add back what any manager owns,
    then add back whatever the last set never covered.
    """
    if not last:
        return merged

    def named(paths: FieldSet) -> FieldSet:
        return ensure_named_fields(paths, schema)

    last_named = named(last)
    first = remove_items(merged, last_named, schema)
    owned: FieldSet = set().union(*(e.fields for e in managers.values()))
    merged_set = named(field_set(merged, schema))
    first_set = named(field_set(first, schema))
    second = remove_items(merged, merged_set - (first_set | named(owned)), schema)
    second_set = named(field_set(second, schema))
    return remove_items(merged, (merged_set - second_set) & last_named, schema)


def _cap_update_managers(managers: Managers) -> Managers:
    updaters = [i for i, e in managers.items() if not e.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return managers
    updaters.sort(key=lambda i: (seconds(managers[i].time), identity_json(i)))
    first_of_version: dict[str, ManagerId] = {}
    remaining = len(updaters)
    for ident in updaters:
        if remaining <= MAX_UPDATE_MANAGERS:
            break
        entry = managers[ident]
        version = entry.api_version
        bucket: ManagerId = (ANCIENT_CHANGES, "Update", version, "")
        if version not in first_of_version:
            first_of_version[version] = ident
            continue
        if bucket not in managers:
            managers[bucket] = managers.pop(first_of_version[version])
        folded = entry.fields | managers[bucket].fields
        managers[bucket] = Entry(folded, version, False, entry.time)
        del managers[ident]
        remaining -= 1
    return managers


# ---- conflicts and client-side-apply migration ---------------------------------------------


def _allowed_from_last_applied(
    live: dict[str, Any], api_version: str, schema: SchemaNode
) -> FieldSet | None:
    """Fields whose live value is still what the last client-side apply set.

    ``kubectl apply --server-side`` may take these over from client-side apply without a
    conflict: that is how an object migrates from client-side to server-side apply.
    """
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED_ANNOTATION)
    if not text:
        return None
    try:
        last = json.loads(text)
    except ValueError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return None
    try:
        fields = field_set(last, schema)
        diff = compare(last, live, schema)
    except ShapeError:
        return None
    return fields - diff.modified - diff.added - diff.removed


def _sync_last_applied(obj: dict[str, Any], config: dict[str, Any]) -> None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(LAST_APPLIED_ANNOTATION):
        return
    recorded = copy.deepcopy(config)
    meta = recorded.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED_ANNOTATION, None)
        if not meta["annotations"]:
            del meta["annotations"]
    annotations[LAST_APPLIED_ANNOTATION] = _go_json(recorded)


def _go_json(value: Any) -> str:
    """JSON as Go's encoder writes an unstructured object: sorted keys, HTML-safe, newline."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text + "\n"


# ---- encoding ------------------------------------------------------------------------------


def _managed_of(obj: dict[str, Any] | None) -> Any:
    if not obj:
        return None
    meta = obj.get("metadata")
    return meta.get("managedFields") if isinstance(meta, dict) else None


def _without_managed(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return out


# ---- request checks ------------------------------------------------------------------------


def _check_config(config: Any, *, api_version: str, live: dict[str, Any] | None) -> None:
    if not isinstance(config, dict):
        raise errors.BadRequest("error decoding patch: the apply configuration must be an object")
    kind = config.get("kind")
    if not kind:
        raise errors.BadRequest(
            f"Object 'Kind' is missing in '{json.dumps(config, separators=(',', ':'))}'"
        )
    version = config.get("apiVersion")
    if version != api_version:
        raise errors.BadRequest(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {version or ''}, expected: {api_version}"
        )
    if live is not None and live.get("kind") and live["kind"] != kind:
        raise errors.BadRequest(f"invalid object type: {api_version}, Kind={kind}")
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise errors.BadRequest("metadata.managedFields must be nil")


def _load_yaml(text: str) -> Any:
    try:
        return kyaml.load(text)
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error decoding patch: {exc}") from exc
