"""Request bodies an attacker or a broken client sends: every one is a quick 4xx `Status`,
nothing is stored, and the server goes on answering everyone else."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import pytest

from procorch.apiserver import decode
from procorch.kit import logging as plog

CM_PATH = "/api/v1/namespaces/default/configmaps"
JSON = "application/json"


def nested(depth: int) -> bytes:
    """A JSON value of exactly ``depth`` levels of arrays."""
    return b"[" * depth + b"]" * depth


def configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


async def send(
    raw, method: str, path: str, body: bytes | None, content_type: str | None = JSON
) -> tuple[int, dict[str, Any], list[str]]:
    headers = raw.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    skip = () if content_type is not None else ("Content-Type",)
    async with raw.session.request(
        method, raw.url + path, data=body, headers=headers, skip_auto_headers=skip
    ) as r:
        text = await r.text()
        answer = json.loads(text) if text.startswith("{") else {"text": text}
        return r.status, answer, r.headers.getall("Warning", [])


async def test_a_body_nested_a_thousand_levels_is_refused_at_once_and_the_server_keeps_answering(
    raw,
) -> None:
    body = b'{"apiVersion":"v1","kind":' + nested(1003) + b',"metadata":{"name":"deep"}}'
    started = time.monotonic()
    status, answer, _ = await send(raw, "POST", CM_PATH, body)
    assert status == 400, answer
    assert answer["reason"] == "BadRequest"
    assert "nested too deeply" in answer["message"]
    assert time.monotonic() - started < 5
    status, answer, _ = await send(raw, "GET", "/readyz", None, None)
    assert status == 200


@pytest.mark.parametrize(
    ("method", "suffix", "content_type", "shape"),
    [
        ("POST", "", JSON, "object"),
        ("PUT", "/target", JSON, "object"),
        ("PATCH", "/target", "application/merge-patch+json", "patch"),
        ("PATCH", "/target", "application/strategic-merge-patch+json", "patch"),
        ("PATCH", "/target", "application/json-patch+json", "jsonpatch"),
        ("PATCH", "/target?fieldManager=t", "application/apply-patch+yaml", "object"),
        ("POST", "", "application/yaml", "object"),
    ],
)
async def test_nesting_is_served_up_to_the_limit_and_refused_beyond_it_by_every_write(
    raw, method: str, suffix: str, content_type: str, shape: str
) -> None:
    await send(raw, "POST", CM_PATH, json.dumps(configmap("target")).encode())

    def body(depth: int, name: str) -> bytes:
        # The whole document nests ``depth`` levels: one for the object, the rest in "x".
        value = nested(depth - 1).decode()
        if shape == "jsonpatch":  # [{"op": ..., "value": V}]: V starts at the third level
            return f'[{{"op":"add","path":"/x","value":{nested(depth - 2).decode()}}}]'.encode()
        if shape == "patch":
            return f'{{"x":{value}}}'.encode()
        doc = json.dumps(configmap(name)).encode()
        return doc[:-1] + b',"x":' + value.encode() + b"}"

    for depth, accepted in ((decode.MAX_DEPTH, True), (decode.MAX_DEPTH + 1, False)):
        status, answer, _ = await send(
            raw, method, CM_PATH + suffix, body(depth, f"d{depth}"), content_type
        )
        assert status < 500, answer
        if accepted:
            assert "nested too deeply" not in answer.get("message", ""), answer
        else:
            assert status == 400, answer
            assert "nested too deeply" in answer["message"]


@pytest.mark.parametrize("metadata", [None, "s", [1], 5])
async def test_put_and_apply_with_a_metadata_that_is_not_an_object_answer_as_create_does(
    raw, metadata: Any
) -> None:
    await send(raw, "POST", CM_PATH, json.dumps(configmap("target")).encode())
    doc = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}).encode()
    created, create_answer, _ = await send(raw, "POST", CM_PATH, doc)
    put, put_answer, _ = await send(raw, "PUT", CM_PATH + "/target", doc)
    apply, apply_answer, _ = await send(
        raw, "PATCH", CM_PATH + "/target?fieldManager=t", doc, "application/apply-patch+yaml"
    )
    if metadata is None:
        # No metadata: the name comes from the URL (and create has none, so 422).
        assert created == 422
        assert put == 200, put_answer
        assert apply == 200, apply_answer
        return
    for status, answer in ((created, create_answer), (put, put_answer), (apply, apply_answer)):
        assert status == 422, answer
        assert answer["details"]["causes"][0]["field"] == "metadata"
        assert "must be an object" in answer["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "*/*"])
async def test_a_json_body_under_a_media_type_the_api_does_not_serve_is_415(
    raw, content_type: str
) -> None:
    status, answer, _ = await send(
        raw, "POST", CM_PATH, json.dumps(configmap("typed")).encode(), content_type
    )
    assert status == 415, answer
    assert answer["reason"] == "UnsupportedMediaType"
    status, _, _ = await send(raw, "GET", CM_PATH + "/typed", None)
    assert status == 404


async def test_a_body_without_a_content_type_is_json_as_kube_apiserver_negotiates_it(raw) -> None:
    status, answer, _ = await send(
        raw, "POST", CM_PATH, json.dumps(configmap("untyped")).encode(), None
    )
    assert status == 201, answer


async def test_duplicate_keys_warn_by_default_and_are_refused_under_strict_validation(raw) -> None:
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"dup"},"data":{"k":"1","k":"2"}}'
    status, answer, warnings = await send(raw, "POST", CM_PATH, body)
    assert status == 201, answer
    assert answer["metadata"]["name"] == "dup" and answer["data"] == {"k": "2"}  # last wins
    assert any('duplicate field \\"name\\"' in w for w in warnings), warnings
    assert any('duplicate field \\"k\\"' in w for w in warnings), warnings

    status, answer, _ = await send(raw, "POST", CM_PATH + "?fieldValidation=Strict", body)
    assert status == 400, answer
    assert answer["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'duplicate field "name", duplicate field "k"'
    )
    status, _, warnings = await send(
        raw, "POST", CM_PATH + "?fieldValidation=Ignore", body.replace(b"dup", b"dup2")
    )
    assert status == 201 and not warnings


async def test_a_body_over_three_mebibytes_is_413_and_stores_nothing(raw) -> None:
    doc = configmap("huge", data={"k": "x" * (decode.MAX_BODY + 10)})
    status, answer, _ = await send(raw, "POST", CM_PATH, json.dumps(doc).encode())
    assert status == 413, answer
    assert answer["reason"] == "RequestEntityTooLarge"
    assert answer["message"] == f"Request entity too large: limit is {decode.MAX_BODY}"
    status, _, _ = await send(raw, "GET", CM_PATH + "/huge", None)
    assert status == 404


async def test_a_yaml_alias_bomb_is_refused_without_expanding_it(raw) -> None:
    lines = [b"a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        refs = ", ".join([f"*{prev}"] * 9)
        lines.append(f"{name}: &{name} [{refs}]".encode())
    started = time.monotonic()
    status, answer, _ = await send(raw, "POST", CM_PATH, b"\n".join(lines), "application/yaml")
    assert status == 400, answer
    assert "too many values" in answer["message"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[1]", "must be a DeleteOptions object"),
        (b'"x"', "must be a DeleteOptions object"),
        (b"{bad", "couldn't decode"),
        (b'{"gracePeriodSeconds":"soon"}', "DeleteOptions.gracePeriodSeconds: must be an integer"),
        (b'{"propagationPolicy":5}', "DeleteOptions.propagationPolicy: must be a string"),
        (b'{"preconditions":[]}', "DeleteOptions.preconditions: must be an object"),
        (b'{"preconditions":{"uid":1}}', "DeleteOptions.preconditions.uid: must be a string"),
    ],
)
async def test_a_malformed_delete_body_is_400_and_deletes_nothing(
    raw, body: bytes, words: str
) -> None:
    await send(raw, "POST", CM_PATH, json.dumps(configmap("keep")).encode())
    status, answer, _ = await send(raw, "DELETE", CM_PATH + "/keep", body)
    assert status == 400, answer
    assert words in answer["message"]
    status, _, _ = await send(raw, "GET", CM_PATH + "/keep", None)
    assert status == 200


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_logged_recursion_error_is_bounded_and_shows_no_local_variables(fmt: str) -> None:
    out = io.StringIO()
    plog.configure(fmt=fmt, stream=out)  # type: ignore[arg-type]
    try:

        def dive(secret: str, depth: int) -> None:
            dive(secret, depth + 1)

        try:
            dive("hunter2-token", 0)
        except RecursionError:
            plog.get_logger("test").exception("request failed")
    finally:
        plog.configure()
    text = out.getvalue()
    assert "RecursionError" in text
    assert "hunter2-token" not in text
    assert len(text) < 20_000, len(text)


async def test_an_error_path_costs_little_while_other_clients_are_served(raw) -> None:
    """Twenty deep bodies at once, beside a reader: the reader is never held up for long."""
    body = b'{"apiVersion":"v1","kind":' + nested(1020) + b"}"
    worst = 0.0

    async def reader() -> None:
        nonlocal worst
        for _ in range(20):
            started = time.monotonic()
            status, _, _ = await send(raw, "GET", CM_PATH, None)
            assert status == 200
            worst = max(worst, time.monotonic() - started)

    results = await asyncio.gather(reader(), *(send(raw, "POST", CM_PATH, body) for _ in range(20)))
    assert all(status == 400 for status, _, _ in results[1:])
    assert worst < 2.0


async def test_a_warning_naming_a_field_with_control_characters_is_quoted_not_a_dropped_reply(
    raw,
) -> None:
    """Found by the manifest fuzzer: an unknown field named ``a\\nb`` went into the Warning
    header as is; aiohttp refused to write the header, the client saw its connection dropped,
    and the object had been created. Quoted as Go's ``strconv.Quote`` does, as Kubernetes."""
    body = json.dumps(configmap("warned", **{"a\nb\r\x01": "x", "ünï": "y"})).encode()
    status, answer, warnings = await send(raw, "POST", CM_PATH, body)
    assert status == 201, answer
    joined = " ".join(warnings)
    assert 'unknown field \\"a\\nb\\r\\x01\\"' in joined, warnings
    assert "ünï" in joined or "\\u00fc" in joined, warnings
