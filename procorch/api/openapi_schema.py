"""OpenAPI v3 schemas of the served kinds, for ``kubectl explain`` and client-side apply.

Generated from the type models (:mod:`procorch.api.types`) and the same list and patch
markers strategic merge patch and server-side apply walk (:mod:`procorch.api.schema`), so a
patch kubectl computes from these schemas is the patch the server applies:
``x-kubernetes-patch-merge-key`` and ``x-kubernetes-patch-strategy`` (``merge``,
``retainKeys``), ``x-kubernetes-list-type`` and ``x-kubernetes-list-map-keys``,
``x-kubernetes-map-type: atomic``, ``x-kubernetes-int-or-string``. Each model is one
component (``io.procorch.<module>.<Model>``), referenced where it is used; each kind's root
carries ``x-kubernetes-group-version-kind``. A custom resource's root is its CRD's schema,
with ``apiVersion``, ``kind`` and ``metadata`` added as kube-apiserver adds them. Pure data.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from procorch.api.schema import Atomic, ListMap, ListSet, MergeByKey, RetainKeys, unwrap

Schema = dict[str, Any]
PREFIX = "#/components/schemas/"
FREE_FORM: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def component_name(model: type[BaseModel]) -> str:
    return f"io.procorch.{model.__module__.rsplit('.', 1)[-1]}.{model.__name__}"


class Components:
    """The ``components.schemas`` of one document, filled as models are referenced."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def ref(self, model: type[BaseModel]) -> Schema:
        name = component_name(model)
        if name not in self.schemas:
            self.schemas[name] = {}  # taken first: a model that refers to itself ends here
            self.schemas[name] = self._object(model)
        return {"$ref": PREFIX + name}

    def root(self, model: type[BaseModel], group: str, version: str, kind: str) -> None:
        """``model`` as the root of ``group/version, kind``."""
        self.ref(model)
        gvk = {"group": group, "version": version, "kind": kind}
        self.schemas[component_name(model)]["x-kubernetes-group-version-kind"] = [gvk]

    def custom_root(self, schema: Schema, meta: type[BaseModel], gvk: dict[str, str]) -> None:
        """A custom resource's root: its CRD's schema, with what every object has."""
        properties = {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": self.ref(meta),
            **{k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"},
        }
        name = f"{'.'.join(reversed(gvk['group'].split('.')))}.{gvk['version']}.{gvk['kind']}"
        self.schemas[name] = {
            **schema,
            "type": "object",
            "properties": properties,
            "x-kubernetes-group-version-kind": [gvk],
        }

    def _object(self, model: type[BaseModel]) -> Schema:
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for name, info in model.model_fields.items():
            json_name = info.alias or name
            properties[json_name] = self.field(info.annotation, tuple(info.metadata))
            if info.is_required():
                required.append(json_name)
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def field(self, tp: Any, meta: tuple[Any, ...]) -> Schema:
        tp, meta = unwrap(tp, meta)
        origin = typing.get_origin(tp)
        if origin is typing.Union or origin is types.UnionType:
            members = set(typing.get_args(tp))
            if members <= {int, str, float, type(None)}:  # IntOrString, Quantity
                return {"x-kubernetes-int-or-string": True}
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            return self.ref(models[0]) if len(models) == 1 else dict(FREE_FORM)
        if origin is list:
            (item,) = typing.get_args(tp) or (Any,)
            return self._list(self.field(item, ()), meta)
        if origin is dict:
            args = typing.get_args(tp)
            value = args[1] if len(args) == 2 else Any
            if value is Any:
                return dict(FREE_FORM)
            schema: Schema = {"type": "object", "additionalProperties": self.field(value, ())}
            if any(isinstance(m, Atomic) for m in meta):
                schema["x-kubernetes-map-type"] = "atomic"
            return schema
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            ref = self.ref(tp)
            if any(isinstance(m, RetainKeys) for m in meta):
                return {"allOf": [ref], "x-kubernetes-patch-strategy": "retainKeys"}
            if any(isinstance(m, Atomic) for m in meta):
                return {"allOf": [ref], "x-kubernetes-map-type": "atomic"}
            return ref
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer", "format": "int64"}
        if tp is float:
            return {"type": "number", "format": "double"}
        if tp is str or typing.get_origin(tp) is typing.Literal:
            return {"type": "string"}
        return dict(FREE_FORM)

    @staticmethod
    def _list(items: Schema, meta: tuple[Any, ...]) -> Schema:
        schema: Schema = {"type": "array", "items": items}
        for m in meta:
            if isinstance(m, ListMap):
                schema["x-kubernetes-list-type"] = "map"
                schema["x-kubernetes-list-map-keys"] = list(m.keys)
                schema["x-kubernetes-patch-merge-key"] = m.merge_key
                schema["x-kubernetes-patch-strategy"] = (
                    "merge,retainKeys" if m.retain_keys else "merge"
                )
            elif isinstance(m, ListSet):
                schema["x-kubernetes-list-type"] = "set"
                if m.merge:
                    schema["x-kubernetes-patch-strategy"] = "merge"
            elif isinstance(m, MergeByKey):
                schema["x-kubernetes-patch-merge-key"] = m.key
                schema["x-kubernetes-patch-strategy"] = "merge"
        if "x-kubernetes-list-type" not in schema and "x-kubernetes-patch-strategy" not in schema:
            schema["x-kubernetes-list-type"] = "atomic"
        return schema
