"""Structural schemas: what a CustomResourceDefinition's ``openAPIV3Schema`` means for objects.

Three operations, as kube-apiserver applies them to a custom resource:

* :func:`prune` drops fields the schema does not specify (unless
  ``x-kubernetes-preserve-unknown-fields``), returning their paths, as decoding does;
* :func:`default` fills in ``default`` values where a field is absent (or null and not
  ``nullable``);
* :func:`validate` reports every value the schema refuses, with its field path and
  Kubernetes' words (``spec.replicas in body must be of type integer: "string"``), and every
  ``x-kubernetes-validations`` rule that does not hold: CEL expressions over ``self`` (and on
  an update ``oldSelf``, the value before), evaluated with cel-python.

:func:`structural_errors` says why a schema is not structural (a CRD with such a schema is
refused). Schemas are plain JSON (dicts); everything here is a pure function.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from typing import Any

import celpy

from procorch.api.errors import (
    Cause,
    duplicate,
    invalid,
    not_supported,
    required,
    too_long,
    type_invalid,
)

Schema = dict[str, Any]
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
RULES = "x-kubernetes-validations"
_META_FIELDS = ("apiVersion", "kind", "metadata")
MISSING: Any = object()
"""No old value (a create, or a field the update adds)."""
_PROGRAMS: dict[str, Any] = {}


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# -- pruning -----------------------------------------------------------------------------------


def prune(obj: Any, schema: Schema, *, root: bool = True) -> list[str]:
    """Drop from ``obj`` (in place) what ``schema`` does not specify; the paths dropped."""
    dropped: list[str] = []
    _prune(obj, schema, "", dropped, root=root)
    return dropped


def _prune(value: Any, schema: Schema, path: str, dropped: list[str], *, root: bool) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_meta = root or schema.get(EMBEDDED)
        for name in list(value):
            if keep_meta and name in _META_FIELDS:
                continue
            sub = properties.get(name)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if schema.get(PRESERVE) or extra is True:
                    continue
                del value[name]
                dropped.append(_child(path, name))
                continue
            _prune(value[name], sub, _child(path, name), dropped, root=False)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", dropped, root=False)


# -- defaulting --------------------------------------------------------------------------------


def default(obj: Any, schema: Schema) -> None:
    """Fill in ``schema``'s defaults in ``obj`` (in place)."""
    if isinstance(obj, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if not isinstance(sub, dict):
                continue
            if "default" in sub and (
                name not in obj or (obj[name] is None and not sub.get("nullable"))
            ):
                obj[name] = copy.deepcopy(sub["default"])
            elif name in obj and obj[name] is None and not sub.get("nullable"):
                del obj[name]  # a null where none may be, and no default: dropped, as Kubernetes
            if name in obj:
                default(obj[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in obj.items():
                if name not in properties:
                    default(item, extra)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                default(item, items)


# -- validation --------------------------------------------------------------------------------


def validate(value: Any, schema: Schema, path: str = "", *, old: Any = MISSING) -> list[Cause]:
    """Every way ``value`` breaks ``schema``; paths rooted at ``path``. ``old`` is the value
    an update replaces (for transition rules, which see it as ``oldSelf``)."""
    causes: list[Cause] = []
    _validate(value, schema, path, causes)
    if not any(c.reason == "FieldValueTypeInvalid" for c in causes):
        _check_rules(value, schema, path, old, causes)
    elif _has_rules(schema):
        # As kube-apiserver: rules are not run over values of the wrong type.
        causes.append(
            invalid(
                path,
                None,
                "some validation rules were not checked because the object was invalid; "
                "correct the existing errors to complete validation",
            )
        )
    return causes


def _type_ok(value: Any, schema: Schema) -> str | None:
    """None if ``value`` has the schema's type, else the expected type's name."""
    if value is None:
        return None if schema.get("nullable") else schema.get("type") or None
    if schema.get(INT_OR_STRING):
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        return None if ok else "integer or string"
    expected = schema.get("type")
    if not expected:
        return None
    actual = _json_type(value)
    if actual == expected or (expected == "number" and actual == "integer"):
        return None
    return str(expected)


def _validate(value: Any, schema: Schema, path: str, causes: list[Cause]) -> None:
    where = path or "<root>"
    wrong = _type_ok(value, schema)
    if wrong is not None:
        causes.append(
            type_invalid(
                path,
                _json_type(value),
                f'{where} in body must be of type {wrong}: "{_json_type(value)}"',
            )
        )
        return
    if value is None:
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        causes.append(not_supported(path, value, [str(e) for e in enum]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _numbers(value, schema, path, where, causes)
    elif isinstance(value, str):
        _strings(value, schema, path, where, causes)
    elif isinstance(value, list):
        _arrays(value, schema, path, where, causes)
    elif isinstance(value, dict):
        _objects(value, schema, path, where, causes)
    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict):
            _validate(value, sub, path, causes)
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key) or [] if isinstance(s, dict)]
        if options:
            passing = sum(1 for s in options if not validate(value, s, path))
            if passing == 0 or (key == "oneOf" and passing > 1):
                causes.append(invalid(path, value, f"{where} in body must validate {_words(key)}"))
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate(value, negated, path):
        causes.append(invalid(path, value, f"{where} in body must not validate the schema"))


def _words(key: str) -> str:
    return "one and only one schema (oneOf)" if key == "oneOf" else "at least one schema (anyOf)"


def _numbers(value: float, schema: Schema, path: str, where: str, causes: list[Cause]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        if schema.get("exclusiveMinimum") and not value > low:
            causes.append(invalid(path, value, f"{where} in body should be greater than {low}"))
        elif value < low:
            causes.append(
                invalid(path, value, f"{where} in body should be greater than or equal to {low}")
            )
    if high is not None:
        if schema.get("exclusiveMaximum") and not value < high:
            causes.append(invalid(path, value, f"{where} in body should be less than {high}"))
        elif value > high:
            causes.append(
                invalid(path, value, f"{where} in body should be less than or equal to {high}")
            )
    step = schema.get("multipleOf")
    if step and not math.isclose(value / step, round(value / step)):
        causes.append(invalid(path, value, f"{where} in body should be a multiple of {step}"))
    fmt = schema.get("format")
    if isinstance(value, int) and fmt in ("int32", "int64"):
        bits = 31 if fmt == "int32" else 63
        if not -(2**bits) <= value < 2**bits:
            causes.append(invalid(path, value, f"{where} in body must be of type {fmt}"))


def _strings(value: str, schema: Schema, path: str, where: str, causes: list[Cause]) -> None:
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    if longest is not None and len(value) > longest:
        causes.append(too_long(path, value, int(longest)))
    if shortest is not None and len(value) < shortest:
        causes.append(
            invalid(path, value, f"{where} in body should be at least {shortest} chars long")
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True  # the CRD's validation refuses bad patterns
        if not matched:
            causes.append(invalid(path, value, f"{where} in body should match '{pattern}'"))


def _counts(size: int, schema: Schema, path: str, where: str, causes: list[Cause]) -> None:
    """``minItems``/``maxItems`` of an array, ``minProperties``/``maxProperties`` of an object."""
    noun, fewest_key, most_key = (
        ("properties", "minProperties", "maxProperties")
        if schema.get("type") == "object"
        else ("items", "minItems", "maxItems")
    )
    fewest, most = schema.get(fewest_key), schema.get(most_key)
    if fewest is not None and size < fewest:
        causes.append(invalid(path, size, f"{where} in body should have at least {fewest} {noun}"))
    if most is not None and size > most:
        message = f"Too many: {size}: must have at most {most} items"
        causes.append(Cause("FieldValueTooMany", message, path))


def _arrays(value: list[Any], schema: Schema, path: str, where: str, causes: list[Cause]) -> None:
    _counts(len(value), schema, path, where, causes)
    items = schema.get("items")
    list_type = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys") or []
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", causes)
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                causes.append(duplicate(f"{path}[{i}]", item))
            seen.append(item)
    if list_type == "map":
        seen_keys: set[str] = set()
        for i, item in enumerate(value):
            if isinstance(item, dict):
                key = repr([item.get(k) for k in keys])
                if key in seen_keys:
                    causes.append(duplicate(f"{path}[{i}]", {k: item.get(k) for k in keys}))
                seen_keys.add(key)


def _objects(
    value: dict[str, Any], schema: Schema, path: str, where: str, causes: list[Cause]
) -> None:
    for name in schema.get("required") or []:
        if name not in value:
            causes.append(required(_child(path, name)))
    _counts(len(value), schema, path, where, causes)
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        sub = properties.get(name)
        if sub is None and isinstance(extra, dict):
            sub = extra
        if isinstance(sub, dict):
            _validate(item, sub, _child(path, name), causes)
    if schema.get(EMBEDDED):
        for name in ("apiVersion", "kind"):
            if not value.get(name):
                causes.append(required(_child(path, name), "must not be empty"))


def _has_rules(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get(RULES):
        return True
    children = [*(schema.get("properties") or {}).values()]
    children += [schema.get("items"), schema.get("additionalProperties")]
    return any(_has_rules(child) for child in children)


@functools.cache
def _environment() -> Any:
    """The CEL environment, built on first use (building its parser takes ~0.1 s)."""
    return celpy.Environment()


def _program(rule: str) -> Any:
    program = _PROGRAMS.get(rule)
    if program is None:
        cel = _environment()
        program = _PROGRAMS[rule] = cel.program(cel.compile(rule))
    return program


def _check_rules(value: Any, schema: Schema, path: str, old: Any, causes: list[Cause]) -> None:
    """Every ``x-kubernetes-validations`` rule in ``schema`` over the values it governs."""
    rules = schema.get(RULES)
    if isinstance(rules, list) and value is not None:
        _rules(value, old, rules, path, causes)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            sub = properties.get(name, extra if isinstance(extra, dict) else None)
            if isinstance(sub, dict):
                prior = old.get(name, MISSING) if isinstance(old, dict) else MISSING
                _check_rules(item, sub, _child(path, name), prior, causes)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        before: dict[str, Any] = {}
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            before = {repr([o.get(k) for k in keys]): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            prior = (
                before.get(repr([item.get(k) for k in keys]), MISSING)
                if isinstance(item, dict) and before
                else MISSING
            )
            _check_rules(item, schema["items"], f"{path}[{i}]", prior, causes)


def _rules(value: Any, old: Any, rules: list[Any], path: str, causes: list[Cause]) -> None:
    """Each ``x-kubernetes-validations`` rule over ``self`` (a transition rule, one that names
    ``oldSelf``, only on an update that had a value here)."""
    for rule in rules:
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            continue
        text = rule["rule"]
        transition = "oldSelf" in text
        if transition and old is MISSING:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            result = _program(text).evaluate(activation)
        except (celpy.CELParseError, celpy.CELEvalError, TypeError, ValueError) as exc:
            causes.append(invalid(path, _json_type(value), f"{text}: {exc}"))
            continue
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and result):
            message = rule.get("message") or f"failed rule: {text}"
            at = _child(path, str(rule["fieldPath"]).lstrip(".")) if rule.get("fieldPath") else path
            causes.append(invalid(at, _json_type(value), str(message)))


def rule_errors(schema: Any, path: str) -> list[Cause]:
    """Rules of ``schema`` (anywhere in it) that do not compile."""
    causes: list[Cause] = []
    if not isinstance(schema, dict):
        return causes
    for i, rule in enumerate(schema.get(RULES) or []):
        text = rule.get("rule") if isinstance(rule, dict) else None
        if not isinstance(text, str):
            causes.append(required(f"{path}.{RULES}[{i}].rule"))
            continue
        try:
            _program(text)
        except celpy.CELParseError as exc:
            causes.append(invalid(f"{path}.{RULES}[{i}].rule", text, f"compilation failed: {exc}"))
    for name, sub in (schema.get("properties") or {}).items():
        causes += rule_errors(sub, f"{path}.properties[{name}]")
    for key in ("items", "additionalProperties"):
        causes += rule_errors(schema.get(key), f"{path}.{key}")
    return causes


# -- the schema itself -------------------------------------------------------------------------

_TYPES = ("object", "array", "string", "integer", "number", "boolean")


def structural_errors(schema: Any, path: str) -> list[Cause]:
    """Why ``schema`` is not a structural schema (empty when it is): every specified field
    and array item needs a type (unless it preserves unknown fields or is int-or-string),
    types must be known, and the root is an object."""
    causes: list[Cause] = []
    if not isinstance(schema, dict):
        return [required(path)]
    if schema.get("type") != "object":
        causes.append(
            invalid(_child(path, "type"), schema.get("type"), "must be object at the root")
        )
    _structural(schema, path, causes)
    return causes


def _structural(schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    kind = schema.get("type")
    if kind is not None and kind not in _TYPES:
        causes.append(not_supported(_child(path, "type"), kind, list(_TYPES)))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            causes.append(
                invalid(_child(path, "pattern"), pattern, f"must be a valid regex: {exc}")
            )
    for name, sub in (schema.get("properties") or {}).items():
        at = f"{path}.properties[{name}]"
        if not isinstance(sub, dict):
            causes.append(invalid(at, sub, "must be a schema"))
            continue
        if not sub.get("type") and not (sub.get(PRESERVE) or sub.get(INT_OR_STRING)):
            causes.append(
                required(_child(at, "type"), "must not be empty for specified object fields")
            )
        _structural(sub, at, causes)
    items = schema.get("items")
    if isinstance(items, dict):
        at = _child(path, "items")
        if not items.get("type") and not (items.get(PRESERVE) or items.get(INT_OR_STRING)):
            causes.append(
                required(_child(at, "type"), "must not be empty for specified array items")
            )
        _structural(items, at, causes)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        if schema.get("properties"):
            causes.append(
                invalid(
                    _child(path, "additionalProperties"),
                    "",
                    "additionalProperties and properties are mutual exclusive",
                )
            )
        _structural(extra, _child(path, "additionalProperties"), causes)
