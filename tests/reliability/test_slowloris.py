"""Slow clients against a server with few file descriptors: the API keeps answering.

A slowloris attacker holds many connections open by sending a request head one byte at a
time; others open TCP connections and never start TLS. `procorch up` here runs with a
1,024-descriptor limit (soft and hard: a common default it cannot raise), so the attacker can
hold more connections than the server has descriptors, unless the server bounds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from pathlib import Path

import aiohttp
import pytest
from reliability_harness import procorch_up, raise_own_open_files, trials

ATTACKERS = 1_100  # slow TLS clients: more than the server's descriptor limit
SILENT = 200  # TCP connections that never send a ClientHello
OPEN_RATE = 400  # new attacker connections per second (slowhttptest's default is 50)
WINDOW = 8.0  # seconds of attack during which a real client must be served


async def _slow_client(
    host: str, port: int, tls: ssl.SSLContext | None, stop: asyncio.Event
) -> None:
    """Sends a request head one byte every two seconds, and never finishes it."""
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        try:
            head = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await stop.wait()
                if stop.is_set() or reader.at_eof():
                    return
        finally:
            writer.close()


async def _silent_client(host: str, port: int, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection(host, port)
        try:
            await stop.wait()
        finally:
            writer.close()


async def _attack(host: str, port: int, tls: ssl.SSLContext | None, stop: asyncio.Event) -> None:
    """Keeps ATTACKERS slow clients and SILENT silent ones connected, reconnecting those the
    server closes, opening at most OPEN_RATE connections a second."""
    running: set[asyncio.Task[None]] = set()
    try:
        while not stop.is_set():
            slow = sum(1 for t in running if t.get_name() == "slow")
            silent = len(running) - slow
            want = [("slow", ATTACKERS - slow), ("silent", SILENT - silent)]
            budget = OPEN_RATE // 10
            for kind, missing in want:
                for _ in range(min(missing, budget)):
                    coro = (
                        _slow_client(host, port, tls, stop)
                        if kind == "slow"
                        else _silent_client(host, port, stop)
                    )
                    task = asyncio.create_task(coro, name=kind)
                    running.add(task)
                    task.add_done_callback(running.discard)
                    budget -= 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stop.wait()
    finally:
        stop.set()
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


@pytest.mark.slow
async def test_the_api_serves_its_clients_through_a_slowloris_attack_under_a_low_fd_limit(
    tmp_path: Path,
) -> None:
    if not raise_own_open_files(4 * (ATTACKERS + SILENT)):
        pytest.skip("the attacker needs more file descriptors than this machine allows")
    async with procorch_up(tmp_path / "data", "--no-node", open_files=1024) as up:
        await up.wait_ready()
        creds = up.credentials
        tls_unverified = ssl.create_default_context()
        tls_unverified.check_hostname = False
        tls_unverified.verify_mode = ssl.CERT_NONE
        for _ in range(trials(1)):
            stop = asyncio.Event()
            attack = asyncio.create_task(_attack("127.0.0.1", up.api_port, tls_unverified, stop))
            latencies: list[float] = []
            failures: list[str] = []
            try:
                await asyncio.sleep(2.0)  # let the attacker reach full strength
                deadline = time.monotonic() + WINDOW
                while time.monotonic() < deadline:
                    # A new connection per request, as kubectl makes: the hardest case.
                    started = time.monotonic()
                    try:
                        connector = aiohttp.TCPConnector(ssl=up.tls(), force_close=True)
                        async with aiohttp.ClientSession(connector=connector) as session:
                            async with asyncio.timeout(5):
                                async with session.get(
                                    f"{creds.server}/api/v1/namespaces/default/configmaps",
                                    headers={"Authorization": f"Bearer {creds.token}"},
                                ) as reply:
                                    assert reply.status == 200
                                    await reply.read()
                        latencies.append(time.monotonic() - started)
                    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                        failures.append(repr(exc))
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
                await attack
            assert not failures, (
                f"{len(failures)} of {len(failures) + len(latencies)} failed: {failures[:3]}"
            )
            assert len(latencies) >= 10
            latencies.sort()
            assert latencies[len(latencies) // 2] < 1.0, latencies
        assert up.proc.returncode is None
