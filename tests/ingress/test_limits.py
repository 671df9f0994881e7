"""Slow, oversized and malformed clients are cut off; they cannot hold the router."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from procorch.proxy.ingress import IngressRouter
from tests.ingress.conftest import Api, Backend, raw_request, routed, rule

Start = Callable[..., Awaitable[Backend]]


async def routed_router(
    make_router: Callable[..., Awaitable[IngressRouter]],
    api: Api,
    backends: Start,
    **settings: float,
) -> IngressRouter:
    router = await make_router(**settings)
    backend = await backends("web")
    await api.service("web", [backend.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    async with aiohttp.ClientSession() as session:
        await routed(session, f"{router.url}/")
    return router


async def test_oversized_heads_get_431_or_414_and_the_connection_closes(
    make_router: Callable[..., Awaitable[IngressRouter]], api: Api, backends: Start
) -> None:
    router = await routed_router(make_router, api, backends)
    big_header = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert (await raw_request(router.port, big_header)).startswith(b"HTTP/1.1 431")
    many = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150))
    assert (await raw_request(router.port, many + b"\r\n")).startswith(b"HTTP/1.1 431")
    long_url = b"GET /" + b"u" * 10_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert (await raw_request(router.port, long_url)).startswith(b"HTTP/1.1 414")
    # A header that never ends: refused once it passes the limit, not buffered for ever.
    endless = b"GET / HTTP/1.1\r\nHost: h\r\nX-Endless: " + b"a" * 100_000
    assert (await raw_request(router.port, endless)).startswith(b"HTTP/1.1 431")


async def test_malformed_requests_get_400_and_the_connection_closes(
    make_router: Callable[..., Awaitable[IngressRouter]], api: Api, backends: Start
) -> None:
    router = await routed_router(make_router, api, backends)
    for garbage in (
        b"HELLO THERE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        answer = await raw_request(router.port, garbage)
        assert answer.startswith(b"HTTP/1.1 400"), (garbage, answer)
        assert b"Connection: close" in answer


async def test_slow_heads_and_bodies_get_408_and_idle_connections_are_closed(
    make_router: Callable[..., Awaitable[IngressRouter]], api: Api, backends: Start
) -> None:
    router = await routed_router(
        make_router,
        api,
        backends,
        header_timeout=0.5,
        body_timeout=0.5,
        keepalive_timeout=0.5,
    )

    async def trickle(data: bytes, *, every: float) -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        started = time.monotonic()
        try:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await asyncio.sleep(every)
                if reader.at_eof() or writer.is_closing():
                    break
                if reader._buffer:  # noqa: SLF001 - an answer has come
                    break
            async with asyncio.timeout(5):
                answer = await reader.read()
            return answer, time.monotonic() - started
        except ConnectionError:
            # Our next byte met the closed socket and the reset came back; what the router
            # answered before closing is still in the buffer (asyncio raises before it).
            return bytes(reader._buffer), time.monotonic() - started  # noqa: SLF001
        finally:
            writer.close()

    # Slowloris: a byte every 50 ms never finishes the head in time.
    answer, took = await trickle(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"s" * 200, every=0.05)
    assert answer.startswith(b"HTTP/1.1 408") and took < 2.0, (answer, took)
    # A body that stops coming.
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
    async with asyncio.timeout(3):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    # Connected, said nothing: closed without an answer. Idle after a request: closed too.
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    async with asyncio.timeout(3):
        assert await reader.read() == b""
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    async with asyncio.timeout(3):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"}")
    await asyncio.sleep(0.2)
    assert not router.conns


async def test_connections_beyond_the_limit_are_refused_at_accept(
    make_router: Callable[..., Awaitable[IngressRouter]], api: Api, backends: Start
) -> None:
    router = await routed_router(make_router, api, backends, max_connections=5)
    held = [await asyncio.open_connection("127.0.0.1", router.port) for _ in range(5)]
    try:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        async with asyncio.timeout(3):
            try:
                assert await reader.read() == b""
            except ConnectionResetError:
                pass
        writer.close()
        # The ones already in are served.
        reader, writer = held[0]
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(3):
            assert (await reader.read()).startswith(b"HTTP/1.1 200")
    finally:
        for _, writer in held:
            writer.close()


async def test_beyond_the_bound_the_oldest_connection_waiting_for_a_request_is_closed(
    make_router: Callable[..., Awaitable[IngressRouter]], api: Api, backends: Start
) -> None:
    """Silent and idle connections hold descriptors: past ``max_waiting_connections`` the
    oldest goes (not the newest, which is most likely a real client about to ask), and a
    connection busy with a request is never one of them."""
    router = await routed_router(
        make_router, api, backends, max_waiting_connections=4, waiting_grace=0.0
    )
    # An idle keep-alive connection (it has been answered), then three silent ones.
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", router.port)
    idle_writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    async with asyncio.timeout(3):
        head = await idle_reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await idle_reader.readexactly(length)
    silent = [await asyncio.open_connection("127.0.0.1", router.port) for _ in range(3)]
    try:
        deadline = time.monotonic() + 3
        while len(router.waiting) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(router.waiting) == 4
        # A fifth: the idle one (the oldest waiting) is closed; the fifth is served.
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(3):
            assert (await reader.read()).startswith(b"HTTP/1.1 200")
            assert await idle_reader.read() == b""
        writer.close()
        assert router.waiting.evicted == 1
        # Three silent ones wait; two more come: the first silent one goes.
        for _ in range(2):
            silent.append(await asyncio.open_connection("127.0.0.1", router.port))
        async with asyncio.timeout(3):
            assert await silent[0][0].read() == b""
        assert router.waiting.evicted == 2
    finally:
        idle_writer.close()
        for _, w in silent:
            w.close()


async def test_a_client_that_pipelines_without_reading_is_not_read_either(
    make_router: Callable[..., Awaitable[IngressRouter]],
) -> None:
    """Thousands of pipelined requests for a missing route, answers never read: the router
    stops reading once its send buffer is full, instead of queueing 404s without end."""
    router = await make_router()
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.transport.pause_reading()
    flood = b"GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n" * 2000
    try:
        for _ in range(400):  # 26 MiB of requests, 76 MiB of answers
            writer.write(flood)
            try:
                async with asyncio.timeout(0.1):
                    await writer.drain()
            except TimeoutError:
                break  # the router stopped reading us: good
        await asyncio.sleep(0.3)  # let the router work through what it has read
        held = sum(c.transport.get_write_buffer_size() for c in router.conns)
        assert held < 1024 * 1024, f"router buffered {held} bytes of answers"
    finally:
        writer.transport.abort()
