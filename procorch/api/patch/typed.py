"""Typed operations on objects for server-side apply: field sets, comparison, merge, removal.

Re-implements, over :class:`procorch.api.schema.SchemaNode`, the four operations Kubernetes'
structured-merge-diff performs on typed values:

* :func:`field_set`: every field a value sets (``ToFieldSet``), the ownership an applier claims;
* :func:`compare`: which fields were added, removed or modified between two objects;
* :func:`merge`: an applied configuration merged into a live object;
* :func:`remove_items`: an object without the given fields (used to prune).

List semantics come from the schema: ``map`` lists are keyed by their key fields, ``set`` lists
by value, other lists are atomic (owned and replaced whole). Structs and maps are granular
unless marked atomic. Positions the schema does not know (``kind="any"``) behave as Kubernetes'
"deduced" type: maps are granular, lists atomic.

One approximation, forced by Python having no zero-valued Go structs: a struct reached through
a declared field is never itself recorded as added or removed (Kubernetes records that only for
pointer structs), and neither is a required list or map field.

Pure data; inputs are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from procorch.api.patch.fieldpath import (
    FieldSet,
    Path,
    PathElement,
    canonical,
    key_element,
    path_string,
    recursive_difference,
    value_element,
)
from procorch.api.schema import ANY, SchemaNode

# Kubernetes' OpenAPI declares a default for this list-map key, so an item that omits it is
# the same item as one that spells the default out (container and service ports).
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


class ShapeError(ValueError):
    """A value that cannot be typed against its schema (e.g. a list-map item without keys)."""


class _Absent:
    """Marks a side of a comparison or merge that has no value at all (not even ``null``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


# ---- schema helpers ------------------------------------------------------------------------


def child(node: SchemaNode, name: str) -> tuple[SchemaNode, bool, bool]:
    """The node under ``name``, whether it is a declared struct field, and whether required."""
    if node.kind == "object" and node.model is not None:
        info = node.model.model_fields.get(name)
        if info is not None:
            return node.field(name), True, info.is_required()
        return ANY, False, False
    return node.field(name), False, False


def list_mode(node: SchemaNode) -> str:
    """``map``, ``set`` or ``atomic``: how server-side apply treats a list here."""
    if node.kind != "list":
        return "atomic"
    return node.list_type


def _atomic_container(node: SchemaNode) -> bool:
    return node.atomic and node.kind in ("map", "object")


def _key_default(node: SchemaNode, name: str) -> Any:
    item = node.item()
    if item.kind == "object" and item.model is not None:
        info = item.model.model_fields.get(name)
        if info is not None and info.default is not None and not info.is_required():
            return info.default
    return _KEY_DEFAULTS.get(name)


def item_element(node: SchemaNode, item: Any) -> PathElement:
    """The path element naming ``item`` in a granular list at ``node``."""
    if list_mode(node) == "map":
        if not isinstance(item, dict):
            raise ShapeError("associative list with keys may not have non-map elements")
        fields: list[tuple[str, Any]] = []
        for name in node.list_keys:
            if name in item:
                fields.append((name, item[name]))
            else:
                default = _key_default(node, name)
                if default is not None:
                    fields.append((name, default))
        if not fields:
            keys = "[" + " ".join(f'"{k}"' for k in node.list_keys) + "]"
            raise ShapeError(
                f"associative list with keys has an element that omits all key fields {keys} "
                "(and doesn't have default values for any key fields)"
            )
        return key_element(fields)
    if isinstance(item, (dict, list)) or item is None:
        raise ShapeError("associative list without keys has an element that's not a scalar")
    return value_element(item)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1``."""
    return canonical(a) == canonical(b)


# ---- field sets ----------------------------------------------------------------------------


def field_set(value: Any, node: SchemaNode, *, allow_duplicates: bool = True) -> FieldSet:
    """Every field ``value`` sets, as Kubernetes' ``ToFieldSet`` computes it.

    With ``allow_duplicates=False`` (an applied configuration), a list-map or set holding the
    same key twice is a :class:`ShapeError`, as Kubernetes refuses it.
    """
    out: FieldSet = set()
    _collect(value, node, (), out, allow_duplicates)
    return out


def _collect(value: Any, node: SchemaNode, path: Path, out: FieldSet, dups: bool) -> None:
    if isinstance(value, dict):
        if _atomic_container(node):
            if path:
                out.add(path)
            return
        for key, sub in value.items():
            sub_node, declared, _ = child(node, key)
            sub_path = path + (("f", key),)
            _collect(sub, sub_node, sub_path, out, dups)
            # Map entries and empty/null fields are owned themselves; a struct field with
            # content is owned only through what it contains.
            if sub is None or (isinstance(sub, dict) and not sub) or not declared:
                out.add(sub_path)
    elif isinstance(value, list):
        if list_mode(node) == "atomic":
            if path:
                out.add(path)
            return
        seen: set[PathElement] = set()
        for item in value:
            pe = item_element(node, item)
            if pe in seen and not dups:
                raise ShapeError(f"duplicate entries for key {path_string((pe,))}")
            seen.add(pe)
            item_path = path + (pe,)
            _collect(item, node.item(), item_path, out, dups)
            out.add(item_path)
    elif path:
        out.add(path)


def ensure_named_fields(paths: FieldSet, node: SchemaNode) -> FieldSet:
    """Add, as members, the declared struct fields that hold other paths of the set.

    Pruning removes whole struct fields this way and then adds back what someone still owns,
    exactly as Kubernetes' ``EnsureNamedFieldsAreMembers`` arranges.
    """
    out = set(paths)
    for path in paths:
        current = node
        for depth, pe in enumerate(path[:-1]):
            if pe[0] == "f":
                current, declared, _ = child(current, pe[1])
                if declared:
                    out.add(path[: depth + 1])
            else:
                current = current.item()
    return out


# ---- comparison ----------------------------------------------------------------------------


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)

    def exclude(self, prefixes: Iterable[Path]) -> Comparison:
        roots = list(prefixes)
        return Comparison(
            recursive_difference(self.added, roots),
            recursive_difference(self.removed, roots),
            recursive_difference(self.modified, roots),
        )


def compare(old: Any, new: Any, node: SchemaNode) -> Comparison:
    """The fields added, removed and modified going from ``old`` to ``new``."""
    result = Comparison()
    _compare(old, new, node, (), False, result)
    return result


def _is_map(value: Any) -> bool:
    return isinstance(value, dict) or value is ABSENT


def _is_list(value: Any) -> bool:
    return isinstance(value, list) or value is ABSENT


def _empty(value: Any) -> bool:
    return value is ABSENT or not value


def _compare(
    old: Any, new: Any, node: SchemaNode, path: Path, quiet: bool, acc: Comparison
) -> None:
    # ``quiet``: this position is a struct (or required) field that Kubernetes would always see
    # on both sides, so it is never itself recorded as added or removed.
    if old is ABSENT and new is ABSENT:
        return
    if (
        _is_map(old)
        and _is_map(new)
        and not _atomic_container(node)
        and not (_empty(old) and _empty(new))
    ):
        old_map: dict[str, Any] = old if isinstance(old, dict) else {}
        new_map: dict[str, Any] = new if isinstance(new, dict) else {}
        for key in list(old_map) + [k for k in new_map if k not in old_map]:
            sub_node, declared, required = child(node, key)
            _compare(
                old_map.get(key, ABSENT),
                new_map.get(key, ABSENT),
                sub_node,
                path + (("f", key),),
                declared and (sub_node.kind == "object" or required),
                acc,
            )
        _container_presence(old, new, path, quiet, acc)
        return
    if (
        _is_list(old)
        and _is_list(new)
        and list_mode(node) != "atomic"
        and not (_empty(old) and _empty(new))
    ):
        _compare_items(
            old if isinstance(old, list) else [],
            new if isinstance(new, list) else [],
            node,
            path,
            acc,
        )
        _container_presence(old, new, path, quiet, acc)
        return
    if not path:
        return
    if old is ABSENT:
        acc.added.add(path)
    elif new is ABSENT:
        acc.removed.add(path)
    elif not json_equal(old, new):
        acc.modified.add(path)


def _container_presence(old: Any, new: Any, path: Path, quiet: bool, acc: Comparison) -> None:
    if not path or quiet:
        return
    if old is ABSENT:
        acc.added.add(path)
    elif new is ABSENT:
        acc.removed.add(path)


def _compare_items(
    old: list[Any], new: list[Any], node: SchemaNode, path: Path, acc: Comparison
) -> None:
    old_items: dict[PathElement, list[Any]] = {}
    new_items: dict[PathElement, list[Any]] = {}
    order: list[PathElement] = []
    for item in old:
        pe = item_element(node, item)
        if pe not in old_items:
            order.append(pe)
        old_items.setdefault(pe, []).append(item)
    for item in new:
        pe = item_element(node, item)
        if pe not in old_items and pe not in new_items:
            order.append(pe)
        new_items.setdefault(pe, []).append(item)
    item_node = node.item()
    for pe in order:
        lefts = old_items.get(pe, [])
        rights = new_items.get(pe, [])
        item_path = path + (pe,)
        if len(lefts) <= 1 and len(rights) <= 1:
            _compare(
                lefts[0] if lefts else ABSENT,
                rights[0] if rights else ABSENT,
                item_node,
                item_path,
                False,
                acc,
            )
        elif len(lefts) >= 2 and len(rights) >= 2:
            if not json_equal(lefts, rights):
                acc.modified.add(item_path)
        elif len(lefts) >= 2:
            if rights:
                _compare(ABSENT, rights[0], item_node, item_path, False, acc)
            acc.removed.add(item_path)
        else:
            if lefts:
                _compare(lefts[0], ABSENT, item_node, item_path, False, acc)
            acc.added.add(item_path)


# ---- merge ---------------------------------------------------------------------------------


def merge(live: Any, config: Any, node: SchemaNode) -> Any:
    """``config`` merged into ``live`` by the schema's list semantics (a new value).

    Leaves and atomic values take the configuration's value; a ``null`` in the configuration
    removes the field (Kubernetes keeps the null, which decoding then drops).
    """
    result = _merge(live, config, node)
    return {} if result is ABSENT else result


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _merge(live: Any, config: Any, node: SchemaNode) -> Any:
    if config is ABSENT:
        return copy.deepcopy(live)
    if config is None:
        return ABSENT
    if live is ABSENT or live is None:
        return _prune_nulls(config)
    if isinstance(live, dict) and isinstance(config, dict) and not _atomic_container(node):
        if not live and not config:
            return {}
        out: dict[str, Any] = {}
        for key, value in live.items():
            merged = _merge(value, config.get(key, ABSENT), child(node, key)[0])
            if merged is not ABSENT:
                out[key] = merged
        for key, value in config.items():
            if key not in live and value is not None:
                out[key] = _prune_nulls(value)
        return out
    if (
        isinstance(live, list)
        and isinstance(config, list)
        and list_mode(node) != "atomic"
        and (live or config)
    ):
        return _merge_items(live, config, node)
    return _prune_nulls(config)


def _merge_items(live: list[Any], config: list[Any], node: SchemaNode) -> list[Any]:
    """Merge two granular lists keeping Kubernetes' order.

    Live items keep their places; items also in the configuration are emitted in the
    configuration's order, and new configuration items are placed where the configuration puts
    them relative to the shared ones.
    """
    item_node = node.item()
    live_pes = [item_element(node, item) for item in live]
    config_pes = [item_element(node, item) for item in config]
    live_by_pe: dict[PathElement, Any] = {}
    for pe, item in zip(live_pes, live):
        # A duplicated live key is not merged with the configuration's item.
        live_by_pe[pe] = ABSENT if pe in live_by_pe else item
    config_by_pe = dict(zip(config_pes, config))
    shared = [pe for pe in config_pes if pe in live_by_pe]
    shared.reverse()
    next_shared = shared.pop() if shared else None
    emitted: set[PathElement] = set()
    out: list[Any] = []
    li = ri = 0

    def emit(value: Any) -> None:
        if value is not ABSENT:
            out.append(value)

    while li < len(live_pes) or ri < len(config_pes):
        if li < len(live_pes) and ri < len(config_pes):
            pe = live_pes[li]
            if pe == config_pes[ri]:
                emitted.add(pe)
                emit(_merge(live_by_pe[pe], config_by_pe[pe], item_node))
                li += 1
                ri += 1
                next_shared = shared.pop() if shared else None
                continue
            if pe in config_by_pe and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(live_pes):
            pe = live_pes[li]
            if pe not in config_by_pe:
                emit(copy.deepcopy(live[li]))
                li += 1
                continue
            if pe in emitted:
                li += 1
        if ri < len(config_pes):
            pe = config_pes[ri]
            emitted.add(pe)
            emit(_merge(live_by_pe.get(pe, ABSENT), config_by_pe[pe], item_node))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop() if shared else None
    return out


# ---- removal -------------------------------------------------------------------------------


def remove_items(value: Any, paths: FieldSet, node: SchemaNode) -> Any:
    """``value`` without the fields named by ``paths`` (a member path removes its subtree)."""
    result = _remove(value, paths, node)
    return {} if result is ABSENT else result


def _split(paths: Iterable[Path]) -> tuple[set[PathElement], dict[PathElement, set[Path]]]:
    exact: set[PathElement] = set()
    below: dict[PathElement, set[Path]] = {}
    for path in paths:
        if len(path) == 1:
            exact.add(path[0])
        elif path:
            below.setdefault(path[0], set()).add(path[1:])
    return exact, below


def _remove(value: Any, paths: FieldSet, node: SchemaNode) -> Any:
    if not paths:
        return value
    if isinstance(value, dict) and value and not _atomic_container(node):
        exact, below = _split(paths)
        out: dict[str, Any] = {}
        for key, sub in value.items():
            pe: PathElement = ("f", key)
            if pe in exact:
                continue
            if pe in below:
                sub = _remove(sub, below[pe], child(node, key)[0])
                if sub is ABSENT:
                    continue
            out[key] = sub
        return out if out else ABSENT
    if isinstance(value, list) and value and list_mode(node) != "atomic":
        exact, below = _split(paths)
        items: list[Any] = []
        for item in value:
            pe = item_element(node, item)
            if pe in exact:
                continue
            if pe in below:
                item = _remove(item, below[pe], node.item())
                if item is ABSENT:
                    continue
            items.append(item)
        return items if items else ABSENT
    return value
