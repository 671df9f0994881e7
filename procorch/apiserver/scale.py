"""The ``scale`` subresource: an ``autoscaling/v1`` Scale view of Deployments and ReplicaSets."""

from __future__ import annotations

from typing import Any

import orjson

from procorch.api import errors
from procorch.api.meta import deep_copy
from procorch.api.resources import ResourceType
from procorch.api.schema import SchemaNode, node_for
from procorch.api.selectors import format_label_selector
from procorch.api.types import model_for
from procorch.store.base import Stored

_scale_model = model_for("autoscaling/v1", "Scale")
SCALE_SCHEMA: SchemaNode = (
    node_for(_scale_model) if _scale_model is not None else SchemaNode(kind="any")
)


def to_scale(rt: ResourceType, stored: Stored) -> Stored:
    obj = stored.object
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scale_meta = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if k in meta
    }
    body: dict[str, Any] = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {
            "replicas": int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        },
        "status": {
            "replicas": int(status.get("replicas") or 0),
            "selector": format_label_selector(spec.get("selector")),
        },
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


def with_replicas(obj: dict[str, Any], replicas: int) -> dict[str, Any]:
    new = deep_copy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    return new
