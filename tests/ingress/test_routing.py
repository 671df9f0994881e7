"""Requests through a real router to real backends: routing, errors, balancing, connections."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp

from procorch.proxy.ingress import IngressRouter
from tests.ingress.conftest import (
    Api,
    Backend,
    eventually,
    get,
    raw_request,
    raw_server,
    routed,
    rule,
    unused_addr,
)

Start = Callable[..., Awaitable[Backend]]


async def test_routes_by_host_exact_and_wildcard_and_by_path(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    names = ["foo", "wild", "api", "exact", "root"]
    for name in names:
        backend = await backends(name)
        await api.service(name, [backend.addr])
    await api.ingress(
        "site",
        {
            "rules": [
                rule("/", "foo", host="foo.example.com"),
                rule("/", "wild", host="*.example.com"),
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/api",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "api", "port": {"number": 80}}},
                            },
                            {
                                "path": "/api/login",
                                "pathType": "Exact",
                                "backend": {"service": {"name": "exact", "port": {"name": "http"}}},
                            },
                        ]
                    }
                },
            ]
        },
    )
    url = router.url
    assert (await routed(session, f"{url}/x", host="foo.example.com"))["backend"] == "foo"
    assert (await routed(session, f"{url}/x", host="Bar.Example.com:80"))["backend"] == "wild"
    cases = {
        "/api": "api",
        "/api/": "api",
        "/api/users?limit=1": "api",
        "/api/login": "exact",
        "/api/login/": "api",
    }
    for path, expected in cases.items():
        status, body = await get(session, url + path, host="elsewhere.org")
        assert (status, body["backend"]) == (200, expected), path
        assert body["path"] == path  # forwarded unchanged
    # Prefix is per path segment; a wildcard host covers one label only.
    assert (await get(session, f"{url}/apix", host="elsewhere.org"))[0] == 404
    assert (await get(session, f"{url}/api", host="a.b.example.com"))[1]["backend"] == "api"
    status, body = await get(session, f"{url}/nothing", host="a.b.example.com")
    assert status == 404 and "not found" in body


async def test_default_backend_takes_what_no_rule_matches(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    for name in ("main", "fallback"):
        await api.service(name, [(await backends(name)).addr])
    await api.ingress(
        "site",
        {
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [rule("/app", "main", host="app.test")],
        },
    )
    assert (await routed(session, f"{router.url}/app/x", host="app.test"))["backend"] == "main"
    assert (await get(session, f"{router.url}/other", host="app.test"))[1]["backend"] == "fallback"
    assert (await get(session, f"{router.url}/app", host="x.test"))[1]["backend"] == "fallback"


async def test_no_ready_endpoint_is_503_at_once_and_a_refusing_backend_is_502(
    router: IngressRouter, api: Api, session: aiohttp.ClientSession
) -> None:
    await api.service("unready", [(*unused_addr(), False)])
    await api.service("refusing", [unused_addr()])  # nothing listens there
    await api.ingress(
        "site",
        {
            "rules": [
                rule("/unready", "unready"),
                rule("/refusing", "refusing"),
                rule("/ghost", "ghost"),
            ]
        },
    )
    await routed(session, f"{router.url}/unready", status=503)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await get(session, f"{router.url}/unready")
    assert status == 503 and "no ready endpoints" in body
    assert loop.time() - started < 0.5
    assert (await get(session, f"{router.url}/ghost"))[0] == 503  # no such Service
    status, body = await get(session, f"{router.url}/refusing")
    assert status == 502


async def test_responses_are_counted_by_backend_and_status(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    await api.service("main", [(await backends("main")).addr])
    await api.service("unready", [(*unused_addr(), False)])
    await api.ingress("site", {"rules": [rule("/app", "main"), rule("/unready", "unready")]})
    await routed(session, f"{router.url}/app")
    await routed(session, f"{router.url}/unready", status=503)
    before = dict(router.requests)
    for _ in range(3):
        assert (await get(session, f"{router.url}/app/x"))[0] == 200
    assert (await get(session, f"{router.url}/unready"))[0] == 503
    assert (await get(session, f"{router.url}/nowhere"))[0] == 404
    assert (await get(session, f"{router.url}/app", method="HEAD"))[0] == 200
    text = router.metrics_text()
    samples = {
        line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }
    name = "procorch_ingress_requests_total"
    main_200 = f'{name}{{namespace="default",service="main",code="200"}}'
    unready_503 = f'{name}{{namespace="default",service="unready",code="503"}}'
    main_before = sum(n for (b, code), n in before.items() if b and b.service == "main")
    unready_before = sum(n for (b, code), n in before.items() if b and b.service == "unready")
    assert samples[main_200] == main_before + 4
    assert samples[unready_503] == unready_before + 1
    assert samples[f'{name}{{namespace="",service="",code="404"}}'] == 1
    assert "# TYPE procorch_ingress_requests_total counter" in text


async def test_endpoints_are_balanced_round_robin_and_a_failed_connect_tries_another(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    one, two = await backends("one"), await backends("two")
    dead = unused_addr()
    await api.service("web", [one.addr, two.addr, dead])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    await routed(session, f"{router.url}/")
    seen = Counter()
    for _ in range(30):
        status, body = await get(session, f"{router.url}/")
        assert status == 200  # the dead endpoint never shows
        seen[body["backend"]] += 1
    assert seen["one"] >= 10 and seen["two"] >= 10, seen


async def test_an_endpoint_leaving_the_ready_set_gets_no_requests_and_loses_its_idle_connections(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    one, two = await backends("one"), await backends("two")
    await api.service("web", [one.addr, two.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    await routed(session, f"{router.url}/")
    for _ in range(6):
        await get(session, f"{router.url}/")
    assert router.pool.idle.get(two.addr)
    await api.slice("web", [one.addr, (two.ip, two.port, False)])
    await eventually(lambda: _no_idle(router, two.addr))
    before = two.requests
    for _ in range(10):
        assert (await get(session, f"{router.url}/"))[1]["backend"] == "one"
    assert two.requests == before


async def _no_idle(router: IngressRouter, addr: tuple[str, int]) -> bool:
    return not router.pool.idle.get(addr)


async def test_keep_alive_on_both_sides(router: IngressRouter, api: Api, backends: Start) -> None:
    web = await backends("web")
    await api.service("web", [web.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    opened = 0

    async def on_open(*_: object) -> None:
        nonlocal opened
        opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_open)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
        await routed(session, f"{router.url}/")
        opened = 0
        upstream_conns: set[int] = set()
        for _ in range(20):
            async with session.get(f"{router.url}/") as response:
                body = await response.json()
                assert response.headers.get("Connection", "").lower() != "close"
            upstream_conns.add(body["connection"])
    assert opened == 0  # every request on the connection opened while waiting for the route
    assert len(upstream_conns) == 1
    assert router.pool.reuses >= 19


async def test_forwarded_headers_and_hop_by_hop_headers(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    web = await backends("web")
    await api.service("web", [web.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    await routed(session, f"{router.url}/", host="shop.test")
    status, body = await get(
        session,
        f"{router.url}/h",
        host="shop.test:8080",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "gopher",
            "Connection": "X-Secret, keep-alive",
            "X-Secret": "drop me",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
        },
    )
    headers = {k.lower(): v for k, v in body["headers"].items()}
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "shop.test:8080"
    assert headers["x-forwarded-port"] == str(router.port)
    assert headers["host"] == "shop.test:8080"
    for hop in ("x-secret", "keep-alive", "te"):
        assert hop not in headers

    # The upstream's own hop-by-hop response fields do not reach the client.
    async def hop_response(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        return aiohttp.web.Response(
            text="ok", headers={"Keep-Alive": "timeout=1", "Connection": "X-Up", "X-Up": "1"}
        )

    web.extra["/hop"] = hop_response
    async with session.get(f"{router.url}/hop") as response:
        assert await response.text() == "ok"
        assert "Keep-Alive" not in response.headers and "X-Up" not in response.headers


async def test_head_chunked_uploads_and_pipelining(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    web = await backends("web")
    await api.service("web", [web.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    await routed(session, f"{router.url}/")
    async with session.head(f"{router.url}/h") as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 0
    # HEAD does not leave the upstream connection expecting a body: the next request works.
    assert (await get(session, f"{router.url}/after-head"))[1]["path"] == "/after-head"

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"x" * 1000

    async with session.post(f"{router.url}/up", data=chunks()) as response:
        assert (await response.json())["body"] == 5000
    # Three pipelined requests on one connection, answered in order.
    pipelined = b"".join(
        f"GET /p{i} HTTP/1.1\r\nHost: h\r\n{'Connection: close' if i == 2 else 'X: y'}\r\n\r\n".encode()
        for i in range(3)
    )
    answer = await raw_request(router.port, pipelined)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b"/p0") < answer.index(b"/p1") < answer.index(b"/p2")
    # A client that half-closes after asking still gets its answers, then the close.
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(b"GET /half HTTP/1.1\r\nHost: h\r\n\r\nGET /closed HTTP/1.1\r\nHost: h\r\n\r\n")
    writer.write_eof()
    async with asyncio.timeout(5):
        answer = await reader.read(-1)
    writer.close()
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and b"/closed" in answer


async def test_a_reused_connection_that_the_endpoint_closes_is_retried_on_a_fresh_one(
    router: IngressRouter, api: Api, session: aiohttp.ClientSession
) -> None:
    """The race of reusing a keep-alive connection just as the server closes it: this server
    answers the first request of each connection and drops the connection at the second."""
    served: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            count = 0
            while await reader.readuntil(b"\r\n\r\n"):
                count += 1
                if count == 2:
                    return  # closes without answering
                served.append(count)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server, addr = await raw_server(serve)
    try:
        await api.service("flaky", [addr])
        await api.ingress("site", {"rules": [rule("/", "flaky")]})
        await routed(session, f"{router.url}/")
        for method in ("GET", "PUT", "DELETE"):
            assert await get(session, f"{router.url}/", method=method) == (200, "ok")
        assert router.pool.reuses >= 3
        # A POST is not idempotent: it is not replayed, the client gets the 502.
        assert (await get(session, f"{router.url}/", method="POST", data=b"x"))[0] == 502
    finally:
        server.close()
        await server.wait_closed()


async def test_expect_continue_and_http_1_0_clients(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    web = await backends("web")
    await api.service("web", [web.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    await routed(session, f"{router.url}/")
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    try:
        writer.write(
            b"POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(b"hello")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    answer = await raw_request(router.port, b"GET /old HTTP/1.0\r\nHost: h\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    assert b"Transfer-Encoding: chunked" not in head
    assert b'"/old"' in body


async def test_eof_delimited_garbage_and_silent_upstreams(
    make_router: Callable[..., Awaitable[IngressRouter]],
    api: Api,
    session: aiohttp.ClientSession,
) -> None:
    router = await make_router(read_timeout=0.5)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /eof "):
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
            elif head.startswith(b"GET /garbage "):
                writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            else:
                await asyncio.sleep(3)  # says nothing
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server, addr = await raw_server(serve)
    try:
        await api.service("odd", [addr])
        await api.ingress("site", {"rules": [rule("/", "odd")]})
        await routed(session, f"{router.url}/eof")
        assert await get(session, f"{router.url}/eof") == (200, "until the end")
        assert (await get(session, f"{router.url}/garbage"))[0] == 502
        started = asyncio.get_running_loop().time()
        assert (await get(session, f"{router.url}/silent"))[0] == 504
        assert asyncio.get_running_loop().time() - started < 2.0
        # Each answer is counted, the EOF-delimited ones included.
        counts: dict[int, int] = {}
        for (_, code), n in router.requests.items():
            counts[code] = counts.get(code, 0) + n
        assert counts[200] >= 2 and counts[502] == 1 and counts[504] == 1
    finally:
        server.close()
        await server.wait_closed()
