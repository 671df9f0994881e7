"""Node IPAM: every Node gets its own ``spec.podCIDR`` out of the cluster CIDR.

As kube-controller-manager's range allocator does (``--cluster-cidr``,
``--node-cidr-mask-size``): a Node without a pod CIDR is given the lowest free subnet of the
cluster CIDR, written with ``spec.podCIDR`` and ``spec.podCIDRs``; the subnets of existing
Nodes are taken as they are (so a node keeps its pods' addresses across restarts), and a
deleted Node's subnet is free again. Node agents take their pods' IPs from their Node's
subnet, so no two pods in the cluster share an address.

procorch's pod addresses are loopback addresses (127.0.0.0/8 reaches ``lo`` on Linux), so the
default cluster CIDR is 127.0.0.0/10 in /16s, and the subnet holding 127.0.0.1 (the host's own
loopback address, which programs bind) is never handed out: the first node gets 127.1.0.0/16,
the next 127.2.0.0/16, and so on for 63 nodes. Services' cluster IPs (127.96.0.0/12) lie
outside it.

Concurrency: one worker. The taken subnets are the informer's plus the ones this controller
wrote that the informer may not show yet, so two Nodes registered at once never get the same
subnet; the API stays the record (a restarted controller reads every Node's).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.reconcile.controller import Controller
from procorch.reconcile.factory import InformerFactory

Obj = dict[str, Any]

NODES = must("core/nodes")
HOST_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class IpamSettings:
    cluster_cidr: str = "127.0.0.0/10"
    node_cidr_mask_size: int = 16


class CidrsExhausted(Exception):
    pass


class RangeAllocator:
    """The subnets of the cluster CIDR, and which of them are taken. Pure."""

    def __init__(self, settings: IpamSettings) -> None:
        self.network = ipaddress.IPv4Network(settings.cluster_cidr)
        if not self.network.prefixlen <= settings.node_cidr_mask_size <= 30:
            raise ValueError(
                f"node CIDR mask size {settings.node_cidr_mask_size} must lie between the "
                f"cluster CIDR's prefix length ({self.network.prefixlen}) and 30"
            )
        self.mask = settings.node_cidr_mask_size

    def first_free(self, taken: set[str]) -> str:
        for subnet in self.network.subnets(new_prefix=self.mask):
            if HOST_LOOPBACK in subnet:
                continue
            text = str(subnet)
            if text not in taken:
                return text
        raise CidrsExhausted(f"no /{self.mask} left in the cluster CIDR {self.network}")


class NodeIpamController(Controller[str]):
    name = "nodeipam"

    def __init__(
        self, client: Client, informers: InformerFactory, settings: IpamSettings | None = None
    ) -> None:
        super().__init__(client, informers)
        self.allocator = RangeAllocator(settings or IpamSettings())
        self._written: dict[str, str] = {}  # node -> the CIDR we gave it, until it is gone

    def setup(self) -> None:
        self.watch(NODES).add_handler(self._on_node)

    def _on_node(self, etype: str, obj: Obj, old: Obj | None) -> None:
        name = str(obj["metadata"]["name"])
        if etype == "DELETED":
            self._written.pop(name, None)
        elif not _pod_cidr(obj):
            self.queue.add(name)

    async def reconcile(self, key: str) -> float | None:
        nodes = self.informers.get(NODES)
        node = nodes.get(key)
        if node is None or _pod_cidr(node):
            return None
        taken = {cidr for other in nodes.list() if (cidr := _pod_cidr(other))}
        taken.update(self._written.values())
        try:
            cidr = self.allocator.first_free(taken)
        except CidrsExhausted as exc:
            self.log.error("cannot give the node a pod CIDR", node=key, error=str(exc))
            return 60.0
        patch = {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            # The resourceVersion makes this a compare-and-swap: a node that got a CIDR
            # meanwhile is not overwritten (a Conflict: the worker looks again).
            await self.client.patch(
                NODES, key, {**patch, "metadata": {"resourceVersion": _rv(node)}}
            )
        except errors.NotFound:
            return None
        self._written[key] = cidr
        self.log.info("gave the node a pod CIDR", node=key, pod_cidr=cidr)
        return None


def _pod_cidr(node: Obj) -> str:
    return str((node.get("spec") or {}).get("podCIDR") or "")


def _rv(node: Obj) -> str:
    return str(node["metadata"].get("resourceVersion", ""))
