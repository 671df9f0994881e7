"""The node agent's settings: every duration and limit in one place, Kubernetes' defaults."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AgentSettings:
    data_dir: Path
    """The agent keeps pod volumes, logs and PVC data under ``<data_dir>/nodes/<node>``."""
    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    node_ip: str = "127.0.0.1"
    """The node's InternalIP: where NodePorts listen and what ``status.hostIP`` says."""
    pod_cidr: str = ""
    """Pod IPs come from this loopback range (all of 127.0.0.0/8 reaches ``lo`` on Linux);
    empty: the one the control plane gives the Node (its ``spec.podCIDR``)."""
    labels: dict[str, str] = field(default_factory=dict)
    node_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations the Node is registered with (the node's relay address, see
    :mod:`procorch.proxy.relay`)."""
    max_pods: int = 110
    """``status.allocatable.pods``, Kubernetes' default."""
    reserved_cpu_millis: int = 0
    reserved_memory_bytes: int = 256 * 1024 * 1024
    """Kept back from allocatable for procorch itself and the rest of the machine."""

    runtime: str = "shim"
    """``shim``: containers live in a supervisor process that survives an agent crash (and is
    adopted by the next agent); ``inprocess``: in the agent's own process."""
    cgroups: bool = True
    """Use cgroups for process tracking and limits where the machine allows."""
    orphan_timeout: float = 30.0
    """How long the supervisor process keeps containers running with no agent connected."""

    cluster_dns: list[str] = field(default_factory=list)
    """Where this node serves cluster DNS (the kube-dns Service's address, port 53; kubelet's
    ``--cluster-dns``); empty: it serves none, and pods resolve with the host's resolvers."""
    cluster_domain: str = "cluster.local"
    resolv_conf: Path = Path("/etc/resolv.conf")
    """The host's resolvers (kubelet's ``--resolv-conf``): for ``dnsPolicy: Default`` pods,
    and the search domains appended to cluster DNS's."""

    kubelet_host: str = "127.0.0.1"
    kubelet_port: int = 0
    """The agent's HTTPS endpoint (logs, stats) that the API server calls; 0 picks a free
    port."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    """The node's certificate (``system:node:<name>``, for its node IP) and key: the
    endpoint serves with them (kubelet's ``--tls-cert-file``)."""
    client_ca_file: Path | None = None
    """The cluster CA: the endpoint accepts only the API server's kubelet-client certificate
    signed by it (kubelet's ``--client-ca-file``). Without these three files the endpoint
    answers nothing but ``/healthz``."""

    node_status_interval: float = 10.0
    """Seconds between looks at the machine for the Node's status (conditions, capacity)..."""
    node_status_report_frequency: float = 300.0
    """...which is written when it changed, else this often (kubelet's
    ``nodeStatusReportFrequency``): the Lease is the heartbeat."""
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    """The heartbeat Lease in kube-node-lease, as kubelet renews it."""

    crashloop_initial: float = 10.0
    crashloop_max: float = 300.0
    """CrashLoopBackOff: the restart delay doubles from ``initial`` up to ``max``..."""
    crashloop_reset: float = 600.0
    """...and starts over once a container has not been restarted for this long."""

    log_max_bytes: int = 10 * 1024 * 1024
    log_max_files: int = 5
    ready_settle: float = 0.5
    """A container without a readiness probe is Ready once it has run this long (see
    :mod:`procorch.agent.prober`): a process that crashes at once is never reported Ready."""
    metrics_interval: float = 10.0
    """Seconds between CPU/memory samples of every container (for ``kubectl top`` and HPA)."""
    termination_grace_default: int = 30
    endpoint_drain_timeout: float = 2.0
    """On pod deletion, the longest the agent waits for the pod to leave every EndpointSlice's
    ready set before it signals the containers (within the grace period)."""
    shutdown_grace: float = 30.0
    """On agent stop, the longest a pod may take to terminate."""
    status_sync_interval: float = 60.0
    """Every pod is re-synced at least this often, whatever events say (level-based; kubelet's
    syncFrequency)."""

    @property
    def node_dir(self) -> Path:
        return self.data_dir / "nodes" / self.node_name
