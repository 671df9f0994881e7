"""Kubernetes strategic merge patch (``application/strategic-merge-patch+json``), and the
dispatcher over every PATCH content type.

Semantics, re-implemented from Kubernetes' ``strategicpatch`` package:

* maps merge recursively; ``null`` deletes a key;
* lists with a merge key (``SchemaNode.merge_key``) merge item by item: a patch item updates
  the original item with the same key or is added; lists of scalars marked ``set_merge`` are
  unioned; every other list is replaced;
* order: without ``$setElementOrder``, original items keep their relative order and a patch
  item the original lacks is emitted ahead of the server-only items still to come (so a lone
  new item lands first: Kubernetes does exactly this; kubectl always sends
  ``$setElementOrder``, which fixes the order of the items it names);
* directives: ``$patch: replace|delete`` on a map, ``{"$patch": "delete", <key>: v}`` and
  ``{"$patch": "replace"}`` as list items, ``$setElementOrder/<f>``, ``$retainKeys``,
  ``$deleteFromPrimitiveList/<f>``. Directives never reach the result.

Positions the schema does not know (``kind="any"``) have no merge keys, so their lists are
replaced and their maps merged: JSON-merge semantics, as Kubernetes applies to custom resources.

Malformed patches are 400 ``BadRequest`` with Kubernetes' messages (Kubernetes answers some of
them with a bare 500; a client error is the honest code). Pure data; inputs are never mutated.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from procorch.api import errors
from procorch.api.patch.jsonpatch import json_patch
from procorch.api.patch.merge import json_merge_patch
from procorch.api.schema import SchemaNode

DIRECTIVE = "$patch"
REPLACE = "replace"
DELETE = "delete"
MERGE = "merge"
RETAIN_KEYS = "$retainKeys"
SET_ORDER_PREFIX = "$setElementOrder/"
DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], schema: SchemaNode
) -> dict[str, Any]:
    """Apply a strategic merge ``patch`` to ``original``; returns a new object."""
    if not isinstance(patch, dict):
        raise errors.BadRequest(
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), schema)


def apply_patch(
    content_type: str, original: dict[str, Any], body: bytes | Any, schema: SchemaNode
) -> dict[str, Any]:
    """Apply a PATCH body of the given content type (parameters such as charset ignored).

    ``application/apply-patch+yaml`` is not handled here: server-side apply needs the field
    manager and ownership, see :func:`procorch.api.patch.managed.server_side_apply`.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
        raise errors.UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_TYPES)
        )
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise errors.BadRequest("invalid JSON patch") from exc
    if media == JSON_PATCH:
        return json_patch(original, body)
    if media == MERGE_PATCH:
        return json_merge_patch(original, body)
    return strategic_merge_patch(original, body, schema)


