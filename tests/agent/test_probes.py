"""Single probe executions against real servers, sockets and processes."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from procorch.agent.runtime.probes import (
    ProbeOutcome,
    exec_command,
    grpc_probe,
    http_get,
    tcp_socket,
)

Route = Callable[[asyncio.StreamWriter], Awaitable[None]]


def response(status: int, body: bytes = b"", *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def reply(data: bytes) -> Route:
    async def route(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return route


async def stall(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


class Server:
    """A tiny HTTP/1.1 server on 127.0.0.1:0 that records what it was sent."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, context: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            self.requests.append(head)
            path = head.split(" ")[1].split("?")[0]
            await self.routes.get(path, reply(response(404)))(writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    port = srv.port
    srv.routes.update(
        {
            "/ok": reply(response(200, b"fine")),
            "/500": reply(response(500, b"secret stack trace")),
            "/503": reply(response(503)),
            "/204": reply(response(204)),
            "/redirect": reply(response(302, b"", "Location: /ok")),
            "/redirect-abs": reply(response(301, b"", f"Location: http://127.0.0.1:{port}/ok")),
            "/redirect-fail": reply(response(307, b"", "Location: /500")),
            "/redirect-other": reply(
                response(302, b"moved", f"Location: http://localhost:{port}/500")
            ),
            "/loop": reply(response(302, b"", "Location: /loop")),
            "/300": reply(response(300, b"choices")),
            "/chunked": reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfine\r\n0\r\n\r\n"
            ),
            "/close-delimited": reply(b"HTTP/1.1 200 OK\r\n\r\nbody until close"),
            "/continue": reply(b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, b"ok")),
            "/big": reply(response(200, b"x" * (1024 * 1024))),
            "/never": stall,
            "/garbage": reply(b"SSH-2.0-OpenSSH\r\n\r\n"),
            "/empty": reply(b""),
        }
    )

    async def slow_body(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.Event().wait()

    srv.routes["/slow-body"] = slow_body
    try:
        yield srv
    finally:
        await srv.stop()


async def get(server: Server, path: str, *, timeout: float = 2.0, **kwargs: object) -> ProbeOutcome:
    options: dict[str, object] = {"scheme": "http", "headers": [], **kwargs}
    return await http_get(
        host="127.0.0.1",
        port=server.port,
        path=path,
        timeout=timeout,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


# --- HTTP verdicts ------------------------------------------------------------------------------


async def test_http_2xx_is_success(server: Server) -> None:
    assert await get(server, "/ok") == ProbeOutcome("success")
    assert await get(server, "/204") == ProbeOutcome("success")
    assert await get(server, "/chunked") == ProbeOutcome("success")
    assert await get(server, "/close-delimited") == ProbeOutcome("success")
    assert await get(server, "/continue") == ProbeOutcome("success")


async def test_http_error_status_is_failure_without_the_body(server: Server) -> None:
    assert await get(server, "/500") == ProbeOutcome(
        "failure", "HTTP probe failed with statuscode: 500"
    )
    assert (await get(server, "/503")).message == "HTTP probe failed with statuscode: 503"
    assert (await get(server, "/missing")).message == "HTTP probe failed with statuscode: 404"


async def test_http_follows_same_host_redirects(server: Server) -> None:
    assert await get(server, "/redirect") == ProbeOutcome("success")
    assert await get(server, "/redirect-abs") == ProbeOutcome("success")
    outcome = await get(server, "/redirect-fail")
    assert outcome == ProbeOutcome("failure", "HTTP probe failed with statuscode: 500")


async def test_http_redirect_to_another_host_is_success_with_a_warning(server: Server) -> None:
    outcome = await get(server, "/redirect-other")
    assert outcome == ProbeOutcome("success", "Probe terminated redirects, Response body: moved")
    assert not any("/500" in request for request in server.requests)
    assert await get(server, "/300") == ProbeOutcome(
        "success", "Probe terminated redirects, Response body: choices"
    )


async def test_http_stops_after_ten_redirects(server: Server) -> None:
    outcome = await get(server, "/loop")
    assert outcome == ProbeOutcome(
        "failure", f'Get "http://127.0.0.1:{server.port}/loop": stopped after 10 redirects'
    )
    assert len(server.requests) == 11


async def test_http_reads_at_most_ten_kib_of_body(server: Server) -> None:
    started = time.monotonic()
    assert await get(server, "/big") == ProbeOutcome("success")
    assert time.monotonic() - started < 1


async def test_http_connection_refused_message(closed_port: int) -> None:
    outcome = await http_get(
        scheme="HTTP", host="127.0.0.1", port=closed_port, path="/healthz", headers=[], timeout=1
    )
    assert outcome == ProbeOutcome(
        "failure",
        f'Get "http://127.0.0.1:{closed_port}/healthz": dial tcp 127.0.0.1:{closed_port}: '
        "connect: connection refused",
    )


async def test_http_timeout_awaiting_headers_is_honoured(server: Server) -> None:
    started = time.monotonic()
    outcome = await get(server, "/never", timeout=0.5)
    elapsed = time.monotonic() - started
    assert outcome == ProbeOutcome(
        "failure",
        f'Get "http://127.0.0.1:{server.port}/never": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    )
    assert 0.45 < elapsed < 0.8


async def test_http_timeout_reading_body(server: Server) -> None:
    outcome = await get(server, "/slow-body", timeout=0.3)
    assert outcome.result == "failure"
    assert outcome.message.endswith(
        "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
    )


async def test_http_broken_responses_are_failures(server: Server) -> None:
    garbage = await get(server, "/garbage")
    assert garbage.result == "failure"
    assert "malformed HTTP response" in garbage.message
    assert await get(server, "/empty") == ProbeOutcome(
        "failure", f'Get "http://127.0.0.1:{server.port}/empty": EOF'
    )


# --- HTTP request shape -------------------------------------------------------------------------


async def test_http_request_has_kubelet_headers_and_a_new_connection_each_time(
    server: Server,
) -> None:
    for _ in range(3):
        assert (await get(server, "ok")).ok  # a path without its slash gets one
    assert server.connections == 3
    request = server.requests[0]
    lines = request.split("\r\n")
    assert lines[0] == "GET /ok HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "User-Agent: kube-probe/1.32" in lines
    assert "Accept: */*" in lines
    assert "Connection: close" in lines


async def test_http_probe_headers_override_defaults(server: Server) -> None:
    headers = [
        ("Host", "app.example.com"),
        ("X-Token", "abc"),
        ("accept", "application/json"),
        ("User-Agent", "custom/1"),
    ]
    assert (await get(server, "/ok?verbose=1", headers=headers)).ok
    lines = server.requests[0].split("\r\n")
    assert lines[0] == "GET /ok?verbose=1 HTTP/1.1"
    assert [line for line in lines if line.lower().startswith("host:")] == ["Host: app.example.com"]
    assert "X-Token: abc" in lines
    assert "accept: application/json" in lines
    assert "Accept: */*" not in lines
    assert "User-Agent: custom/1" in lines
    assert "User-Agent: kube-probe/1.32" not in lines

    assert (await get(server, "/ok", headers=[("Accept", "")])).ok
    assert not [
        line for line in server.requests[1].split("\r\n") if line.lower().startswith("accept")
    ]


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pod.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def test_https_probe_skips_certificate_verification(tmp_path: Path) -> None:
    srv = Server()
    await srv.start(self_signed(tmp_path))
    srv.routes["/ok"] = reply(response(200, b"fine"))
    srv.routes["/500"] = reply(response(500))
    try:
        assert await get(srv, "/ok", scheme="HTTPS") == ProbeOutcome("success")
        assert (await get(srv, "/500", scheme="https")).message == (
            "HTTP probe failed with statuscode: 500"
        )
    finally:
        await srv.stop()


# --- TCP ----------------------------------------------------------------------------------------


async def test_tcp_open_port_is_success(server: Server) -> None:
    assert await tcp_socket(host="127.0.0.1", port=server.port, timeout=1) == ProbeOutcome(
        "success"
    )


async def test_tcp_closed_port_is_refused(closed_port: int) -> None:
    assert await tcp_socket(host="127.0.0.1", port=closed_port, timeout=1) == ProbeOutcome(
        "failure", f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused"
    )


async def test_tcp_timeout_is_honoured() -> None:
    # A listener whose accept queue is full drops new SYNs: the connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        started = time.monotonic()
        outcome = await tcp_socket(host="127.0.0.1", port=port, timeout=0.4)
        elapsed = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert outcome == ProbeOutcome("failure", f"dial tcp 127.0.0.1:{port}: i/o timeout")
    assert 0.35 < elapsed < 0.7


# --- exec and gRPC ------------------------------------------------------------------------------


async def run_process(argv: list[str], timeout: float) -> tuple[int, bytes]:
    """An ExecRunner over a real child process; kills and reaps it on timeout or cancel."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out


async def test_exec_exit_zero_is_success() -> None:
    outcome = await exec_command(
        command=[sys.executable, "-c", "print('healthy')"], timeout=5, run=run_process
    )
    assert outcome == ProbeOutcome("success")


async def test_exec_failure_carries_trimmed_output() -> None:
    code = "import sys; print('not ready yet'); print('db down', file=sys.stderr); sys.exit(3)"
    outcome = await exec_command(command=[sys.executable, "-c", code], timeout=5, run=run_process)
    assert outcome == ProbeOutcome("failure", "not ready yet\ndb down")


async def test_exec_timeout_is_reported_like_the_kubelet() -> None:
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    started = time.monotonic()
    outcome = await exec_command(command=command, timeout=0.5, run=run_process)
    assert time.monotonic() - started < 2
    joined = " ".join(command)
    assert outcome == ProbeOutcome("failure", f'command "{joined}" timed out')


@pytest.fixture
def grpc_server() -> Iterator[tuple[int, Any]]:
    """A real grpcio server with the standard health service: (port, its HealthServicer)."""
    grpc = pytest.importorskip("grpc", reason="grpcio is in the test extras")
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(grace=None)


async def test_grpc_serving_is_success_and_anything_else_says_what_it_got(
    grpc_server: tuple[int, Any],
) -> None:
    port, servicer = grpc_server
    ok = await grpc_probe(host="127.0.0.1", port=port, service="", timeout=2)
    assert ok == ProbeOutcome("success")
    db = await grpc_probe(host="127.0.0.1", port=port, service="db", timeout=2)
    assert db == ProbeOutcome("failure", 'service unhealthy (responded with "NOT_SERVING")')
    from grpc_health.v1 import health_pb2

    servicer.set("db", health_pb2.HealthCheckResponse.SERVING)
    assert (await grpc_probe(host="127.0.0.1", port=port, service="db", timeout=2)).ok
    unknown = await grpc_probe(host="127.0.0.1", port=port, service="nope", timeout=2)
    # grpcio's servicer answers NOT_FOUND without a message.
    assert unknown == ProbeOutcome(
        "failure", "error: health rpc probe failed: rpc error: code = NotFound desc = "
    )


async def test_grpc_server_without_the_health_service_is_unimplemented() -> None:
    grpc = pytest.importorskip("grpc", reason="grpcio is in the test extras")
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        outcome = await grpc_probe(host="127.0.0.1", port=port, service="", timeout=2)
    finally:
        server.stop(grace=None)
    assert outcome.result == "failure"
    assert outcome.message.startswith(
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): "
    )


async def test_grpc_refused_and_silent_servers_fail_like_the_kubelet() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = await grpc_probe(host="127.0.0.1", port=port, service="", timeout=1)
    assert refused == ProbeOutcome(
        "failure",
        f'error: failed to connect service at "127.0.0.1:{port}": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused",
    )
    # A server that accepts and never answers: the call times out, the connection is closed.
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        closed.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        outcome = await grpc_probe(host="127.0.0.1", port=port, service="", timeout=0.5)
        assert 0.4 < time.monotonic() - started < 1.5
        assert outcome == ProbeOutcome(
            "failure", "timeout: health rpc did not complete within 500ms"
        )
        await asyncio.wait_for(closed.wait(), 2)


Answer = Callable[[Any, int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def h2_server(answer: Answer) -> Any:
    """An HTTP/2 server (h2) that calls ``answer(conn, stream_id, reader, writer)`` once the
    request has ended."""
    import h2.config
    import h2.connection
    import h2.events

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, validate_outbound_headers=False)
        )
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.StreamEnded):
                        await answer(conn, event.stream_id, reader, writer)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_grpc_misbehaving_servers_get_a_verdict_not_a_crash() -> None:
    loop = asyncio.get_running_loop()
    crashes: list[str] = []
    loop.set_exception_handler(lambda _loop, context: crashes.append(context["message"]))

    async def bad_header(conn: Any, sid: int, _r: Any, _w: Any) -> None:
        conn.send_headers(sid, [(b":status", b"200"), (b"grpc-status", b"\xff")], end_stream=True)

    async def goaway(conn: Any, sid: int, _r: Any, _w: Any) -> None:
        conn.close_connection(error_code=2, last_stream_id=0)  # INTERNAL_ERROR

    async def flood(
        conn: Any, sid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        for _ in range(400):  # 6.4 MiB, more than grpc-go's 4 MiB limit
            while conn.local_flow_control_window(sid) < 16384:
                writer.write(conn.data_to_send())
                data = await reader.read(65536)  # the probe's WINDOW_UPDATEs
                if not data:
                    return  # it has given up
                conn.receive_data(data)
            conn.send_data(sid, bytes(16384))
            writer.write(conn.data_to_send())
            await writer.drain()

    verdicts = {}
    for name, answer in (("bad_header", bad_header), ("goaway", goaway), ("flood", flood)):
        server = await h2_server(answer)
        async with server:
            port = server.sockets[0].getsockname()[1]
            verdicts[name] = await grpc_probe(host="127.0.0.1", port=port, service="", timeout=2)
    assert all(v.result == "failure" for v in verdicts.values()), verdicts
    assert "GOAWAY, error code INTERNAL_ERROR" in verdicts["goaway"].message
    assert "code = ResourceExhausted" in verdicts["flood"].message
    assert crashes == []
