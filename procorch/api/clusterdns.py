"""The names cluster DNS is found by, shared by the control plane that creates its Service, the
nodes that serve it and the agents that point pods at it (kubelet's ``--cluster-dns`` and
``--cluster-domain``)."""

from __future__ import annotations

CLUSTER_DOMAIN = "cluster.local"
KUBE_DNS_NAMESPACE = "kube-system"
KUBE_DNS_SERVICE = "kube-dns"
KUBE_DNS_INDEX = 10
"""kube-dns takes the service range's tenth address (as 10.96.0.10 is)."""

SERVED_ON_EVERY_NODE = "procorch.io/served-on-every-node"
"""On a Service: every node serves its cluster IP itself (as NodeLocal DNSCache does for
kube-dns), so the Service proxy leaves it alone. The value names the server (``dns``)."""
