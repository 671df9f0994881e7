"""CustomResourceDefinitions: checking one, and reading what it defines.

:func:`validate_crd` is kube-apiserver's CRD validation (names, scope, versions, one storage
version, structural schemas, what an update may change), with Kubernetes' messages.
:func:`resource_types` gives the resource types of its served versions; serving them is
:mod:`procorch.api.crd.serving`'s.
"""

from __future__ import annotations

from typing import Any

from procorch.api.crd import schema as structural
from procorch.api.errors import Cause, duplicate, invalid, not_supported, required
from procorch.api.resources import SCALE, STATUS, ResourceType, Subresource
from procorch.api.validation import formats
from procorch.api.validation.meta import (
    name_is_dns_subdomain,
    validate_object_meta,
)

GROUP = "apiextensions.k8s.io"
APPROVAL = "api-approved.kubernetes.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
"""Held by a CRD until its objects are deleted (``procorch.api.strategy`` adds it)."""


def _spec(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd.get("spec")
    return spec if isinstance(spec, dict) else {}


def _names(crd: dict[str, Any]) -> dict[str, Any]:
    names = _spec(crd).get("names")
    return names if isinstance(names, dict) else {}


def group_and_plural(crd: dict[str, Any]) -> tuple[str, str]:
    """The group and the plural of the resource ``crd`` defines (``""`` where missing)."""
    return str(_spec(crd).get("group") or ""), str(_names(crd).get("plural") or "")


def versions(crd: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in _spec(crd).get("versions") or [] if isinstance(v, dict)]


def version_schema(version: dict[str, Any]) -> dict[str, Any]:
    found = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
    return found if isinstance(found, dict) else {}


def storage_version(crd: dict[str, Any]) -> str:
    return next((str(v.get("name")) for v in versions(crd) if v.get("storage")), "")


# -- validation --------------------------------------------------------------------------------


def validate_crd(crd: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Every problem with ``crd`` (and with changing ``old`` into it)."""
    causes: list[Cause] = validate_object_meta(
        crd.get("metadata"), namespaced=False, name_fn=name_is_dns_subdomain
    )
    spec = _spec(crd)
    names = _names(crd)
    group = str(spec.get("group") or "")
    plural = str(names.get("plural") or "")
    name = str((crd.get("metadata") or {}).get("name") or "")
    if not group:
        causes.append(required("spec.group"))
    elif "." not in group:
        causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    protected = group in ("k8s.io", "kubernetes.io") or group.endswith(
        (".k8s.io", ".kubernetes.io")
    )
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    if protected and not annotations.get(APPROVAL):
        causes.append(
            required(
                f"metadata.annotations[{APPROVAL}]",
                f'protected groups must have approval annotation "{APPROVAL}", see '
                "https://github.com/kubernetes/enhancements/pull/1111",
            )
        )
    if plural and group and name != f"{plural}.{group}":
        causes.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(required(f"spec.names.{field}"))
    for field in ("plural", "singular"):
        value = str(names.get(field) or "")
        if value:
            for message in formats.is_dns1035_label(value):
                causes.append(invalid(f"spec.names.{field}", value, message))
    kind = str(names.get("kind") or "")
    if kind and (not kind[0].isalpha() or not kind.isalnum()):
        causes.append(
            invalid(
                "spec.names.kind", kind, "may have mixed case, but should otherwise match: [a-z]"
            )
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    all_versions = versions(crd)
    if not all_versions:
        causes.append(
            required("spec.versions", "must have exactly one version marked as storage version")
        )
    elif sum(1 for v in all_versions if v.get("storage")) != 1:
        causes.append(
            invalid(
                "spec.versions",
                [v.get("name") for v in all_versions],
                "must have exactly one version marked as storage version",
            )
        )
    seen_versions: set[str] = set()
    for i, version in enumerate(all_versions):
        at = f"spec.versions[{i}]"
        vname = str(version.get("name") or "")
        if vname in seen_versions:
            causes.append(duplicate(f"{at}.name", vname))
        seen_versions.add(vname)
        if not vname:
            causes.append(required(f"{at}.name"))
        else:
            for message in formats.is_dns1035_label(vname):
                causes.append(invalid(f"{at}.name", vname, message))
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            causes.append(required(f"{at}.schema.openAPIV3Schema", "schemas are required"))
        else:
            causes += structural.structural_errors(schema, f"{at}.schema.openAPIV3Schema")
            causes += structural.rule_errors(schema, f"{at}.schema.openAPIV3Schema")
    strategy = (spec.get("conversion") or {}).get("strategy") or "None"
    if strategy != "None":
        causes.append(not_supported("spec.conversion.strategy", strategy, ["None"]))
    if old is not None:
        old_spec = _spec(old)
        for field in ("group", "scope"):
            if spec.get(field) != old_spec.get(field):
                causes.append(invalid(f"spec.{field}", spec.get(field), "field is immutable"))
        if names.get("plural") != _names(old).get("plural"):
            causes.append(invalid("spec.names.plural", names.get("plural"), "field is immutable"))
    return causes


# -- serving -----------------------------------------------------------------------------------


def resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types of ``crd``'s served versions, the storage version first."""
    spec = _spec(crd)
    names = _names(crd)
    out = []
    for version in sorted(versions(crd), key=lambda v: not v.get("storage")):
        if not version.get("served"):
            continue
        subs: list[Subresource] = []
        declared = version.get("subresources") or {}
        if "status" in declared:
            subs.append(STATUS)
        scale = declared.get("scale")
        if isinstance(scale, dict):
            subs.append(SCALE)
        out.append(
            ResourceType(
                group=str(spec.get("group")),
                version=str(version.get("name")),
                kind=str(names.get("kind")),
                plural=str(names.get("plural")),
                namespaced=spec.get("scope") != "Cluster",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(subs),
                singular=str(names.get("singular") or str(names.get("kind") or "").lower()),
                custom=True,
                scale_paths=(
                    str(scale.get("specReplicasPath") or ".spec.replicas"),
                    str(scale.get("statusReplicasPath") or ".status.replicas"),
                    str(scale.get("labelSelectorPath") or ""),
                )
                if isinstance(scale, dict)
                else (".spec.replicas", ".status.replicas", ""),
            )
        )
    return out
