"""Malformed HTTP on raw sockets, against the API (over TLS) and the Ingress: never a 5xx,
never a hang, and the server still answers after each one.

Each case is bytes written on a fresh connection: broken request lines and heads, oversized
ones, bad ``Content-Length`` and chunked framing (and both at once, the smuggling classic),
bodies that are not what their ``Content-Type`` says (JSON, YAML, protobuf), unknown methods,
path traversal, bad query parameters, HTTP/2 and plain text where TLS is expected. The server
must answer (not with a 5xx) or close the connection within :data:`DEADLINE`; a case whose
request is incomplete by design may also be left waiting, and is then closed by the client.
After every case a real request (kubectl's, through the Ingress) must be served.

And without a valid token every path of the API - every resource's collection and object, its
subresources, the discovery and non-resource paths - is 401, except the health and version
endpoints that Kubernetes leaves public.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from reliability_harness import (
    UpProcess,
    node_dir_cleanup,
    procorch_up,
    report,
    serve_web,
    trials,
    wait_for,
)

DEADLINE = 5.0
ROUNDS = max(1, trials(4) // 4)  # every case once by default; by hand, a quarter of the trials
CM = "/api/v1/namespaces/default/configmaps"
JSON = b"Content-Type: application/json\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    incomplete: bool = False  # the request never ends: no answer is owed
    plain: bool = False  # on the TLS port, without TLS


def _req(head: str, body: bytes = b"", *, auth: bool = True) -> bytes:
    """A request: ``head`` is the request line and headers (``\\n``-separated), Host and
    (with ``auth``) the token added (TOKEN is replaced by the real one when sent), and
    ``Content-Length: LEN`` made the body's length."""
    head = head.replace("Content-Length: LEN", f"Content-Length: {len(body)}")
    lines = head.strip("\n").split("\n")
    extra = ["Host: procorch"] + (["Authorization: Bearer TOKEN"] if auth else [])
    return ("\r\n".join(lines[:1] + extra + lines[1:]) + "\r\n\r\n").encode() + body


def _chunked(head: str, chunks: bytes) -> bytes:
    return _req(head + "\nContent-Type: application/json\nTransfer-Encoding: chunked", chunks)


CM_BODY = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m"}}'

