"""The Ingress router's settings: every listener, limit and timeout in one place.

Defaults follow nginx (and ingress-nginx where it differs), which is what people who run an
Ingress controller expect: a slow or malformed client is cut off by a limit or a timeout, never
allowed to hold memory or a connection for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

from procorch.kit.oldest import share_of_open_files

CONTROLLER = "procorch.io/ingress"
"""``spec.controller`` of the IngressClasses this router serves."""
DEFAULT_CLASS = "procorch"
"""The IngressClass created at start (if missing), marked as the cluster's default class."""


@dataclass
class IngressSettings:
    host: str = "127.0.0.1"
    """Address both listeners bind."""
    port: int = 8080
    """Plain HTTP listener; 0 picks a free port."""
    tls_port: int | None = 8443
    """HTTPS listener (SNI picks the certificate); 0 picks a free port, None disables it."""
    class_name: str = DEFAULT_CLASS
    create_default_class: bool = True
    """Create the IngressClass ``class_name`` (as the default class) at start if missing."""
    status_hostname: str = ""
    """Written to ``status.loadBalancer.ingress[].hostname`` instead of an IP when set."""

    # -- limits on clients (nginx: large_client_header_buffers 4 8k, 414/431 beyond) -----------
    max_header_bytes: int = 32 * 1024
    """Request line plus headers; beyond it the client gets 431 and the connection closes."""
    max_url_bytes: int = 8 * 1024
    """Request target; beyond it the client gets 414."""
    max_headers: int = 100
    """Header fields in one request; beyond it 431."""
    max_connections: int = 16384
    """Client connections open at once; further ones are closed at accept."""
    max_waiting_connections: int = 0
    """Client connections open without a request in progress (not yet through their first
    request head, or idle between requests); beyond it the oldest is closed, so slow or silent
    clients cannot hold every file descriptor. 0 derives it from the open-files limit: a
    quarter of it."""
    waiting_grace: float = 1.0
    """Waiting connections younger than this are not closed to make room until there are
    twice ``max_waiting_connections`` of them (a burst accepted at once holds real clients
    that have not sent their request yet)."""
    max_pending_bytes: int = 256 * 1024
    """Request bytes read ahead of the upstream (while connecting, or pipelined) before the
    router stops reading from that client."""
    max_response_head_bytes: int = 64 * 1024
    """An upstream response head larger than this is a 502."""

    # -- timeouts, seconds (checked every ``sweep_interval``) ----------------------------------
    header_timeout: float = 60.0
    """From a request's first byte (or the connection's start) to the end of its headers: 408
    (nginx ``client_header_timeout``)."""
    body_timeout: float = 60.0
    """Between two reads of a request body: 408 (nginx ``client_body_timeout``)."""
    keepalive_timeout: float = 75.0
    """An idle client connection between requests is closed (nginx ``keepalive_timeout``)."""
    send_timeout: float = 60.0
    """A client that reads nothing of its response for this long is dropped (``send_timeout``)."""
    connect_timeout: float = 5.0
    """Connecting to an endpoint (ingress-nginx ``proxy-connect-timeout``)."""
    read_timeout: float = 60.0
    """Between two reads of an upstream response; 504 if nothing came yet (``proxy_read_timeout``)."""
    tunnel_timeout: float = 3600.0
    """An upgraded connection (WebSocket) with no traffic either way for this long is closed."""
    upstream_idle_timeout: float = 60.0
    """A pooled keep-alive upstream connection unused for this long is closed."""
    sweep_interval: float = 1.0
    """How often timeouts are checked: their resolution."""
    drain_timeout: float = 2.0
    """On stop, how long requests in flight may take to finish before connections are cut."""

    # -- upstreams --------------------------------------------------------------------------
    max_idle_per_endpoint: int = 128
    """Idle keep-alive connections kept per endpoint (nginx ``keepalive``)."""
    tries: int = 3
    """Attempts per request over the endpoints (ingress-nginx ``proxy-next-upstream-tries``):
    a failed connect, or a reused connection that the endpoint had closed, tries again."""
    fail_timeout: float = 2.0
    """An endpoint whose connect failed is skipped for this long while others are ready."""
    replay_bytes: int = 64 * 1024
    """A request whose head and body fit in this many bytes can be replayed on another
    connection (idempotent methods only)."""
    read_buffer_high: int = 256 * 1024
    """Write-buffer high-water mark on both sides: above it, the other side stops being read."""

    def waiting_bound(self) -> int:
        """``max_waiting_connections``, or a quarter of the open-files limit (at least 16)."""
        if self.max_waiting_connections > 0:
            return self.max_waiting_connections
        return share_of_open_files(4, maximum=self.max_connections)
