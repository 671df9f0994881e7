"""One TLS connection between two nodes, carrying many relayed connections.

A :class:`Link` is the asyncio Protocol of a mutual-TLS connection to another node; each
relayed TCP connection on it is a :class:`Stream` (:mod:`~procorch.proxy.relay.wire` has the
frames). A node dials one link to each peer it relays to and keeps it, so a new relayed
connection costs one ``OPEN`` frame and its ``OPENED`` answer, not a TLS handshake.

Frames written while the event loop handles one round of events are sent together, as one
TLS write, after that round (``call_soon``): under load, many requests cross in one TLS
record, one ``send`` and one decryption at the other end, which is what makes a shared link
cheaper per request than a TLS connection per relayed connection.

A :class:`Stream` is the transport of the protocol that uses the relayed connection (the
Service proxy's or Ingress router's upstream side, or a
:class:`~procorch.proxy.relay.bridge.Bridge` side); to it it behaves as a TCP transport:
``write``, ``write_eof`` (half-close), ``close`` (what is buffered is sent, then the peer sees
the end), ``abort`` (the peer sees a reset) and flow control both ways:

* each stream may have :data:`~procorch.proxy.relay.wire.WINDOW` bytes in flight each way; a
  receiver grants more as its protocol takes the bytes, so a protocol that stops reading
  (its own peer is slow) holds up its stream only, never the link;
* a stream's writer is paused when its unsent bytes pass ``high`` (no window left), or when
  the link's TLS transport asks to pause (the network is the bottleneck), and resumed after.

``get_extra_info("socket")`` is None on purpose: the raw socket carries TLS records, and
anything that wrote to it directly (a splice pump) would bypass the encryption.

Concurrency: callbacks on the event loop; no tasks. A protocol's ``connection_lost`` is
called soon after the end, never from inside the call that ended the stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from procorch.kit.logging import get_logger
from procorch.proxy.relay import wire
from procorch.proxy.relay.wire import Kind

log = get_logger("proxy.relay")

Addr = tuple[str, int]

_JOIN_UP_TO = 64 * 1024
"""Frames waiting to be sent are joined into one TLS write up to this many bytes (larger
batches go as they are: the copy would cost more than the records it saves)."""
_GRANT_AT = wire.WINDOW // 4
"""A receiver grants window once it has handed on this many bytes."""
_MAX_STREAM_ID = 0xFFFF_FFFF
MAX_STREAMS = 16384
"""Relayed connections open at once on one link; the peer's next OPEN is refused."""
_MAX_UNSENT = 64 * 1024 * 1024
"""A link whose TLS transport holds more than this unsent is dropped (see ``_flush``)."""
_LINK_HIGH = 1024 * 1024


