"""Where a pod address lives: the node that owns it, and whether it is reached through a relay.

Every node announces its relay in the ``procorch.io/relay`` annotation of its Node
(``<ip>:<port>``) and owns the pod addresses of its ``spec.podCIDR``. :class:`Routes` maps a pod
IP to the :class:`Peer` that owns it, for nodes on *other machines* only: a node whose relay
address is one of this machine's own shares this machine's loopback, so its pods are reached
directly (several nodes on one machine, or this node itself). This node's own CIDR and those
of nodes on this machine win over any peer's; a peer whose CIDR overlaps another node's, or
holds 127.0.0.1, is not routed to at all (a node that claimed such a range would otherwise
draw others' traffic).

:func:`remote_addresses` is what this node answers on its own loopback for the pods of other
machines: every declared TCP ``containerPort`` of a running pod there, and every endpoint port
of an EndpointSlice at such a pod's address (a Service's ``targetPort`` need not be declared).
Only running pods' addresses count, so no object but a pod bound to that node opens a
listener here.

Concurrency: pure, except :func:`is_local_address` (a ``bind`` to ask the kernel).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

RELAY_ANNOTATION = "procorch.io/relay"
"""On a Node: ``<ip>:<port>`` where its relay accepts other nodes' connections."""

Obj = dict[str, Any]
Addr = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Peer:
    node: str
    host: str
    port: int


def relay_address(node: Obj) -> tuple[str, int] | None:
    text = ((node.get("metadata") or {}).get("annotations") or {}).get(RELAY_ANNOTATION)
    if not text:
        return None
    host, _, port = str(text).rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def is_local_address(host: str) -> bool:
    """Whether ``host`` is an address of this machine (its network namespace)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


class Routes:
    """Pod IP → the :class:`Peer` on another machine that owns it, from the Nodes."""

    def __init__(self, own_node: str, *, is_local: Callable[[str], bool] = is_local_address):
        self.own_node = own_node
        self.own_cidr: Network | None = None
        self._is_local = is_local
        self._local: dict[str, bool] = {}
        self._peers: list[tuple[Network, Peer]] = []
        self._cache: dict[str, Peer | None] = {}

    @property
    def peers(self) -> list[Peer]:
        return [peer for _, peer in self._peers]

    @property
    def remote_networks(self) -> list[str]:
        """The pod ranges of the peers (those of other machines), as ``a.b.c.d/n``: loopback
        ranges only (a node that claimed another range, by hand, is not redirected to:
        that would take traffic of this machine's that was never the cluster's)."""
        return [
            str(network)
            for network, _ in self._peers
            if network.version == 4 and network.subnet_of(_LOOPBACK)
        ]

    def update(self, nodes: Iterable[Obj]) -> bool:
        """Take the Nodes as they are now; True if any route changed."""
        candidates: list[tuple[Network, Peer]] = []
        nearer: list[Network] = []  # this node's CIDR and those of nodes on this machine
        own: Network | None = None
        for node in nodes:
            name = str((node.get("metadata") or {}).get("name") or "")
            cidr = _network((node.get("spec") or {}).get("podCIDR"))
            if cidr is None:
                continue
            if name == self.own_node:
                own = cidr
                nearer.append(cidr)
                continue
            address = relay_address(node)
            if address is None:
                continue
            if self._on_this_machine(address[0]):
                nearer.append(cidr)
                continue
            candidates.append((cidr, Peer(name, address[0], address[1])))
        candidates = [
            (cidr, peer)
            for cidr, peer in candidates
            if _LOCALHOST not in cidr and not any(cidr.overlaps(other) for other in nearer)
        ]
        peers = [
            (cidr, peer)
            for cidr, peer in candidates
            if not any(cidr.overlaps(o) for o, p in candidates if p is not peer)
        ]
        peers.sort(key=lambda item: item[1].node)
        changed = peers != self._peers or own != self.own_cidr
        self._peers, self.own_cidr = peers, own
        if changed:
            self._cache.clear()
        return changed

    def peer_for(self, ip: str) -> Peer | None:
        """The peer that owns ``ip``, or None (this machine's, or nobody's)."""
        try:
            return self._cache[ip]
        except KeyError:
            pass
        found: Peer | None = None
        if self._peers:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                address = None
            if address is not None:
                found = next((peer for net, peer in self._peers if address in net), None)
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[ip] = found
        return found

    def owns(self, ip: str) -> bool:
        """Whether ``ip`` is one of this node's pod addresses (its pod CIDR)."""
        if self.own_cidr is None:
            return False
        try:
            return ipaddress.ip_address(ip) in self.own_cidr
        except ValueError:
            return False

    def _on_this_machine(self, host: str) -> bool:
        local = self._local.get(host)
        if local is None:
            local = self._local[host] = self._is_local(host)
        return local


_LOCALHOST = ipaddress.ip_address("127.0.0.1")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def _network(text: Any) -> Network | None:
    if not text:
        return None
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None


def live_pod_ip(pod: Obj) -> str:
    """The pod's own address while it may serve: not a host-network pod, not finished, not
    deleted; else ``""``."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return ""
    if (pod.get("metadata") or {}).get("deletionTimestamp") and status.get("phase") != "Running":
        return ""
    return str(status.get("podIP") or "")


POD_IP_INDEX = "pod-ip"
"""The index of a pods informer by :func:`live_pod_ip`: the relay and cluster DNS share it."""


def pod_ip_index(pod: Obj) -> list[str]:
    ip = live_pod_ip(pod)
    return [ip] if ip else []


def remote_addresses(routes: Routes, *, pods: Iterable[Obj], slices: Iterable[Obj]) -> set[Addr]:
    """The pod addresses of other machines that this node answers on its loopback."""
    wanted: set[Addr] = set()
    live: set[str] = set()
    for pod in pods:
        ip = live_pod_ip(pod)
        peer = routes.peer_for(ip) if ip else None
        spec = pod.get("spec") or {}
        if peer is None or spec.get("nodeName") != peer.node:
            continue
        live.add(ip)
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                number = port.get("containerPort")
                if number and (port.get("protocol") or "TCP") == "TCP":
                    wanted.add((ip, int(number)))
    for slice_ in slices:
        numbers = [
            int(p["port"])
            for p in slice_.get("ports") or []
            if p.get("port") and (p.get("protocol") or "TCP") == "TCP"
        ]
        if not numbers:
            continue
        for endpoint in slice_.get("endpoints") or []:
            for ip in endpoint.get("addresses") or []:
                if str(ip) in live:
                    wanted.update((str(ip), number) for number in numbers)
    return wanted
