"""What a request asks for beyond its path: write and delete options, and the body of a write.

``write_options`` and ``delete_options`` read Kubernetes' query parameters (``dryRun``,
``fieldManager``, ``fieldValidation``, ``force``, ``gracePeriodSeconds``,
``propagationPolicy``...) and a DELETE's ``DeleteOptions`` body, refusing bad values with a
400 that names them. ``read_object`` decodes a write's body (:mod:`.decode`) and applies
``fieldValidation`` to its duplicate keys.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.apiserver import decode
from procorch.apiserver.verbs_common import DeleteOptions, WriteOptions


def truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


def _field_manager(request: web.BaseRequest) -> str:
    manager = request.query.get("fieldManager", "")
    if manager:
        if len(manager) > 128:
            raise errors.BadRequest("fieldManager: Too long: may not be more than 128 bytes")
        return manager
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0][:128] or "unknown"


def write_options(request: web.BaseRequest) -> WriteOptions:
    validation = request.query.get("fieldValidation", "Warn") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise errors.BadRequest(
            f"fieldValidation must be one of Ignore, Warn or Strict; got {validation!r}"
        )
    dry = request.query.getall("dryRun", [])
    for value in dry:
        if value != "All":
            raise errors.BadRequest(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return WriteOptions(
        dry_run=bool(dry),
        field_manager=_field_manager(request),
        field_validation=validation,  # type: ignore[arg-type]
        force=truthy(request.query.get("force")),
    )


async def read_object(
    request: web.BaseRequest, rt: ResourceType, opts: WriteOptions, *, patch: bool = False
) -> tuple[Any, str, list[str]]:
    """The body of a write (decoded within :mod:`.decode`'s limits), its media type, and the
    warnings it earns: duplicate keys are refused under ``fieldValidation=Strict`` and
    reported under ``Warn``, as kube-apiserver's strict decoding does."""
    body = await decode.read_body(request, patch=patch)
    warnings: list[str] = []
    if body.duplicates:
        if opts.field_validation == "Strict":
            raise decode.duplicate_fields_error(
                kind=rt.kind, api_version=rt.api_version, duplicates=body.duplicates
            )
        if opts.field_validation == "Warn":
            warnings = [f'duplicate field "{key}"' for key in body.duplicates]
    return body.value, body.content_type, warnings


async def _delete_body(request: web.BaseRequest) -> dict[str, Any]:
    """The DeleteOptions a DELETE may carry as its body (JSON, YAML or protobuf)."""
    if not request.can_read_body:
        return {}
    body = await decode.read_body(request) if request.content_length != 0 else None
    if body is None or body.value is None:
        return {}
    if not isinstance(body.value, dict):
        raise errors.BadRequest("the body of a DELETE must be a DeleteOptions object")
    return body.value


def _typed(body: dict[str, Any], path: str, kind: type, words: str) -> Any:
    """The field at the end of ``path`` in ``body`` if it is absent, null or of ``kind``;
    otherwise 400, as decoding into DeleteOptions fails in Kubernetes."""
    value = body.get(path.rpartition(".")[2])
    if value is None:
        return None
    matches = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not matches:
        raise errors.BadRequest(f"DeleteOptions.{path}: {words}")
    return value


def deletion_from_body(body: dict[str, Any]) -> DeleteOptions:
    """DeleteOptions from a DeleteOptions object (a DELETE's body, an Eviction's
    ``deleteOptions``); a field of the wrong type is a 400 naming it."""
    opts = DeleteOptions()
    grace = _typed(body, "gracePeriodSeconds", int, "must be an integer")
    if grace is not None:
        opts.grace_period_seconds = grace
    policy = _typed(body, "propagationPolicy", str, "must be a string")
    orphan = _typed(body, "orphanDependents", bool, "must be a boolean")
    if policy:
        opts.propagation_policy = policy
    elif orphan is True:
        opts.propagation_policy = "Orphan"
    elif orphan is False:
        opts.propagation_policy = "Background"
    pre = _typed(body, "preconditions", dict, "must be an object") or {}
    opts.precondition_uid = _typed(pre, "preconditions.uid", str, "must be a string")
    opts.precondition_rv = _typed(pre, "preconditions.resourceVersion", str, "must be a string")
    dry_run = _typed(body, "dryRun", list, "must be a list of strings")
    if dry_run:
        opts.dry_run = True
    return opts


def check_propagation(opts: DeleteOptions) -> None:
    if opts.propagation_policy not in (None, "Background", "Foreground", "Orphan"):
        raise errors.BadRequest(
            f'propagationPolicy: Unsupported value: "{opts.propagation_policy}": supported '
            'values: "Foreground", "Background", "Orphan"'
        )


async def delete_options(request: web.BaseRequest) -> DeleteOptions:
    """DeleteOptions from the body a DELETE may carry and from the query, which wins."""
    opts = deletion_from_body(await _delete_body(request))
    query = request.query
    if query.get("gracePeriodSeconds"):
        try:
            opts.grace_period_seconds = int(query["gracePeriodSeconds"])
        except ValueError:
            raise errors.BadRequest("gracePeriodSeconds must be an integer") from None
    if query.get("propagationPolicy"):
        opts.propagation_policy = query["propagationPolicy"]  # type: ignore[assignment]
    if query.get("orphanDependents") in ("true", "false") and not opts.propagation_policy:
        opts.propagation_policy = "Orphan" if query["orphanDependents"] == "true" else "Background"
    if query.getall("dryRun", []):
        opts.dry_run = True
    check_propagation(opts)
    return opts
