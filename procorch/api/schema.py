"""Schema navigation: walk the pydantic type models alongside a JSON object.

The models in :mod:`procorch.api.types` are the single source of truth for the shape of every
served kind. Besides validating, they carry the list and patch semantics that Kubernetes
declares with ``+listType``/``+listMapKey``/``+patchStrategy``/``+patchMergeKey`` markers.
Fields carry them as :class:`typing.Annotated` metadata::

    containers: Annotated[list[Container], ListMap("name")]
    ports: Annotated[list[ContainerPort] | None,
                     ListMap("containerPort", "protocol", merge_key="containerPort")] = None
    finalizers: Annotated[list[str] | None, ListSet()] = None
    strategy: Annotated[DeploymentStrategy | None, RetainKeys()] = None

Strategic merge patch and server-side apply only ever ask a :class:`SchemaNode` three things:
what is under this key, what is the item of this list, and how lists and structs here merge.
Pure data.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel

ListType = Literal["atomic", "set", "map"]


@dataclass(frozen=True)
class ListMap:
    """A list whose items are identified by key fields (``+listType=map``).

    ``merge_key`` is the strategic-merge-patch key (``+patchMergeKey``); it defaults to the
    first key. ``retain_keys`` marks ``+patchStrategy=merge,retainKeys`` (volumes).
    """

    keys: tuple[str, ...]
    merge_key: str
    retain_keys: bool = False

    def __init__(self, *keys: str, merge_key: str = "", retain_keys: bool = False) -> None:
        object.__setattr__(self, "keys", tuple(keys))
        object.__setattr__(self, "merge_key", merge_key or keys[0])
        object.__setattr__(self, "retain_keys", retain_keys)


@dataclass(frozen=True)
class ListSet:
    """A list of scalars treated as a set (``+listType=set``; strategic merge unions it)."""

    merge: bool = True


@dataclass(frozen=True)
class MergeByKey:
    """Strategic merge by ``key`` while server-side apply treats the list as atomic.

    Kubernetes has a few of these (``volumeMounts`` merges by ``mountPath`` in SMP but has
    no list-map keys).
    """

    key: str


@dataclass(frozen=True)
class RetainKeys:
    """A struct with ``+patchStrategy=retainKeys`` (e.g. a Deployment's ``strategy``)."""


@dataclass(frozen=True)
class Atomic:
    """A struct or map that is replaced whole, never merged (``+structType=atomic``)."""


NodeKind = Literal["object", "map", "list", "scalar", "any"]


@dataclass(frozen=True)
class SchemaNode:
    """One position in a type: an object (model), a map, a list, a scalar, or free-form."""

    kind: NodeKind
    model: type[BaseModel] | None = None
    element: SchemaNode | None = None  # map value or list item
    list_type: ListType = "atomic"
    list_keys: tuple[str, ...] = ()
    merge_key: str | None = None  # strategic merge patch key for lists of objects
    set_merge: bool = False  # strategic merge unions this list of scalars
    retain_keys: bool = False
    atomic: bool = False

    def field(self, name: str) -> SchemaNode:
        """The node under ``name`` of an object or map; ``ANY`` when unknown."""
        if self.kind == "map" and self.element is not None:
            return self.element
        if self.kind == "object" and self.model is not None:
            return _field_node(self.model, name)
        return ANY

    def item(self) -> SchemaNode:
        if self.kind == "list" and self.element is not None:
            return self.element
        return ANY

    @property
    def is_list_map(self) -> bool:
        return self.kind == "list" and self.list_type == "map"


ANY = SchemaNode(kind="any")
SCALAR = SchemaNode(kind="scalar")


def node_for(model: type[BaseModel]) -> SchemaNode:
    return SchemaNode(kind="object", model=model)


@cache
def _field_node(model: type[BaseModel], name: str) -> SchemaNode:
    info = model.model_fields.get(name)
    if info is None:
        return ANY
    return _node_from(info.annotation, tuple(info.metadata))


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
        # A union of several types (int | str, IntOrString): a scalar position.
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else Any
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(tp)[0])
    return tp


def unwrap(tp: Any, meta: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """Unwrap ``Annotated`` and ``Optional`` layers, gathering their metadata."""
    collected = list(meta)
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            args = typing.get_args(tp)
            collected.extend(args[1:])
            tp = args[0]
            continue
        if origin is typing.Union or origin is types.UnionType:
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, tuple(collected)


def _node_from(tp: Any, meta: tuple[Any, ...]) -> SchemaNode:
    tp, meta = unwrap(tp, meta)
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    atomic = any(isinstance(m, Atomic) for m in meta)
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        element = _node_from(item_tp, ())
        for m in meta:
            if isinstance(m, ListMap):
                return SchemaNode(
                    kind="list",
                    element=element,
                    list_type="map",
                    list_keys=m.keys,
                    merge_key=m.merge_key,
                    retain_keys=m.retain_keys,
                )
            if isinstance(m, ListSet):
                return SchemaNode(kind="list", element=element, list_type="set", set_merge=m.merge)
            if isinstance(m, MergeByKey):
                return SchemaNode(kind="list", element=element, merge_key=m.key)
        return SchemaNode(kind="list", element=element)
    if origin is dict:
        args = typing.get_args(tp)
        value_tp = args[1] if len(args) == 2 else Any
        return SchemaNode(kind="map", element=_node_from(value_tp, ()), atomic=atomic)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return SchemaNode(
            kind="object",
            model=tp,
            retain_keys=any(isinstance(m, RetainKeys) for m in meta),
            atomic=atomic,
        )
    if tp is Any:
        return ANY
    return SCALAR