API_CASES = [
    # -- request lines and heads
    Case("not HTTP", b"HELLO THERE\r\n\r\n"),
    Case("bare LF", b"GET /version HTTP/1.1\nHost: x\n\n"),
    Case("HTTP/9.9", _req("GET /version HTTP/9.9")),
    Case("HTTP/0.9", b"GET /version\r\n\r\n"),
    Case("no Host", b"GET /version HTTP/1.1\r\n\r\n"),
    Case("two Hosts", _req("GET /version HTTP/1.1\nHost: other")),
    Case("double spaces", _req("GET  /version  HTTP/1.1")),
    Case("tab in request line", _req("GET\t/version\tHTTP/1.1")),
    Case("lowercase method", _req("get /version HTTP/1.1")),
    Case("unknown method", _req("BREW /api/v1/namespaces HTTP/1.1")),
    Case("TRACE", _req("TRACE /api/v1/namespaces HTTP/1.1")),
    Case("CONNECT", _req("CONNECT example.com:443 HTTP/1.1")),
    Case("OPTIONS *", _req("OPTIONS * HTTP/1.1")),
    Case("absolute URI", _req("GET https://elsewhere/api/v1/namespaces HTTP/1.1")),
    Case("URL of 20 KB", _req("GET /api/v1/namespaces/" + "a" * 20_000 + " HTTP/1.1")),
    Case("header of 40 KB", _req("GET /version HTTP/1.1\nX-Big: " + "a" * 40_000)),
    Case(
        "300 headers", _req("GET /version HTTP/1.1\n" + "\n".join(f"X-{i}: v" for i in range(300)))
    ),
    Case("header without colon", _req("GET /version HTTP/1.1\nNoColonHere")),
    Case("header name with space", _req("GET /version HTTP/1.1\nBad Name: v")),
    Case("NUL in a header", _req("GET /version HTTP/1.1\nX-Nul: a\x00b")),
    Case("obs-fold", _req("GET /version HTTP/1.1\nX-Folded: a\n b")),
    Case("non-UTF-8 path", b"GET /api/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"),
    Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    Case(
        "upgrade to websocket",
        _req(
            "GET /api/v1/namespaces HTTP/1.1\nConnection: Upgrade\nUpgrade: websocket\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        ),
    ),
    Case("50 pipelined", _req("GET /version HTTP/1.1") * 50),
    # -- framing
    Case(
        "Content-Length -1",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: -1", CM_BODY),
    ),
    Case(
        "Content-Length abc",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: abc", CM_BODY),
    ),
    Case(
        "Content-Length 2^70",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: {2**70}", CM_BODY
        ),
        incomplete=True,
    ),
    Case(
        "two Content-Lengths",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: 5\nContent-Length: {len(CM_BODY)}",
            CM_BODY,
        ),
    ),
    Case(
        "Content-Length short",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: 10", CM_BODY),
    ),
    Case(
        "Content-Length long",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: 1000", CM_BODY),
        incomplete=True,
    ),
    Case(
        "Content-Length 1 GB, Expect",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nExpect: 100-continue\nContent-Length: 1000000000"
        ),
        incomplete=True,
    ),
    Case(
        "CL and chunked",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: 4\nTransfer-Encoding: chunked",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
    ),
    Case(
        "TE xchunked",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nTransfer-Encoding: xchunked",
            CM_BODY,
        ),
    ),
    Case(
        "TE gzip, chunked",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nTransfer-Encoding: gzip, chunked",
            b"0\r\n\r\n",
        ),
    ),
    Case("chunk size zz", _chunked(f"POST {CM} HTTP/1.1", b"zz\r\nhello\r\n0\r\n\r\n")),
    Case(
        "chunk size 2^64",
        _chunked(f"POST {CM} HTTP/1.1", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ),
    Case("chunk longer than said", _chunked(f"POST {CM} HTTP/1.1", b"2\r\nhello\r\n0\r\n\r\n")),
    Case(
        "chunk extension 20 KB",
        _chunked(f"POST {CM} HTTP/1.1", b"5;" + b"x" * 20_000 + b"\r\nhello\r\n0\r\n\r\n"),
    ),
    Case("no last chunk", _chunked(f"POST {CM} HTTP/1.1", b"5\r\nhello\r\n"), incomplete=True),
    Case(
        "trailers galore",
        _chunked(
            f"POST {CM} HTTP/1.1",
            b"0\r\n" + b"".join(b"T-%d: v\r\n" % i for i in range(300)) + b"\r\n",
        ),
    ),
    Case(
        "body 4 MB chunked",
        _chunked(
            f"POST {CM} HTTP/1.1",
            b"".join(b"100000\r\n" + b"a" * 0x100000 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n",
        ),
    ),
    # -- bodies
    Case(
        "JSON cut short",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: LEN", b'{"kind":'
        ),
    ),
    Case(
        "JSON array",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: LEN", b"[]"),
    ),
    Case(
        "JSON null",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: LEN", b"null"),
    ),
    Case(
        "JSON with NaN",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: LEN",
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},"x":NaN}',
        ),
    ),
    Case(
        "invalid UTF-8 in JSON",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: LEN",
            b'{"metadata":"\xff\xfe"}',
        ),
    ),
    Case(
        "BOM then JSON",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(CM_BODY) + 3}",
            b"\xef\xbb\xbf" + CM_BODY,
        ),
    ),
    Case(
        "YAML with tabs",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/yaml\nContent-Length: LEN",
            b"a:\n\t- b: [\n",
        ),
    ),
    Case(
        "YAML two documents",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/yaml\nContent-Length: LEN",
            b"kind: A\n---\nkind: B\n",
        ),
    ),
    Case(
        "YAML python tag",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/yaml\nContent-Length: LEN",
            b"!!python/object/apply:os.system ['true']\n",
        ),
    ),
    Case(
        "protobuf garbage",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/vnd.kubernetes.protobuf\nContent-Length: LEN",
            b"\x00\x01\x02garbage\xff\xff\xff\xff\xff\xff",
        ),
    ),
    Case(
        "protobuf magic, garbage",
        _req(
            f"POST {CM} HTTP/1.1\nContent-Type: application/vnd.kubernetes.protobuf\nContent-Length: LEN",
            b"k8s\x00\x0a\xff\xff\xff\xff\x0f\x12\x00",
        ),
    ),
    Case(
        "text/plain body",
        _req(f"POST {CM} HTTP/1.1\nContent-Type: text/plain\nContent-Length: LEN", b"hello"),
    ),
    Case("no Content-Type", _req(f"POST {CM} HTTP/1.1\nContent-Length: {len(CM_BODY)}", CM_BODY)),
    Case("PATCH without type", _req(f"PATCH {CM}/m HTTP/1.1\nContent-Length: LEN", b"{}")),
    Case(
        "apply-patch, JSON list",
        _req(
            f"PATCH {CM}/m?fieldManager=t HTTP/1.1\nContent-Type: application/apply-patch+yaml\nContent-Length: LEN",
            b"[]",
        ),
    ),
    Case(
        "json-patch not a list",
        _req(
            f"PATCH {CM}/m HTTP/1.1\nContent-Type: application/json-patch+json\nContent-Length: LEN",
            b"{}",
        ),
    ),
    Case(
        "json-patch bad op",
        _req(
            f"PATCH {CM}/m HTTP/1.1\nContent-Type: application/json-patch+json\nContent-Length: LEN",
            b'[{"op":"explode","path":"/"}]',
        ),
    ),
    # -- methods and paths
    Case(
        "PUT a collection",
        _req(
            f"PUT {CM} HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(CM_BODY)}",
            CM_BODY,
        ),
    ),
    Case("POST /version", _req("POST /version HTTP/1.1\nContent-Length: 0")),
    Case("DELETE /api", _req("DELETE /api HTTP/1.1")),
    Case("traversal ../..", _req("GET /api/v1/namespaces/../../../etc/passwd HTTP/1.1")),
    Case("traversal %2e%2e", _req("GET /api/v1/namespaces/%2e%2e/%2e%2e/configmaps HTTP/1.1")),
    Case("traversal %2f", _req(f"GET {CM}/..%2f..%2fsecrets HTTP/1.1")),
    Case("NUL in path", _req(f"GET {CM}/a%00b HTTP/1.1")),
    Case("double slashes", _req("GET //api//v1//namespaces HTTP/1.1")),
    Case("path of 2000 segments", _req("GET /api/v1/" + "a/" * 2000 + " HTTP/1.1")),
    Case(
        "log of no pod",
        _req("GET /api/v1/namespaces/default/pods/none/log?follow=true&container=../../x HTTP/1.1"),
    ),
    Case(
        "exec, no upgrade",
        _req(
            "POST /api/v1/namespaces/default/pods/none/exec?command=ls HTTP/1.1\nContent-Length: 0"
        ),
    ),
    Case("proxy to no node", _req("GET /api/v1/nodes/none/proxy/../../etc HTTP/1.1")),
    # -- query parameters
    *(
        Case(f"?{q}", _req(f"GET {CM}?{q} HTTP/1.1"))
        for q in [
            "limit=-1",
            "limit=abc",
            f"limit={2**70}",
            "continue=garbage",
            "continue=%00",
            "watch=maybe",
            "watch=1&resourceVersion=abc",
            "watch=1&timeoutSeconds=x",
            "watch=1&timeoutSeconds=-5",
            "resourceVersion=-1",
            "resourceVersionMatch=Bogus",
            "resourceVersion=0&resourceVersionMatch=Exact",
            "labelSelector=a=b=c",
            "labelSelector=!!",
            "labelSelector=(x",
            "labelSelector=a+in+(b",
            "labelSelector=" + "a" * 5000,
            "fieldSelector=foo==bar==",
            "fieldSelector=metadata.name=x,=",
            "fieldSelector=spec.bogus=1",
            "pretty=maybe",
            "%zz",
            "&&&===",
            "allowWatchBookmarks=x&watch=1&timeoutSeconds=1",
            "sendInitialEvents=true",
            "&".join(f"p{i}=v" for i in range(3000)),
        ]
    ),
    Case(
        "POST dryRun=Maybe",
        _req(
            f"POST {CM}?dryRun=Maybe HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(CM_BODY)}",
            CM_BODY,
        ),
    ),
    Case(
        "POST fieldValidation=Bogus",
        _req(
            f"POST {CM}?fieldValidation=Bogus HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(CM_BODY)}",
            CM_BODY,
        ),
    ),
    Case(
        "POST fieldManager of 300",
        _req(
            f"POST {CM}?fieldManager={'m' * 300} HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(CM_BODY)}",
            CM_BODY,
        ),
    ),
    Case("DELETE propagationPolicy=Bogus", _req(f"DELETE {CM}/m?propagationPolicy=Bogus HTTP/1.1")),
    Case("DELETE gracePeriodSeconds=abc", _req(f"DELETE {CM}/m?gracePeriodSeconds=abc HTTP/1.1")),
    Case("deletecollection, bad selector", _req(f"DELETE {CM}?labelSelector=!! HTTP/1.1")),
    # -- credentials
    Case("no token", _req(f"GET {CM} HTTP/1.1", auth=False)),
    Case("empty Bearer", _req(f"GET {CM} HTTP/1.1\nAuthorization: Bearer ", auth=False)),
    Case("Basic", _req(f"GET {CM} HTTP/1.1\nAuthorization: Basic YWRtaW46YWRtaW4=", auth=False)),
    Case(
        "token of 20 KB",
        _req(f"GET {CM} HTTP/1.1\nAuthorization: Bearer {'t' * 20_000}", auth=False),
    ),
    Case(
        "token not ASCII",
        "GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u00fc\u00ff\r\n\r\n".encode(),
    ),
    Case("two Authorizations", _req(f"GET {CM} HTTP/1.1\nAuthorization: Bearer wrong")),
    # -- not even TLS
    Case("plain HTTP on TLS", b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n", plain=True),
    Case("garbage for a ClientHello", b"\x16\x03\x01\xff\xff" + b"\x00" * 100, plain=True),
]

