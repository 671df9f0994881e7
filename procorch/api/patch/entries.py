"""Field-manager bookkeeping: manager identities, ``managedFields`` entries, conflict errors.

An object's ``metadata.managedFields`` decode into :data:`Managers`, a map from a manager's
identity to the fields it owns, and encode back in Kubernetes' order (``Apply`` entries first,
then by time, manager, apiVersion, subresource). Conflicts render as the exact ``Status`` the
Kubernetes API server sends. Pure data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from procorch.api import errors
from procorch.api.patch.fieldpath import (
    FieldsError,
    FieldSet,
    Path,
    from_fields_v1,
    path_sort_key,
    path_string,
    to_fields_v1,
)

# (manager, operation, apiVersion, subresource). Appliers are one manager whatever version they
# apply with, so their identity carries no apiVersion, as in Kubernetes.
ManagerId = tuple[str, str, str, str]


@dataclass(frozen=True)
class Entry:
    fields: FieldSet
    api_version: str
    applied: bool
    time: str | None


Managers = dict[ManagerId, Entry]


def identity_json(ident: ManagerId) -> str:
    name, operation, api_version, subresource = ident
    doc: dict[str, str] = {}
    if name:
        doc["manager"] = name
    doc["operation"] = operation
    if api_version:
        doc["apiVersion"] = api_version
    if subresource:
        doc["subresource"] = subresource
    return json.dumps(doc, separators=(",", ":"))


def print_manager(ident: ManagerId) -> str:
    name, operation, api_version, subresource = ident
    text = json.dumps(name, ensure_ascii=False)
    if subresource:
        text += f" with subresource {json.dumps(subresource, ensure_ascii=False)}"
    if operation == "Update":
        text += f" using {api_version}"
    return text


def conflict_error(items: list[tuple[ManagerId, Path]]) -> errors.Conflict:
    ordered = sorted(items, key=lambda c: (identity_json(c[0]), path_sort_key(c[1])))
    causes = [
        errors.Cause("FieldManagerConflict", f"conflict with {print_manager(m)}", path_string(p))
        for m, p in ordered
    ]
    if len(ordered) == 1:
        manager, path = ordered[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {print_manager(manager)}: "
            f"{path_string(path)}"
        )
    else:
        lines: list[str] = []
        current: ManagerId | None = None
        for manager, path in ordered:
            if manager != current:
                lines.append(f"conflicts with {print_manager(manager)}:")
                current = manager
            lines.append(f"- {path_string(path)}")
        message = f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, details={"causes": [c.to_dict() for c in causes]})


def is_reset(entries: Any) -> bool:
    if not isinstance(entries, list):
        return False
    return len(entries) == 0 or (len(entries) == 1 and entries[0] in ({}, None))


def starting_managers(old_entries: Any, new_entries: Any, subresource: str) -> Managers:
    """The ownership a write starts from: the request's, unless absent, broken or ignored."""
    if not subresource:
        if is_reset(new_entries):
            return {}
        try:
            managers = decode(new_entries)
        except (FieldsError, TypeError, ValueError):
            managers = {}
        if managers:
            return managers
    try:
        return decode(old_entries)
    except (FieldsError, TypeError, ValueError):
        return {}


def decode(entries: Any) -> Managers:
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise TypeError("managedFields must be a list")
    managers: Managers = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TypeError(f"managed fields entry {index} is not an object")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion")
        if not api_version or not isinstance(api_version, str):
            raise ValueError("apiVersion must not be empty")
        if entry.get("fieldsType") != "FieldsV1":
            raise ValueError(f"invalid fieldsType in managed fields entry {index}")
        ident: ManagerId = (
            str(entry.get("manager") or ""),
            operation,
            "" if operation == "Apply" else api_version,
            str(entry.get("subresource") or ""),
        )
        time = entry.get("time")
        managers[ident] = Entry(
            from_fields_v1(entry.get("fieldsV1")),
            api_version,
            operation == "Apply",
            time if isinstance(time, str) else None,
        )
    return managers


def encode(managers: Managers) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for (name, _, _, subresource), entry in managers.items():
        doc: dict[str, Any] = {}
        if name:
            doc["manager"] = name
        doc["operation"] = "Apply" if entry.applied else "Update"
        doc["apiVersion"] = entry.api_version
        if entry.time:
            doc["time"] = entry.time
        doc["fieldsType"] = "FieldsV1"
        doc["fieldsV1"] = to_fields_v1(entry.fields)
        if subresource:
            doc["subresource"] = subresource
        entries.append(doc)
    entries.sort(
        key=lambda d: (
            d["operation"],
            seconds(d.get("time")),
            d.get("manager", ""),
            d["apiVersion"],
            d.get("subresource", ""),
        )
    )
    return entries


def seconds(time: str | None) -> int:
    if not time:
        return 0
    try:
        return int(datetime.fromisoformat(time).timestamp())
    except ValueError:
        return 0
