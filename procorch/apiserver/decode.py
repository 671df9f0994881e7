"""Request bodies: media-type negotiation, decoding and the limits every body is held to.

A body is read only up to :data:`MAX_BODY` (Kubernetes' 3 MiB), decoded by its
``Content-Type`` as kube-apiserver negotiates it (no ``Content-Type`` means JSON; a type it
does not serve, ``text/plain`` included, is 415), and refused with a 4xx, never a 500, when
it is not what the API takes:

* nesting deeper than :data:`MAX_DEPTH` objects and arrays, checked without recursion, so that
  no later step (validation, patching, deep copies, the store's encoder) can exhaust Python's
  stack on a hostile body;
* more than :data:`MAX_NODES_PER_BYTE` values per byte of body, which only YAML aliases can
  produce (a "billion laughs" document), and which every later walk would pay for;
* duplicate keys in a JSON object are reported (:attr:`Body.duplicates`), for the caller to
  refuse (``fieldValidation=Strict``) or warn about (``Warn``), as kube-apiserver does.

Pure functions over bytes, plus :func:`read_body` for an aiohttp request.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml
from aiohttp import web

from procorch.api import errors, kyaml, protobuf
from procorch.api.patch.managed import decode_apply_body
from procorch.api.patch.strategic import APPLY_PATCH, PATCH_TYPES

JSON = "application/json"
MAX_BODY = 3 * 1024 * 1024
"""Kubernetes' limit on a request body (``maxRequestBodyBytes``)."""
MAX_DEPTH = 100
"""The deepest nesting of objects and arrays a body may have. Kubernetes objects nest about
20 levels; Python code that walks them recursively stays far from its stack limit here."""
MAX_NODES_PER_BYTE = 2
OFF_LOOP_BYTES = 256 * 1024
"""Bodies larger than this are decoded on a worker thread."""
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
ACCEPTED = f"{JSON}, application/yaml, {protobuf.PROTOBUF_CONTENT_TYPE}"


@dataclass
class Body:
    """A decoded request body."""

    value: Any
    content_type: str
    duplicates: list[str] = field(default_factory=list)
    """Keys that appeared more than once in one JSON object (the last one wins)."""


def media_type(header: str) -> str:
    return header.split(";")[0].strip().lower()


async def read_body(request: web.BaseRequest, *, patch: bool = False) -> Body:
    """Read and decode the body of ``request`` (a patch when ``patch``), within the limits."""
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise too_large()
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    content_type = request.headers.get("Content-Type", "")
    if len(raw) > OFF_LOOP_BYTES:
        # Decoding megabytes (YAML above all) takes long enough to hold up every other
        # request; in a thread, the event loop keeps getting its share of the GIL.
        return await asyncio.to_thread(decode, raw, content_type, patch=patch)
    return decode(raw, content_type, patch=patch)


def too_large() -> errors.ApiError:
    return errors.RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY}")


def decode(raw: bytes, content_type_header: str, *, patch: bool = False) -> Body:
    """Decode ``raw`` as its ``Content-Type`` says; see the module docstring for the rules."""
    if len(raw) > MAX_BODY:
        raise too_large()
    content_type = media_type(content_type_header)
    if patch:
        if content_type not in PATCH_TYPES:
            raise errors.UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(sorted(PATCH_TYPES))}"
            )
        if content_type == APPLY_PATCH:
            body = _decode_apply(raw)
        else:
            body = decode_json(raw)
        body.content_type = content_type
        return body
    if content_type in ("", JSON):
        return decode_json(raw)
    if content_type == protobuf.PROTOBUF_CONTENT_TYPE:
        return Body(_bounded(protobuf.decode(raw), len(raw)), content_type)
    if content_type in YAML_TYPES:
        return Body(_bounded(decode_yaml(raw), len(raw)), content_type)
    raise errors.UnsupportedMediaType(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{ACCEPTED}"
    )


def decode_json(raw: bytes) -> Body:
    """JSON as kube-apiserver reads it: strict UTF-8 and numbers (orjson), duplicate keys
    noted (the last one wins), nesting bounded."""
    if not raw.strip():
        raise errors.BadRequest("the request body is empty")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise _too_deep() from None
        raise _NotJson(f"couldn't decode the request body as JSON: {exc}") from None
    _bounded(value, len(raw))
    return Body(value, JSON, duplicates=_duplicate_keys(raw) if b"{" in raw else [])


class _NotJson(errors.BadRequest):
    """The body is not JSON (an apply configuration may still be YAML)."""


def decode_yaml(raw: bytes) -> Any:
    try:
        return kyaml.load(raw)
    except RecursionError:
        raise _too_deep() from None
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"couldn't decode the request body as YAML: {exc}") from None


def _decode_apply(raw: bytes) -> Body:
    """An apply configuration: JSON (what kubectl sends), else YAML."""
    try:
        return decode_json(raw)
    except _NotJson:
        pass
    try:
        value = decode_apply_body(raw)
    except errors.ApiError:
        raise
    except RecursionError:
        raise _too_deep() from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is the client's
        raise errors.BadRequest(f"couldn't decode the apply configuration: {exc}") from None
    return Body(_bounded(value, len(raw)), APPLY_PATCH)


def _too_deep() -> errors.BadRequest:
    return errors.BadRequest(
        f"the request body is nested too deeply: more than {MAX_DEPTH} levels of objects and arrays"
    )


def _bounded(value: Any, size: int) -> Any:
    """``value``, once it is known to nest at most :data:`MAX_DEPTH` deep and to hold at most
    :data:`MAX_NODES_PER_BYTE` values per byte of its encoding. Iterative: a hostile value
    costs at most that many steps, never a deep stack."""
    budget = MAX_NODES_PER_BYTE * max(size, 1) + 64
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise _too_deep()
        budget -= len(children)
        if budget < 0:
            raise errors.BadRequest("the request body expands to too many values (YAML aliases?)")
        stack.extend((child, depth + 1) for child in children)
    return value


def _duplicate_keys(raw: bytes) -> list[str]:
    """Keys repeated within one JSON object of ``raw`` (already known to be valid JSON),
    in order of appearance, each named once."""
    seen: dict[str, None] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            names: set[str] = set()
            for key, _ in items:
                if key in names:
                    seen.setdefault(key)
                names.add(key)
        return obj

    json.loads(raw, object_pairs_hook=pairs)
    return list(seen)


def duplicate_fields_error(
    *, kind: str, api_version: str, duplicates: list[str]
) -> errors.BadRequest:
    """The ``fieldValidation=Strict`` refusal of a body with duplicate keys, worded as
    kube-apiserver's strict decoding error."""
    listed = ", ".join(f'duplicate field "{key}"' for key in duplicates)
    return errors.BadRequest(
        f'{kind} in version "{api_version.rpartition("/")[2]}" cannot be handled as a {kind}: '
        f"strict decoding error: {listed}"
    )
