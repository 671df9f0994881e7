"""The protobuf wire format, read-only: varints, length-delimited fields, fixed32/fixed64.

:func:`fields` walks one message's bytes and yields ``(number, wire_type, value)`` for every
field occurrence, in wire order. It knows nothing of schemas: what a field *means* is the
decoder's business. Every structural problem (truncation, an over-long varint, a group, a
field number 0) raises :class:`WireError`, which the decoder turns into a 400.

Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

WIRE_TYPE_NAMES = {
    VARINT: "varint",
    FIXED64: "fixed64",
    LENGTH_DELIMITED: "length-delimited",
    3: "start-group",
    4: "end-group",
    FIXED32: "fixed32",
}

_MAX_VARINT_BYTES = 10
_UINT64 = 1 << 64
_INT64_SIGN = 1 << 63


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the unsigned varint at ``pos``; return it and the position after it."""
    result = 0
    shift = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise WireError("truncated varint")
        byte = data[pos + i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & (_UINT64 - 1), pos + i + 1
        shift += 7
    raise WireError("varint longer than 10 bytes")


def to_int64(value: int) -> int:
    """Reinterpret a varint as Go's int64/int32: negative numbers travel sign-extended to
    64 bits, so the two's complement of the 64-bit value gives both back."""
    return value - _UINT64 if value & _INT64_SIGN else value


Value = int | bytes


def fields(data: bytes) -> Iterator[tuple[int, int, Value]]:
    """Yield ``(field number, wire type, value)`` for each field of one message.

    Varints come as unsigned ints, fixed64/fixed32 as little-endian unsigned ints (no served
    type has a floating-point field, so they only matter for skipping unknown fields),
    length-delimited fields as the raw bytes of the payload.
    """
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0 is not allowed")
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
            yield number, wire_type, value
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(data, pos)
            if length > end - pos:
                raise WireError(f"field {number}: length {length} runs past the end of the data")
            yield number, wire_type, data[pos : pos + length]
            pos += length
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise WireError(f"field {number}: truncated fixed64")
            yield number, wire_type, int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise WireError(f"field {number}: truncated fixed32")
            yield number, wire_type, int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            name = WIRE_TYPE_NAMES.get(wire_type, str(wire_type))
            raise WireError(f"field {number}: unsupported wire type {name}")


def packed_varints(data: bytes) -> list[int]:
    """The values of a packed repeated varint field."""
    out: list[int] = []
    pos = 0
    while pos < len(data):
        value, pos = read_varint(data, pos)
        out.append(value)
    return out
