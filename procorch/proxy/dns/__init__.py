"""Cluster DNS, served on every node (see :mod:`.server` and :mod:`.zone`)."""

from procorch.proxy.dns.server import ClusterDNS, DNSSettings

__all__ = ["ClusterDNS", "DNSSettings"]
