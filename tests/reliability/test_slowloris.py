"""Slow clients against a server with few file descriptors: the API and the Ingress keep
answering.

A slowloris attacker holds many connections open by sending a request head one byte at a
time; others open TCP connections and never send anything (nor start TLS). `procorch up` here
runs with a 1,024-descriptor limit (soft and hard: a common default it cannot raise), so the
attacker can hold more connections than the server has descriptors, unless the server bounds
them. Meanwhile a real client, opening a new connection for each request (the hardest case),
must be served every time, quickly.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from reliability_harness import (
    OPEN_RATE,
    SILENT_CLIENTS,
    SLOW_CLIENTS,
    node_dir_cleanup,
    procorch_up,
    raise_own_open_files,
    report,
    serve_web,
    slowloris,
    trials,
    wait_for,
)

WINDOW = 5.0  # seconds of attack during which a real client must be served
FD_LIMIT = 1024


async def _served(
    request: Callable[[], Awaitable[None]], *, host: str, port: int, tls: ssl.SSLContext | None
) -> tuple[list[float], list[str]]:
    """Under a full-strength attack on ``host:port``, ``request`` every 0.2 s for WINDOW
    seconds: its latencies and failures."""
    stop = asyncio.Event()
    attack = asyncio.create_task(slowloris(host, port, tls, stop))
    latencies: list[float] = []
    failures: list[str] = []
    try:
        # The attacker reaches full strength (SLOW + SILENT connections) in ~3.3 s.
        await asyncio.sleep((SLOW_CLIENTS + SILENT_CLIENTS) / OPEN_RATE)
        deadline = time.monotonic() + WINDOW
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                async with asyncio.timeout(5):
                    await request()
                latencies.append(time.monotonic() - started)
            except (OSError, TimeoutError, aiohttp.ClientError, AssertionError) as exc:
                failures.append(repr(exc))
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await attack
    return latencies, failures


def _check(latencies: list[float], failures: list[str]) -> None:
    assert not failures, (
        f"{len(failures)} of {len(failures) + len(latencies)} failed: {failures[:3]}"
    )
    assert len(latencies) >= 10
    latencies.sort()
    assert latencies[len(latencies) // 2] < 1.0, latencies


@pytest.mark.slow
async def test_the_api_serves_its_clients_through_a_slowloris_attack_under_a_low_fd_limit(
    tmp_path: Path,
) -> None:
    if not raise_own_open_files(4 * (SLOW_CLIENTS + SILENT_CLIENTS)):
        pytest.skip("the attacker needs more file descriptors than this machine allows")
    async with procorch_up(tmp_path / "data", "--no-node", open_files=FD_LIMIT) as up:
        await up.wait_ready()
        creds = up.credentials
        tls_unverified = ssl.create_default_context()
        tls_unverified.check_hostname = False
        tls_unverified.verify_mode = ssl.CERT_NONE

        async def get() -> None:
            # A new connection per request, as kubectl makes: the hardest case.
            connector = aiohttp.TCPConnector(ssl=up.tls(), force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(
                    f"{creds.server}/api/v1/namespaces/default/configmaps",
                    headers={"Authorization": f"Bearer {creds.token}"},
                ) as reply:
                    assert reply.status == 200
                    await reply.read()

        served = failed = 0
        for _ in range(max(1, trials(4) // 4)):  # windows of WINDOW s: a quarter of the trials
            latencies, failures = await _served(
                get, host="127.0.0.1", port=up.api_port, tls=tls_unverified
            )
            served, failed = served + len(latencies), failed + len(failures)
            _check(latencies, failures)
        assert up.proc.returncode is None
    report("slowloris API", served=served, failed=failed, fd_limit=FD_LIMIT)


@pytest.mark.slow
async def test_the_ingress_serves_its_clients_through_a_slowloris_attack_under_a_low_fd_limit(
    tmp_path: Path,
) -> None:
    if not raise_own_open_files(4 * (SLOW_CLIENTS + SILENT_CLIENTS)):
        pytest.skip("the attacker needs more file descriptors than this machine allows")
    data = tmp_path / "data"
    async with node_dir_cleanup(data), procorch_up(data, open_files=FD_LIMIT) as up:
        await up.wait_ready()
        await serve_web(up, replicas=1)

        async def get() -> None:
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(f"{up.ingress_url}/", headers={"Host": "web.test"}) as r:
                    assert r.status == 200, r.status
                    assert (await r.text()).startswith("web-")

        async def routed() -> bool:
            await get()
            return True

        await wait_for(routed, timeout=30, what="the Ingress routing to the pod")
        served = failed = 0
        for _ in range(max(1, trials(4) // 4)):  # windows of WINDOW s: a quarter of the trials
            latencies, failures = await _served(
                get, host="127.0.0.1", port=up.ingress_port, tls=None
            )
            served, failed = served + len(latencies), failed + len(failures)
            await wait_for(routed, timeout=10, what="the Ingress answering after the attack")
            _check(latencies, failures)
        assert up.proc.returncode is None
        assert await up.stop() == 0
    report("slowloris Ingress", served=served, failed=failed, fd_limit=FD_LIMIT)
