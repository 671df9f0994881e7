"""The relay's wire format, inside the mutual-TLS connection between two nodes.

One TLS connection carries one relayed TCP connection. TLS as asyncio speaks it has no
half-close (a ``close_notify`` ends both directions), so the bytes are framed: every frame is a
five-byte header, the frame's kind (one byte) and its payload's length (four, big-endian), then
the payload.

* ``OPEN`` (dialer → owner): the payload is ``"<pod IP> <port>"`` in ASCII.
* ``OPENED`` (owner → dialer): the owner connected to the pod; data frames may follow.
* ``REFUSED`` (owner → dialer): the payload says why (the connect's ``strerror``, or that the
  address is not one of the owner's pods); the owner then closes.
* ``DATA``: bytes of the relayed connection, in order.
* ``EOF``: the sender's side of the relayed connection is done (its client half-closed);
  the other direction goes on. Closing the TLS connection without ``EOF`` both ways is a reset.

The dialer may send ``DATA`` right after ``OPEN``; the owner holds it until it has connected.

Concurrency: pure; :class:`FrameParser` is one connection's incremental parser.
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


HEADER = struct.Struct(">BI")
HEADER_SIZE = HEADER.size
MAX_CONTROL = 1024
"""The longest payload of a frame that is not ``DATA``."""
MAX_DATA = 1 << 24
"""The longest ``DATA`` payload a peer may send (a sender's frames are as large as its reads)."""

_DATA_HEADERS: dict[int, bytes] = {}


class ProtocolError(ValueError):
    """The peer broke the wire format; the connection is dropped."""


def frame(kind: Kind, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def data_header(size: int) -> bytes:
    """The header of a ``DATA`` frame of ``size`` bytes (small sizes are kept)."""
    head = _DATA_HEADERS.get(size)
    if head is None:
        head = HEADER.pack(Kind.DATA, size)
        if size <= 4096:
            _DATA_HEADERS[size] = head
    return head


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
    """Splits a byte stream into frames: ``on_data(chunk)`` for the pieces of ``DATA``
    payloads as they arrive (a large frame may come in several pieces, each passed on at
    once), ``on_control(kind, payload)`` for every other frame, whole."""

    __slots__ = ("_on_data", "_on_control", "_left", "_pending")

    def __init__(
        self,
        *,
        on_data: Callable[[bytes | memoryview], None],
        on_control: Callable[[Kind, bytes], None],
    ) -> None:
        self._on_data = on_data
        self._on_control = on_control
        self._left = 0
        """Bytes of the current DATA payload still to come."""
        self._pending = b""
        """An incomplete header, or an incomplete control frame."""

    def feed(self, data: bytes) -> None:
        left = self._left
        if not self._pending and not left:
            # The common case: the chunk is exactly one DATA frame.
            size = len(data)
            if size > HEADER_SIZE and data[0] == Kind.DATA:
                length = HEADER.unpack_from(data)[1]
                if length == size - HEADER_SIZE:
                    self._on_data(data[HEADER_SIZE:])
                    return
        view = memoryview(data)
        if self._pending:
            view = memoryview(self._pending + data)
            self._pending = b""
        pos = 0
        end = len(view)
        while pos < end:
            if left:
                take = min(left, end - pos)
                self._on_data(view[pos : pos + take])
                pos += take
                left -= take
                continue
            if end - pos < HEADER_SIZE:
                self._pending = bytes(view[pos:])
                break
            kind, length = HEADER.unpack_from(view, pos)
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
            self._left = left
            self._on_control(control, payload)
        self._left = left