INGRESS_CASES = [
    Case("not HTTP", b"HELLO THERE\r\n\r\n"),
    Case("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: web.test\r\n\r\n"),
    Case("no Host", b"GET / HTTP/1.1\r\n\r\n"),
    Case("unknown method", b"BREW / HTTP/1.1\r\nHost: web.test\r\n\r\n"),
    Case("URL of 20 KB", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: web.test\r\n\r\n"),
    Case(
        "header of 40 KB",
        b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
    ),
    Case("NUL in a header", b"GET / HTTP/1.1\r\nHost: web.test\r\nX: a\x00b\r\n\r\n"),
    Case(
        "CL and chunked",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    Case(
        "two Content-Lengths",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ),
    Case("Content-Length -1", b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: -1\r\n\r\n"),
    Case(
        "chunk size zz",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ),
    Case(
        "chunk size 2^64",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n0\r\n\r\n",
    ),
    Case("traversal", b"GET /../../etc/passwd HTTP/1.1\r\nHost: web.test\r\n\r\n"),
    Case("absolute URI", b"GET http://other.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n"),
    Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    Case("CONNECT", b"CONNECT web.test:80 HTTP/1.1\r\nHost: web.test\r\n\r\n"),
    Case(
        "upgrade to websocket",
        b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ),
    Case("50 pipelined", b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n" * 50),
    Case(
        "no last chunk",
        b"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        incomplete=True,
    ),
]


@dataclass
class Outcome:
    status: int | None  # None: closed without an answer
    seconds: float
    hung: bool = False


async def _send(
    host: str, port: int, case: Case, *, tls: ssl.SSLContext | None, token: str
) -> Outcome:
    """Write the case on a fresh connection; the first answer's status, or how it ended."""
    started = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        # A request left incomplete is owed no answer: waiting a little shows no 5xx.
        async with asyncio.timeout(0.5 if case.incomplete else DEADLINE):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=None if case.plain else tls
            )
            writer.write(case.data.replace(b"TOKEN", token.encode()))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            head = b""
            while b"\r\n" not in head:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                head += chunk
        if not head.startswith(b"HTTP/"):
            return Outcome(None, time.monotonic() - started)
        return Outcome(int(head.split(b" ", 2)[1]), time.monotonic() - started)
    except TimeoutError:
        return Outcome(None, time.monotonic() - started, hung=not case.incomplete)
    except (ConnectionError, ssl.SSLError, OSError):
        return Outcome(None, time.monotonic() - started)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _api_canary(up: UpProcess) -> None:
    creds = up.credentials
    connector = aiohttp.TCPConnector(ssl=up.tls(), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.timeout(DEADLINE):
            async with session.get(
                f"{creds.server}/api/v1/namespaces/default/configmaps",
                headers={"Authorization": f"Bearer {creds.token}"},
            ) as reply:
                assert reply.status == 200, reply.status


async def _ingress_canary(up: UpProcess) -> None:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.timeout(DEADLINE):
            async with session.get(f"{up.ingress_url}/", headers={"Host": "web.test"}) as r:
                assert r.status == 200, r.status


async def _attack(
    up: UpProcess,
    cases: list[Case],
    *,
    port: int,
    tls: ssl.SSLContext | None,
    canary: object,
) -> tuple[list[str], dict[str, int]]:
    """Every case ``trials`` times; what went wrong, and the answers by status."""
    problems: list[str] = []
    answers: dict[str, int] = {}
    token = up.credentials.token
    for _ in range(ROUNDS):
        for case in cases:
            outcome = await _send("127.0.0.1", port, case, tls=tls, token=token)
            key = str(outcome.status) if outcome.status else "closed"
            answers[key] = answers.get(key, 0) + 1
            if outcome.hung:
                problems.append(f"{case.name}: no answer in {DEADLINE} s")
            if outcome.status is not None and outcome.status >= 500:
                problems.append(f"{case.name}: {outcome.status}")
            try:
                await canary(up)  # type: ignore[operator]
            except (AssertionError, OSError, TimeoutError, aiohttp.ClientError) as exc:
                problems.append(f"after {case.name}: a real request failed: {exc!r}")
            if up.proc.returncode is not None:
                problems.append(f"{case.name}: procorch exited\n{up.log_tail()}")
                return problems, answers
    return problems, answers


@pytest.mark.slow
async def test_malformed_requests_to_the_api_never_get_a_5xx_or_a_hang(tmp_path: Path) -> None:
    async with procorch_up(tmp_path / "data", "--no-node") as up:
        await up.wait_ready()
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        problems, answers = await _attack(
            up, API_CASES, port=up.api_port, tls=unverified, canary=_api_canary
        )
        paths, unauthorized = await _every_path_without_a_token(up)
        log = up.log_path.read_text(errors="replace")
        assert await up.stop() == 0
    assert not problems, "\n".join(problems)
    assert not unauthorized, "\n".join(unauthorized[:20])
    assert "Unhandled exception" not in log, log[log.index("Unhandled exception") - 200 :][:3000]
    report(
        "malformed HTTP: API",
        cases=len(API_CASES),
        requests=len(API_CASES) * ROUNDS,
        server_errors=0,
        hangs=0,
        answers=answers,
        paths_without_token=paths,
    )


PUBLIC = {"/version", "/readyz", "/livez", "/healthz"}
"""What Kubernetes lets anyone read (``system:public-info-viewer``)."""


async def _every_path_without_a_token(up: UpProcess) -> tuple[int, list[str]]:
    """Every path discovery lists (collections, objects, subresources) and the non-resource
    ones, with every verb, without a token and with a wrong one: 401, but for PUBLIC."""
    creds = up.credentials
    paths = ["/", "/api", "/apis", "/openapi/v2", "/openapi/v3", "/metrics", "/logs", *PUBLIC]
    connector = aiohttp.TCPConnector(ssl=up.tls())
    wrong: list[str] = []
    count = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        admin = {"Authorization": f"Bearer {creds.token}"}
        groups = [("", "v1")]
        async with session.get(f"{creds.server}/apis", headers=admin) as r:
            for group in (await r.json())["groups"]:
                groups += [(group["name"], v["version"]) for v in group["versions"]]
        for group, version in groups:
            base = f"/apis/{group}/{version}" if group else f"/api/{version}"
            paths.append(base)
            async with session.get(creds.server + base, headers=admin) as r:
                for res in (await r.json())["resources"]:
                    name, _, sub = res["name"].partition("/")
                    prefix = f"{base}/namespaces/default" if res["namespaced"] else base
                    paths.append(f"{prefix}/{name}/x/{sub}" if sub else f"{prefix}/{name}")
                    if not sub:
                        paths.append(f"{prefix}/{name}/x")
        for path in paths:
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    count += 1
                    async with session.request(
                        method, creds.server + path, headers=headers, data=b"{}"
                    ) as r:
                        expected = 200 if path in PUBLIC and method == "GET" else 401
                        if path in PUBLIC and method != "GET":
                            expected = r.status if r.status < 500 else 401
                        if r.status != expected:
                            wrong.append(f"{method} {path} {headers}: {r.status}")
    return count, wrong


@pytest.mark.slow
async def test_malformed_requests_to_the_ingress_never_get_a_5xx_or_a_hang(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with node_dir_cleanup(data), procorch_up(data) as up:
        await up.wait_ready()
        await serve_web(up, replicas=1)

        async def routed() -> bool:
            await _ingress_canary(up)
            return True

        await wait_for(routed, timeout=30, what="the Ingress routing to the pod")
        problems, answers = await _attack(
            up, INGRESS_CASES, port=up.ingress_port, tls=None, canary=_ingress_canary
        )
        assert await up.stop() == 0
    assert not problems, "\n".join(problems)
    report(
        "malformed HTTP: Ingress",
        cases=len(INGRESS_CASES),
        requests=len(INGRESS_CASES) * ROUNDS,
        server_errors=0,
        hangs=0,
        answers=answers,
    )
