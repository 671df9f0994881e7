"""HTTP/1.1 message heads as the router rewrites them, and the responses it makes itself. Pure.

Requests get a new head: hop-by-hop fields (``Connection`` and the fields it lists,
``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``)
are dropped, ``X-Forwarded-For`` gets the client's address appended (as nginx's
``$proxy_add_x_forwarded_for``), ``X-Forwarded-Proto``/``-Host``/``-Port`` are set from what the
router saw, and the body framing is re-declared (``Transfer-Encoding: chunked`` when the client
sent chunks, which are re-chunked). Upgrade requests keep ``Connection: upgrade`` and
``Upgrade``.

Responses are forwarded as the upstream sent them, bytes untouched, unless their head carries
hop-by-hop fields (or the client needs to be told about the connection): then only the head is
rebuilt, without them.
"""

from __future__ import annotations

import re
from http import HTTPStatus

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
FORWARDED = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port"}
)
_CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close", b"upgrade"})
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

# Response fields that make the head worth rebuilding. ``Connection: keep-alive`` (which nginx
# and most servers send on every response) and ``Keep-Alive`` say nothing untrue to a client
# whose connection the router keeps, so they pass, as bytes, like the rest: rebuilding costs a
# quarter of the router's time per request. Anything else in ``Connection`` (``close``, or
# fields it names as hop-by-hop) is rebuilt away. Transfer-Encoding stays: the body is
# forwarded raw in its original framing.
RESPONSE_HOP_RE = re.compile(
    rb"\r\n(?:connection[ \t]*:(?![ \t]*keep-alive[ \t]*\r\n)|proxy-connection[ \t]*:)", re.I
)
CONNECTION_CLOSE_RE = re.compile(rb"\r\nconnection[ \t]*:[^\r\n]*\bclose\b", re.I)


def connection_tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def rewrite_response_head(head: bytes, *, close: bool, keep_alive_10: bool, upgrade: bool) -> bytes:
    """``head`` (status line through the blank line) without hop-by-hop fields.

    ``upgrade``: a 101 answer keeps ``Connection``/``Upgrade`` (they are the handshake).
    ``close`` adds ``Connection: close``; ``keep_alive_10`` adds ``Connection: keep-alive`` for
    an HTTP/1.0 client whose connection stays open.
    """
    if upgrade:
        return head
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    drop = {b"connection", b"keep-alive", b"proxy-connection"}
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"connection":
            drop |= connection_tokens(value) - {b"transfer-encoding", b"close", b"keep-alive"}
        fields.append((lname, line))
    out = [lines[0]]
    out.extend(line for lname, line in fields if lname not in drop)
    if close:
        out.append(b"Connection: close")
    elif keep_alive_10:
        out.append(b"Connection: keep-alive")
    return b"\r\n".join(out) + b"\r\n\r\n"


def local_response(
    status: int,
    *,
    close: bool,
    message: str = "",
    head_only: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A small text/plain response the router answers itself (404, 502, 503…)."""
    phrase = HTTPStatus(status).phrase
    body = f"{status} {message or phrase.lower()}\n".encode()
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in extra),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def request_head(
    *,
    method: bytes,
    target: bytes,
    version: bytes,
    headers: list[tuple[bytes, bytes]],
    host: bytes,
    client_ip: str,
    proto: bytes,
    port: bytes,
    chunked: bool,
    upgrade: bytes | None,
) -> bytes:
    """The head sent upstream. ``headers`` are the client's, ``host`` its ``Host`` value."""
    parts = [method, b" ", target, b" HTTP/", version, b"\r\n"]
    forwarded_for = b""
    named: set[bytes] = set()  # fields the client's Connection header makes hop-by-hop
    for name, value in headers:
        lname = name.lower()
        if lname in HOP_BY_HOP or lname in FORWARDED:
            if lname == b"x-forwarded-for":
                forwarded_for = forwarded_for + b", " + value if forwarded_for else value
            elif lname == b"connection":
                named |= connection_tokens(value) - _CONNECTION_OPTIONS
            continue
        parts += (name, b": ", value, b"\r\n")
    if named:  # rare: filter again, now that every Connection header has been seen
        del parts[6:]
        for name, value in headers:
            lname = name.lower()
            if lname not in HOP_BY_HOP and lname not in FORWARDED and lname not in named:
                parts += (name, b": ", value, b"\r\n")
    if not host:
        parts.append(b"Host: localhost\r\n")
    client = client_ip.encode()
    parts += (
        b"X-Forwarded-For: ",
        forwarded_for + b", " + client if forwarded_for else client,
        b"\r\nX-Forwarded-Proto: ",
        proto,
        b"\r\nX-Forwarded-Host: ",
        host,
        b"\r\nX-Forwarded-Port: ",
        port,
        b"\r\n",
    )
    if upgrade is not None:
        parts += (b"Connection: upgrade\r\nUpgrade: ", upgrade, b"\r\n")
    elif version == b"1.0":
        parts.append(b"Connection: keep-alive\r\n")
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
