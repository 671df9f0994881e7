"""A keep-alive client through a Service to an endpoint that writes one response in two sends
with Nagle on (Python's ``http.server`` on HTTP/1.1 writes the head, then the body). Without
quick ACKs on the proxy's endpoint-facing socket every such response waited 40 ms for our
delayed ACK, on the Protocol path and on a direction moved to splice alike. The proxy learns
that a Service's endpoints wait for its ACKs from two such pauses in a row (``ack_stalls``),
so two exchanges per Service still pay it."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from procorch.proxy.l4 import ServiceProxy
from tests.networking.conftest import Api, eventually, listening, next_ip

BIG = 1 << 20  # one read of it moves the endpoint's direction to splice

TWO_SENDS = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; head and body go out in separate sends

    def do_GET(self):
        body = b"x" * int(sys.argv[2]) if self.path == "/big" else b"two sends"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # send 1: the head
        self.wfile.write(body)  # send 2: held by Nagle until send 1 is ACKed

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((sys.argv[1], 9000), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
"""


@asynccontextmanager
async def two_sends_endpoint() -> AsyncIterator[str]:
    """An ``http.server`` endpoint on ``<ip>:9000`` in a child process; yields its address."""
    ip = next_ip()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TWO_SENDS, ip, str(BIG), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            assert await proc.stdout.readline() == b"ready\n"
        yield ip
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _known(proxy: ServiceProxy) -> bool:
    return bool(proxy.index.ready("default", "split"))


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    """One HTTP/1.1 GET on an open connection; the body."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: svc\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def _exchanges(ip: str, port: int, *, count: int, big_first: bool) -> list[float]:
    """``count`` GETs timed, after an untimed first one, over one keep-alive connection."""
    reader, writer = await asyncio.open_connection(ip, port, limit=2 * BIG)
    try:
        async with asyncio.timeout(30):
            assert await get(reader, writer, "/") == b"two sends"
            if big_first:
                # A large response moves the endpoint's direction to splice; the small ones
                # after it on the same connection then go through the pump.
                assert len(await get(reader, writer, "/big")) == BIG
            times = []
            for _ in range(count):
                start = time.perf_counter()
                assert await get(reader, writer, "/") == b"two sends"
                times.append(time.perf_counter() - start)
            return times
    finally:
        writer.close()


def _fast(times: list[float]) -> None:
    median = statistics.median(times)
    # ~0.2 ms when the head is ACKed at once; 40+ ms when it waits for the delayed-ACK timer.
    assert median < 0.015, (
        f"median {median * 1000:.1f} ms, "
        f"all: {', '.join(f'{t * 1000:.1f}' for t in sorted(times))} ms"
    )


@pytest.mark.parametrize("spliced", [False, True], ids=["protocols", "after-splice"])
async def test_keep_alive_responses_written_in_two_sends_are_not_held_by_delayed_acks(
    api: Api, proxy: ServiceProxy, spliced: bool
) -> None:
    async with two_sends_endpoint() as endpoint:
        svc = await api.service("split", {"ports": [{"port": 80, "targetPort": 9000}]})
        await api.slice("split", [(endpoint, True)], port=9000)
        ip, port = svc["spec"]["clusterIP"], 80
        await listening(proxy, ip, port)
        await eventually(lambda: _known(proxy))
        # One client connection, so one endpoint connection that the proxy keeps sending
        # requests on soon after it read the last response: the case where Linux delays our
        # ACKs ("pingpong" mode).
        _fast(await _exchanges(ip, port, count=30, big_first=spliced))
        stats = proxy.stats[("default", "split")]
        assert stats.connections == 1
        assert stats.spliced == (1 if spliced else 0)
        assert stats.ack_stalls >= 1  # the two exchanges that taught the proxy
        # A second connection to the Service is quick-ACKed from its second exchange.
        _fast(await _exchanges(ip, port, count=10, big_first=False))
        text = proxy.metrics_text()
        assert "# TYPE procorch_service_ack_stalls_total counter" in text


async def test_the_socket_kept_for_quick_acks_is_closed_with_its_connection(
    api: Api, proxy: ServiceProxy
) -> None:
    async with two_sends_endpoint() as endpoint:
        svc = await api.service("split", {"ports": [{"port": 80, "targetPort": 9000}]})
        await api.slice("split", [(endpoint, True)], port=9000)
        ip = svc["spec"]["clusterIP"]
        await listening(proxy, ip, 80)
        await eventually(lambda: _known(proxy))
        reader, writer = await asyncio.open_connection(ip, 80)
        # The first exchange is on a fresh connection, the next two teach the proxy, the
        # fourth is quick-ACKed.
        for _ in range(4):
            assert await get(reader, writer, "/") == b"two sends"
        [conn] = proxy.conns
        assert conn.upstream_protocol is not None
        duplicate = conn.upstream_protocol.acks.sock
        assert duplicate is not None and duplicate.fileno() >= 0
        writer.close()

        async def closed() -> bool:
            return not proxy.conns and duplicate.fileno() == -1

        await eventually(closed)
