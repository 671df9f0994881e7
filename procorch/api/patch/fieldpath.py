"""Field paths and field sets, the vocabulary of server-side apply.

A *path* names one position in an object: a tuple of path elements, each one of

* ``("f", name)``: a field of a struct or a key of a map (``f:name`` in ``FieldsV1``);
* ``("k", ((key, value), ...))``: the item of a ``map``-type list with these key values
  (``k:{"name":"web"}``); values are kept as canonical JSON text so that they hash;
* ``("v", value)``: the item of a ``set``-type list with this (canonical JSON) value
  (``v:"finalizer"``);
* ``("i", index)``: a list index (only ever read from ``FieldsV1``; procorch never writes it).

A *field set* is a plain ``set`` of paths. Kubernetes stores sets as trees in which a node is a
member and/or holds children; a flat set of paths carries the same information: a path in the
set is a member, a longer path below it is a child. Set algebra is then Python's.

This module turns sets into ``FieldsV1`` JSON and back, and paths into the strings used in
apply conflicts (``.spec.containers[name="web"].image``). Pure data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]
FieldSet = set[Path]


class FieldsError(ValueError):
    """A ``FieldsV1`` document that cannot be decoded."""


def canonical(value: Any) -> str:
    """Canonical JSON text of a value: equal JSON values give equal text (``80`` == ``80.0``)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def field(name: str) -> PathElement:
    return ("f", name)


def key_element(fields: Iterable[tuple[str, Any]]) -> PathElement:
    """The element of a map-type list item whose key fields have these (raw JSON) values."""
    return ("k", tuple(sorted((name, canonical(value)) for name, value in fields)))


def value_element(value: Any) -> PathElement:
    return ("v", canonical(value))


def path_of(*names: str) -> Path:
    """A path made of field names only: ``path_of("metadata", "name")``."""
    return tuple(field(n) for n in names)


def sort_key(pe: PathElement) -> tuple[int, Any]:
    """Kubernetes' order of path elements: fields, then keys, then values, then indexes."""
    rank = {"f": 0, "k": 1, "v": 2, "i": 3}[pe[0]]
    return (rank, pe[1])


# ---- FieldsV1 -------------------------------------------------------------------------------


def _serialize_element(pe: PathElement) -> str:
    kind, payload = pe
    if kind == "f":
        return "f:" + payload
    if kind == "k":
        body = ",".join(json.dumps(name) + ":" + value for name, value in payload)
        return "k:{" + body + "}"
    if kind == "v":
        return "v:" + payload
    return f"i:{payload}"


def _deserialize_element(text: str) -> PathElement | None:
    """Parse one ``FieldsV1`` key; ``None`` for a prefix Kubernetes does not know (skipped)."""
    prefix, sep, rest = text.partition(":")
    if not sep:
        raise FieldsError(f"invalid path element {text!r}")
    if prefix == "f":
        return ("f", rest)
    if prefix == "k":
        try:
            keys = json.loads(rest)
        except ValueError as exc:
            raise FieldsError(f"invalid key in {text!r}: {exc}") from exc
        if not isinstance(keys, dict):
            raise FieldsError(f"invalid key in {text!r}: not an object")
        return key_element(keys.items())
    if prefix == "v":
        try:
            return value_element(json.loads(rest))
        except ValueError as exc:
            raise FieldsError(f"invalid value in {text!r}: {exc}") from exc
    if prefix == "i":
        try:
            return ("i", int(rest))
        except ValueError as exc:
            raise FieldsError(f"invalid index in {text!r}") from exc
    return None


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a field set as a ``FieldsV1`` object (keys in Kubernetes' order)."""
    tree: dict[PathElement, Any] = {}
    members: set[Path] = set()
    for path in paths:
        if not path:
            continue
        members.add(path)
        node = tree
        for pe in path:
            node = node.setdefault(pe, {})
    return _emit(tree, (), members)


def _emit(tree: dict[PathElement, Any], prefix: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pe in sorted(tree, key=sort_key):
        path = prefix + (pe,)
        children = tree[pe]
        if children:
            inner: dict[str, Any] = {".": {}} if path in members else {}
            inner.update(_emit(children, path, members))
            out[_serialize_element(pe)] = inner
        else:
            out[_serialize_element(pe)] = {}
    return out


def from_fields_v1(doc: Any) -> FieldSet:
    """Decode a ``FieldsV1`` object into a field set; :class:`FieldsError` when malformed."""
    if doc is None:
        return set()
    if not isinstance(doc, dict):
        raise FieldsError("fieldsV1 must be an object")
    out: FieldSet = set()
    _read(doc, (), out)
    return out


def _read(doc: dict[str, Any], prefix: Path, out: FieldSet) -> None:
    for key, sub in doc.items():
        if key == ".":
            continue
        pe = _deserialize_element(key)
        if pe is None:
            continue
        if not isinstance(sub, dict):
            raise FieldsError(f"value of {key!r} must be an object")
        path = prefix + (pe,)
        # A node with no children is a member; "." marks a node that is both.
        if not any(k != "." for k in sub) or "." in sub:
            out.add(path)
        _read(sub, path, out)


# ---- strings -------------------------------------------------------------------------------


def _value_string(text: str) -> str:
    """A value as Kubernetes prints it in a path: strings quoted, numbers and bools bare."""
    value = json.loads(text)
    return _render(value)


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_render(v)}" for k, v in value.items())
    return str(value)


def path_string(path: Path) -> str:
    """``.spec.containers[name="web"].image``, as in Kubernetes' apply conflict messages."""
    parts: list[str] = []
    for kind, payload in path:
        if kind == "f":
            parts.append("." + payload)
        elif kind == "k":
            parts.append("[" + ",".join(f"{n}={_value_string(v)}" for n, v in payload) + "]")
        elif kind == "v":
            parts.append(f"[={_value_string(payload)}]")
        else:
            parts.append(f"[{payload}]")
    return "".join(parts)


def path_sort_key(path: Path) -> tuple[tuple[int, Any], ...]:
    return tuple(sort_key(pe) for pe in path)


# ---- set algebra beyond Python's ------------------------------------------------------------


def recursive_difference(paths: FieldSet, exclude: Iterable[Path]) -> FieldSet:
    """``paths`` without every path in ``exclude`` and everything below them."""
    prefixes = set(exclude)
    if not prefixes:
        return set(paths)
    return {p for p in paths if not any(p[:n] in prefixes for n in range(1, len(p) + 1))}
