"""Client connections: parse requests with httptools, route them, stream them upstream.

One :class:`ClientConnection` per accepted connection (plain or TLS). httptools callbacks only
record what they parse into an :class:`Exchange` (one per request); after each ``feed_data``
:meth:`ClientConnection._pump` acts on the exchange at the head of the queue: answers it
locally (404, 503…), or binds it to a pooled upstream connection (or opens one), writes the
rebuilt head and streams the body as it arrives (re-chunked when the client sent chunks).
Pipelined requests wait in the queue, their responses are written in order.

Flow control, both ways: request bytes read ahead of the upstream are bounded
(``max_pending_bytes``, and at most one pipelined request beyond the active one); when the
upstream's send buffer fills, reading from the client pauses; when the client's send buffer
fills, reading from the upstream pauses. Nothing is ever buffered whole.

Failures: no ready endpoint is a 503 at once; a failed connect tries another endpoint (up to
``tries``); a reused keep-alive connection that the endpoint had closed is retried on a fresh
one when the request is idempotent and small enough to replay; otherwise 502 (504 on a
timeout). Once response bytes have reached the client, a failure can only close its connection.

A connection with no request in progress (not yet through its first head, or idle between
requests) is one of the router's *waiting* connections, of which the oldest are closed when
there are too many (:meth:`IngressRouter.waiting_for_request`).

Limits and timeouts (see :mod:`.settings`) are checked by :meth:`ClientConnection.sweep`,
called by the router's sweeper: 414/431 for oversized heads, 400 for malformed requests, 408
for slow heads and bodies; idle keep-alive connections and clients that stop reading are cut.

Concurrency: single event loop; Protocol callbacks, plus one short task per upstream connect.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from procorch.kit.logging import get_logger
from procorch.proxy.ingress.backends import Addr
from procorch.proxy.ingress.exchange import Exchange, new_exchange
from procorch.proxy.ingress.messages import local_response
from procorch.proxy.ingress.upstream import UPSTREAM_FULL as _UPSTREAM_FULL
from procorch.proxy.ingress.upstream import UpstreamConnection

if TYPE_CHECKING:
    from procorch.proxy.ingress.router import IngressRouter

log = get_logger("proxy.ingress")

# Why reading from the client is paused (a bit set; reading resumes when it is empty).
_BUFFERED = 1  # too many request bytes wait for an upstream
_PIPELINE = 4  # a pipelined request waits behind the active one
_STOPPED = 8  # an error answer was sent: nothing more is read
_WRITE_FULL = 16  # the client does not read its answers: read no more questions


class _Refuse(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ClientConnection(asyncio.Protocol):
    def __init__(self, router: IngressRouter, *, scheme: bytes) -> None:
        self.r = router
        self.settings = router.settings
        self.scheme = scheme
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.client_ip = ""
        self.port = b""
        self.exchanges: deque[Exchange] = deque()
        self.parsing: Exchange | None = None  # whose body is being read
        self.tunnel: UpstreamConnection | None = None
        self.upgrading: Exchange | None = None  # sent upstream, waiting for its 101
        self.paused = 0
        self.write_paused = False
        self.write_paused_at = 0.0
        self.closed = False
        self.draining = False
        self.eof = False
        self.head_started = 0.0  # when the head being read began; 0 when none is
        self.idle_since = 0.0
        self.last_rx = 0.0
        self._head_bytes = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._last: Exchange | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        r = self.r
        if len(r.conns) >= self.settings.max_connections:
            self.closed = True
            transport.abort()
            return
        r.conns.add(self)
        r.waiting_for_request(self)
        if self.closed:  # made room for others: the youngest waiting were too many
            return
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip = str(peer[0])
        local = transport.get_extra_info("sockname") or ("", 0)
        self.port = str(local[1]).encode()
        _nodelay(transport)
        transport.set_write_buffer_limits(high=self.settings.read_buffer_high)
        self.head_started = r.clock

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.r.conns.discard(self)
        self.r.waiting.discard(self)
        for ex in self.exchanges:
            self._abandon(ex)
        self.exchanges.clear()
        if self.tunnel is not None:
            tunnel, self.tunnel = self.tunnel, None
            tunnel.client = None
            tunnel.close()

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            self.tunnel.close()  # after what is buffered: the other side then closes us
            return True
        if (
            self.exchanges
            and self.parsing is None
            and not self._url
            and self.upgrading is None
            and self.scheme == b"http"  # TLS cannot stay half-open
        ):
            self.eof = True  # answer what was asked, then close
            return True
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_paused_at = self.r.clock
        self.pause(_WRITE_FULL)
        upstream = self._active_upstream()
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.resume(_WRITE_FULL)
        upstream = self._active_upstream()
        if upstream is not None:
            upstream.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.r.clock
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.upgrading is not None:
            self._queue_body(self.upgrading, data)
            self._pump()
            return
        if self.paused & _STOPPED:
            return
        if self.head_started:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            ex = self._last
            if ex is not None and ex.upgrade is not None and not ex.finished:
                self.upgrading = ex
                ex.req_done = True
                self.parsing = None
                rest = data[upgrade.args[0] :]
                if rest:
                    self._queue_body(ex, rest)
            else:
                self._refuse(400)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._refuse(cause.status if isinstance(cause, _Refuse) else 400)
            if not isinstance(cause, _Refuse):
                log.warning("request handling failed", error=repr(cause))
        except httptools.HttpParserError:
            self._refuse(400)
        else:
            if self.head_started and self._head_bytes > self.settings.max_header_bytes:
                self._refuse(431)
        self._pump()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self.head_started:
            self.head_started = self.r.clock
        self.idle_since = 0.0
        self._url = b""
        self._headers = []
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.settings.max_url_bytes:
            raise _Refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if (
            self._head_size > self.settings.max_header_bytes
            or len(self._headers) >= self.settings.max_headers
        ):
            raise _Refuse(431)
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.r.waiting.discard(self)
        self.head_started = 0.0
        self._head_bytes = 0
        ex = new_exchange(
            method=self.parser.get_method(),
            version=self.parser.get_http_version(),
            url=self._url,
            headers=self._headers,
            upgrade=self.parser.should_upgrade(),
            table=self.r.table,
            client_ip=self.client_ip,
            scheme=self.scheme,
            port=self.port,
        )
        self._url = b""
        self.exchanges.append(ex)
        self.parsing = ex
        self._last = ex

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is None or ex.local:
            return
        if ex.chunked:
            self._queue_body(ex, b"%x\r\n" % len(body), body, b"\r\n")
        else:
            self._queue_body(ex, body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is None:
            return
        ex.keep_alive = self.parser.should_keep_alive()
        ex.req_done = True
        if ex.chunked and not ex.local:
            self._queue_body(ex, b"0\r\n\r\n")
        self.parsing = None

    # -- requests ----------------------------------------------------------------------------

    def _queue_body(self, ex: Exchange, *chunks: bytes) -> None:
        ex.pending.extend(chunks)
        for chunk in chunks:
            ex.pending_size += len(chunk)

    def _pump(self) -> None:
        exchanges = self.exchanges
        while exchanges and not self.closed:
            ex = exchanges[0]
            if not ex.started:
                self._start(ex)
            elif ex.upstream is not None and ex.pending:
                self._flush(ex)
            if not ex.finished:
                break
            exchanges.popleft()
            if ex.close or not ex.keep_alive or ex.upgrade is not None or self.draining:
                self._close()
                return
            if not exchanges:
                self.idle_since = self.r.clock
                if self.eof:
                    self._close()
                    return
                self.r.waiting_for_request(self)
                if self.closed:
                    return
        self._update_pause()

    def _update_pause(self) -> None:
        exchanges = self.exchanges
        if self.closed or (
            not self.paused
            and len(exchanges) <= 1
            and (
                not exchanges
                or exchanges[0].upstream is not None
                or exchanges[0].pending_size <= self.settings.max_pending_bytes
            )
        ):
            return  # the common case, decided without a call
        if len(exchanges) > 1:
            self.pause(_PIPELINE)
        else:
            self.resume(_PIPELINE)
        waiting = sum(ex.pending_size for ex in self.exchanges if ex.upstream is None)
        if waiting > self.settings.max_pending_bytes:
            self.pause(_BUFFERED)
        else:
            self.resume(_BUFFERED)

    def _start(self, ex: Exchange) -> None:
        ex.started = True
        if ex.local:
            self._answer(ex, ex.local)
            return
        assert ex.backend is not None
        ex.endpoints = self.r.backends.resolve(ex.backend)
        if not ex.endpoints:
            self._answer(ex, 503, message=f"no ready endpoints for service {ex.backend}")
            return
        self._attach(ex)

    def _answer(self, ex: Exchange, status: int, *, message: str = "") -> None:
        """Answer ``ex`` ourselves; close unless the request was read whole (and can be kept)."""
        self.r.count(ex.backend, status)
        ex.close = ex.close or not ex.req_done or ex.upgrade is not None or self.draining
        self.transport.write(
            local_response(
                status,
                close=ex.close or not ex.keep_alive,
                message=message,
                head_only=ex.is_head,
            )
        )
        ex.responded = True
        ex.finished = True
        ex.pending.clear()
        ex.pending_size = 0

    def _attach(self, ex: Exchange) -> None:
        assert ex.endpoints is not None
        addr = ex.endpoints.pick(self.r.clock, ex.tried)
        if addr is None:
            self._answer(ex, 502, message="every endpoint failed")
            return
        ex.tries += 1
        if not ex.fresh:
            conn = self.r.pool.acquire(addr)
            if conn is not None:
                self._bind(ex, conn)
                return
        ex.connect = self.r.start_connect(self._open(ex, addr), addr)

    async def _open(self, ex: Exchange, addr: Addr) -> None:
        r = self.r
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, conn = await r.dial(lambda: UpstreamConnection(r.pool, addr), addr[0], addr[1])
        except (OSError, TimeoutError) as exc:
            ex.connect = None
            if self.closed or ex.finished:
                return
            r.backends.mark_failed(addr, r.clock + self.settings.fail_timeout)
            log.debug(
                "connect to endpoint failed", endpoint=f"{addr[0]}:{addr[1]}", error=repr(exc)
            )
            ex.tried.add(addr)
            if ex.tries < self.settings.tries:
                self._attach(ex)
            else:
                self._answer(ex, 504 if isinstance(exc, TimeoutError) else 502)
            self._pump()
            return
        ex.connect = None
        r.pool.connects += 1
        r.backends.mark_ok(addr)
        if self.closed or ex.finished:
            r.pool.release(conn)
            return
        self._bind(ex, conn)
        self._pump()

    def _bind(self, ex: Exchange, conn: UpstreamConnection) -> None:
        ex.upstream = conn
        conn.bind(self, ex)
        write = conn.transport.write
        write(ex.head)
        if ex.replay:
            conn.transport.writelines(ex.replay)
        if ex.pending:
            self._flush(ex)

    def _flush(self, ex: Exchange) -> None:
        conn = ex.upstream
        assert conn is not None
        pending = ex.pending
        if ex.replay is not None:
            ex.replay_size += ex.pending_size
            if ex.replay_size <= self.settings.replay_bytes:
                ex.replay.extend(pending)
            else:
                ex.replay = None
        conn.transport.writelines(pending)
        conn.last_io = self.r.clock
        ex.pending = []
        ex.pending_size = 0

    # -- called by the upstream connection ---------------------------------------------------

    def response_complete(self, conn: UpstreamConnection) -> None:
        ex = conn.ex
        assert ex is not None
        self.r.count(ex.backend, conn.status)
        ex.upstream = None
        if conn.keep_alive and ex.req_done and not ex.pending and ex.upgrade is None:
            self.r.pool.release(conn)
        else:
            conn.unbind()
            conn.close()
        ex.finished = True
        if not ex.req_done:
            ex.close = True  # the rest of its body will not be read
        if self.paused:
            self.resume(_UPSTREAM_FULL)
        self._pump()

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        ex = conn.ex
        conn.client = None
        conn.ex = None
        if conn.tunnel or ex is None:
            self._close()
            return
        if ex.finished or ex.upstream is not conn:
            return
        ex.upstream = None
        self.resume(_UPSTREAM_FULL)
        if ex.response_bytes:
            # An EOF-delimited response has ended (or a response was cut short): either way
            # the client learns it from its connection closing.
            self.r.count(ex.backend, conn.response_status())
            ex.finished = True
            ex.close = True
            self._pump()
            return
        self._retry_or_fail(ex, conn, 502)

    def upstream_failed(self, conn: UpstreamConnection, exc: Exception) -> None:
        """The endpoint sent something that is not HTTP."""
        ex = conn.ex
        conn.client = None
        conn.ex = None
        conn.abort()
        if ex is None or ex.finished:
            return
        ex.upstream = None
        self.resume(_UPSTREAM_FULL)
        if ex.responded:
            self._close(abort=True)
            return
        self._answer(ex, 502, message="bad response from the endpoint")
        ex.close = True
        self._pump()

    def _retry_or_fail(self, ex: Exchange, conn: UpstreamConnection | None, status: int) -> None:
        if ex.responded:
            self._close(abort=True)
            return
        if (
            conn is not None
            and ex.replay is not None
            and not ex.response_bytes
            and ex.tries < self.settings.tries
            and ex.upgrade is None
        ):
            # Idempotent, small enough to resend, and nothing came back (as nginx's
            # proxy_next_upstream). A reused connection most likely met the endpoint closing
            # it while idle: try again on a fresh one; a fresh one means the endpoint is
            # going away: try another.
            if conn.reused:
                ex.fresh = True
            else:
                ex.tried.add(conn.addr)
            self._attach(ex)
        else:
            self._answer(ex, status)
        self._pump()

    def start_tunnel(self, conn: UpstreamConnection) -> None:
        ex = conn.ex
        if ex is not None:
            self.r.count(ex.backend, 101)
        self.r.waiting.discard(self)
        self.tunnel = conn
        self.upgrading = None
        self.exchanges.clear()
        self.parsing = None
        if ex is not None and ex.pending:
            conn.transport.writelines(ex.pending)
            ex.pending = []
        self.resume(_PIPELINE | _BUFFERED)

    # -- reading pauses ----------------------------------------------------------------------

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def _active_upstream(self) -> UpstreamConnection | None:
        if self.tunnel is not None:
            return self.tunnel
        if self.exchanges:
            return self.exchanges[0].upstream
        return None

    # -- errors, timeouts, shutdown ----------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """The request being read is refused: answer ``status`` (in turn) and close."""
        self.pause(_STOPPED)
        self.head_started = 0.0
        bad = self.parsing
        self.parsing = None
        if bad is not None and bad.started and not bad.finished:
            self._abandon(bad)
            if bad.responded:
                self._close(abort=True)
                return
            self._answer(bad, status)
            bad.close = True
            return
        if bad is not None and bad in self.exchanges:
            self.exchanges.remove(bad)
        ex = Exchange()
        ex.local = status
        ex.close = True
        self.exchanges.append(ex)

    def _abandon(self, ex: Exchange) -> None:
        if ex.connect is not None:
            ex.connect.cancel()
            ex.connect = None
        upstream = ex.upstream
        if upstream is not None:
            ex.upstream = None
            upstream.client = None
            upstream.ex = None
            upstream.abort()

    def sweep(self, now: float) -> None:
        s = self.settings
        if self.closed:
            return
        if self.write_paused and now - self.write_paused_at > s.send_timeout:
            self._close(abort=True)
            return
        tunnel = self.tunnel
        if tunnel is not None:
            if now - max(self.last_rx, tunnel.last_io) > s.tunnel_timeout:
                self._close()
            return
        if self.head_started and now - self.head_started > s.header_timeout:
            if self.last_rx == 0.0 and not self.exchanges:
                self._close()  # never said anything: no answer owed
            else:
                self._refuse(408)
                self._pump()
            return
        if not self.exchanges:
            if self.idle_since and now - self.idle_since > s.keepalive_timeout:
                self._close()
            return
        ex = self.exchanges[0]
        if self.parsing is not None and now - self.last_rx > s.body_timeout:
            self._refuse(408)
            self._pump()
            return
        upstream = ex.upstream
        if (
            upstream is not None
            and ex.req_done
            and not self.write_paused
            and now - upstream.last_io > s.read_timeout
        ):
            self._abandon(ex)
            if ex.responded:
                self._close(abort=True)
            else:
                self._answer(ex, 504)
                ex.close = True
                self._pump()

    def evict(self) -> None:
        """Closed to make room for new connections (it was waiting for a request)."""
        self._close()

    def drain(self) -> None:
        """Stop: close now if idle, else after the response in flight."""
        self.draining = True
        if not self.exchanges and self.tunnel is None:
            self._close()

    def _close(self, *, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.r.conns.discard(self)
        self.r.waiting.discard(self)
        for ex in self.exchanges:
            self._abandon(ex)
        self.exchanges.clear()
        if self.tunnel is not None:
            tunnel, self.tunnel = self.tunnel, None
            tunnel.client = None
            tunnel.close()
        if abort:
            self.transport.abort()
        else:
            self.transport.close()


def _nodelay(transport: Any) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
