"""Structural schemas, fuzzed (bounded): random schemas and random JSON never make pruning,
defaulting or validation raise; what pruning keeps is only what the schema names; defaulting
is idempotent; and an object built to fit a schema validates clean."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procorch.api.crd import schema as structural

SCALARS = {
    "string": st.text(max_size=8),
    "integer": st.integers(-1000, 1000),
    "number": st.floats(-1e6, 1e6, allow_nan=False),
    "boolean": st.booleans(),
}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
NAMES = st.sampled_from(["a", "b", "c", "spec", "items", "x-y"])


@st.composite
def schemas(draw: Any, depth: int = 0) -> dict[str, Any]:
    """A structural schema: typed nodes, objects with properties, arrays with items."""
    kinds = ["string", "integer", "number", "boolean"] + (["object", "array"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    schema: dict[str, Any] = {"type": kind}
    if kind == "object":
        names = draw(st.lists(NAMES, unique=True, max_size=3))
        schema["properties"] = {n: draw(schemas(depth + 1)) for n in names}
        if names and draw(st.booleans()):
            schema["required"] = names[:1]
        if draw(st.booleans()):
            schema[structural.PRESERVE] = True
    elif kind == "array":
        schema["items"] = draw(schemas(depth + 1))
        if draw(st.booleans()):
            schema["maxItems"] = draw(st.integers(0, 3))
    elif kind == "integer" and draw(st.booleans()):
        schema["minimum"] = draw(st.integers(-10, 10))
    elif kind == "string" and draw(st.booleans()):
        schema["maxLength"] = draw(st.integers(0, 5))
    if kind in SCALARS and draw(st.booleans()):
        schema["default"] = draw(SCALARS[kind])
    return schema


@st.composite
def fitting(draw: Any, schema: dict[str, Any]) -> Any:
    """A value that fits ``schema``."""
    kind = schema["type"]
    if kind == "object":
        return {
            name: draw(fitting(sub))
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", []) or draw(st.booleans())
        }
    if kind == "array":
        return draw(st.lists(fitting(schema["items"]), max_size=schema.get("maxItems", 3)))
    if kind == "integer":
        return draw(st.integers(schema.get("minimum", -1000), 1000))
    if kind == "string":
        return draw(st.text(max_size=schema.get("maxLength", 8)))
    return draw(SCALARS[kind])


def _names_only_known(value: Any, schema: dict[str, Any]) -> bool:
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get(structural.PRESERVE):
            return True
        properties = schema.get("properties", {})
        return all(
            name in properties and _names_only_known(item, properties[name])
            for name, item in value.items()
        )
    if isinstance(value, list) and schema.get("type") == "array":
        return all(_names_only_known(item, schema["items"]) for item in value)
    return True


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(schema=schemas(), value=JSON)
def test_random_input_never_breaks_prune_default_or_validate(schema: Any, value: Any) -> None:
    structural.structural_errors({"type": "object", "properties": {"v": schema}}, "root")
    obj = {"v": copy.deepcopy(value)}
    root = {"type": "object", "properties": {"v": schema}}
    structural.prune(obj, root)
    assert _names_only_known(obj, root)
    structural.default(obj, root)
    once = copy.deepcopy(obj)
    structural.default(obj, root)
    assert obj == once  # defaulting twice changes nothing more
    causes = structural.validate(obj, root, old={"v": value})
    assert all(c.field.startswith("v") or c.field == "" for c in causes)


@FUZZ
@given(data=st.data(), schema=schemas())
def test_a_value_built_to_fit_validates_clean(data: Any, schema: Any) -> None:
    value = data.draw(fitting(schema))
    assert structural.validate(value, schema) == []
    assert (
        structural.structural_errors({"type": "object", "properties": {"v": schema}}, "root") == []
    )
