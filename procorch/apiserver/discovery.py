"""Discovery documents: aggregated (apidiscovery.k8s.io/v2) and the legacy forms.

kubectl 1.32 asks ``/api`` and ``/apis`` for the aggregated form and needs the exact
Content-Type back (k8s-api-contract.md §1); older clients and the Python dynamic client use
the legacy ``APIVersions`` / ``APIGroupList`` / ``APIResourceList`` documents. Both are built
from the one registry in :mod:`procorch.api.resources`, once, at import.
"""

from __future__ import annotations

from typing import Any

import orjson

from procorch.api import resources as resources_registry
from procorch.api.resources import RESOURCES, ResourceType, group_versions, in_group_version

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1_CONTENT_TYPE = (
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
)

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+procorch",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-25T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Extra groups served by other components (e.g. metrics.k8s.io by the node agent's metrics).
# Each entry: (group, version, [resource documents]).
_EXTRA: list[tuple[str, str, list[dict[str, Any]]]] = []


def wants_aggregated(accept: str) -> str | None:
    """The aggregated Content-Type to answer with, if the client asked for one."""
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if "g=apidiscovery.k8s.io" in params and "as=APIGroupDiscoveryList" in params:
            if "v=v2" in params:
                return AGGREGATED_CONTENT_TYPE
            if "v=v2beta1" in params:
                return AGGREGATED_V2BETA1_CONTENT_TYPE
    return None


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": sorted(rt.verbs),
    }
    if rt.short_names:
        doc["shortNames"] = list(rt.short_names)
    if rt.categories:
        doc["categories"] = list(rt.categories)
    subs = []
    for sub in rt.subresources:
        subs.append(
            {
                "subresource": sub.name,
                "responseKind": {
                    "group": rt.group if sub.group is None else sub.group,
                    "version": rt.version if sub.version is None else sub.version,
                    "kind": sub.kind or rt.kind,
                },
                "verbs": sorted(sub.verbs),
            }
        )
    if subs:
        doc["subresources"] = subs
    return doc


def _aggregated_group(
    group: str, versions: list[tuple[str, list[dict[str, Any]]]]
) -> dict[str, Any]:
    return {
        "metadata": {"name": group, "creationTimestamp": None},
        "versions": [
            {"version": version, "resources": resources, "freshness": "Current"}
            for version, resources in versions
        ],
    }


def register_extra(group: str, version: str, resources: list[dict[str, Any]]) -> None:
    """Serve an extra group in discovery (its resource documents in aggregated form).
    Idempotent: registering a group-version again replaces it (discovery is module state,
    shared by every API server in the process)."""
    _EXTRA[:] = [(g, v, r) for g, v, r in _EXTRA if (g, v) != (group, version)]
    _EXTRA.append((group, version, resources))
    _cache.clear()


_cache: dict[str, bytes] = {}
resources_registry.on_change(_cache.clear)  # a CRD installed or removed


def aggregated(core: bool) -> bytes:
    """The APIGroupDiscoveryList for ``/api`` (core) or ``/apis`` (every named group)."""
    cache_key = f"agg:{core}"
    if cache_key in _cache:
        return _cache[cache_key]
    items = []
    if core:
        items.append(
            _aggregated_group(
                "", [("v1", [_aggregated_resource(r) for r in in_group_version("", "v1")])]
            )
        )
    else:
        # One item per group, its versions in order (a CRD may serve several).
        groups: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
        for group, version in group_versions():
            if group == "":
                continue
            documents = [_aggregated_resource(r) for r in in_group_version(group, version)]
            groups.setdefault(group, []).append((version, documents))
        items += [_aggregated_group(group, versions) for group, versions in groups.items()]
        for group, version, resources in _EXTRA:
            items.append(_aggregated_group(group, [(version, resources)]))
    body = orjson.dumps(
        {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }
    )
    _cache[cache_key] = body
    return body


def legacy_api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _all_group_versions() -> list[tuple[str, str]]:
    return [gv for gv in group_versions() if gv[0]] + [(g, v) for g, v, _ in _EXTRA]


def legacy_group_list() -> dict[str, Any]:
    groups = []
    for group, version in _all_group_versions():
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def legacy_group(group: str) -> dict[str, Any] | None:
    for g, version in _all_group_versions():
        if g == group:
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": group,
                "versions": [gv],
                "preferredVersion": gv,
            }
    return None


def legacy_resource_list(group: str, version: str) -> dict[str, Any] | None:
    gv = f"{group}/{version}" if group else version
    resources: list[dict[str, Any]] = []
    for rt in in_group_version(group, version):
        doc: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular_name,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": sorted(rt.verbs),
        }
        if rt.short_names:
            doc["shortNames"] = list(rt.short_names)
        if rt.categories:
            doc["categories"] = list(rt.categories)
        resources.append(doc)
        for sub in rt.subresources:
            sub_doc: dict[str, Any] = {
                "name": f"{rt.plural}/{sub.name}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub.kind or rt.kind,
                "verbs": sorted(sub.verbs),
            }
            if sub.group is not None:
                sub_doc["group"] = sub.group
            if sub.version is not None:
                sub_doc["version"] = sub.version
            resources.append(sub_doc)
    for g, v, extra in _EXTRA:
        if (g, v) == (group, version):
            for res in extra:
                resources.append(
                    {
                        "name": res["resource"],
                        "singularName": res.get("singularResource", ""),
                        "namespaced": res.get("scope") == "Namespaced",
                        "kind": res["responseKind"]["kind"],
                        "verbs": res["verbs"],
                    }
                )
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def served_group_versions() -> list[tuple[str, str]]:
    return group_versions() + [(g, v) for g, v, _ in _EXTRA]


__all__ = [
    "AGGREGATED_CONTENT_TYPE",
    "RESOURCES",
    "VERSION_INFO",
    "aggregated",
    "legacy_api_versions",
    "legacy_group",
    "legacy_group_list",
    "legacy_resource_list",
    "register_extra",
    "served_group_versions",
    "wants_aggregated",
]
