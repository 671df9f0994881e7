"""Server-side ``Table`` conversion for ``kubectl get``.

kubectl 1.32 prints only the columns the server's ``meta.k8s.io/v1`` ``Table`` names: given a
plain list it falls back to NAME and AGE. This package renders each served kind the way
Kubernetes' own server-side printers do (column names, types, formats, ``priority: 1`` for
``-o wide`` columns, cell text), one module per group of kinds:

* :mod:`.pods` for Pod, :mod:`.core` for the other core kinds,
* :mod:`.workloads` for Deployment, ReplicaSet, Job, CronJob and HPA,
* :mod:`.cluster` for Ingress, IngressClass, EndpointSlice, Lease and RBAC bindings.

Each kind's printer is part of its definition in :mod:`procorch.api.registry`; a kind
without one (Role, ClusterRole) gets Kubernetes' default table, :data:`DEFAULT`: NAME and
CREATED AT; a custom resource's comes from its CRD (:func:`.custom.printer`). Pure functions
of the objects and ``now``; safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from procorch.api import errors
from procorch.api.printers._base import (
    NAME,
    Cell,
    Column,
    Obj,
    Printer,
    dig,
    human_duration,
    name_of,
    rfc3339,
)
from procorch.api.resources import ResourceType

__all__ = ["DEFAULT", "Printer", "column_definitions", "human_duration", "to_table"]

TABLE_API_VERSION: Final = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES: Final = ("None", "Metadata", "Object")


def _default_cells(obj: Obj, now: datetime) -> list[Cell]:
    # Kubernetes' default table prints the creation time itself, not an age.
    return [name_of(obj), rfc3339(dig(obj, "metadata", "creationTimestamp"))]


DEFAULT = Printer(
    (NAME, Column("Created At", type="date", description="When the object was created.")),
    _default_cells,
)


def column_definitions(printer: Printer) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` of a table printed by ``printer``."""
    return [c.to_dict() for c in printer.columns]


def _row_object(rt: ResourceType, obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        if obj.get("kind") and obj.get("apiVersion"):
            return dict(obj)
        # Objects without type metadata still need it for the client to decode the row.
        return {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": dict(obj.get("metadata") or {}),
    }


def to_table(
    rt: ResourceType,
    objects: list[dict[str, Any]],
    *,
    printer: Printer,
    list_meta: Mapping[str, Any] | None,
    include_object: str = "Metadata",
    now: datetime,
) -> dict[str, Any]:
    """Render ``objects`` (all of kind ``rt``) as a ``meta.k8s.io/v1`` ``Table`` with the
    columns of ``printer`` (the kind's, :func:`procorch.api.registry.printer_for`).

    ``include_object`` is the ``includeObject`` query parameter: ``"Metadata"`` (the default)
    embeds a ``PartialObjectMetadata`` per row, which kubectl needs for NAMESPACE, ``-L`` and
    ``--show-labels``; ``"Object"`` embeds the whole object (``--sort-by``); ``"None"``
    embeds nothing. ``list_meta`` is the list's metadata (``resourceVersion``,
    ``continue``, ``remainingItemCount``); for a single GET pass ``None`` and the table
    carries the object's resourceVersion. Embedded objects share nested values with
    ``objects``: serialize the table, do not mutate it.
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise errors.BadRequest(
            f'unrecognized includeObject value: "{include_object}"; supported values: '
            + ", ".join(f'"{v}"' for v in INCLUDE_OBJECT_VALUES)
        )
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer.cells(obj, now)}
        conditions = printer.conditions(obj) if printer.conditions else []
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(rt, obj, include_object)
        rows.append(row)

    metadata: dict[str, Any] = {}
    if list_meta is not None:
        for key in ("resourceVersion", "continue", "remainingItemCount"):
            if list_meta.get(key) not in (None, ""):
                metadata[key] = list_meta[key]
    elif len(objects) == 1:
        rv = (objects[0].get("metadata") or {}).get("resourceVersion")
        if rv:
            metadata["resourceVersion"] = rv
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": [c.to_dict() for c in printer.columns],
        "rows": rows,
    }
