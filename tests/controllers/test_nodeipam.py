"""Node IPAM: each Node's own pod CIDR out of the cluster CIDR, never two the same."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from procorch.api.resources import must
from procorch.controllers.nodeipam import CidrsExhausted, IpamSettings, RangeAllocator
from procorch.launcher.up import Procorch
from tests.workloads.conftest import eventually

NODES = must("core/nodes")


def test_the_subnet_of_the_hosts_loopback_address_is_never_given() -> None:
    allocator = RangeAllocator(IpamSettings())
    assert allocator.first_free(set()) == "127.1.0.0/16"
    assert allocator.first_free({"127.1.0.0/16", "127.3.0.0/16"}) == "127.2.0.0/16"
    small = RangeAllocator(IpamSettings(cluster_cidr="127.0.0.0/15", node_cidr_mask_size=16))
    with pytest.raises(CidrsExhausted, match="no /16 left in the cluster CIDR 127.0.0.0/15"):
        small.first_free({"127.1.0.0/16"})
    with pytest.raises(ValueError, match="mask size 8"):
        RangeAllocator(IpamSettings(cluster_cidr="127.0.0.0/10", node_cidr_mask_size=8))


def node(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


async def test_nodes_registered_at_once_get_disjoint_cidrs_and_a_given_one_is_kept(
    procorch: Procorch,
) -> None:
    client = procorch.admin
    await client.create(NODES, node("kept", podCIDR="127.1.0.0/16", podCIDRs=["127.1.0.0/16"]))
    await asyncio.gather(*(client.create(NODES, node(f"n{i}")) for i in range(6)))

    async def all_given() -> dict[str, str] | None:
        nodes = (await client.list(NODES)).items
        cidrs = {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR") for n in nodes}
        return cidrs if len(cidrs) == 7 and all(cidrs.values()) else None

    cidrs = await eventually(all_given, what="every node has a pod CIDR")
    assert cidrs["kept"] == "127.1.0.0/16"
    networks = [ipaddress.ip_network(c) for c in cidrs.values()]
    assert len(set(networks)) == 7, cidrs
    assert all(
        n.prefixlen == 16 and n.subnet_of(ipaddress.ip_network("127.0.0.0/10")) for n in networks
    )
    assert all(ipaddress.ip_address("127.0.0.1") not in n for n in networks)
