"""Where a Service's traffic may go: Service → port name → ready ``(ip, port)`` endpoints,
kept from EndpointSlices (an informer's cache and events).

EndpointSlices (label ``kubernetes.io/service-name``) name their ports after the Service's ports
(``""`` for a single unnamed one) and carry each pod's resolved port number, so the index is
keyed by the Service port's *name*. An endpoint counts as ready when ``conditions.ready`` is
true or unset (Kubernetes: unknown means ready). Endpoints that are terminating but still
serving are kept apart as a fallback, used only when a port has no ready endpoint at all (as
kube-proxy does since KEP-1669). Each endpoint's ``nodeName`` is kept, for the Services whose
traffic policy is ``Local`` (:meth:`PortEndpoints.usable` with a node).

Subscribers are told synchronously, inside the informer's event, which Service changed: a
proxy stops sending new connections to an endpoint the moment its slice says it is not ready.

Concurrency: single event loop; nothing blocks or awaits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from procorch.reconcile.views import InformerView

Addr = tuple[str, int]
Obj = dict[str, Any]
ServiceKey = tuple[str, str]  # (namespace, name)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_INDEX = "proxy.endpoints/service"


@dataclass(frozen=True)
class PortEndpoints:
    """The endpoints of one Service port: ready ones, and serving-but-terminating ones."""

    ready: tuple[Addr, ...] = ()
    terminating: tuple[Addr, ...] = ()
    nodes: tuple[tuple[Addr, str], ...] = ()
    """Each endpoint's ``nodeName`` (when its slice says)."""

    def usable(self, node: str | None = None) -> tuple[Addr, ...]:
        """Where new connections go: the ready endpoints, else the terminating ones that
        still serve; with ``node``, only those on that node (a ``Local`` traffic policy:
        none elsewhere is used, even when the node has none)."""
        if node is None:
            return self.ready or self.terminating
        on_node = {addr for addr, name in self.nodes if name == node}
        return tuple(a for a in self.ready if a in on_node) or tuple(
            a for a in self.terminating if a in on_node
        )


EMPTY = PortEndpoints()


def slice_service(obj: Obj) -> list[str]:
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace') or ''}/{name}"] if name else []


def _endpoints_of(slices: list[Obj]) -> dict[str, PortEndpoints]:
    ready: dict[str, dict[Addr, None]] = {}
    terminating: dict[str, dict[Addr, None]] = {}
    nodes: dict[str, dict[Addr, str]] = {}
    for slice_ in slices:
        if slice_.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        ports = [
            (str(p.get("name") or ""), int(p["port"]))
            for p in slice_.get("ports") or []
            if p.get("port") and (p.get("protocol") or "TCP") == "TCP"
        ]
        if not ports:
            continue
        for endpoint in slice_.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is not False:
                target = ready
            elif conditions.get("serving") and conditions.get("terminating"):
                target = terminating
            else:
                continue
            node = endpoint.get("nodeName")
            for name, number in ports:
                addr = (str(addresses[0]), number)
                target.setdefault(name, {})[addr] = None
                if node:
                    nodes.setdefault(name, {})[addr] = str(node)
    names = set(ready) | set(terminating)
    return {
        name: PortEndpoints(
            tuple(sorted(ready.get(name, {}))),
            tuple(sorted(terminating.get(name, {}))),
            tuple(sorted(nodes.get(name, {}).items())),
        )
        for name in names
    }


class EndpointIndex:
    """Service → port name → :class:`PortEndpoints`, from an EndpointSlice informer."""

    def __init__(self, slices: InformerView) -> None:
        self.slices = slices
        self._by_service: dict[ServiceKey, dict[str, PortEndpoints]] = {}
        self._subscribers: list[Callable[[ServiceKey], None]] = []
        slices.add_index(_INDEX, slice_service)
        slices.add_handler(self._on_slice)

    def subscribe(self, callback: Callable[[ServiceKey], None]) -> None:
        """``callback((namespace, name))`` after a Service's endpoints changed."""
        self._subscribers.append(callback)

    def port(self, namespace: str, service: str, port_name: str = "") -> PortEndpoints:
        return self._by_service.get((namespace, service), {}).get(port_name, EMPTY)

    def ready(self, namespace: str, service: str, port_name: str = "") -> tuple[Addr, ...]:
        return self.port(namespace, service, port_name).ready

    def ports(self, namespace: str, service: str) -> dict[str, PortEndpoints]:
        return dict(self._by_service.get((namespace, service), {}))

    def services(self) -> list[ServiceKey]:
        return sorted(self._by_service)

    def _on_slice(self, _etype: str, obj: Obj, old: Obj | None) -> None:
        for key in {*slice_service(obj), *(slice_service(old) if old else ())}:
            namespace, _, name = key.partition("/")
            self._refresh((namespace, name))

    def _refresh(self, service: ServiceKey) -> None:
        fresh = _endpoints_of(self.slices.by_index(_INDEX, f"{service[0]}/{service[1]}"))
        if fresh == self._by_service.get(service, {}):
            return
        if fresh:
            self._by_service[service] = fresh
        else:
            self._by_service.pop(service, None)
        for callback in self._subscribers:
            callback(service)
