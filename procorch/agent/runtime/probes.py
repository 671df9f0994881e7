"""Single probe executions: HTTP GET, TCP connect, exec, as the kubelet runs them.

Owns one attempt of a probe and its verdict, a :class:`ProbeOutcome` whose message is worded
like the kubelet's (``Get "http://127.1.0.4:8080/healthz": dial tcp 127.1.0.4:8080: connect:
connection refused``, ``HTTP probe failed with statuscode: 503``), so events read as they do on
Kubernetes. Scheduling, thresholds and results over time belong to
:mod:`procorch.agent.prober`.

* HTTP (pkg/probe/http): a new connection per probe with ``Connection: close`` (the kubelet
  disables keep-alive: a kept-alive probe connection would block a single-threaded server),
  ``User-Agent: kube-probe/1.32`` and ``Accept: */*`` unless the probe sets them, a ``Host``
  header from the probe's headers, HTTPS without certificate verification, success for
  200 <= status < 400, at most 10 KiB of body read. Redirects to the same host are followed
  (10 at most); a redirect to another host, or a 3xx that is not followed, is a success with a
  warning message (the kubelet's ``probe.Warning``: ``Probe terminated redirects, Response body:
  ...``). Raw asyncio protocol and httptools: an HTTP client session per probe costs ~2.5x.
* TCP (pkg/probe/tcp): a connect, closed at once.
* exec: through an :data:`ExecRunner` the caller provides (it knows how to run a command beside
  the container's processes).
* gRPC (pkg/probe/grpc): one ``grpc.health.v1.Health/Check`` call over plaintext HTTP/2 (h2
  does the framing; the two messages are encoded here), success only for ``SERVING``.

Concurrency: plain coroutines on the caller's loop with no shared state; any number may run at
once. Each is bounded by its ``timeout`` and closes its connection however it ends, cancellation
included. Imports nothing of the API client: tested against real servers and processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import unquote, urljoin, urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import httptools

from procorch.api.protobuf import wire

USER_AGENT = "kube-probe/1.32"
MAX_BODY = 10 * 1024
MAX_OUTPUT = 10 * 1024
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe's verdict. ``message`` is empty on a plain success, says why on a failure, and
    on a success carries the kubelet's warning when there is one (an unfollowed redirect)."""

    result: Literal["success", "failure"]
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "success"


SUCCESS = ProbeOutcome("success")

ExecRunner = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]
"""Runs ``argv`` with a timeout in seconds; returns (exit code, combined stdout and stderr).
Raises ``TimeoutError`` when the command outlives the timeout (having killed it), and cleans up
if cancelled."""


def _failure(message: str) -> ProbeOutcome:
    return ProbeOutcome("failure", message)


def _errno_text(exc: OSError) -> str:
    """An OS error as Go prints a syscall error (``connection refused``)."""
    if exc.errno:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(exc: OSError, host: str, port: int) -> str:
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    return f"dial tcp {_host_port(host, port)}: connect: {_errno_text(exc)}"


# --- HTTP ----------------------------------------------------------------------------------------

_insecure_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _insecure_context
    if _insecure_context is None:
        # The kubelet probes HTTPS with InsecureSkipVerify: pods serve self-signed certificates.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _insecure_context = context
    return _insecure_context


