"""Upstream connections to endpoints, and the pool of idle keep-alive ones.

:class:`UpstreamConnection` is an asyncio Protocol bound to one client exchange at a time. It
forwards the response bytes to the client *as received*, using the httptools response parser
only to learn where the response ends and whether the connection may be reused; the head is
rebuilt only when it carries hop-by-hop fields, the request was ``HEAD`` (whose response has no
body whatever its ``Content-Length`` says), or it is an interim ``1xx``. A ``101`` turns the
connection into a raw tunnel (WebSocket). Flow control: when the client's send buffer is full,
the owner pauses reading here; when this connection's send buffer is full, the client is paused.
A response that is still incomplete after a read gets its ACK sent at once (``TCP_QUICKACK``),
so that an endpoint writing head and body in two sends with Nagle on is not held 40 ms.

:class:`Pool` keeps idle connections per endpoint address, most recently used first, closes
those idle for too long (from the router's sweeper), and closes them at once when their
endpoint leaves the ready set.

Concurrency: single event loop; Protocol callbacks only, no tasks.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import httptools

from procorch.kit.logging import get_logger
from procorch.proxy.ingress.messages import (
    CONNECTION_CLOSE_RE,
    RESPONSE_HOP_RE,
    rewrite_response_head,
)

if TYPE_CHECKING:
    from procorch.proxy.ingress.downstream import ClientConnection, Exchange

log = get_logger("proxy.ingress.upstream")

Addr = tuple[str, int]


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class Timebase(Protocol):
    clock: float
    """Loop time, refreshed by the router's sweeper: an attribute read, not a call, on the
    data path."""


UPSTREAM_FULL = 2
"""The reason a client connection stops being read when this side's send buffer is full
(a bit of :attr:`~procorch.proxy.ingress.downstream.ClientConnection.paused`)."""


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: Pool, addr: Addr) -> None:
        self.pool = pool
        self.addr = addr
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.client: ClientConnection | None = None
        self.ex: Exchange | None = None
        self.in_head = True
        self.head_buf = b""
        self.complete = False
        self.keep_alive = False
        self.status = 0  # the final response's status, once complete
        self.reused = False
        self.tunnel = False
        self.closed = False
        self.read_paused = False
        self.idle_since = 0.0
        self.last_io = 0.0
        self.setsockopt: Callable[[int, int, int], None] | None = None
        self.quickacked = False  # the response being received has had its quick ACK

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=self.pool.write_high)
        if _TCP_QUICKACK is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self.setsockopt = sock.setsockopt

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        client = self.client
        if client is not None:
            client.upstream_lost(self, exc)

    def eof_received(self) -> bool:
        # Either the end of an EOF-delimited response, or the endpoint closing an idle (or
        # reused) connection: connection_lost sorts it out.
        return False

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause(UPSTREAM_FULL)

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume(UPSTREAM_FULL)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            # Idle connections are not spoken to: whatever arrives means it is unusable.
            self.abort()
            return
        self.last_io = self.pool.timebase.clock
        if self.tunnel:
            client.transport.write(data)
            return
        ex = self.ex
        assert ex is not None
        ex.response_bytes += len(data)
        try:
            if self.in_head:
                end = data.find(b"\r\n\r\n") if not self.head_buf else -1
                if (
                    end > 0
                    and data[9:10] != b"1"
                    and not ex.is_head
                    and not client.draining
                    and RESPONSE_HOP_RE.search(data, 0, end) is None
                ):
                    # The common case, inline: a whole head that needs nothing; forward it
                    # all untouched.
                    self.in_head = False
                    self.parser.feed_data(data)
                    client.transport.write(data)
                    ex.responded = True
                else:
                    self._head(client, ex, data)
            else:
                self.parser.feed_data(data)
                client.transport.write(data)
        except httptools.HttpParserError as exc:
            log.debug("bad response from endpoint", endpoint=_fmt(self.addr), error=str(exc))
            self.complete = False
            client.upstream_failed(self, exc)
            return
        if self.complete:
            client.response_complete(self)
        elif not self.quickacked:
            self._quickack()

    def _quickack(self) -> None:
        """ACK what was read now, not in up to 40 ms; once per response.

        The race: an endpoint that writes its head and its body in two sends (Python's
        ``http.server`` on HTTP/1.1, many development servers) has Nagle on, so its second,
        small segment waits for the ACK of the first. On a pooled keep-alive connection we send
        each request soon after the previous response came, so Linux has put this socket in
        delayed-ACK ("pingpong") mode, and it ACKs the head only when its delayed-ACK timer
        fires: 40 ms per request. (A fresh connection starts in quick-ACK mode, so requests on
        new connections did not show it.) TCP_NODELAY, set here by the loop, cannot help: the
        Nagle is the endpoint's. Setting TCP_QUICKACK leaves pingpong mode and sends the pending
        ACK at once; later reads of the same response then ACK as they drain the socket, until
        our next request puts it back in pingpong mode (Linux clears quick-ACK by itself), hence
        once per response that takes more than one read. A response that arrives whole in one
        read, the common case, costs nothing.
        """
        self.quickacked = True
        setsockopt = self.setsockopt
        if setsockopt is not None and _TCP_QUICKACK is not None:
            try:
                setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                self.setsockopt = None

    # -- the response head -------------------------------------------------------------------

    def _head(self, client: ClientConnection, ex: Exchange, data: bytes) -> None:
        if self.head_buf:
            data = self.head_buf + data
            self.head_buf = b""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > self.pool.max_head:
                raise httptools.HttpParserError("response head too large")
            self.head_buf = data
            return
        end += 4
        if (
            data[9:10] != b"1"
            and not ex.is_head
            and not client.draining
            and RESPONSE_HOP_RE.search(data, 0, end) is None
        ):
            # The common case: forward it all untouched.
            self.in_head = False
            self.parser.feed_data(data)
            client.transport.write(data)
            ex.responded = True
            return
        self._slow_head(client, ex, data, end)

    def _slow_head(self, client: ClientConnection, ex: Exchange, data: bytes, end: int) -> None:
        head, rest = data[:end], data[end:]
        try:
            self.parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            # 101: the handshake head and whatever follows go through as they are.
            client.transport.write(data)
            ex.responded = True
            self.tunnel = True
            self.in_head = False
            client.start_tunnel(self)
            return
        status = self.parser.get_status_code()
        if status < 200:
            # Interim (100 Continue, 103 Early Hints): pass on to HTTP/1.1 clients, then wait
            # for the final answer.
            if ex.version != b"1.0":
                client.transport.write(head)
                ex.responded = True
            if rest:
                self._head(client, ex, rest)
            return
        self.in_head = False
        close = client.draining
        client.transport.write(
            rewrite_response_head(
                head, close=close, keep_alive_10=ex.version == b"1.0" and not close, upgrade=False
            )
        )
        ex.responded = True
        if ex.is_head:
            # No body follows, whatever the head says; llhttp cannot be told, so start afresh.
            self.complete = True
            self.status = status
            self.keep_alive = (
                not rest and head[5:8] == b"1.1" and CONNECTION_CLOSE_RE.search(head) is None
            )
            self.parser = httptools.HttpResponseParser(self)
            return
        if rest:
            self.parser.feed_data(rest)
            client.transport.write(rest)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status >= 200:
            self.complete = True
            self.status = status
            # Must be read here: once feed_data returns, llhttp has reset it.
            self.keep_alive = self.parser.should_keep_alive()

    def response_status(self) -> int:
        """The status of the response being received or last completed (0 if unknown)."""
        if self.status:
            return self.status
        try:
            return int(self.parser.get_status_code())
        except Exception:  # noqa: BLE001 - httptools refuses before a status line
            return 0

    # -- ownership ---------------------------------------------------------------------------

    def bind(self, client: ClientConnection, ex: Exchange) -> None:
        self.client = client
        self.ex = ex
        self.in_head = True
        self.head_buf = b""
        self.complete = False
        self.quickacked = False
        self.status = 0
        self.last_io = self.pool.timebase.clock
        if client.write_paused:
            self.pause_reading()

    def unbind(self) -> None:
        self.client = None
        self.ex = None
        if self.read_paused:
            self.read_paused = False
            if not self.closed:
                self.transport.resume_reading()

    def pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            self.transport.abort()

    def close(self) -> None:
        """Close after what is buffered has been written."""
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            self.transport.close()


class Pool:
    """Idle keep-alive connections per endpoint address (LIFO)."""

    def __init__(
        self,
        *,
        timebase: Timebase,
        is_ready: Callable[[Addr], bool],
        max_idle: int,
        idle_timeout: float,
        write_high: int,
        max_head: int,
    ) -> None:
        self.timebase = timebase
        self.is_ready = is_ready
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.write_high = write_high
        self.max_head = max_head
        self.idle: dict[Addr, list[UpstreamConnection]] = {}
        self.reuses = 0
        self.connects = 0

    def acquire(self, addr: Addr) -> UpstreamConnection | None:
        idle = self.idle.get(addr)
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                conn.reused = True
                self.reuses += 1
                return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        """Keep a connection whose response ended cleanly, if its endpoint is still ready."""
        conn.unbind()
        if conn.closed:
            return
        idle = self.idle.setdefault(conn.addr, [])
        if len(idle) >= self.max_idle or not self.is_ready(conn.addr):
            conn.close()
            return
        conn.idle_since = self.timebase.clock
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self.idle.get(conn.addr)
        if idle and conn in idle:
            idle.remove(conn)

    def retire(self, addr: Addr) -> None:
        """The endpoint left the ready set: close its idle connections now."""
        for conn in self.idle.pop(addr, []):
            conn.closed = True
            conn.transport.close()

    def sweep(self, now: float) -> None:
        limit = now - self.idle_timeout
        for addr in list(self.idle):
            idle = self.idle[addr]
            stale = [conn for conn in idle if conn.idle_since < limit]
            for conn in stale:
                idle.remove(conn)
                conn.closed = True
                conn.transport.close()
            if not idle:
                del self.idle[addr]

    def close_all(self) -> None:
        for addr in list(self.idle):
            self.retire(addr)

    def __len__(self) -> int:
        return sum(len(v) for v in self.idle.values())


def _fmt(addr: Addr) -> str:
    return f"{addr[0]}:{addr[1]}"
