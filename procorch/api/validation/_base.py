"""Building blocks of the validators: field paths, extra cause constructors, tolerant readers.

Paths are plain strings in Kubernetes' format (``spec.containers[0].ports[1].name``, map keys
as ``data[key]``). The readers never raise on a value of the wrong type: the shape models
report types, these validators only report semantics, so a wrong type reads as "absent".
Pure data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from procorch.api.errors import Cause, _quote, invalid

Causes = list[Cause]


def child(path: str, *names: str) -> str:
    for name in names:
        path = f"{path}.{name}" if path else name
    return path


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


# Constructors for the field.Error types errors.py does not cover.


def not_found(path: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", f"Not found: {_quote(value)}", path)


def too_many(path: str, actual: int, limit: int) -> Cause:
    return Cause("FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items", path)


def invalid_shown(path: str, shown: str, detail: str) -> Cause:
    """An Invalid cause whose value is printed as given, unquoted (Go prints values with a
    ``String()`` method, such as quantities, that way)."""
    return Cause("FieldValueInvalid", f"Invalid value: {shown}: {detail}", path)


def invalid_omitted(path: str, detail: str) -> Cause:
    """An Invalid cause without a value (Go's ``field.OmitValueType``)."""
    return Cause("FieldValueInvalid", f"Invalid value: {detail}", path)


# Tolerant readers.


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int | None:
    """An integer, or None when absent or not an integer (booleans are not integers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def str_map(value: Any) -> dict[str, str]:
    """A map of strings; non-string values read as empty strings."""
    return {str(k): (v if isinstance(v, str) else "") for k, v in as_dict(value).items()}


def items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) over a list of objects; non-object items read as empty objects."""
    for i, item in enumerate(as_list(value)):
        yield i, as_dict(item)


def present(obj: dict[str, Any], name: str) -> bool:
    """Whether a field is set (Go's non-nil pointer): present and not null."""
    return obj.get(name) is not None


def nonnegative(path: str, value: Any) -> Causes:
    number = as_int(value)
    if number is not None and number < 0:
        return [invalid(path, number, "must be greater than or equal to 0")]
    return []


IMMUTABLE = "field is immutable"


def immutable(path: str, new: Any, old: Any) -> Causes:
    return [] if new == old else [invalid(path, new, IMMUTABLE)]