class _Progress:
    """Where an HTTP probe is, for the message when its time runs out."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reading_body = False


class _Response(asyncio.Protocol):
    """Reads one HTTP/1.x response: status, ``Location`` and up to MAX_BODY of body."""

    def __init__(self, loop: asyncio.AbstractEventLoop, progress: _Progress) -> None:
        self.progress = progress
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.BaseTransport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.location = ""
        self.body = bytearray()
        self.headers_done = False
        self.received = False
        self.error = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()
        except httptools.HttpParserError:
            self._finish(
                "net/http: HTTP/1.x transport connection broken: malformed HTTP response "
                + json.dumps(bytes(data[:40]).decode("latin-1"))
            )

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.headers_done:
            self._finish()  # a body delimited by the end of the connection
        elif isinstance(exc, OSError):
            self._finish(f"read: {_errno_text(exc)}")
        else:
            self._finish("unexpected EOF" if self.received else "EOF")

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"location":
            self.location = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = not (100 <= self.status < 200 and self.status != 101)
        self.progress.reading_body = self.headers_done

    def on_body(self, body: bytes) -> None:
        room = MAX_BODY - len(self.body)
        self.body += body[:room]
        if len(self.body) >= MAX_BODY:
            self._finish()  # the kubelet reads no more than this

    def on_message_complete(self) -> None:
        if self.headers_done:  # not an interim 1xx response
            self._finish()
        else:
            self.location = ""

    def _finish(self, error: str = "") -> None:
        if not self.done.done():
            self.error = error
            self.done.set_result(None)


def _target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported protocol scheme {json.dumps(parts.scheme)}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname or "", port, target


def _request_head(target: str, host_header: str, headers: Sequence[tuple[str, str]]) -> bytes:
    names = {name.lower() for name, _ in headers}
    lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}"]
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    accept = [value for name, value in headers if name.lower() == "accept"]
    if not accept:
        lines.append("Accept: */*")
    for name, value in headers:
        lowered = name.lower()
        if lowered == "host" or lowered == "connection":
            continue
        if lowered == "accept" and not accept[0]:
            continue  # an empty Accept removes the header, as the kubelet does
        if lowered == "user-agent" and not value:
            continue
        lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


async def _fetch(
    url: str, *, host_header: str, headers: Sequence[tuple[str, str]], progress: _Progress
) -> _Response | str:
    """One request on a new connection; the response, or the error message."""
    scheme, host, port, target = _target(url)
    loop = asyncio.get_running_loop()
    response = _Response(loop, progress)
    try:
        transport, _ = await loop.create_connection(
            lambda: response, host, port, ssl=_tls() if scheme == "https" else None
        )
    except ssl.SSLError as exc:
        return f"{exc.reason or exc}"
    except OSError as exc:
        return _dial_error(exc, host, port)
    try:
        # (uvloop's transports are not asyncio.WriteTransport subclasses, but write the same.)
        transport.write(_request_head(target, host_header or _host_port(host, port), headers))
        await response.done
    except BaseException:
        transport.abort()
        raise
    transport.close()
    return response.error or response


async def http_get(
    *,
    scheme: str,
    host: str,
    port: int,
    path: str,
    headers: Sequence[tuple[str, str]],
    timeout: float,
) -> ProbeOutcome:
    """Probe ``scheme://host:port/path`` with GET; the whole probe is bounded by ``timeout``."""
    scheme = (scheme or "http").lower()
    if path and not path.startswith("/"):
        path = "/" + path
    progress = _Progress(f"{scheme}://{_host_port(host, port)}{path}")
    host_header = next((value for name, value in headers if name.lower() == "host"), "")
    original_host = host.lower()
    try:
        async with asyncio.timeout(timeout):
            for redirects in range(MAX_REDIRECTS + 1):
                try:
                    result = await _fetch(
                        progress.url, host_header=host_header, headers=headers, progress=progress
                    )
                except ValueError as exc:
                    return _failure(f'Get "{progress.url}": {exc}')
                if isinstance(result, str):
                    return _failure(f'Get "{progress.url}": {result}')
                status = result.status
                if status in _REDIRECTS and result.location:
                    following = urljoin(progress.url, result.location)
                    if (urlsplit(following).hostname or "") == original_host:
                        if redirects == MAX_REDIRECTS:
                            return _failure(f'Get "{following}": stopped after 10 redirects')
                        if urlsplit(result.location).netloc:
                            host_header = ""  # a custom Host survives relative redirects only
                        progress.url = following
                        progress.reading_body = False
                        continue
                return _verdict(status, bytes(result.body))
    except TimeoutError:
        phase = (
            "Client.Timeout or context cancellation while reading body"
            if progress.reading_body
            else "Client.Timeout exceeded while awaiting headers"
        )
        return _failure(f'Get "{progress.url}": context deadline exceeded ({phase})')
    raise AssertionError("unreachable")  # pragma: no cover


def _verdict(status: int, body: bytes) -> ProbeOutcome:
    if 200 <= status < 300:
        return SUCCESS
    if 300 <= status < 400:
        text = body.decode("utf-8", errors="replace")
        return ProbeOutcome("success", f"Probe terminated redirects, Response body: {text}")
    # Never the body: it could leak what the application did not mean to show (issue 99425).
    return _failure(f"HTTP probe failed with statuscode: {status}")


# --- TCP, exec, gRPC -------------------------------------------------------------------------------


