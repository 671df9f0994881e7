"""The relay's wire format, inside the mutual-TLS link between two nodes.

One TLS connection (a *link*, :mod:`~procorch.proxy.relay.link`) carries many relayed TCP
connections (*streams*). Every frame is a nine-byte header, the frame's kind (one byte), its
stream's id and its payload's length (four bytes each, big-endian), then the payload.

* ``OPEN`` (dialer → owner): a new stream, to ``"<pod IP> <port>"`` (the payload, ASCII).
  Only the node that dialed the link opens streams on it, with ids that only increase.
* ``OPENED`` (owner → dialer): the owner connected to the pod; data may flow.
* ``REFUSED`` (owner → dialer): the payload says why (the connect's ``strerror``, or that the
  address is not one of the owner's pods); the stream is over.
* ``DATA``: bytes of the stream, in order. A sender has a window per stream
  (:data:`WINDOW` bytes at first) and sends no more than it until ``WINDOW`` frames grant more.
* ``WINDOW``: the payload (four bytes, big-endian) is how many more ``DATA`` bytes the peer may
  send on the stream: what this end has handed on since the last grant.
* ``EOF``: the sender's side of the stream is done (its client half-closed); the other
  direction goes on. A stream with ``EOF`` both ways is over.
* ``CLOSE``: ``EOF``, and the sender reads no more: the stream is over (a TCP close).
* ``RESET``: the stream is over, as a TCP reset.

Frames for a stream that is over at the receiving end are dropped (they crossed its end).

Concurrency: pure; :class:`FrameParser` is one link's incremental parser.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum


class Kind(IntEnum):
    DATA = 0
    OPEN = 1
    OPENED = 2
    REFUSED = 3
    EOF = 4
    CLOSE = 5
    RESET = 6
    WINDOW = 7


HEADER = struct.Struct(">BII")
HEADER_SIZE = HEADER.size
WINDOW = 4 * 1024 * 1024
"""The ``DATA`` bytes each end of a stream may send before the other grants more."""
MAX_CONTROL = 1024
"""The longest payload of a frame that is not ``DATA``."""
MAX_DATA = WINDOW
"""The longest ``DATA`` payload (no sender may have more credit)."""
_GRANT = struct.Struct(">I")


class ProtocolError(ValueError):
    """The peer broke the wire format; the link is dropped."""


def frame(kind: Kind, stream: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, stream, len(payload)) + payload


def data_header(stream: int, size: int) -> bytes:
    return HEADER.pack(Kind.DATA, stream, size)


def window(stream: int, grant: int) -> bytes:
    return HEADER.pack(Kind.WINDOW, stream, 4) + _GRANT.pack(grant)


def parse_window(payload: bytes) -> int:
    if len(payload) != 4:
        raise ProtocolError(f"WINDOW payload of {len(payload)} bytes")
    return int(_GRANT.unpack(payload)[0])


def open_payload(ip: str, port: int) -> bytes:
    return f"{ip} {port}".encode("ascii")


def parse_open(payload: bytes) -> tuple[str, int]:
    """``(ip, port)`` of an ``OPEN`` payload; :class:`ProtocolError` if it is not one."""
    try:
        ip, port_text = payload.decode("ascii").split(" ")
        port = int(port_text)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"bad OPEN payload {payload[:64]!r}") from None
    if not 0 < port < 65536:
        raise ProtocolError(f"bad port in OPEN: {port}")
    return ip, port


class FrameParser:
    """Splits a link's byte stream into frames: ``on_data(stream, chunk)`` for the pieces of
    ``DATA`` payloads as they arrive (a large frame may come in several pieces, each passed on
    at once), ``on_control(kind, stream, payload)`` for every other frame, whole."""

    __slots__ = ("_on_data", "_on_control", "_left", "_stream", "_pending")

    def __init__(
        self,
        *,
        on_data: Callable[[int, bytes | memoryview], None],
        on_control: Callable[[Kind, int, bytes], None],
    ) -> None:
        self._on_data = on_data
        self._on_control = on_control
        self._left = 0
        """Bytes of the current DATA payload still to come."""
        self._stream = 0
        """The stream of the current DATA payload."""
        self._pending = b""
        """An incomplete header, or an incomplete control frame."""

    def feed(self, data: bytes) -> None:
        left = self._left
        if not self._pending and not left:
            # A common case: the chunk is exactly one DATA frame.
            size = len(data)
            if size > HEADER_SIZE and data[0] == Kind.DATA:
                _, stream, length = HEADER.unpack_from(data)
                if length == size - HEADER_SIZE:
                    if length > MAX_DATA:
                        raise ProtocolError(f"DATA frame of {length} bytes")
                    self._on_data(stream, memoryview(data)[HEADER_SIZE:])
                    return
        view = memoryview(data)
        if self._pending:
            view = memoryview(self._pending + data)
            self._pending = b""
        pos = 0
        end = len(view)
        stream = self._stream
        while pos < end:
            if left:
                take = min(left, end - pos)
                self._on_data(stream, view[pos : pos + take])
                pos += take
                left -= take
                continue
            if end - pos < HEADER_SIZE:
                self._pending = bytes(view[pos:])
                break
            kind, stream, length = HEADER.unpack_from(view, pos)
            if kind == Kind.DATA:
                if length > MAX_DATA:
                    raise ProtocolError(f"DATA frame of {length} bytes")
                pos += HEADER_SIZE
                left = length
                continue
            try:
                control = Kind(kind)
            except ValueError:
                raise ProtocolError(f"unknown frame kind {kind}") from None
            if length > MAX_CONTROL:
                raise ProtocolError(f"{control.name} frame of {length} bytes")
            if end - pos < HEADER_SIZE + length:
                self._pending = bytes(view[pos:])
                break
            payload = bytes(view[pos + HEADER_SIZE : pos + HEADER_SIZE + length])
            pos += HEADER_SIZE + length
            self._left, self._stream = left, stream
            self._on_control(control, stream, payload)
        self._left, self._stream = left, stream
