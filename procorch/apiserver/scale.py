"""The ``scale`` subresource: an ``autoscaling/v1`` Scale view of Deployments, ReplicaSets and
custom resources (at the paths their CRD names)."""

from __future__ import annotations

from typing import Any

import orjson

from procorch.api import errors
from procorch.api.meta import deep_copy
from procorch.api.resources import ResourceType
from procorch.api.schema import SchemaNode, node_for
from procorch.api.selectors import format_label_selector
from procorch.api.types.autoscaling import Scale
from procorch.store.base import Stored

SCALE_SCHEMA: SchemaNode = node_for(Scale)


def _path(path: str) -> list[str]:
    return [part for part in path.split(".") if part]


def _read(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in _path(path):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def to_scale(rt: ResourceType, stored: Stored) -> Stored:
    obj = stored.object
    meta = obj.get("metadata") or {}
    if rt.custom:
        spec_path, status_path, selector_path = rt.scale_paths
        replicas = _read(obj, spec_path) or 0
        current = _read(obj, status_path)
        found = _read(obj, selector_path) if selector_path else ""
        selector = found if isinstance(found, str) else ""
    else:
        spec = obj.get("spec") or {}
        replicas = spec.get("replicas") if spec.get("replicas") is not None else 1
        current = (obj.get("status") or {}).get("replicas")
        selector = format_label_selector(spec.get("selector"))
    scale_meta = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if k in meta
    }
    body: dict[str, Any] = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(replicas)},
        "status": {"replicas": int(current or 0), "selector": selector},
    }
    return Stored(object=body, raw=orjson.dumps(body), revision=stored.revision)


def replicas_of(scale_body: dict[str, Any]) -> int:
    replicas = (scale_body.get("spec") or {}).get("replicas")
    if replicas is None:
        replicas = 0
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.Invalid(
            kind="Scale",
            group="autoscaling",
            name=str((scale_body.get("metadata") or {}).get("name") or ""),
            causes=[errors.type_invalid("spec.replicas", replicas, "must be an integer")],
        )
    if replicas < 0:
        raise errors.Invalid(
            kind="Scale",
            group="autoscaling",
            name=str((scale_body.get("metadata") or {}).get("name") or ""),
            causes=[
                errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
            ],
        )
    return replicas


def with_replicas(
    obj: dict[str, Any], replicas: int, path: str = ".spec.replicas"
) -> dict[str, Any]:
    new = deep_copy(obj)
    *parents, last = _path(path)
    target = new
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = replicas
    return new
