"""The part of SPDY/3.1 that ``kubectl port-forward`` speaks: frames, and header blocks.

kubectl 1.31+ tunnels SPDY through a WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``),
its bytes in binary messages cut anywhere; :class:`FrameReader` reassembles frames from them.
What is here follows the SPDY Protocol Draft 3.1 (chromium.org/spdy): 8-byte frame headers,
big-endian; control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
WINDOW_UPDATE; DATA frames with FIN. Header blocks are name/value pairs compressed with one zlib
stream per direction for the whole connection, primed with the draft's dictionary (section
2.6.10.1), each block ending in a sync flush.

Flow control is not done, as kubectl's SPDY library (spdystream) does none: windows would stall
it at 64 KiB. Backpressure is the transport's.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
CANCEL = 5
"""RST_STREAM status: the stream is refused (kubelet's answer to a stream it cannot serve)."""
PROTOCOL_ERROR = 1
MAX_FRAME = 1024 * 1024
"""Larger frames are a protocol error (kubectl sends data in 32 KiB frames)."""
MAX_HEADER_BLOCK = 64 * 1024

# The header compression dictionary of SPDY/3 (draft 3, 2.6.10.1): 65 words, each after its
# 32-bit length, then a run of status codes, reason phrases, dates and media types.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status "
    "200\x00OK version HTTP/1.1 url public set-cookie keep-alive origin"
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(
        struct.pack(">I", len(w)) + w
        for w in (word.replace("\x00", " ").encode() for word in _WORDS.split(" "))
    )
    + _TAIL.encode()
)
assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 0xE3C6A7C2, "SPDY/3 dictionary"


class ProtocolError(Exception):
    """The peer broke SPDY: the connection cannot go on."""


@dataclass
class Frame:
    control: bool
    kind: int
    """The control frame's type; for DATA, 0."""
    flags: int
    stream_id: int
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)
    """SYN_STREAM's and HEADERS' name/value pairs, decompressed."""
    status: int = 0
    """RST_STREAM's and GOAWAY's status; PING's id."""

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class FrameReader:
    """Frames from a byte stream that arrives in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes")
            if len(self._buffer) < 8 + length:
                break
            head = bytes(self._buffer[:8])
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frames.append(self._frame(head, payload))
        return frames

    def _frame(self, head: bytes, payload: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            stream_id = int.from_bytes(head[:4], "big") & 0x7FFFFFFF
            return Frame(False, 0, flags, stream_id, payload)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        kind = int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}")
        frame = Frame(True, kind, flags, 0, payload)
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS, RST_STREAM, WINDOW_UPDATE):
            if len(payload) < 4:
                raise ProtocolError(f"control frame {kind} too short")
            frame.stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("SYN_STREAM too short")
            frame.headers = self._headers(payload[10:])
        elif kind == HEADERS:
            frame.headers = self._headers(payload[4:])
        elif kind == SYN_REPLY:
            self._headers(payload[4:])  # keeps the shared zlib stream in step
        elif kind in (RST_STREAM, GOAWAY) and len(payload) >= 8:
            frame.status = int.from_bytes(payload[4:8], "big")
        elif kind == PING and len(payload) >= 4:
            frame.status = int.from_bytes(payload[:4], "big")
        return frame

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from exc
        if self._inflate.unconsumed_tail:
            raise ProtocolError("header block too large")
        try:
            (count,) = struct.unpack_from(">I", raw, 0)
            at = 4
            headers: dict[str, str] = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", raw, at)
                name = raw[at + 4 : at + 4 + n].decode()
                at += 4 + n
                (n,) = struct.unpack_from(">I", raw, at)
                headers[name] = raw[at + 4 : at + 4 + n].decode()
                at += 4 + n
        except (struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(f"header block: {exc}") from exc
        return headers


class FrameWriter:
    """Frames to send; one compressor for every header block of the connection."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=DICTIONARY)

    def _control(self, kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            for text in (name.lower(), value):
                encoded = text.encode()
                raw += struct.pack(">I", len(encoded)) + encoded
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None) -> bytes:
        return self._control(
            SYN_REPLY, 0, struct.pack(">I", stream_id) + self._block(headers or {})
        )

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))

    @staticmethod
    def data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data
