"""Service cluster IPs and node ports: allocated by the API server when a Service is written.

As Kubernetes' Service registry does (``pkg/registry/core/service/storage/alloc.go``), a
Service gets its ``clusterIP`` from the service range (default ``127.96.0.0/12``, all of it on
``lo``) and, when it is a NodePort or LoadBalancer, a ``nodePort`` per port from 30000-32767,
unless it asks for specific ones. A request for an address outside the range, or one already
taken, is refused with 422 and Kubernetes' message. Allocations are persisted in the objects
themselves: the allocators are rebuilt from the stored Services on first use, and released
when a Service is deleted or changes type.

The verbs call in here at three points: :meth:`ServiceAllocators.prepare_update` before an
update is validated (fill in allocated values the request left out; drop what the new type
does not use), :meth:`ServiceAllocators.creating` / :meth:`ServiceAllocators.updating` around
the store write (allocate; release on failure, or release the old values on success), and
:meth:`ServiceAllocators.released` after a Service is gone.

Also here: the ``kubernetes`` Service in ``default`` (the first address of the range, port 443
to the API server), with its Endpoints and EndpointSlice, which the control plane writes at
start so that pods calling the API find it (Kubernetes' master endpoints reconciler).

Concurrency: runs on the event loop; allocation is synchronous (check and mark in one step),
so two writes can never take the same address.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from procorch.api import errors
from procorch.api.clusterdns import (
    KUBE_DNS_INDEX,
    KUBE_DNS_NAMESPACE,
    KUBE_DNS_SERVICE,
    SERVED_ON_EVERY_NODE,
)
from procorch.api.resources import ResourceType, must
from procorch.kit.logging import get_logger

if TYPE_CHECKING:
    from procorch.apiserver.verbs_core import ServiceCore
    from procorch.store.base import Store

log = get_logger("apiserver.allocators")

DEFAULT_SERVICE_CIDR = "127.96.0.0/12"
NODE_PORT_RANGE = (30000, 32767)
SERVICES_KEY = "core/services"
Obj = dict[str, Any]

SERVICES = must("core/services")
ENDPOINTS = must("core/endpoints")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")

KUBERNETES_SERVICE = "kubernetes"
KUBERNETES_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


class RangeFull(Exception):
    pass


class NotInRange(Exception):
    pass


class Allocated(Exception):
    pass


class _Range:
    """A set of integers ``[first, first + size)`` handed out at random, Kubernetes-style:
    dynamic allocations come from the upper part first, leaving the lowest ``static`` values to
    requests for specific ones (KEP-3070), and fall back to the lower part when it is full."""

    def __init__(self, first: int, size: int, *, static: int) -> None:
        self.first = first
        self.size = size
        self.static = min(static, size)
        self.used: set[int] = set()

    def __contains__(self, value: int) -> bool:
        return self.first <= value < self.first + self.size

    def take(self, value: int) -> None:
        if value not in self:
            raise NotInRange
        if value in self.used:
            raise Allocated
        self.used.add(value)

    def next_free(self) -> int:
        """A free value, not yet marked (the caller takes it)."""
        for low, high in ((self.static, self.size), (0, self.static)):
            span = high - low
            if span <= 0:
                continue
            start = random.randrange(span)
            for step in range(span):
                value = self.first + low + (start + step) % span
                if value not in self.used:
                    return value
        raise RangeFull

    def release(self, value: int) -> None:
        self.used.discard(value)


class IPAllocator:
    """Addresses of one IPv4 range, without its network and broadcast addresses."""

    def __init__(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr, strict=False)
        if not isinstance(network, ipaddress.IPv4Network):
            raise ValueError(f"the service range must be IPv4: {cidr}")
        reserved = 2 if network.prefixlen < 31 else 0
        size = network.num_addresses - reserved
        if size < 1:
            raise ValueError(f"the service range {cidr} holds no address")
        self.cidr = str(network)
        self._range = _Range(
            int(network.network_address) + (1 if reserved else 0),
            size,
            static=min(max(16, size // 16), 256),
        )

    @property
    def first(self) -> str:
        return str(ipaddress.IPv4Address(self._range.first))

    def _value(self, ip: str) -> int:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise NotInRange from None
        if not isinstance(address, ipaddress.IPv4Address):
            raise NotInRange
        return int(address)

    def allocate(self, ip: str, *, dry_run: bool = False) -> None:
        value = self._value(ip)
        if dry_run:
            if value not in self._range:
                raise NotInRange
            if value in self._range.used:
                raise Allocated
            return
        self._range.take(value)

    def allocate_next(self, *, dry_run: bool = False) -> str:
        value = self._range.next_free()
        if not dry_run:
            self._range.take(value)
        return str(ipaddress.IPv4Address(value))

    def release(self, ip: str) -> None:
        try:
            self._range.release(self._value(ip))
        except NotInRange:
            pass

    def contains(self, ip: str) -> bool:
        try:
            return self._value(ip) in self._range
        except NotInRange:
            return False

    def __len__(self) -> int:
        return len(self._range.used)


class PortAllocator:
    def __init__(self, low: int, high: int) -> None:
        size = high - low + 1
        self.low, self.high = low, high
        self._range = _Range(low, size, static=min(max(16, size // 32), 128))

    def allocate(self, port: int, *, dry_run: bool = False) -> None:
        if dry_run:
            if port not in self._range:
                raise NotInRange
            if port in self._range.used:
                raise Allocated
            return
        self._range.take(port)

    def allocate_next(self, *, dry_run: bool = False) -> int:
        value = self._range.next_free()
        if not dry_run:
            self._range.take(value)
        return value

    def release(self, port: int) -> None:
        self._range.release(port)

    def __len__(self) -> int:
        return len(self._range.used)


# -- the Service's view -------------------------------------------------------------------------


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _type(obj: dict[str, Any]) -> str:
    return str(_spec(obj).get("type") or "ClusterIP")


def needs_cluster_ip(obj: dict[str, Any]) -> bool:
    return _type(obj) != "ExternalName"


def needs_node_ports(obj: dict[str, Any]) -> bool:
    return _type(obj) in ("NodePort", "LoadBalancer")


def needs_health_check_port(obj: dict[str, Any]) -> bool:
    return _type(obj) == "LoadBalancer" and _spec(obj).get("externalTrafficPolicy") == "Local"


def _ports(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in _spec(obj).get("ports") or [] if isinstance(p, dict)]


def cluster_ips(obj: dict[str, Any]) -> list[str]:
    """The allocated addresses of a Service (none for headless and ExternalName ones)."""
    if not needs_cluster_ip(obj):
        return []
    spec = _spec(obj)
    ips = [str(ip) for ip in spec.get("clusterIPs") or [] if ip]
    if not ips and spec.get("clusterIP"):
        ips = [str(spec["clusterIP"])]
    return [ip for ip in ips if ip != "None"]


def node_ports(obj: dict[str, Any]) -> set[int]:
    """Every node port a Service holds (its ports' and the health check one)."""
    found = {int(p["nodePort"]) for p in _ports(obj) if isinstance(p.get("nodePort"), int)}
    health = _spec(obj).get("healthCheckNodePort")
    if isinstance(health, int) and health:
        found.add(health)
    found.discard(0)
    return found


@dataclass
class _Txn:
    """What one write allocated (released if the write fails) and what it gives up (released
    once it succeeded)."""

    ips: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    release_ips: list[str] = field(default_factory=list)
    release_ports: list[int] = field(default_factory=list)


class ServiceAllocators:
    def __init__(
        self,
        store: Store,
        *,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
        node_port_range: tuple[int, int] = NODE_PORT_RANGE,
    ) -> None:
        self.store = store
        self.ips = IPAllocator(service_cidr)
        self.ports = PortAllocator(*node_port_range)
        self._loaded = False

    @property
    def service_cidr(self) -> str:
        return self.ips.cidr

    @property
    def kubernetes_ip(self) -> str:
        """The ``kubernetes`` Service's address: the range's first (as 10.96.0.1 is)."""
        return self.ips.first

    @property
    def dns_ip(self) -> str:
        """The ``kube-dns`` Service's address: the range's tenth (as 10.96.0.10 is)."""
        network = ipaddress.ip_network(self.ips.cidr)
        return str(network[min(KUBE_DNS_INDEX, network.num_addresses - 1)])

    def _load(self) -> None:
        """Rebuild the allocations from the stored Services (once, on first use)."""
        if self._loaded:
            return
        self._loaded = True
        items, _ = self.store.list(SERVICES_KEY)
        for stored in items:
            obj = stored.object
            for ip in cluster_ips(obj):
                try:
                    self.ips.allocate(ip)
                except (NotInRange, Allocated):
                    log.warning(
                        "stored Service has a cluster IP outside the range or taken twice",
                        service=f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}",
                        ip=ip,
                        range=self.ips.cidr,
                    )
            for port in node_ports(obj):
                try:
                    self.ports.allocate(port)
                except (NotInRange, Allocated):
                    pass

    # -- the verbs' hooks ----------------------------------------------------------------------

    def prepare_update(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Before an update is defaulted and validated: keep the allocated values a request
        left out (``patchAllocatedValues``), and drop those the new type no longer uses when
        the request did not change them (``dropTypeDependentFields``)."""
        if rt.key != SERVICES_KEY:
            return
        spec, old_spec = new.get("spec"), _spec(old)
        if not isinstance(spec, dict):
            return
        if needs_cluster_ip(old) and needs_cluster_ip(new):
            if not spec.get("clusterIP") and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
            if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
                spec["clusterIPs"] = list(old_spec["clusterIPs"])
        if needs_node_ports(old) and needs_node_ports(new):
            by_name = {str(p.get("name") or ""): p.get("nodePort") for p in _ports(old)}
            used = {p.get("nodePort") for p in _ports(new) if p.get("nodePort")}
            for port in _ports(new):
                if not port.get("nodePort"):
                    previous = by_name.get(str(port.get("name") or ""))
                    if previous and previous not in used:
                        port["nodePort"] = previous
                        used.add(previous)
        if needs_health_check_port(old) and needs_health_check_port(new):
            if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
        if _type(new) == _type(old):
            return
        if needs_cluster_ip(old) and not needs_cluster_ip(new):
            for name in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if spec.get(name) == old_spec.get(name):
                    spec.pop(name, None)
        if needs_node_ports(old) and not needs_node_ports(new):
            if [p.get("nodePort") for p in _ports(new)] == [p.get("nodePort") for p in _ports(old)]:
                for port in _ports(new):
                    port.pop("nodePort", None)
        if needs_health_check_port(old) and not needs_health_check_port(new):
            if spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
                spec.pop("healthCheckNodePort", None)
        if _type(new) != "LoadBalancer":
            for name in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
                if spec.get(name) == old_spec.get(name):
                    spec.pop(name, None)
        if not needs_node_ports(new) and not spec.get("externalIPs"):
            if spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
                spec.pop("externalTrafficPolicy", None)
        if not needs_cluster_ip(new):
            if spec.get("internalTrafficPolicy") == old_spec.get("internalTrafficPolicy"):
                spec.pop("internalTrafficPolicy", None)

    @contextmanager
    def creating(self, rt: ResourceType, obj: dict[str, Any], *, dry_run: bool) -> Iterator[None]:
        """Allocate what a new (validated) Service needs; undo it if the write fails."""
        if rt.key != SERVICES_KEY:
            yield
            return
        self._load()
        txn = _Txn()
        try:
            self._allocate_cluster_ips(obj, txn, dry_run=dry_run)
            if needs_node_ports(obj):
                self._allocate_node_ports(obj, set(), txn, dry_run=dry_run)
            if needs_health_check_port(obj):
                self._allocate_health_check_port(obj, set(), txn, dry_run=dry_run)
            yield
        except BaseException:
            self._revert(txn)
            raise

    @contextmanager
    def updating(
        self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any], *, dry_run: bool
    ) -> Iterator[None]:
        """Allocate what an updated Service newly needs; on success release what it gave up,
        on failure release what was allocated."""
        if rt.key != SERVICES_KEY:
            yield
            return
        self._load()
        txn = _Txn()
        try:
            if not needs_cluster_ip(old) and needs_cluster_ip(new):
                self._allocate_cluster_ips(new, txn, dry_run=dry_run)
            elif needs_cluster_ip(old) and not needs_cluster_ip(new):
                txn.release_ips += cluster_ips(old)
            held = node_ports(old)
            if needs_node_ports(new):
                self._allocate_node_ports(new, held, txn, dry_run=dry_run)
            if needs_health_check_port(new):
                self._allocate_health_check_port(new, held, txn, dry_run=dry_run)
            txn.release_ports += sorted(held - node_ports(new))
            yield
        except BaseException:
            self._revert(txn)
            raise
        if not dry_run:
            for ip in txn.release_ips:
                self.ips.release(ip)
            for port in txn.release_ports:
                self.ports.release(port)

    def released(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """A Service is gone from the store: its addresses and ports are free again."""
        if rt.key != SERVICES_KEY:
            return
        self._load()
        for ip in cluster_ips(obj):
            self.ips.release(ip)
        for port in node_ports(obj):
            self.ports.release(port)

    # -- allocation ----------------------------------------------------------------------------

    def _revert(self, txn: _Txn) -> None:
        for ip in txn.ips:
            self.ips.release(ip)
        for port in txn.ports:
            self.ports.release(port)

    def _invalid(self, obj: dict[str, Any], path: str, value: Any, message: str) -> errors.Invalid:
        return errors.Invalid(
            kind="Service",
            name=str((obj.get("metadata") or {}).get("name") or ""),
            causes=[errors.invalid(path, value, message)],
        )

    def _allocate_cluster_ips(self, obj: dict[str, Any], txn: _Txn, *, dry_run: bool) -> None:
        spec = obj.setdefault("spec", {})
        if not needs_cluster_ip(obj):
            return
        requested = spec.get("clusterIP") or ""
        if requested == "None":
            return  # headless
        if not requested:
            try:
                ip = self.ips.allocate_next(dry_run=dry_run)
            except RangeFull:
                raise errors.InternalError(
                    "failed to allocate a serviceIP: range is full"
                ) from None
        else:
            ip = str(requested)
            try:
                self.ips.allocate(ip, dry_run=dry_run)
            except NotInRange:
                raise self._invalid(
                    obj,
                    "spec.clusterIPs",
                    spec.get("clusterIPs") or [ip],
                    f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid "
                    f"range. The range of valid IPs is {self.ips.cidr}",
                ) from None
            except Allocated:
                raise self._invalid(
                    obj,
                    "spec.clusterIPs",
                    spec.get("clusterIPs") or [ip],
                    f"failed to allocate IP {ip}: provided IP is already allocated",
                ) from None
        if not dry_run:
            txn.ips.append(ip)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def _allocate_node_ports(
        self, obj: dict[str, Any], held: set[int], txn: _Txn, *, dry_run: bool
    ) -> None:
        """``held``: ports the Service already has (an update keeps them)."""
        spec = _spec(obj)
        allocate_new = _type(obj) != "LoadBalancer" or spec.get(
            "allocateLoadBalancerNodePorts", True
        )
        taken_here: dict[int, int] = {}  # service port number -> node port, shared by protocols
        for i, port in enumerate(_ports(obj)):
            wanted = port.get("nodePort")
            number = port.get("port")
            if not wanted and isinstance(number, int) and number in taken_here:
                port["nodePort"] = taken_here[number]
                continue
            if wanted:
                if wanted in held or wanted in taken_here.values():
                    if isinstance(number, int):
                        taken_here.setdefault(number, int(wanted))
                    continue
                try:
                    self.ports.allocate(int(wanted), dry_run=dry_run)
                except NotInRange:
                    low, high = self.ports.low, self.ports.high
                    raise self._invalid(
                        obj,
                        f"spec.ports[{i}].nodePort",
                        wanted,
                        f"provided port is not in the valid range. The range of valid ports is "
                        f"{low}-{high}",
                    ) from None
                except Allocated:
                    raise self._invalid(
                        obj,
                        f"spec.ports[{i}].nodePort",
                        wanted,
                        "provided port is already allocated",
                    ) from None
                chosen = int(wanted)
            elif allocate_new:
                try:
                    chosen = self.ports.allocate_next(dry_run=dry_run)
                except RangeFull:
                    raise errors.InternalError(
                        "failed to allocate a nodePort: range is full"
                    ) from None
                port["nodePort"] = chosen
            else:
                continue
            if not dry_run:
                txn.ports.append(chosen)
            if isinstance(number, int):
                taken_here.setdefault(number, chosen)

    def _allocate_health_check_port(
        self, obj: dict[str, Any], held: set[int], txn: _Txn, *, dry_run: bool
    ) -> None:
        spec = _spec(obj)
        wanted = spec.get("healthCheckNodePort")
        if wanted and wanted in held:
            return
        try:
            if wanted:
                self.ports.allocate(int(wanted), dry_run=dry_run)
                chosen = int(wanted)
            else:
                chosen = self.ports.allocate_next(dry_run=dry_run)
        except (NotInRange, Allocated, RangeFull) as exc:
            reason = {
                NotInRange: "provided port is not in the valid range",
                Allocated: "provided port is already allocated",
            }.get(type(exc), "range is full")
            raise errors.InternalError(
                f"failed to allocate requested HealthCheck NodePort {wanted}: {reason}"
            ) from None
        if not dry_run:
            txn.ports.append(chosen)
        spec["healthCheckNodePort"] = chosen


# -- the ``kubernetes`` Service -----------------------------------------------------------------


def api_service_names(allocators: ServiceAllocators) -> list[str]:
    """Names the API server's certificate must cover for pods that call it by Service."""
    return [allocators.kubernetes_ip, *KUBERNETES_DNS_NAMES]


async def ensure_kubernetes_service(api: ServiceCore, *, host: str, port: int) -> None:
    """Create or refresh ``default/kubernetes`` (ClusterIP the range's first address, port 443
    to the API server's port) and its Endpoints and EndpointSlice, as Kubernetes' master
    endpoints reconciler keeps them. A failure is logged, never fatal: the API still serves."""
    from procorch.apiserver.auth import SYSTEM

    address = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    ip = api.allocators.kubernetes_ip
    ports: list[Obj] = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBERNETES_SERVICE,
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "sessionAffinity": "None",
            "ports": ports,
        },
    }
    endpoints: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": KUBERNETES_SERVICE,
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": address}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }
    endpoint_slice: Obj = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": KUBERNETES_SERVICE,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": KUBERNETES_SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    steps: list[tuple[ResourceType, Obj, Callable[[Obj], Any]]] = [
        (SERVICES, service, lambda o: (o.get("spec") or {}).get("ports")),
        (ENDPOINTS, endpoints, lambda o: o.get("subsets")),
        (ENDPOINT_SLICES, endpoint_slice, lambda o: (o.get("endpoints"), o.get("ports"))),
    ]
    for rt, body, part in steps:
        try:
            current = api.store.get(api.key(rt, "default", KUBERNETES_SERVICE))
            if current is None:
                await api.create(SYSTEM, rt, "default", body)
                continue
            if rt is SERVICES:
                # Only the ports follow the API server; the address was allocated once.
                updated = dict(current.object)
                updated["spec"] = {**_spec(current.object), "ports": ports}
            else:
                updated = {**body, "metadata": dict(current.object["metadata"])}
            if part(updated) != part(current.object):
                await api.update(SYSTEM, rt, "default", KUBERNETES_SERVICE, updated)
        except errors.ApiError as exc:
            log.warning(
                "could not write the kubernetes Service", kind=rt.kind, error=str(exc), ip=ip
            )


