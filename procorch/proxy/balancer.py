"""Choosing an endpoint for a new connection, and the per-Service counters.

A :class:`Balancer` serves one Service port. Its endpoint list is replaced whole whenever the
EndpointSlices change (:meth:`Balancer.update`), so a connection started after an endpoint
left the ready set never goes there; connections already established are not touched.
Connections go round robin over the endpoints, passing over ones whose connect failed in the
last ``failure_backoff`` seconds while others remain; with ``sessionAffinity: ClientIP`` a
client address sticks to its endpoint until the affinity times out or the endpoint leaves.

Concurrency: single event loop; plain method calls, nothing awaits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from procorch.proxy.endpoints import Addr


@dataclass
class ServiceStats:
    """Counters of one Service (all its ports and listeners)."""

    connections: int = 0
    """Connections accepted."""
    active: int = 0
    """Connections open now."""
    bytes_in: int = 0
    """Bytes from clients to endpoints."""
    bytes_out: int = 0
    """Bytes from endpoints to clients."""
    connect_errors: int = 0
    """Upstream connects that failed (each retried on another endpoint when one is left)."""
    no_endpoint: int = 0
    """Connections closed at once because no endpoint was ready or every attempt failed."""
    endpoints: int = 0
    """Ready endpoints now (over the Service's ports)."""
    spliced: int = 0
    """Connection directions moved to ``os.splice`` (bulk transfers)."""
    ack_stalls: int = 0
    """Times a connection saw two answers in a row whose second read came a delayed-ACK timeout
    after the first: an endpoint waiting for our ACKs. From the first, the Service's connections
    quick-ACK their endpoints (:mod:`procorch.proxy.acks`)."""


@dataclass
class _Sticky:
    addr: Addr
    last: float


@dataclass
class Balancer:
    namespace: str
    service: str
    port_name: str
    stats: ServiceStats
    failed: dict[Addr, float]
    """Shared by the proxy: endpoint -> loop time until which it is passed over."""
    addrs: tuple[Addr, ...] = ()
    affinity_timeout: float | None = None
    """Seconds of ClientIP session affinity; None: no affinity."""
    _next: int = 0
    _sticky: dict[str, _Sticky] = field(default_factory=dict)

    def update(self, addrs: tuple[Addr, ...]) -> None:
        self.addrs = addrs
        if self._sticky:
            present = set(addrs)
            for client, entry in list(self._sticky.items()):
                if entry.addr not in present:
                    del self._sticky[client]

    def set_affinity(self, timeout: float | None) -> None:
        if timeout != self.affinity_timeout:
            self.affinity_timeout = timeout
            self._sticky.clear()

    def pick(self, now: float, client: str, tried: set[Addr] | None = None) -> Addr | None:
        """The endpoint for a new connection from ``client``, not one of ``tried``."""
        addrs = self.addrs
        if not addrs:
            return None
        if self.affinity_timeout is not None:
            entry = self._sticky.get(client)
            if (
                entry is not None
                and now - entry.last <= self.affinity_timeout
                and entry.addr in addrs
                and not (tried and entry.addr in tried)
            ):
                entry.last = now
                return entry.addr
        chosen = self._round_robin(now, tried)
        if chosen is not None and self.affinity_timeout is not None:
            self._sticky[client] = _Sticky(chosen, now)
        return chosen

    def _round_robin(self, now: float, tried: set[Addr] | None) -> Addr | None:
        addrs = self.addrs
        count = len(addrs)
        fallback: Addr | None = None
        failed = self.failed
        for _ in range(count):
            addr = addrs[self._next % count]
            self._next += 1
            if tried and addr in tried:
                continue
            if failed and failed.get(addr, 0.0) > now:
                fallback = fallback or addr
                continue
            return addr
        return fallback

    def expire(self, now: float) -> None:
        """Drop affinity entries that timed out (called by the sweeper)."""
        timeout = self.affinity_timeout
        if timeout is None or not self._sticky:
            return
        for client, entry in list(self._sticky.items()):
            if now - entry.last > timeout:
                del self._sticky[client]


def render_metrics(stats: dict[tuple[str, str], ServiceStats]) -> str:
    """Prometheus text exposition of per-Service counters."""
    metrics = [
        ("connections_total", "counter", "Connections accepted.", "connections"),
        ("connections_active", "gauge", "Connections open now.", "active"),
        ("bytes_received_total", "counter", "Bytes from clients to endpoints.", "bytes_in"),
        ("bytes_sent_total", "counter", "Bytes from endpoints to clients.", "bytes_out"),
        (
            "connect_errors_total",
            "counter",
            "Upstream connects that failed (then retried on another endpoint).",
            "connect_errors",
        ),
        (
            "rejected_total",
            "counter",
            "Connections closed because no endpoint was ready or every connect failed.",
            "no_endpoint",
        ),
        ("ready_endpoints", "gauge", "Ready endpoints, over the Service's ports.", "endpoints"),
        (
            "spliced_total",
            "counter",
            "Connection directions moved to zero-copy splice (bulk transfers).",
            "spliced",
        ),
        (
            "ack_stalls_total",
            "counter",
            "Two answers in a row on one connection paused 30-500 ms after their first "
            "segment (an endpoint waiting for our delayed ACK); from the first, the "
            "Service's endpoints get quick ACKs.",
            "ack_stalls",
        ),
    ]
    lines: list[str] = []
    for name, kind, help_text, attr in metrics:
        full = f"procorch_service_{name}"
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        for (namespace, service), counters in sorted(stats.items()):
            labels = f'namespace="{label_value(namespace)}",service="{label_value(service)}"'
            lines.append(f"{full}{{{labels}}} {getattr(counters, attr)}")
    return "\n".join(lines) + "\n"


def label_value(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
