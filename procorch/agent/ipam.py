"""Pod IP addresses from the node's loopback range.

Every pod gets its own address, so replicas of one template can all listen on the same
containerPort (``podIP:containerPort``), exactly as in Kubernetes. Addresses are handed out in
rising order and wrap around, so a freed address is reused as late as possible (a late packet or
a client holding an old address does not reach a new pod). The allocation state is the pods'
``status.podIP`` in the API: on start the agent re-reserves what its pods already hold.

Concurrency: single event loop; no awaits inside.
"""

from __future__ import annotations

import ipaddress


class RangeFull(Exception):
    pass


class PodIPAllocator:
    def __init__(self, cidr: str) -> None:
        """``cidr`` empty: no addresses yet (the node waits for its pod CIDR)."""
        self.network = ipaddress.IPv4Network(cidr or "0.0.0.0/32")
        # Skip the network and the first address (kept for the node's own use).
        self._first = int(self.network.network_address) + 2
        self._last = int(self.network.broadcast_address) - 1 if cidr else self._first - 1
        self._next = self._first
        self._owners: dict[str, str] = {}  # ip -> owner (pod uid)
        self._by_owner: dict[str, str] = {}

    def reserve(self, ip: str, owner: str) -> bool:
        """Mark ``ip`` as taken by ``owner`` (restoring state); False if it is not ours or
        taken by someone else."""
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        if addr not in self.network:
            return False
        holder = self._owners.get(ip)
        if holder is not None and holder != owner:
            return False
        self._owners[ip] = owner
        self._by_owner[owner] = ip
        return True

    def allocate(self, owner: str) -> str:
        existing = self._by_owner.get(owner)
        if existing is not None:
            return existing
        size = self._last - self._first + 1
        if size <= 0:
            raise RangeFull("the node has no pod CIDR yet")
        for i in range(size):
            candidate = self._first + (self._next - self._first + i) % size
            ip = str(ipaddress.IPv4Address(candidate))
            if ip not in self._owners:
                self._next = candidate + 1 if candidate < self._last else self._first
                self._owners[ip] = owner
                self._by_owner[owner] = ip
                return ip
        raise RangeFull(f"no free pod IP left in {self.network}")

    def release(self, owner: str) -> None:
        ip = self._by_owner.pop(owner, None)
        if ip is not None:
            self._owners.pop(ip, None)

    def owner_of(self, ip: str) -> str | None:
        return self._owners.get(ip)

    def __len__(self) -> int:
        return len(self._owners)