# ---- maps ----------------------------------------------------------------------------------


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: SchemaNode
) -> dict[str, Any]:
    """Merge ``patch`` into ``original``; both are private copies and may be consumed."""
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == REPLACE:
            return _materialize_map(patch, schema)
        if directive == DELETE:
            return {}
        raise errors.BadRequest(f"unknown patch type: {directive} in map: {_go(patch)}")
    _retain_keys(original, patch)
    _set_element_orders(original, patch, schema)
    for key, value in patch.items():
        delete_list = key.startswith(DELETE_PRIMITIVE_PREFIX)
        if delete_list:
            key = key[len(DELETE_PRIMITIVE_PREFIX) :]
            if not key:
                raise errors.BadRequest("invalid patch format of primitive list")
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not delete_list:
                _put(original, key, _materialize(value, schema.field(key)))
            continue
        current = original[key]
        if isinstance(current, dict) and isinstance(value, dict):
            original[key] = _merge_map(current, value, schema.field(key))
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list_field(current, value, schema.field(key), delete_list)
        elif not delete_list:
            _put(original, key, _materialize(value, schema.field(key)))
    return original


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is _DROP:
        target.pop(key, None)
    else:
        target[key] = value


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list):
        raise errors.BadRequest("invalid patch format of retainKeys")
    keep = {k for k in retained if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_PRIMITIVE_PREFIX, SET_ORDER_PREFIX)):
            continue
        if key not in keep:
            raise errors.BadRequest("invalid patch format of retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


# ---- lists ---------------------------------------------------------------------------------


def _merges(schema: SchemaNode) -> bool:
    return schema.kind == "list" and (bool(schema.merge_key) or schema.set_merge)


def _merge_list_field(
    original: list[Any], patch: list[Any], schema: SchemaNode, delete_list: bool
) -> list[Any]:
    if _merges(schema) or delete_list:
        return _merge_list(original, patch, schema, delete_list)
    return _materialize_list(patch, schema)


def _element_kind(*lists: list[Any]) -> str:
    """``map`` or ``scalar``: every element of a merged list must be of one JSON type."""
    seen: type | None = None
    for items in lists:
        for item in items:
            if isinstance(item, list):
                raise errors.BadRequest("lists of lists are not supported")
            kind = type(item)
            if seen is None:
                seen = kind
            elif kind is not seen and not _both_numbers(kind, seen):
                raise errors.BadRequest(f"list element types are not identical: {_go(list(lists))}")
    return "map" if seen is dict else "scalar"


def _both_numbers(a: type, b: type) -> bool:
    return a in (int, float) and b in (int, float) and bool not in (a, b)


def _merge_list(
    original: list[Any], patch: list[Any], schema: SchemaNode, delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    key = schema.merge_key or ""
    if kind == "scalar":
        if delete_list:
            return [v for v in original if not any(_same(v, d) for d in patch)]
        merged = _dedupe(original + patch)
        server_order = original
    else:
        if not key:
            raise errors.BadRequest("cannot merge lists without merge key")
        server_order, patch, replace = _special_items(original, patch, key)
        if replace:
            return _materialize_list(server_order, schema)
        merged = _merge_keyed_items(list(server_order), patch, key, schema.item())
    in_patch, server_only = _partition(merged, patch, key if kind == "map" else "")
    return _normalize_order(
        in_patch, server_only, patch, server_order, key if kind == "map" else ""
    )


def _special_items(
    original: list[Any], patch: list[Any], key: str
) -> tuple[list[Any], list[Any], bool]:
    """Apply ``$patch`` list items: deletions from the original, or a whole-list replace
    (then the first list returned is the replacement)."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == DELETE:
            if key not in item:
                raise _no_merge_key(item, key)
            original = [o for o in original if not _key_matches(o, key, item[key])]
        elif directive == REPLACE:
            replace = True
        elif directive == MERGE:
            raise errors.BadRequest("merging lists cannot yet be specified in the patch")
        else:
            raise errors.BadRequest(f"unknown patch type: {directive} in map: {_go(item)}")
    if replace:
        return plain, [], True
    return original, plain, False


def _merge_keyed_items(
    original: list[Any], patch: list[Any], key: str, item_schema: SchemaNode
) -> list[Any]:
    for item in patch:
        if key not in item:
            raise _no_merge_key(item, key)
        for index, candidate in enumerate(original):
            if _key_matches(candidate, key, item[key]):
                original[index] = _merge_map(candidate, item, item_schema)
                break
        else:
            added = _materialize(item, item_schema)
            if added is not _DROP:
                original.append(added)
    return original


def _set_element_orders(
    original: dict[str, Any], patch: dict[str, Any], schema: SchemaNode
) -> None:
    """Handle ``$setElementOrder/<f>`` together with the patch of ``<f>`` (consumed here)."""
    for directive_key in [k for k in patch if k.startswith(SET_ORDER_PREFIX)]:
        order = patch.pop(directive_key)
        name = directive_key[len(SET_ORDER_PREFIX) :]
        if not name or not isinstance(order, list):
            raise errors.BadRequest("invalid patch format of setElementOrder list")
        field_schema = schema.field(name)
        key = field_schema.merge_key or ""
        in_original = isinstance(original.get(name), list)
        patch_list = patch.get(name)
        in_patch = isinstance(patch_list, list)
        if (original.get(name) is not None and not in_original) or (
            patch_list is not None and not in_patch
        ):
            raise errors.BadRequest("invalid patch format of setElementOrder list")
        base: list[Any] = original[name] if in_original else []
        items: list[Any] = patch_list if isinstance(patch_list, list) else []
        _check_order(items, order, key)
        if in_original and not in_patch:
            merged = base
        elif in_patch and not in_original:
            merged = _materialize_list(items, field_schema)
        elif in_original and in_patch:
            merged = _merge_list_field(base, items, field_schema, False)
        else:
            continue
        kind = _element_kind(base, items) if (base or items) else "scalar"
        order_key = key if kind == "map" else ""
        in_order, server_only = _partition(merged, order, order_key)
        original[name] = _normalize_order(in_order, server_only, order, base, order_key)
        patch.pop(name, None)


def _check_order(items: list[Any], order: list[Any], key: str) -> None:
    """The patch list must follow ``$setElementOrder``'s order (Kubernetes checks it too)."""
    plain = [i for i in items if not (key and isinstance(i, dict) and i.get(DIRECTIVE) == DELETE)]
    pi = oi = 0
    while pi < len(plain) and oi < len(order):
        if isinstance(plain[pi], dict) and DIRECTIVE in plain[pi]:
            pi += 1
            continue
        if _order_equal(plain[pi], order[oi], key):
            pi += 1
        oi += 1
    if pi < len(plain) and oi >= len(order):
        raise errors.BadRequest(
            f"The order in patch list:\n{_go(items)}\n doesn't match {SET_ORDER_PREFIX} "
            f"list:\n{_go(order)}\n"
        )


def _order_equal(left: Any, right: Any, key: str) -> bool:
    if not key:
        return _same(left, right)
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise errors.BadRequest("invalid patch format of setElementOrder list")
    if key not in left:
        raise _no_merge_key(left, key)
    if key not in right:
        raise _no_merge_key(right, key)
    return _same(left[key], right[key])


# ---- ordering ------------------------------------------------------------------------------


def _partition(merged: list[Any], by: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into the items named in ``by`` and the server-only rest."""
    named: list[Any] = []
    rest: list[Any] = []
    for item in merged:
        if key:
            if not isinstance(item, dict) or key not in item:
                raise _no_merge_key(item if isinstance(item, dict) else {}, key)
            found = any(isinstance(b, dict) and _key_matches(b, key, item[key]) for b in by)
        else:
            found = any(_same(item, b) for b in by)
        (named if found else rest).append(item)
    return named, rest


def _index(items: list[Any], value: Any, key: str) -> int:
    probe = value.get(key) if key and isinstance(value, dict) else value
    for position, item in enumerate(items):
        candidate = item.get(key) if key and isinstance(item, dict) else item
        if _same(candidate, probe):
            return position
    return -1


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key: str,
) -> list[Any]:
    """Kubernetes' final order: patch items in the patch's order, server-only items in the
    original's, then interleaved by original position; a patch item the original does not
    have goes before the remaining server-only items."""
    patch_items = sorted(patch_items, key=lambda i: _index(patch_order, i, key))
    server_only = sorted(server_only, key=lambda i: _index(server_order, i, key))
    out: list[Any] = []
    si = pi = 0
    while si < len(server_only) or pi < len(patch_items):
        if si >= len(server_only):
            out.append(patch_items[pi])
            pi += 1
        elif pi >= len(patch_items):
            out.append(server_only[si])
            si += 1
        else:
            left = _index(server_order, server_only[si], key)
            right = _index(server_order, patch_items[pi], key)
            if left >= 0 and right >= 0 and left < right:
                out.append(server_only[si])
                si += 1
            else:
                out.append(patch_items[pi])
                pi += 1
    return out


# ---- values taken from the patch as they are -----------------------------------------------


class _Drop:
    """A patch value that vanishes entirely (a ``$patch: delete`` map with nothing to delete)."""


_DROP = _Drop()


def _materialize(value: Any, schema: SchemaNode) -> Any:
    """A patch value placed where the original has nothing to merge with: nulls and
    directives resolved, never left in the result."""
    if isinstance(value, dict):
        if value.get(DIRECTIVE) == DELETE:
            return _DROP
        return _materialize_map(value, schema)
    if isinstance(value, list):
        return _materialize_list(value, schema)
    return copy.deepcopy(value)


def _materialize_map(value: dict[str, Any], schema: SchemaNode) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if sub is None or key in (DIRECTIVE, RETAIN_KEYS):
            continue
        if key.startswith((SET_ORDER_PREFIX, DELETE_PRIMITIVE_PREFIX)):
            continue
        _put(out, key, _materialize(sub, schema.field(key)))
    return out


def _materialize_list(items: list[Any], schema: SchemaNode) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and DIRECTIVE in item:
            continue
        value = _materialize(item, schema.item())
        if value is not _DROP:
            out.append(value)
    return out


# ---- helpers -------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _key_matches(item: Any, key: str, value: Any) -> bool:
    return isinstance(item, dict) and key in item and _same(item[key], value)


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(_same(item, seen) for seen in out):
            out.append(item)
    return out


def _no_merge_key(item: dict[str, Any], key: str) -> errors.BadRequest:
    return errors.BadRequest(f"map: {_go(item)} does not contain declared merge key: {key}")


def _go(value: Any) -> str:
    """A value roughly as Go's ``%v`` prints it in Kubernetes' messages."""
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
