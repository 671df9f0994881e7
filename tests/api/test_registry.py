"""The registry of resource definitions: one entry per served kind joins its names with its
behaviour, and a CustomResourceDefinition adds and removes both together."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from procorch.api import registry, resources
from procorch.api.crd import serving
from procorch.api.printers import column_definitions
from procorch.api.resources import ResourceType

GADGETS: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer", "maximum": 9},
                                    "color": {"type": "string", "default": "red"},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def gadgets() -> Iterator[list[ResourceType]]:
    types = serving.install(copy.deepcopy(GADGETS))
    try:
        yield types
    finally:
        serving.uninstall(GADGETS)


def gadget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "default"},
        "spec": spec,
    }


def test_a_crd_version_is_served_with_its_schema_as_its_behaviour(
    gadgets: list[ResourceType],
) -> None:
    [rt] = gadgets
    assert resources.by_kind("example.com/v1", "Gadget") is rt
    found = registry.of(rt)
    assert found.model is None and found.schema is not None and found.prune is not None
    assert registry.model_for("example.com/v1", "Gadget") is None
    obj = gadget(size=12, extra=1)
    assert found.prune(obj) == ["spec.extra"]
    registry.apply_defaults(rt.api_version, rt.kind, obj)
    assert obj["spec"] == {"size": 12, "color": "red"}
    causes = registry.validate(rt.api_version, rt.kind, obj)
    assert [c.field for c in causes] == ["spec.size"]
    # additionalPrinterColumns replace the default AGE column, as in Kubernetes.
    columns = column_definitions(registry.printer_for(rt))
    assert [c["name"] for c in columns] == ["Name", "Size"]


def test_uninstalling_a_crd_takes_its_names_and_its_behaviour_away(
    gadgets: list[ResourceType],
) -> None:
    [rt] = gadgets
    serving.uninstall(GADGETS)
    assert resources.by_kind(rt.api_version, rt.kind) is None
    assert registry.definition(rt.api_version, rt.kind) is None
    # Unknown to the registry: nothing defaulted, nothing validated, no error.
    obj = gadget(size=12)
    registry.apply_defaults(rt.api_version, rt.kind, obj)
    assert obj["spec"] == {"size": 12}
    assert registry.validate(rt.api_version, rt.kind, obj) == []


def test_a_definition_that_clashes_with_a_served_path_changes_nothing() -> None:
    pods = registry.of(resources.must("core/pods"))
    clash = registry.Definition(resource=ResourceType("", "v1", "Thing", "pods", True))
    with pytest.raises(ValueError, match="already served"):
        registry.register([clash])
    assert registry.definition("v1", "Thing") is None
    assert registry.of(resources.must("core/pods")) is pods


def test_every_definition_names_a_served_kind_once() -> None:
    keys = [d.resource.key for d in registry.BUILTIN]
    assert len(keys) == len(set(keys))
    for d in registry.BUILTIN:
        assert resources.by_kind(d.resource.api_version, d.resource.kind) is d.resource
        assert d.model is not None
