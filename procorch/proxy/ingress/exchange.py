"""One request and its response (:class:`Exchange`), and what the router makes of a request
head (:func:`new_exchange`): its route, its framing, and the head to send upstream. Pure.

Requests the router will not serve are answered locally: 404 when no rule matches, 400 for a
bad target or an HTTP/1.1 request without ``Host``, 405 for ``CONNECT``, 505 for versions other
than 1.0 and 1.1; the bad ones close the connection afterwards, as nginx does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools

from procorch.proxy.ingress.messages import IDEMPOTENT, request_head
from procorch.proxy.ingress.routes import Backend, RouteTable

if TYPE_CHECKING:
    from procorch.proxy.ingress.backends import Addr, EndpointSet
    from procorch.proxy.ingress.upstream import UpstreamConnection


class Exchange:
    """One request and its response."""

    __slots__ = (
        "method",
        "version",
        "head",
        "backend",
        "endpoints",
        "local",
        "chunked",
        "req_done",
        "keep_alive",
        "upgrade",
        "is_head",
        "pending",
        "pending_size",
        "replay",
        "replay_size",
        "upstream",
        "connect",
        "started",
        "finished",
        "responded",
        "response_bytes",
        "tries",
        "tried",
        "fresh",
        "close",
    )

    def __init__(self) -> None:
        self.method = b""
        self.version = b"1.1"
        self.head = b""
        self.backend: Backend | None = None
        self.endpoints: EndpointSet | None = None
        self.local = 0  # status to answer locally, 0 when proxied
        self.chunked = False
        self.req_done = False
        self.keep_alive = False
        self.upgrade: bytes | None = None
        self.is_head = False
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.replay: list[bytes] | None = None  # body bytes sent, while small enough to resend
        self.replay_size = 0
        self.upstream: UpstreamConnection | None = None
        self.connect: asyncio.Task[None] | None = None
        self.started = False
        self.finished = False
        self.responded = False  # bytes were written to the client
        self.response_bytes = 0  # bytes received from the upstream
        self.tries = 0
        self.tried: set[Addr] = set()
        self.fresh = False  # retrying: do not take a pooled connection
        self.close = False  # close the client connection after this response


def new_exchange(
    *,
    method: bytes,
    version: str,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    upgrade: bool,
    table: RouteTable,
    client_ip: str,
    scheme: bytes,
    port: bytes,
) -> Exchange:
    """The exchange for a parsed request head; ``upgrade`` is llhttp's verdict."""
    ex = Exchange()
    ex.method = method
    ex.is_head = method == b"HEAD"
    if version not in ("1.1", "1.0"):
        return _bad(ex, 505)
    ex.version = version.encode()
    host = b""
    has_host = False
    for name, value in headers:
        lname = name.lower()
        if lname == b"host":
            host, has_host = value.strip(), True
        elif lname == b"transfer-encoding":
            ex.chunked = b"chunked" in value.lower()
        elif lname == b"upgrade":
            ex.upgrade = value.strip()
    if not upgrade or method == b"CONNECT":
        ex.upgrade = None
    if url.startswith(b"/"):
        target = url
        path, _, _ = url.partition(b"?")
    elif url[:7].lower() == b"http://" or url[:8].lower() == b"https://":
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            return _bad(ex, 400)
        host = (parsed.host or b"") + (b":%d" % parsed.port if parsed.port else b"")
        has_host = bool(parsed.host)
        path = parsed.path or b"/"
        target = path + (b"?" + parsed.query if parsed.query else b"")
    else:
        return _bad(ex, 405 if method == b"CONNECT" else 400)
    if not has_host and ex.version == b"1.1":
        return _bad(ex, 400)
    backend = table.match_raw(host, path)
    if backend is None:
        ex.local = 404
        return ex
    ex.backend = backend
    if method in IDEMPOTENT:
        ex.replay = []
    ex.head = request_head(
        method=method,
        target=target,
        version=ex.version,
        headers=headers,
        host=host,
        client_ip=client_ip,
        proto=scheme,
        port=port,
        chunked=ex.chunked,
        upgrade=ex.upgrade,
    )
    return ex


def _bad(ex: Exchange, status: int) -> Exchange:
    """A request the router will not serve: answered with ``status``, then the connection
    closes (as nginx does for a bad request)."""
    ex.local = status
    ex.close = True
    return ex