async def tcp_socket(*, host: str, port: int, timeout: float) -> ProbeOutcome:
    """Succeeds when a TCP connection to ``host:port`` opens within ``timeout``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
    except TimeoutError:
        return _failure(f"dial tcp {_host_port(host, port)}: i/o timeout")
    except OSError as exc:
        return _failure(_dial_error(exc, host, port))
    transport.close()
    return SUCCESS


async def exec_command(*, command: list[str], timeout: float, run: ExecRunner) -> ProbeOutcome:
    """Exit status 0 is success; otherwise the output (first 10 KiB, trimmed) says why."""
    try:
        code, output = await run(list(command), timeout)
    except TimeoutError:
        # The kubelet's words (remote_runtime ExecSync): command "<argv joined>" timed out.
        return _failure(f"command {json.dumps(' '.join(command), ensure_ascii=False)} timed out")
    if code == 0:
        return SUCCESS
    return _failure(output[:MAX_OUTPUT].decode("utf-8", errors="replace").strip())


async def grpc_probe(
    *, host: str, port: int, service: str, timeout: float, user_agent: str = USER_AGENT
) -> ProbeOutcome:
    """One ``grpc.health.v1.Health/Check`` call over plaintext HTTP/2 (prior knowledge), as
    the kubelet makes it (pkg/probe/grpc): success only for ``SERVING``; the connection is new
    per probe and closed after it. Messages are the kubelet's (``service unhealthy (responded
    with "NOT_SERVING")``, ``error: this server does not implement the grpc health protocol
    (grpc.health.v1.Health): ...``)."""
    addr = _host_port(host, port)
    loop = asyncio.get_running_loop()
    connected = False
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            call = _GrpcCall(addr, service, user_agent)
            transport, _ = await loop.create_connection(lambda: call, host, port)
            connected = True
            return await call.result
    except TimeoutError:
        if not connected:
            return _failure(
                f'timeout: failed to connect service "{addr}" within {_go_duration(timeout)}: '
                "context deadline exceeded"
            )
        return _failure(f"timeout: health rpc did not complete within {_go_duration(timeout)}")
    except OSError as exc:
        return _failure(
            f'error: failed to connect service at "{addr}": {_dial_error(exc, host, port)}'
        )
    finally:
        if transport is not None:
            transport.abort()


_GRPC_CODES = (
    "OK Canceled Unknown InvalidArgument DeadlineExceeded NotFound AlreadyExists "
    "PermissionDenied ResourceExhausted FailedPrecondition Aborted OutOfRange Unimplemented "
    "Internal Unavailable DataLoss Unauthenticated"
).split()
_SERVING_STATUS = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")
_GRPC_MAX_MESSAGE = 4 * 1024 * 1024  # grpc-go's default for a received message
_HTTP_TO_GRPC = {
    "400": "Internal",
    "401": "Unauthenticated",
    "403": "PermissionDenied",
    "404": "Unimplemented",
    "429": "Unavailable",
    "502": "Unavailable",
    "503": "Unavailable",
    "504": "Unavailable",
}


class _GrpcCall(asyncio.Protocol):
    """One unary health-check call on a fresh HTTP/2 connection (h2 does the framing)."""

    def __init__(self, authority: str, service: str, user_agent: str) -> None:
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.authority = authority
        self.service = service.encode()
        self.user_agent = user_agent
        self.result: asyncio.Future[ProbeOutcome] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.stream_id = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses: no isinstance check.)
        self.transport = cast(asyncio.Transport, transport)
        conn = self.h2
        conn.initiate_connection()
        self.stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            self.stream_id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/grpc.health.v1.Health/Check"),
                (":authority", self.authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("user-agent", self.user_agent),
            ],
        )
        # HealthCheckRequest{service = 1}: an empty service is an empty message.
        message = b"\x0a" + _varint(len(self.service)) + self.service if self.service else b""
        conn.send_data(
            self.stream_id, b"\x00" + len(message).to_bytes(4, "big") + message, end_stream=True
        )
        self.transport.write(conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            self._events(self.h2.receive_data(data))
        except Exception as exc:  # noqa: BLE001 - whatever the peer sent, a verdict, not a crash
            self._finish(_failure(f"error: health rpc probe failed: {exc}"))
            if self.transport is not None:
                self.transport.abort()
            return
        if self.transport is not None:
            pending = self.h2.data_to_send()
            if pending:
                self.transport.write(pending)

    def _events(self, events: list[h2.events.Event]) -> None:
        mine = self.stream_id
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                # A graceful GOAWAY that covers our stream lets it finish.
                last = event.last_stream_id
                if event.error_code or (last is not None and last < mine):
                    self._finish(
                        _failure(
                            "error: health rpc probe failed: the server closed the connection "
                            f"(GOAWAY, error code {_h2_code(event.error_code)})"
                        )
                    )
                continue
            if getattr(event, "stream_id", mine) != mine:
                continue  # pushed or other streams: not ours
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                for name, value in event.headers or ():
                    self.headers[str(name)] = str(value)
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data or b""
                self.h2.acknowledge_received_data(event.flow_controlled_length, mine)
                if len(self.body) > _GRPC_MAX_MESSAGE + 5:
                    self._finish(
                        _failure(
                            "error: health rpc probe failed: rpc error: code = ResourceExhausted "
                            "desc = grpc: received message larger than max "
                            f"({len(self.body) - 5} vs. {_GRPC_MAX_MESSAGE})"
                        )
                    )
                    if self.transport is not None:
                        self.transport.abort()
                    return
            elif isinstance(event, h2.events.StreamEnded):
                self._finish(self._verdict())
            elif isinstance(event, h2.events.StreamReset):
                self._finish(
                    _failure(
                        "error: health rpc probe failed: rpc error: code = Internal desc = "
                        "stream terminated by RST_STREAM with error code: "
                        f"{_h2_code(event.error_code)}"
                    )
                )

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {_errno_text(exc)}" if isinstance(exc, OSError) else ""
        self._finish(
            _failure(f"error: health rpc probe failed: connection closed before the reply{reason}")
        )

    def _finish(self, outcome: ProbeOutcome) -> None:
        if not self.result.done():
            self.result.set_result(outcome)

    def _verdict(self) -> ProbeOutcome:
        headers = self.headers
        http_status = headers.get(":status", "")
        if http_status != "200":
            # grpc-go turns a non-200 answer into a gRPC status (404 -> Unimplemented, ...).
            code = _HTTP_TO_GRPC.get(http_status, "Unknown")
            text = f"unexpected HTTP status code received from server: {http_status}"
            return self._rpc_error(code, text)
        raw_code = headers.get("grpc-status")
        if raw_code is None:
            return self._rpc_error("Internal", "server closed the stream without sending trailers")
        try:
            number = int(raw_code)
        except ValueError:
            return self._rpc_error("Unknown", f"invalid grpc-status {raw_code!r}")
        if number != 0:
            name = _GRPC_CODES[number] if 0 <= number < len(_GRPC_CODES) else f"Code({number})"
            return self._rpc_error(name, unquote(headers.get("grpc-message", "")))
        body = bytes(self.body)
        if len(body) < 5 or body[0] != 0:
            return _failure("error: health rpc probe failed: malformed response message")
        status = _serving_status(body[5 : 5 + int.from_bytes(body[1:5], "big")])
        if status < 0:
            return _failure("error: health rpc probe failed: malformed response message")
        if status != 1:
            name = _SERVING_STATUS[status] if status < len(_SERVING_STATUS) else str(status)
            return _failure(f'service unhealthy (responded with "{name}")')
        return SUCCESS

    def _rpc_error(self, code: str, text: str) -> ProbeOutcome:
        if code == "Unimplemented":
            return _failure(
                "error: this server does not implement the grpc health protocol "
                f"(grpc.health.v1.Health): {text}"
            )
        return _failure(f"error: health rpc probe failed: rpc error: code = {code} desc = {text}")


def _h2_code(code: int | None) -> str:
    try:
        return h2.errors.ErrorCodes(code or 0).name
    except ValueError:
        return str(code)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _serving_status(message: bytes) -> int:
    """Field 1 (enum ``status``) of a HealthCheckResponse; 0 (UNKNOWN) when absent, -1 when
    the message is malformed."""
    status = 0
    try:
        for number, wire_type, value in wire.fields(message):
            if number == 1 and wire_type == wire.VARINT:
                status = int(value)
    except wire.WireError:
        return -1
    return status


def _go_duration(seconds: float) -> str:
    """Seconds as Go prints a time.Duration (``500ms``, ``1s``, ``1.5s``, ``1m0s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes < 1:
        return f"{rest:g}s"
    hours, minutes = divmod(int(minutes), 60)
    text = f"{hours}h" if hours else ""
    return f"{text}{minutes}m{rest:g}s"
