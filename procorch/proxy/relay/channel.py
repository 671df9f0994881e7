"""One relayed connection over a TLS connection between two nodes, as an asyncio transport.

A :class:`Channel` is two things at once: the asyncio Protocol of the TLS transport (it reads
and writes :mod:`~procorch.proxy.relay.wire` frames) and the transport of the protocol that uses
the relayed connection (the Service proxy's or Ingress router's upstream side, or a
:class:`~procorch.proxy.relay.bridge.Bridge`). To that protocol it behaves as a TCP transport:
``write``, ``write_eof`` (half-close, as an ``EOF`` frame), flow control both ways, ``close``
(``EOF``, then the TLS connection closes: at once if the peer has not ended its side, as a
TCP close drops what still comes) and ``abort`` (the TLS connection drops with no ``EOF``,
which the other end takes as a reset).

``get_extra_info("socket")`` is None on purpose: the raw socket carries TLS records, and
anything that wrote to it directly (a splice pump) would bypass the encryption.

Concurrency: callbacks on the event loop. Frames that arrive before a protocol is attached
(:meth:`Channel.attach`) are held, with reading paused, and delivered in order on attach.
"""

from __future__ import annotations

import asyncio
from typing import Any

from procorch.proxy.relay import wire
from procorch.proxy.relay.wire import Kind

_WRITELINES_FROM = 64 * 1024
"""Data at least this large is written as header and payload apart, not copied into one."""


class Channel(asyncio.Protocol, asyncio.Transport):
    __slots__ = (
        "tls",
        "app",
        "target",
        "parser",
        "control",
        "held",
        "held_eof",
        "eof_sent",
        "eof_received_",
        "closed",
        "lost",
        "lost_exc",
        "app_paused",
    )

    def __init__(self, *, target: tuple[str, int] | None = None) -> None:
        self.tls: asyncio.Transport | None = None
        self.app: asyncio.Protocol | None = None
        self.target = target
        """The pod address this channel relays to (the dialer's; the owner's once OPENed)."""
        self.parser = wire.FrameParser(on_data=self._on_data, on_control=self._on_control)
        self.control: asyncio.Future[tuple[Kind, bytes]] | None = None
        """Resolved with the first control frame (OPEN at the owner, OPENED/REFUSED at the
        dialer)."""
        self.held: list[bytes] = []
        self.held_eof = False
        self.eof_sent = False
        self.eof_received_ = False
        self.closed = False
        """Closing or closed, by either end."""
        self.lost = False
        self.lost_exc: Exception | None = None
        self.app_paused = False
        """The app asked not to be given data (flow control): attach must not undo that."""

    # -- set-up ----------------------------------------------------------------------------

    def expect_control(self) -> asyncio.Future[tuple[Kind, bytes]]:
        if self.control is None:
            self.control = asyncio.get_running_loop().create_future()
        return self.control

    def send_control(self, kind: Kind, payload: bytes = b"") -> None:
        if self.tls is not None and not self.tls.is_closing():
            self.tls.write(wire.frame(kind, payload))

    def attach(self, app: asyncio.Protocol) -> None:
        """Hand the relayed connection to ``app``: its ``connection_made``, then what came."""
        self.app = app
        app.connection_made(self)
        held, self.held = self.held, []
        for chunk in held:
            app.data_received(chunk)
        if self.held_eof:
            self._deliver_eof()
        if self.lost:
            # The TLS connection ended before anyone was attached: tell the app now.
            self.app = None
            app.connection_lost(self._end_reason(self.lost_exc))
            return
        if self.tls is not None and not self.closed and not self.app_paused:
            self.tls.resume_reading()

    # -- protocol of the TLS transport ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tls = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
        except wire.ProtocolError:
            self.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost, self.lost_exc = True, exc
        control = self.control
        if control is not None and not control.done():
            control.set_exception(exc or ConnectionResetError("the relay connection closed"))
        app = self.app
        if app is None:
            return
        self.app = None
        app.connection_lost(self._end_reason(exc))

    def _end_reason(self, exc: Exception | None) -> Exception | None:
        """How the relayed connection ended, for the app: a TLS connection that closed
        without the peer's EOF, and without our own close or EOF, was reset."""
        if exc is None and not self.eof_received_ and not self.eof_sent:
            return ConnectionResetError("the relay connection was reset")
        return exc

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    def _on_data(self, chunk: bytes | memoryview) -> None:
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        if not data:
            return
        app = self.app
        if app is None:
            self.held.append(data)
            if self.tls is not None:
                self.tls.pause_reading()
            return
        app.data_received(data)

    def _on_control(self, kind: Kind, payload: bytes) -> None:
        if kind == Kind.EOF:
            if self.eof_received_:
                return
            self.eof_received_ = True
            if self.app is None:
                self.held_eof = True
            else:
                self._deliver_eof()
            return
        control = self.control
        if control is None or control.done():
            raise wire.ProtocolError(f"unexpected {kind.name} frame")
        control.set_result((kind, payload))

    def _deliver_eof(self) -> None:
        assert self.app is not None
        keep_open = self.app.eof_received()
        if self.eof_sent:
            self._close_tls()
        elif not keep_open:
            self.close()

    # -- transport of the relayed connection ----------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        tls = self.tls
        size = len(data)
        if not size or tls is None or self.eof_sent or self.closed or tls.is_closing():
            return  # the relayed connection is ending: what is left has nobody to go to
        if size < _WRITELINES_FROM:
            tls.write(wire.data_header(size) + bytes(data))
        else:
            tls.writelines([wire.data_header(size), data])

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self.eof_sent or self.closed:
            return
        self.eof_sent = True
        self.send_control(Kind.EOF)
        if self.eof_received_:
            self._close_tls()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        """Like a TCP close: what is buffered is sent, then the peer sees the end."""
        if self.closed:
            return
        self.write_eof()
        if not self.eof_received_:
            # The peer may go on sending: stop reading it, and end the TLS connection now.
            self._close_tls()

    def abort(self) -> None:
        self.closed = True
        if self.tls is not None:
            self.tls.abort()

    def _close_tls(self) -> None:
        self.closed = True
        if self.tls is not None:
            self.tls.close()

    def is_closing(self) -> bool:
        return self.closed or self.tls is None or self.tls.is_closing()

    def pause_reading(self) -> None:
        self.app_paused = True
        if self.tls is not None and not self.closed:
            self.tls.pause_reading()

    def resume_reading(self) -> None:
        self.app_paused = False
        if self.tls is not None and not self.closed and self.app is not None:
            self.tls.resume_reading()

    def is_reading(self) -> bool:
        return self.tls is not None and self.tls.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.tls is not None:
            self.tls.set_write_buffer_limits(high=high, low=low)

    def get_write_buffer_size(self) -> int:
        return self.tls.get_write_buffer_size() if self.tls is not None else 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None  # never the raw socket: see the module's docstring
        if name == "peername" and self.target is not None:
            return self.target
        if self.tls is None:
            return default
        return self.tls.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.app is not None, "no protocol attached yet"
        return self.app
