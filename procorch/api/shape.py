"""Shape checking of incoming objects against the type models, with ``fieldValidation``.

Kubernetes decodes request bodies into Go structs: a wrong type fails, and an unknown field is
dropped (``Ignore``), dropped with a warning (``Warn``, the default) or refused
(``Strict``: 400 ``strict decoding error: unknown field "spec.containerz"``). procorch gets the
same from the pydantic models: their ``extra_forbidden`` errors are the unknown fields, every
other error is a type problem reported as a 422 cause with its field path.

Pure data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from procorch.api import errors
from procorch.api.errors import Cause
from procorch.api.registry import definition, model_for
from procorch.api.schema import SchemaNode, node_for

FieldValidation = Literal["Strict", "Warn", "Ignore"]

_TYPE_WORDS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}


def field_path(loc: tuple[int | str, ...], schema: SchemaNode | None = None) -> str:
    """``('spec', 'containers', 0, 'image')`` -> ``spec.containers[0].image``; with the
    schema, map keys render as Kubernetes renders them: ``data[key]``."""
    out = ""
    node = schema
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node.item() if node is not None else None
        elif node is not None and node.kind == "map":
            out += f"[{part}]"
            node = node.field(part)
        else:
            out = f"{out}.{part}" if out else str(part)
            node = node.field(part) if node is not None else None
    return out


def _clean_loc(loc: tuple[int | str, ...], obj: Any) -> tuple[int | str, ...]:
    """``loc`` without the parts pydantic adds for unions (the member type's name: 'int',
    'str', 'function-after[...]'), told apart from the object's own keys by walking the
    object: an unknown field may well be called ``str`` or ``x[``."""
    out: list[int | str] = []
    target: Any = obj
    for part in loc:
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and isinstance(part, int) and 0 <= part < len(target):
            target = target[part]
        elif isinstance(part, str) and _is_union_tag(part):
            continue
        else:
            target = None
        out.append(part)
    return tuple(out)


def _is_union_tag(part: str) -> bool:
    return (
        part in {"int", "str", "float", "bool", "none"}
        or "[" in part
        or part.startswith("function-")
    )


def _delete_path(obj: Any, loc: tuple[int | str, ...]) -> None:
    if not loc:
        return
    target = obj
    for part in loc[:-1]:
        try:
            target = target[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(target, dict):
        target.pop(loc[-1], None)


def check_shape(
    api_version: str,
    kind: str,
    obj: dict[str, Any],
    *,
    field_validation: FieldValidation = "Warn",
    warnings: errors.Warnings | None = None,
) -> None:
    """Check ``obj`` against its model; drop unknown fields unless ``Strict``.

    Raises :class:`~procorch.api.errors.BadRequest` for unknown fields under ``Strict`` and
    :class:`~procorch.api.errors.Invalid` for type errors. Mutates ``obj`` (pruning).
    """
    model = model_for(api_version, kind)
    if model is None:
        # A custom resource: drop what its schema does not specify, say where.
        found = definition(api_version, kind)
        if found is not None and found.prune is not None:
            _pruned(kind, api_version, obj, found.prune(obj), field_validation, warnings)
        return
    try:
        model.model_validate(obj)
        return
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
    schema = node_for(model)
    unknown: list[tuple[int | str, ...]] = []
    causes: list[Cause] = []
    seen: set[str] = set()
    for problem in problems:
        loc = _clean_loc(tuple(problem["loc"]), obj)
        path = field_path(loc, schema)
        if problem["type"] == "extra_forbidden":
            unknown.append(loc)
            continue
        if path in seen:
            continue  # a union reports each member's failure; one cause per field is enough
        seen.add(path)
        if problem["type"] == "missing":
            causes.append(errors.required(path))
            continue
        detail = _TYPE_WORDS.get(problem["type"], problem["msg"])
        causes.append(errors.type_invalid(path, problem.get("input"), detail))
    if unknown and field_validation == "Strict":
        listed = ", ".join(f'unknown field "{field_path(loc, schema)}"' for loc in unknown)
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.BadRequest(
            f'{kind} in version "{api_version.rpartition("/")[2]}" cannot be handled as a '
            f"{kind}: strict decoding error: {listed}",
            details={"name": name, "kind": kind} if name else {"kind": kind},
        )
    for loc in sorted(unknown, key=len, reverse=True):
        if field_validation == "Warn" and warnings is not None:
            warnings.add(f'unknown field "{field_path(loc, schema)}"')
        _delete_path(obj, loc)
    if causes:
        raise errors.Invalid(
            kind=kind,
            name=str((obj.get("metadata") or {}).get("name") or ""),
            causes=causes,
            group=api_version.rpartition("/")[0],
        )


def _pruned(
    kind: str,
    api_version: str,
    obj: dict[str, Any],
    dropped: list[str],
    field_validation: FieldValidation,
    warnings: errors.Warnings | None,
) -> None:
    """What pruning a custom resource dropped: refused under ``Strict``, else warned about."""
    if not dropped:
        return
    if field_validation == "Strict":
        listed = ", ".join(f'unknown field "{path}"' for path in dropped)
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.BadRequest(
            f'{kind} in version "{api_version.rpartition("/")[2]}" cannot be handled as a '
            f"{kind}: strict decoding error: {listed}",
            details={"name": name, "kind": kind} if name else {"kind": kind},
        )
    if field_validation == "Warn" and warnings is not None:
        for path in dropped:
            warnings.add(f'unknown field "{path}"')
