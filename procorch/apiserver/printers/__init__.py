"""Server-side ``Table`` conversion for ``kubectl get``.

kubectl 1.32 prints only the columns the server's ``meta.k8s.io/v1`` ``Table`` names: given a
plain list it falls back to NAME and AGE. This package renders each served kind the way
Kubernetes' own server-side printers do (column names, types, formats, ``priority: 1`` for
``-o wide`` columns, cell text), one module per group of kinds:

* :mod:`.pods` for Pod, :mod:`.core` for the other core kinds,
* :mod:`.workloads` for Deployment, ReplicaSet, Job, CronJob and HPA,
* :mod:`.cluster` for Ingress, IngressClass, EndpointSlice, Lease and RBAC bindings.

A kind without a printer (Role, ClusterRole, anything new) gets Kubernetes' default table:
NAME and CREATED AT. Pure functions of the objects and ``now``; safe to call from any task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.apiserver.printers import cluster, core, custom, pods, workloads
from procorch.apiserver.printers._base import (
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

__all__ = ["column_definitions", "human_duration", "printer_for", "to_table"]

TABLE_API_VERSION: Final = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES: Final = ("None", "Metadata", "Object")


def _default_cells(obj: Obj, now: datetime) -> list[Cell]:
    # Kubernetes' default table prints the creation time itself, not an age.
    return [name_of(obj), rfc3339(dig(obj, "metadata", "creationTimestamp"))]


_DEFAULT = Printer(
    (NAME, Column("Created At", type="date", description="When the object was created.")),
    _default_cells,
)

_PRINTERS: Final[dict[str, Printer]] = {
    **pods.PRINTERS,
    **core.PRINTERS,
    **workloads.PRINTERS,
    **cluster.PRINTERS,
}


def printer_for(rt: ResourceType) -> Printer:
    return _PRINTERS.get(rt.key, _DEFAULT)


def register_custom(rt: ResourceType, columns: list[dict[str, Any]]) -> None:
    """Print the custom resource ``rt`` with its CRD's ``additionalPrinterColumns``."""
    _PRINTERS[rt.key] = custom.printer(columns)


def unregister_custom(rt: ResourceType) -> None:
    _PRINTERS.pop(rt.key, None)


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` of ``rt``'s table (also sent on the first watch event)."""
    return [c.to_dict() for c in printer_for(rt).columns]


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
    list_meta: Mapping[str, Any] | None,
    include_object: str = "Metadata",
    now: datetime,
) -> dict[str, Any]:
    """Render ``objects`` (all of kind ``rt``) as a ``meta.k8s.io/v1`` ``Table``.

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
    printer = printer_for(rt)
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
