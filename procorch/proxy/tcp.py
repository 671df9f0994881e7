"""One proxied TCP connection: the client side, the upstream side, and what joins them.

A :class:`ClientConnection` is the protocol of an accepted client socket. It pauses reading
at once, picks an endpoint from its listener's :class:`~procorch.proxy.balancer.Balancer`
and connects; a refused or timed-out connect is retried on another endpoint (the client has
been sent nothing yet, and what it sent waits in the kernel). Once connected, bytes are
forwarded both ways as they come (asyncio Protocols, no coroutine per chunk), with flow
control both ways (a side whose peer's buffer is full stops being read until it drains),
half-close (a FIN is passed on with ``write_eof``, the other direction goes on), and an idle
timeout checked by the proxy's sweeper. A direction that carries bulk data (one read of at
least ``splice_threshold`` bytes) switches to :class:`~procorch.proxy.splice.SplicePump`.
Every read from the endpoint, and every send to it, is told to the connection's
:class:`~procorch.proxy.acks.EndpointAcks`, which quick-ACKs the endpoint when its Service's
endpoints have been seen waiting for our delayed ACKs.

Concurrency: protocol callbacks on the event loop, plus one short task per connection while
it connects (cancelled if the connection is closed first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from procorch.proxy import splice, transports
from procorch.proxy.acks import EndpointAcks
from procorch.proxy.balancer import Balancer, ServiceStats
from procorch.proxy.endpoints import Addr

if TYPE_CHECKING:
    from procorch.proxy.l4 import Listener, ServiceProxy

_C2U, _U2C = 0, 1


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "proxy",
        "balancer",
        "stats",
        "client",
        "upstream",
        "upstream_protocol",
        "client_ip",
        "client_eof",
        "upstream_eof",
        "touched",
        "idle_since",
        "closed",
        "connecting",
        "client_flow_paused",
        "upstream_flow_paused",
        "pumps",
        "splice_pending",
        "early",
        "task",
        "threshold",
        "acks",
    )

    def __init__(self, proxy: ServiceProxy, listener: Listener) -> None:
        self.proxy = proxy
        self.balancer: Balancer = listener.balancer
        self.stats: ServiceStats = listener.balancer.stats
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.upstream_protocol: UpstreamConnection | None = None
        self.client_ip = ""
        self.client_eof = False
        self.upstream_eof = False
        self.touched = True
        self.idle_since = 0.0
        self.closed = False
        self.connecting = True
        self.client_flow_paused = False  # the upstream's write buffer is full
        self.upstream_flow_paused = False  # the client's write buffer is full
        self.pumps: list[splice.SplicePump | None] = [None, None]
        self.splice_pending = [False, False]
        self.early: list[bytes] = []  # what the client sent before the upstream was there
        self.task: asyncio.Task[None] | None = None
        self.acks: EndpointAcks | None = None  # the upstream's, once connected
        # A read this large moves its direction to splice (never, without splice).
        self.threshold = (
            proxy.settings.splice_threshold
            if proxy.settings.splice and splice.AVAILABLE
            else 1 << 62
        )

    # -- client side ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports are not asyncio's classes.
        self.client = client = cast(asyncio.Transport, transport)
        client.pause_reading()
        client.set_write_buffer_limits(high=self.proxy.settings.write_buffer_high)
        peer = client.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""
        self.stats.connections += 1
        self.stats.active += 1
        self.idle_since = self.proxy.clock
        self.proxy.conns.add(self)
        self.task = self.proxy.loop.create_task(self._connect())

    async def _connect(self) -> None:
        proxy = self.proxy
        settings = proxy.settings
        loop = proxy.loop
        balancer = self.balancer
        tried: set[Addr] = set()
        for _ in range(settings.connect_attempts):
            now = loop.time()
            addr = balancer.pick(now, self.client_ip, tried)
            if addr is None:
                break
            tried.add(addr)
            try:
                async with asyncio.timeout(settings.connect_timeout):
                    transport, protocol = await proxy.dial(
                        lambda: UpstreamConnection(self), addr[0], addr[1]
                    )
            except (OSError, TimeoutError):
                self.stats.connect_errors += 1
                balancer.failed[addr] = now + settings.failure_backoff
                continue
            if self.closed:
                transport.abort()
                return
            if transport.is_closing():
                self.close()  # the endpoint came and went before we were ready
                return
            if balancer.failed:
                balancer.failed.pop(addr, None)
            transport.set_write_buffer_limits(high=settings.write_buffer_high)
            self.upstream = transport
            self.upstream_protocol = protocol
            self.acks = protocol.acks
            self.connecting = False
            if self.early:
                data = b"".join(self.early)
                self.early.clear()
                transport.write(data)
                self.stats.bytes_in += len(data)
                protocol.acks.due = True
            if self.client_eof:
                self._send_eof(transport)
            self._resume_client()
            if self.upstream_eof and self.client is not None:
                # The endpoint closed its side before we were ready: pass it on now.
                self._send_eof(self.client)
            return
        self.stats.no_endpoint += 1
        self.reset()

    def data_received(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is None:
            # uvloop starts reading right after connection_made, whatever that said: keep
            # what came, and stop reading until the upstream is there.
            self.early.append(data)
            if self.client is not None:
                self.client.pause_reading()
            return
        upstream.write(data)
        acks = self.acks
        if acks is not None:
            acks.due = True
        size = len(data)
        self.stats.bytes_in += size
        self.touched = True
        if size >= self.threshold:
            self._request_splice(_C2U)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.upstream is not None:
            self._send_eof(self.upstream)
        if self.upstream_eof:
            self.close()
        return True

    def pause_writing(self) -> None:
        """The client's buffer is full: stop reading the upstream."""
        self.upstream_flow_paused = True
        if self.upstream is not None and self.pumps[_U2C] is None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.upstream_flow_paused = False
        self._resume_upstream()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.reset()
        else:
            self.close()

    # -- called by the upstream side -----------------------------------------------------------

    def upstream_eof_received(self) -> None:
        self.upstream_eof = True
        if self.client is not None and not self.connecting:
            self._send_eof(self.client)
        if self.client_eof:
            self.close()

    def upstream_pause_writing(self) -> None:
        """The upstream's buffer is full: stop reading the client."""
        self.client_flow_paused = True
        if self.client is not None and self.pumps[_C2U] is None:
            self.client.pause_reading()

    def upstream_resume_writing(self) -> None:
        self.client_flow_paused = False
        self._resume_client()

    def _resume_client(self) -> None:
        """Read the client again, unless something still holds it: the connect, a full
        upstream buffer, or its direction being (about to be) spliced."""
        if (
            self.client is not None
            and not self.connecting
            and not self.closed
            and not self.client_flow_paused
            and self.pumps[_C2U] is None
            and not self.splice_pending[_C2U]
        ):
            self.client.resume_reading()

    def _resume_upstream(self) -> None:
        if (
            self.upstream is not None
            and not self.closed
            and not self.upstream_flow_paused
            and self.pumps[_U2C] is None
            and not self.splice_pending[_U2C]
        ):
            self.upstream.resume_reading()

    def upstream_lost(self, exc: Exception | None) -> None:
        if self.connecting:
            return  # a connect attempt that did not make it: _connect goes on
        if exc is not None:
            self.reset()
        else:
            self.close()

    # -- splice --------------------------------------------------------------------------------

    def _request_splice(self, direction: int) -> None:
        """Stop reading the source of ``direction`` now and switch it to a splice pump on the
        next loop iteration: what was just written to the destination must have reached its
        socket first (uvloop sends queued writes at the end of the iteration, and says its
        buffer is empty before it has)."""
        if self.pumps[direction] is not None or self.splice_pending[direction] or self.closed:
            return
        src = self.client if direction == _C2U else self.upstream
        if src is None:
            return
        self.splice_pending[direction] = True
        src.pause_reading()
        self.proxy.loop.call_soon(self._splice, direction)

    def _splice(self, direction: int) -> None:
        """Move ``direction`` to a splice pump, if its destination has nothing buffered;
        otherwise go on reading it as before."""
        self.splice_pending[direction] = False
        if not self._start_pump(direction) and not self.closed:
            if direction == _C2U:
                self._resume_client()
            else:
                self._resume_upstream()

    def _start_pump(self, direction: int) -> bool:
        if self.pumps[direction] is not None or self.closed:
            return False
        src, dst = (
            (self.client, self.upstream) if direction == _C2U else (self.upstream, self.client)
        )
        if src is None or dst is None or dst.get_write_buffer_size() or dst.is_closing():
            return False
        if (self.client_eof if direction == _C2U else self.upstream_eof) or src.is_closing():
            return False
        src_sock: Any = src.get_extra_info("socket")
        dst_sock: Any = dst.get_extra_info("socket")
        if src_sock is None or dst_sock is None:
            self.threshold = 1 << 62
            return False
        stats = self.stats
        acks = self.acks
        on_read: Callable[[int], None] | None = None
        if direction == _C2U:

            def on_bytes(count: int) -> None:
                stats.bytes_in += count
                self.touched = True
                if acks is not None:
                    acks.due = True

        else:

            def on_bytes(count: int) -> None:
                stats.bytes_out += count
                self.touched = True

            on_read = acks.read if acks is not None else None

        try:
            pump = splice.SplicePump(
                self.proxy.loop,
                src_fd=src_sock.fileno(),
                dst_fd=dst_sock.fileno(),
                pipe_size=self.proxy.settings.pipe_size,
                on_bytes=on_bytes,
                on_eof=lambda: self._pump_eof(direction),
                on_error=lambda exc: self.reset(),
                on_read=on_read,
            )
        except OSError:
            self.threshold = 1 << 62
            return False
        self.pumps[direction] = pump
        self.stats.spliced += 1
        pump.start()
        return True

    def _pump_eof(self, direction: int) -> None:
        if direction == _C2U:
            self.client_eof = True
            if self.upstream is not None:
                self._send_eof(self.upstream)
            if self.upstream_eof:
                self.close()
        else:
            self.upstream_eof = True
            if self.client is not None:
                self._send_eof(self.client)
            if self.client_eof:
                self.close()

    # -- ending --------------------------------------------------------------------------------

    @staticmethod
    def _send_eof(transport: asyncio.Transport) -> None:
        if transport.is_closing():
            return
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except (OSError, RuntimeError):
            transport.abort()

    def _finish(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        self.stats.active -= 1
        self.proxy.conns.discard(self)
        for i, pump in enumerate(self.pumps):
            if pump is not None:
                pump.close()
                self.pumps[i] = None
        task = self.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        return True

    def close(self) -> None:
        """Both sides are done (or one went away cleanly): close, flushing what is buffered."""
        if not self._finish():
            return
        for transport in (self.client, self.upstream):
            if transport is not None:
                transport.close()

    def reset(self) -> None:
        """Something failed: drop both sides at once; the client sees a reset, as it would
        from a refused or broken connection."""
        if not self._finish():
            return
        for transport in (self.client, self.upstream):
            if transport is not None:
                transports.reset(transport)


class UpstreamConnection(asyncio.Protocol):
    __slots__ = ("conn", "transport", "client", "stats", "acks")

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        assert conn.client is not None
        self.client = conn.client
        self.stats = conn.stats
        self.acks = EndpointAcks(conn.stats)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.acks.transport = transport
        if self.conn.upstream_flow_paused:
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        # The hot path of responses: no call through the connection object. The ACK side
        # first: an endpoint that waits for our ACK to send the rest of its answer (Nagle on
        # its side, delayed ACKs on ours) gets it now, see procorch.proxy.acks.
        size = len(data)
        self.acks.read(size)
        self.client.write(data)
        self.stats.bytes_out += size
        conn = self.conn
        conn.touched = True
        if size >= conn.threshold and not conn.connecting:
            conn._request_splice(_U2C)

    def eof_received(self) -> bool:
        self.conn.upstream_eof_received()
        return True

    def pause_writing(self) -> None:
        self.conn.upstream_pause_writing()

    def resume_writing(self) -> None:
        self.conn.upstream_resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.acks.close()
        if self.conn.upstream is self.transport:
            self.conn.upstream_lost(exc)