class Link(asyncio.Protocol):
    """The protocol of one TLS connection to ``peer`` (a node name, or an address before the
    peer is known). ``on_open`` is given each stream the peer opens (the accepting end);
    without it, the peer opening a stream is a protocol error (the dialing end). ``on_made``
    is called once the TLS handshake is done, before any frame is read: where the accepting
    end checks who the peer is (and aborts the link if it must)."""

    __slots__ = (
        "peer",
        "on_open",
        "on_lost",
        "on_made",
        "tls",
        "loop",
        "streams",
        "parser",
        "next_id",
        "last_peer_id",
        "out",
        "out_size",
        "flushing",
        "paused",
        "closed",
        "lost",
    )

    def __init__(
        self,
        peer: str,
        *,
        on_open: Callable[[Stream], None] | None = None,
        on_lost: Callable[[Link], None] | None = None,
        on_made: Callable[[Link], None] | None = None,
    ) -> None:
        self.peer = peer
        self.on_open = on_open
        self.on_lost = on_lost
        self.on_made = on_made
        self.tls: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.streams: dict[int, Stream] = {}
        self.parser = wire.FrameParser(on_data=self._on_data, on_control=self._on_control)
        self.next_id = 1
        self.last_peer_id = 0
        self.out: list[bytes | bytearray | memoryview] = []
        self.out_size = 0
        self.flushing = False
        self.paused = False
        """The TLS transport asked not to be written to (its buffer is full)."""
        self.closed = False
        """Closed or aborted here: nothing more is read."""
        self.lost = False

    @property
    def usable(self) -> bool:
        """Whether new streams may be opened here."""
        return (
            not self.closed
            and not self.lost
            and self.tls is not None
            and self.next_id < _MAX_STREAM_ID
        )

    def open(self, target: Addr) -> Stream:
        """A new stream to ``target`` on the peer (``OPEN`` sent); await its ``reply``.
        ``ConnectionResetError`` if the link is not :attr:`usable` (it was lost)."""
        if not self.usable:
            raise ConnectionResetError(f"the relay link to {self.peer} was lost")
        stream = Stream(self, self.next_id, target)
        stream.reply = self.loop.create_future()
        self.next_id += 1
        self.streams[stream.id] = stream
        self.send(wire.frame(Kind.OPEN, stream.id, wire.open_payload(*target)))
        return stream

    def close(self) -> None:
        """End the link after what is queued is sent; its streams are reset."""
        self._flush()
        self.closed = True
        if self.tls is not None:
            self.tls.close()

    def abort(self) -> None:
        self.closed = True
        if self.tls is not None:
            self.tls.abort()

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` (whole frames) for the write after this round of events."""
        self.out.append(data)
        self.out_size += len(data)
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flushing = False
        out, size = self.out, self.out_size
        if not out:
            return
        self.out, self.out_size = [], 0
        tls = self.tls
        if tls is None or self.lost or tls.is_closing():
            return
        if tls.get_write_buffer_size() > _MAX_UNSENT:
            # Writers pause long before this: only a peer that sends and never reads (its
            # answers, refusals and grants piling up) gets here.
            log.warning("dropped a relay link: the peer reads nothing", peer=self.peer)
            self.abort()
            return
        if len(out) == 1:
            tls.write(out[0])
        elif size <= _JOIN_UP_TO:
            tls.write(b"".join(out))
        else:
            tls.writelines(out)

    # -- protocol of the TLS transport --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tls = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=_LINK_HIGH)  # type: ignore[attr-defined]
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.parser.feed(data)
        except wire.ProtocolError as exc:
            log.warning(
                "dropped a relay link: the peer broke the protocol", peer=self.peer, error=str(exc)
            )
            self.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.out, self.out_size = [], 0
        streams, self.streams = self.streams, {}
        reason = ConnectionResetError(f"the relay link to {self.peer} was lost")
        for stream in streams.values():
            stream.end(reason)
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        self.paused = True
        for stream in list(self.streams.values()):
            stream.update_writer()

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            stream.update_writer()

    def _on_data(self, stream_id: int, chunk: bytes | memoryview) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            self._check_known(stream_id, Kind.DATA)
            return
        stream.data_arrived(chunk)

    def _on_control(self, kind: Kind, stream_id: int, payload: bytes) -> None:
        if kind is Kind.OPEN:
            self._peer_opened(stream_id, payload)
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            self._check_known(stream_id, kind)
            return
        stream.control_arrived(kind, payload)

    def _peer_opened(self, stream_id: int, payload: bytes) -> None:
        if self.on_open is None:
            raise wire.ProtocolError("OPEN from the accepting end")
        if stream_id <= self.last_peer_id:
            raise wire.ProtocolError(f"OPEN of stream {stream_id} after {self.last_peer_id}")
        self.last_peer_id = stream_id
        stream = Stream(self, stream_id, wire.parse_open(payload))
        if len(self.streams) >= MAX_STREAMS:
            stream.refuse(f"more than {MAX_STREAMS} relayed connections on one link")
            return
        self.streams[stream_id] = stream
        self.on_open(stream)

    def _check_known(self, stream_id: int, kind: Kind) -> None:
        """A frame for a stream that is not open here: one that ended (dropped), or one that
        never was (the peer is broken)."""
        last = self.next_id - 1 if self.on_open is None else self.last_peer_id
        if not 0 < stream_id <= last:
            raise wire.ProtocolError(f"{kind.name} for stream {stream_id}, never opened")


class Stream(asyncio.Transport):
    """One relayed connection on a :class:`Link`, as the transport of ``app``."""

    __slots__ = (
        "link",
        "id",
        "target",
        "app",
        "reply",
        "held",
        "held_eof",
        "peer_closed",
        "reading",
        "send_credit",
        "recv_credit",
        "handed_on",
        "unsent",
        "unsent_size",
        "ending",
        "eof_sent",
        "eof_received",
        "over",
        "end_reason",
        "writer_paused",
        "high",
        "low",
    )

    def __init__(self, link: Link, stream_id: int, target: Addr) -> None:
        super().__init__()
        self.link = link
        self.id = stream_id
        self.target = target
        """The pod address this stream relays to."""
        self.app: asyncio.Protocol | None = None
        self.reply: asyncio.Future[tuple[Kind, bytes]] | None = None
        """The dialer's: resolved with OPENED or REFUSED and its payload."""
        self.held: deque[bytes] = deque()
        """Bytes that arrived while no protocol took them (none attached, or reading paused)."""
        self.held_eof = False
        self.peer_closed = False
        """The peer sent CLOSE: once what is held is handed on, the stream is over."""
        self.reading = True
        self.send_credit = wire.WINDOW
        self.recv_credit = wire.WINDOW
        self.handed_on = 0
        """Bytes handed to the protocol since the last grant."""
        self.unsent: deque[bytes | bytearray | memoryview] = deque()
        """Bytes written beyond the window, sent as the peer grants more."""
        self.unsent_size = 0
        self.ending: Kind | None = None
        """EOF or CLOSE, to send once what is unsent is sent."""
        self.eof_sent = False
        self.eof_received = False
        self.over = False
        self.end_reason: Exception | None = None
        self.writer_paused = False
        self.high = 64 * 1024
        self.low = 16 * 1024

    # -- the owner's answer -------------------------------------------------------------------

    def accept(self) -> None:
        self.link.send(wire.frame(Kind.OPENED, self.id))

    def refuse(self, why: str) -> None:
        if self.over:
            return
        self.link.send(wire.frame(Kind.REFUSED, self.id, why.encode()[: wire.MAX_CONTROL]))
        self.end(None)

    def attach(self, app: asyncio.Protocol) -> None:
        """Hand the stream to ``app``: its ``connection_made``, then what came meanwhile."""
        was_over = self.over
        self.app = app
        app.connection_made(self)
        if was_over:
            # Over before there was anyone to tell (``end`` told no protocol).
            self.link.loop.call_soon(app.connection_lost, self.end_reason)
            return
        self.update_writer()  # the link may be paused already
        self._hand_on_held()

    # -- from the link ------------------------------------------------------------------------

    def data_arrived(self, chunk: bytes | memoryview) -> None:
        size = len(chunk)
        if size > self.recv_credit:
            raise wire.ProtocolError(f"stream {self.id}: {size} bytes of DATA beyond its window")
        self.recv_credit -= size
        if not size:
            return
        if self.eof_received:
            raise wire.ProtocolError(f"stream {self.id}: DATA after EOF")
        if self.ending is Kind.CLOSE:
            # Closed here, its unsent bytes still going out: what comes is dropped, and
            # granted again, so that the peer is never stalled waiting to send it.
            self._grant(size)
            return
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        app = self.app
        if app is None or not self.reading or self.held:
            self.held.append(data)
            return
        self._hand(app, data)

    def control_arrived(self, kind: Kind, payload: bytes) -> None:
        if kind is Kind.WINDOW:
            self.send_credit += wire.parse_window(payload)
            self._send_unsent()
        elif kind is Kind.EOF or kind is Kind.CLOSE:
            self.peer_closed = kind is Kind.CLOSE
            if not self.eof_received:
                self.eof_received = True
                self.held_eof = True
            self._hand_on_held()
        elif kind is Kind.RESET:
            self.end(ConnectionResetError("the relayed connection was reset"))
        elif kind is Kind.OPENED or kind is Kind.REFUSED:
            reply = self.reply
            if reply is None or reply.done():
                raise wire.ProtocolError(f"unexpected {kind.name} for stream {self.id}")
            reply.set_result((kind, payload))
            if kind is Kind.REFUSED:
                self.end(None)
        else:
            raise wire.ProtocolError(f"unexpected {kind.name} for stream {self.id}")

    # -- handing bytes to the protocol --------------------------------------------------------

    def _hand_on_held(self) -> None:
        app = self.app
        if app is None or self.over:
            return
        held = self.held
        while held and self.reading:
            self._hand(app, held.popleft())
            if self.over or self.app is not app:
                return
        if held:
            return
        if self.held_eof:
            if not self.reading:
                return
            self.held_eof = False
            keep_open = app.eof_received()
            if self.over or self.app is not app:
                return
            if not keep_open and not (self.peer_closed or self.eof_sent):
                self.close()
                return
        if self.eof_received and (self.peer_closed or self.eof_sent):
            self.end(None)  # both ends are done

    def _hand(self, app: asyncio.Protocol, data: bytes) -> None:
        try:
            app.data_received(data)
        except Exception:
            # The protocol's failure ends its own stream, not the link and the others on it.
            log.exception("a relayed connection's protocol failed", stream=self.id)
            self.abort()
            return
        handed = self.handed_on + len(data)
        if handed >= _GRANT_AT and not self.eof_received:
            self.handed_on = 0
            self._grant(handed)
        else:
            self.handed_on = handed

    def _grant(self, size: int) -> None:
        self.recv_credit += size
        self.link.send(wire.window(self.id, size))

    # -- sending ------------------------------------------------------------------------------

    def _send_data(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        self.send_credit -= size
        if size <= 4096:
            self.link.send(wire.data_header(self.id, size) + bytes(data))
        else:
            self.link.send(wire.data_header(self.id, size))
            self.link.send(data)

    def _send_unsent(self) -> None:
        unsent = self.unsent
        while unsent and self.send_credit > 0 and not self.over:
            data = unsent[0]
            credit = self.send_credit
            if len(data) <= credit:
                unsent.popleft()
                self.unsent_size -= len(data)
                self._send_data(data)
            else:
                view = memoryview(data)
                unsent[0] = view[credit:]
                self.unsent_size -= credit
                self._send_data(view[:credit])
        if not unsent and self.ending is not None and not self.over:
            self._send_end(self.ending)
        self.update_writer()

    def _send_end(self, kind: Kind) -> None:
        self.link.send(wire.frame(kind, self.id))
        self.eof_sent = True
        if kind is Kind.CLOSE or self.eof_received and not self.held_eof:
            self.end(None)

    def update_writer(self) -> None:
        """Pause or resume the protocol's writing, as the window and the link allow."""
        app = self.app
        if app is None or self.over:
            return
        paused = self.link.paused or self.unsent_size > self.high
        if paused == self.writer_paused:
            return
        if not paused and self.unsent_size > self.low:
            return
        self.writer_paused = paused
        if paused:
            app.pause_writing()
        else:
            app.resume_writing()

    def end(self, reason: Exception | None) -> None:
        """The stream is over: ``reason`` None when it ended as it should (both ends done, a
        refusal, our own close or abort), else why (a reset, the link lost)."""
        if self.over:
            return
        self.over = True
        self.end_reason = reason
        self.held.clear()
        self.unsent.clear()
        self.unsent_size = 0
        link = self.link
        if link.streams.get(self.id) is self:
            del link.streams[self.id]
        reply = self.reply
        if reply is not None and not reply.done():
            reply.set_exception(reason or ConnectionResetError("the relayed connection closed"))
        app = self.app
        if app is not None:
            link.loop.call_soon(app.connection_lost, reason)

    # -- transport of the relayed connection --------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.over or self.ending is not None or self.eof_sent or not data:
            return  # the stream is ending: what is left has nobody to go to
        if type(data) is not bytes:
            data = bytes(data)  # the caller may reuse its buffer before the link writes
        if not self.unsent and len(data) <= self.send_credit:
            self._send_data(data)
            return
        self.unsent.append(data)
        self.unsent_size += len(data)
        self._send_unsent()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self.over or self.ending is not None or self.eof_sent:
            return
        self.ending = Kind.EOF
        if not self.unsent:
            self._send_end(Kind.EOF)

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        """Like a TCP close: what is buffered is sent, then the peer sees the end; what still
        arrives is dropped."""
        if self.over or self.ending is Kind.CLOSE:
            return
        self.ending = Kind.CLOSE
        dropped = sum(len(data) for data in self.held)
        self.held.clear()
        if dropped and not self.eof_received and self.unsent:
            self._grant(dropped)  # see data_arrived: the peer must not stall on them
        if not self.unsent:
            self._send_end(Kind.CLOSE)

    def abort(self) -> None:
        if self.over:
            return
        self.link.send(wire.frame(Kind.RESET, self.id))
        self.end(None)

    def is_closing(self) -> bool:
        return self.over or self.ending is Kind.CLOSE

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if self.reading:
            return
        self.reading = True
        self._hand_on_held()

    def is_reading(self) -> bool:
        return self.reading and not self.over

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self.high = high
        self.low = low if low is not None else self.high // 4

    def get_write_buffer_size(self) -> int:
        return self.unsent_size

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None  # never the raw socket: see the module's docstring
        if name == "peername":
            return self.target
        if self.link.tls is None:
            return default
        return self.link.tls.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.app = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.app is not None, "no protocol attached yet"
        return self.app
