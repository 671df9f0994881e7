"""The L4 Service proxy's settings: every duration and limit in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProxySettings:
    node_ip: str = "127.0.0.1"
    """The node's address: NodePorts and LoadBalancer ports listen here (and NodePorts also on
    127.0.0.1), and it is what a LoadBalancer Service's ``status.loadBalancer.ingress`` says."""
    node_name: str = ""
    connect_timeout: float = 2.0
    """Seconds one upstream connect may take before the next endpoint is tried."""
    connect_attempts: int = 3
    """Endpoints tried per connection (each different) before the client is let go."""
    failure_backoff: float = 1.0
    """An endpoint whose connect failed is passed over this long, while others remain."""
    idle_timeout: float = 3600.0
    """A connection with no byte either way for this long is closed."""
    sweep_interval: float = 1.0
    """How often idle connections and expired session-affinity entries are looked for."""
    write_buffer_high: int = 1024 * 1024
    """Bytes buffered towards one side before reading from the other side pauses."""
    splice: bool = True
    """Move bulk transfers with ``os.splice`` (Linux) instead of through Python buffers."""
    splice_threshold: int = 64 * 1024
    """A connection switches a direction to splice after one read of at least this size."""
    pipe_size: int = 1024 * 1024
    """The kernel pipe between the two sockets of a spliced direction."""
    retry_bind: float = 5.0
    """Seconds between attempts to open a listener whose address was busy."""
    backlog: int = 1024
