"""Serving the kinds a CustomResourceDefinition defines.

:func:`install` turns each served version of a CRD into a
:class:`~procorch.api.registry.Definition`, as the built-in kinds have one: its resource type,
its schema's pruning, defaulting and validation (with CEL rules), and its
``additionalPrinterColumns``; :func:`uninstall` takes them away. Both are called by the API
server's CRD controller (:mod:`procorch.apiserver.crds`), on its one event loop.
"""

from __future__ import annotations

from typing import Any

from procorch.api import registry, strategy
from procorch.api.crd import schema as structural
from procorch.api.crd.definition import group_and_plural, resource_types, version_schema, versions
from procorch.api.crd.schema import MISSING
from procorch.api.errors import Cause
from procorch.api.printers import custom as custom_printers
from procorch.api.registry import Defaulter, Definition, Pruner, Validator
from procorch.api.resources import ResourceType
from procorch.api.validation.meta import name_is_dns_subdomain, validate_object_meta

META = ("apiVersion", "kind", "metadata")
TERMINATING: set[str] = set()
"""Store keys (``group/plural``) of custom resources whose CRD is being deleted: no creates."""


def definitions(crd: dict[str, Any]) -> list[Definition]:
    """The definitions of ``crd``'s served versions, the storage version first."""
    by_version = {str(v.get("name")): v for v in versions(crd)}
    out = []
    for rt in resource_types(crd):
        version = by_version[rt.version]
        schema = version_schema(version)
        out.append(
            Definition(
                resource=rt,
                default=_defaulter(schema),
                validate=_validator(rt, schema),
                strategy=strategy.DEFAULT,
                printer=custom_printers.printer(
                    list(version.get("additionalPrinterColumns") or [])
                ),
                schema=schema,
                prune=_pruner(schema),
            )
        )
    return out


def install(crd: dict[str, Any]) -> list[ResourceType]:
    """Serve ``crd``'s kinds (replacing what an earlier version of it served)."""
    uninstall(crd)
    served = definitions(crd)
    registry.register(served)
    return [d.resource for d in served]


def uninstall(crd: dict[str, Any]) -> list[ResourceType]:
    """Stop serving what ``crd`` defined; the resource types that were served."""
    group, plural = group_and_plural(crd)
    TERMINATING.discard(f"{group}/{plural}")
    return registry.unregister(group, plural)


def _pruner(schema: dict[str, Any]) -> Pruner:
    def prune(obj: dict[str, Any]) -> list[str]:
        return structural.prune(obj, schema)

    return prune


def _defaulter(schema: dict[str, Any]) -> Defaulter:
    def default(obj: dict[str, Any]) -> None:
        structural.default(obj, schema)

    return default


def _validator(rt: ResourceType, schema: dict[str, Any]) -> Validator:
    root = {**schema, "required": [r for r in schema.get("required") or [] if r not in META]}

    def validate(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        causes = validate_object_meta(
            obj.get("metadata"), namespaced=rt.namespaced, name_fn=name_is_dns_subdomain
        )
        body = {k: v for k, v in obj.items() if k not in META}
        before = {k: v for k, v in old.items() if k not in META} if old is not None else MISSING
        causes += structural.validate(body, root, old=before)
        return causes

    return validate