async def ensure_cluster_dns_service(api: ServiceCore) -> None:
    """Create ``kube-system/kube-dns`` if it is missing: the range's tenth address, port 53
    over UDP and TCP, no selector; every node serves that address itself (see
    :mod:`procorch.proxy.dns`), as the annotation tells the Service proxies. One the user
    changed or deleted is left as it is (deleted: created again at the next start)."""
    from procorch.apiserver.auth import SYSTEM

    if api.store.get(api.key(SERVICES, KUBE_DNS_NAMESPACE, KUBE_DNS_SERVICE)) is not None:
        return
    ip = api.allocators.dns_ip
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBE_DNS_SERVICE,
            "namespace": KUBE_DNS_NAMESPACE,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
            "annotations": {SERVED_ON_EVERY_NODE: "dns"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    }
    for attempt in ("the tenth address", "any address"):
        try:
            await api.create(SYSTEM, SERVICES, KUBE_DNS_NAMESPACE, service)
            return
        except errors.AlreadyExists:
            return
        except errors.ApiError as exc:
            if attempt == "the tenth address" and "already allocated" in str(exc):
                # Another Service took the address before cluster DNS existed.
                del service["spec"]["clusterIP"], service["spec"]["clusterIPs"]
                continue
            log.warning("could not create the kube-dns Service", error=str(exc))
            return
