"""Endpoints that write one response in several small sends, with Nagle on, behind pooled
keep-alive upstream connections: Python's ``http.server`` on HTTP/1.1 writes the head, then the
body. Without quick ACKs on the router's side every such response waited 40 ms (issue 11)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from procorch.proxy.ingress import IngressRouter
from tests.ingress.conftest import Api, next_ip, routed, rule

SPLIT_BACKEND = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and head and body go out in separate sends

    def do_GET(self):
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                self.wfile.write(b"2\r\n%02d\r\n" % i)
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b"two sends"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()  # send 1: the head
        self.wfile.write(body)  # send 2: held by Nagle until send 1 is ACKed

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((sys.argv[1], 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@asynccontextmanager
async def split_backend() -> AsyncIterator[tuple[str, int]]:
    """A ``python -m http.server``-like endpoint in a child process; yields its address."""
    ip = next_ip()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SPLIT_BACKEND, ip, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            port = int(await proc.stdout.readline())
        yield ip, port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_responses_written_in_several_sends_are_not_held_by_delayed_acks(
    router: IngressRouter, api: Api
) -> None:
    async with split_backend() as addr:
        await api.service("split", [addr])
        await api.ingress("site", {"rules": [rule("/", "split")]})
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            await routed(session, f"{router.url}/")
            for path, body in (("/", b"two sends"), ("/chunked", b"0001020304")):
                reuses = router.pool.reuses
                times = []
                for _ in range(30):
                    start = time.perf_counter()
                    async with session.get(f"{router.url}{path}") as response:
                        assert await response.read() == body
                    times.append(time.perf_counter() - start)
                # Sequential requests on one client connection reuse one upstream connection,
                # the case where the router's side was delaying its ACKs.
                assert router.pool.reuses - reuses >= 29
                median = statistics.median(times)
                # ~1 ms when the head is ACKed at once; 40+ ms when it waits for the
                # delayed-ACK timer.
                assert median < 0.015, (
                    f"{path}: median {median * 1000:.1f} ms, "
                    f"all: {', '.join(f'{t * 1000:.1f}' for t in sorted(times))} ms"
                )
