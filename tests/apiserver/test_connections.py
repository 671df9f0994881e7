"""The API port against slow and idle clients: handshake and head deadlines, the bound on
unauthenticated connections, and the open-files limit procorch raises for itself."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import resource
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from procorch.apiserver.connections import ConnectionLimits
from procorch.apiserver.controlplane import ControlPlane

LIMITS = ConnectionLimits(
    handshake_timeout=1.0, header_timeout=1.0, max_unauthenticated=4, grace=0.0, sweep_interval=0.1
)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    (tmp_path / "data").mkdir()
    cp = ControlPlane(tmp_path / "data", port=0)
    cp.http.limits = LIMITS
    await cp.start()
    try:
        yield cp
    finally:
        await cp.stop()


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server closes the connection within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return True


async def authenticated_get(cp: ControlPlane, session: aiohttp.ClientSession) -> int:
    async with session.get(
        cp.url + "/api/v1/namespaces/default/configmaps",
        headers={"Authorization": f"Bearer {cp.admin_token}"},
    ) as reply:
        await reply.read()
        return reply.status


async def test_a_connection_that_never_starts_tls_is_closed_after_the_handshake_timeout(
    plane: ControlPlane,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane.http.port)
    try:
        assert await closed_by_server(reader, within=LIMITS.handshake_timeout + 2)
    finally:
        writer.close()


async def test_a_request_head_sent_too_slowly_is_cut_off(plane: ControlPlane) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane.http.port, ssl=unverified())
    try:
        writer.write(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n")
        started = asyncio.get_running_loop().time()
        cut = False
        for _ in range(40):  # a byte every 0.1 s: never a complete head
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                cut = True
                break
            if reader.at_eof():
                cut = True
                break
            await asyncio.sleep(0.1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    if not await reader.read(1024):
                        cut = True
                        break
        assert cut
        assert asyncio.get_running_loop().time() - started < LIMITS.header_timeout + 1.5
        assert plane.http.connections is not None and plane.http.connections.timed_out >= 1
    finally:
        writer.close()


async def test_idle_unauthenticated_connections_are_bounded_oldest_first_and_clients_served(
    plane: ControlPlane,
) -> None:
    guard = plane.http.connections
    assert guard is not None
    # This is about the bound, not the head deadline: the idle connections must not reach
    # LIMITS' 1 s deadline while the test looks at them one by one (0.2 s each when open).
    guard.limits = dataclasses.replace(LIMITS, header_timeout=30.0)
    context = ssl.create_default_context(cadata=plane.ca_pem.decode())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        # An authenticated keep-alive connection first: it is never counted or evicted.
        assert await authenticated_get(plane, session) == 200
        idle = [
            await asyncio.open_connection("127.0.0.1", plane.http.port, ssl=unverified())
            for _ in range(10)
        ]
        try:
            await asyncio.sleep(0.2)
            assert guard.unauthenticated_connections <= LIMITS.max_unauthenticated
            # The six oldest were closed; the four newest are open.
            closed = [reader.at_eof() or await _eof_soon(reader) for reader, _ in idle]
            assert closed == [True] * 6 + [False] * 4
            assert await authenticated_get(plane, session) == 200
            assert guard.evicted >= 6
        finally:
            for _, writer in idle:
                writer.close()


async def _eof_soon(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.2):
            return await reader.read(1) == b""
    return False


async def test_a_request_without_credentials_gets_401_and_its_connection_closed(
    plane: ControlPlane,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", plane.http.port, ssl=unverified())
    try:
        writer.write(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()  # to EOF: the server closes
        assert answer.startswith(b"HTTP/1.1 401")
        assert b"Connection: close" in answer
    finally:
        writer.close()


def test_procorch_raises_its_soft_open_files_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    code = (
        "import resource; from procorch.kit.limits import raise_open_files_limit;"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert out == [str(expected), str(expected)], (out, soft, hard)
