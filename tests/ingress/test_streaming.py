"""Bodies stream through the router both ways, with flow control: never buffered whole."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable

import aiohttp
import psutil
from aiohttp import web

from procorch.proxy.ingress import IngressRouter
from tests.ingress.conftest import Api, Backend, routed, rule

Start = Callable[..., Awaitable[Backend]]
MiB = 1024 * 1024


def buffered(router: IngressRouter) -> int:
    """Bytes the router holds for its connections right now (read ahead or unsent)."""
    total = 0
    for conn in router.conns:
        total += conn.transport.get_write_buffer_size()
        for ex in conn.exchanges:
            total += ex.pending_size
            if ex.upstream is not None:
                total += ex.upstream.transport.get_write_buffer_size()
    return total


async def setup(router: IngressRouter, api: Api, backends: Start) -> Backend:
    web_backend = await backends("web")
    await api.service("web", [web_backend.addr])
    await api.ingress("site", {"rules": [rule("/", "web")]})
    async with aiohttp.ClientSession() as session:
        await routed(session, f"{router.url}/")
    return web_backend


async def test_a_request_and_its_response_stream_chunk_by_chunk(
    router: IngressRouter, api: Api, backends: Start
) -> None:
    """Each chunk sent must come back through the echo before the next is sent: a router that
    waited for the whole request (or response) would deadlock here."""
    await setup(router, api, backends)
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
    try:
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        head = b""
        received = b""
        for i in range(5):
            piece = f"piece-{i};".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            async with asyncio.timeout(5):
                while piece not in received:
                    data = await reader.read(65536)
                    assert data, "router closed the connection"
                    if not head:
                        end = data.index(b"\r\n\r\n") + 4
                        head, data = data[:end], data[end:]
                    received += data
        assert head.startswith(b"HTTP/1.1 200")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            while not received.endswith(b"0\r\n\r\n"):
                received += await reader.read(65536)
    finally:
        writer.close()


async def test_large_bodies_both_ways_arrive_intact_with_bounded_memory(
    router: IngressRouter, api: Api, backends: Start
) -> None:
    await setup(router, api, backends)
    size = 48 * MiB
    block = os.urandom(MiB)
    expected = hashlib.sha256(block * (size // MiB)).hexdigest()
    me = psutil.Process()
    baseline = me.memory_info().rss
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, me.memory_info().rss - baseline)
            await asyncio.sleep(0.005)

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(size // MiB):
            yield block

    sampler = asyncio.create_task(sample())
    digest = hashlib.sha256()
    got = 0
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{router.url}/echo", data=body()) as response:
                assert response.status == 200
                async for chunk in response.content.iter_any():
                    digest.update(chunk)
                    got += len(chunk)
    finally:
        sampling = False
        await sampler
    assert got == size
    assert digest.hexdigest() == expected
    # Client, router and backend share this process: all of them together stay far below
    # the body's size.
    assert peak < size // 3, f"memory grew by {peak} bytes"


async def test_a_stalled_upstream_stops_the_client_being_read(
    router: IngressRouter, api: Api, backends: Start
) -> None:
    backend = await setup(router, api, backends)
    release = asyncio.Event()

    async def stalled(request: web.Request) -> web.StreamResponse:
        await release.wait()  # reads nothing until told
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.Response(text=str(total))

    backend.extra["/stall"] = stalled
    size = 64 * MiB

    async def body():  # type: ignore[no-untyped-def]
        block = b"z" * MiB
        for _ in range(size // MiB):
            yield block

    async with aiohttp.ClientSession() as session:
        upload = asyncio.create_task(_post(session, f"{router.url}/stall", body()))
        await asyncio.sleep(1.0)
        held = buffered(router)
        release.set()
        assert await upload == str(size)
    # The kernel's socket buffers hold some; the router itself only its buffer limits.
    assert held < 2 * MiB, f"router held {held} bytes for a stalled upstream"


async def test_a_client_that_does_not_read_stops_the_upstream_being_read(
    router: IngressRouter, api: Api, backends: Start
) -> None:
    backend = await setup(router, api, backends)
    size = 64 * MiB

    async def firehose(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = size
        await response.prepare(request)
        block = b"f" * MiB
        for _ in range(size // MiB):
            await response.write(block)
        return response

    backend.extra["/firehose"] = firehose
    reader, writer = await asyncio.open_connection("127.0.0.1", router.port, limit=64 * 1024)
    try:
        writer.write(b"GET /firehose HTTP/1.1\r\nHost: h\r\n\r\n")
        await writer.drain()
        await reader.read(1024)
        # Stop reading: only the socket buffers and the router's high-water marks fill.
        writer.transport.pause_reading()
        await asyncio.sleep(1.0)
        held = buffered(router)
        writer.transport.resume_reading()
        got = 0
        async with asyncio.timeout(30):
            while got < size - 1024:
                chunk = await reader.read(1 << 20)
                assert chunk
                got += len(chunk)
    finally:
        writer.close()
    assert held < 2 * MiB, f"router held {held} bytes for a client that does not read"


async def _post(session: aiohttp.ClientSession, url: str, data: object) -> str:
    async with session.post(url, data=data) as response:
        return await response.text()
