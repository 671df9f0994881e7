"""OpenAPI documents: what kubectl's ``create -f``/``apply``/``replace``/``edit`` and
``explain`` read.

kubectl downloads ``/openapi/v3`` before it sends objects; without it, it refuses unless the
user passes ``--validate=false`` (k8s-api-contract.md §2). procorch serves "recipe A": a root
document listing one document per group-version, each declaring the group-version-kinds with
a ``patch`` operation that takes ``fieldValidation``. kubectl then leaves validation to the
server (``fieldValidation=Strict``), which is exactly where procorch's schema lives. Each
document also carries ``components.schemas`` for its kinds
(:mod:`procorch.api.openapi_schema`): ``kubectl explain`` reads them, and client-side apply
computes strategic merge patches from their patch markers, which are the ones the server
applies patches with. Documents are built once, until a CRD changes what is served.

``/openapi/v2`` answers with an empty document ("recipe B"). kubectl asks for it when
``/openapi/v3`` does not describe a kind (a kind procorch does not serve) and for client-side
apply of an existing object; with nothing there, it skips client-side validation and reports
an unknown kind the way it does against Kubernetes ("resource mapping not found ... ensure
CRDs are installed first") instead of "failed to download openapi".
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from procorch.api import resources as resources_registry
from procorch.api.openapi_schema import Components
from procorch.api.registry import definition
from procorch.api.resources import ResourceType, in_group_version
from procorch.api.types.base import ObjectMeta

# ``/openapi/v2`` is served as an empty protobuf Document ("recipe B"). Not the protobuf media
# type itself: kubectl refuses ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``
# with "mime: unexpected content after media subtype".
V2_CONTENT_TYPE = "application/octet-stream"


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(rt: ResourceType) -> dict[str, Any]:
    return {
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "OK"}},
    }


_documents: dict[tuple[str, str], bytes] = {}
resources_registry.on_change(_documents.clear)  # a CRD installed or removed


def group_version_document(group: str, version: str) -> bytes | None:
    """The group-version's document (built once, until the served resources change)."""
    cached = _documents.get((group, version))
    if cached is None:
        built = _build(group, version)
        if built is None:
            return None
        cached = _documents[(group, version)] = built
    return cached


def _build(group: str, version: str) -> bytes | None:
    resources = in_group_version(group, version)
    if not resources:
        return None
    paths: dict[str, Any] = {}
    components = Components()
    for rt in resources:
        served = definition(rt.api_version, rt.kind)
        if served is not None and served.model is not None:
            components.root(served.model, rt.group, rt.version, rt.kind)
        elif served is not None and served.schema is not None:
            components.custom_root(
                served.schema,
                ObjectMeta,
                {"group": rt.group, "version": rt.version, "kind": rt.kind},
            )
        base = f"/{_gv_path(group, version)}"
        if rt.namespaced:
            item = f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
        else:
            item = f"{base}/{rt.plural}/{{name}}"
        paths[item] = {"patch": _operation(rt), "put": _operation(rt)}
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "procorch", "version": version},
        "paths": paths,
        "components": {"schemas": components.schemas},
    }
    return orjson.dumps(doc)


def _hash(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()[:32].upper()


def root_document(group_versions: list[tuple[str, str]]) -> bytes:
    paths = {}
    for group, version in group_versions:
        doc = group_version_document(group, version)
        if doc is None:
            continue
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(doc)}"}
    return orjson.dumps({"paths": paths})
