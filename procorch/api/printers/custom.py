"""Tables of custom resources: NAME, then the CRD's ``additionalPrinterColumns`` (or AGE when
it names none), each cell read with its JSONPath and printed as kube-apiserver prints its type.

The JSONPath subset CRDs use: ``.a.b``, ``.a[0]``, ``.a[*].b`` and the filter
``.a[?(@.type=="Ready")].status``; several matches print comma-separated.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from procorch.api.printers._base import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    Printer,
    age,
    dig,
    name_of,
)

_STEP = re.compile(r"""\.([^.\[]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.-]+)\s*==\s*["']([^"']*)["']\)\]""")


def evaluate(obj: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches in ``obj``."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    current = [obj]
    at = 0
    while at < len(path):
        step = _STEP.match(path, at)
        if step is None:
            return []
        at = step.end()
        field, index, key, wanted = step.groups()
        following: list[Any] = []
        for value in current:
            if field is not None and isinstance(value, dict) and field in value:
                following.append(value[field])
            elif index == "*" and isinstance(value, list):
                following.extend(value)
            elif index is not None and index != "*" and isinstance(value, list):
                if int(index) < len(value):
                    following.append(value[int(index)])
            elif key is not None and isinstance(value, list):
                following.extend(
                    item
                    for item in value
                    if isinstance(item, dict) and str(item.get(key)) == wanted
                )
        current = following
    return current


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def printer(columns: list[dict[str, Any]]) -> Printer:
    """The table of a custom resource with these ``additionalPrinterColumns``."""
    if not columns:
        return Printer(
            (NAME, AGE),
            lambda obj, now: [name_of(obj), age(dig(obj, "metadata", "creationTimestamp"), now)],
        )
    defined = tuple(
        Column(
            str(c.get("name") or ""),
            type=str(c.get("type") or "string"),
            format=str(c.get("format") or ""),
            priority=int(c.get("priority") or 0),
            description=str(c.get("description") or ""),
        )
        for c in columns
    )

    def cells(obj: Obj, now: datetime) -> list[Cell]:
        row: list[Cell] = [name_of(obj)]
        for column in columns:
            found = evaluate(obj, str(column.get("jsonPath") or ""))
            kind = column.get("type")
            if not found:
                row.append("<none>")
            elif kind == "date":
                row.append(age(found[0], now))
            elif kind == "integer" and len(found) == 1 and isinstance(found[0], int):
                row.append(found[0])
            elif kind == "boolean" and len(found) == 1:
                row.append(bool(found[0]))
            else:
                row.append(",".join(_text(v) for v in found))
        return row

    return Printer((NAME, *defined), cells)
