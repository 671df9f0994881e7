"""Ready endpoints of Ingress backends: Services resolved through the shared
:class:`~procorch.proxy.endpoints.EndpointIndex` (EndpointSlices → ready endpoints per Service
port name).

A :class:`~procorch.proxy.ingress.routes.Backend` names a Service port by number or by name.
EndpointSlices name their ports after the Service's ports, so a port *number* is first mapped
to the Service port's name through the Service object (a Service that does not exist, or has no
such port, has no endpoints); a port *name* is used as is. Only *ready* endpoints are used: an
Ingress backend with none answers 503 (terminating endpoints are not a fallback here).

:class:`EndpointSet` spreads requests round robin and skips, for a short while, endpoints whose
connect just failed. When an address leaves the ready set of every Service, ``on_removed`` is
called: the connection pool closes its idle connections there, and stops pooling it.

Concurrency: informer handlers and lookups run on the one event loop; nothing blocks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from procorch.proxy.endpoints import Addr, EndpointIndex, ServiceKey
from procorch.proxy.ingress.routes import Backend
from procorch.reconcile.views import InformerView

Obj = dict[str, Any]

__all__ = ["Addr", "BackendIndex", "EndpointSet"]


class EndpointSet:
    """The ready addresses of one backend, in a stable order, with a round-robin cursor."""

    __slots__ = ("addrs", "_next", "_failed")

    def __init__(self, addrs: tuple[Addr, ...], failed: dict[Addr, float], start: int = 0) -> None:
        self.addrs = addrs
        self._next = start
        self._failed = failed  # shared with the index: addr -> skip until (loop time)

    def __bool__(self) -> bool:
        return bool(self.addrs)

    def pick(self, now: float, exclude: set[Addr] | None = None) -> Addr | None:
        """The next address round robin, skipping excluded ones and, while others remain,
        ones that failed recently."""
        addrs = self.addrs
        count = len(addrs)
        if count == 0:
            return None
        fallback: Addr | None = None
        for _ in range(count):
            addr = addrs[self._next % count]
            self._next += 1
            if exclude and addr in exclude:
                continue
            if self._failed and self._failed.get(addr, 0.0) > now:
                fallback = fallback or addr
                continue
            return addr
        return fallback


class BackendIndex:
    """Resolves backends to :class:`EndpointSet` s, cached until their Service changes."""

    def __init__(
        self,
        services: InformerView,
        endpoints: EndpointIndex,
        *,
        on_removed: Callable[[Addr], None] | None = None,
    ) -> None:
        self.services = services
        self.endpoints = endpoints
        self.on_removed = on_removed
        self.failed: dict[Addr, float] = {}
        self._sets: dict[Backend, EndpointSet] = {}
        self._by_service: dict[ServiceKey, set[Backend]] = {}
        self._service_addrs: dict[ServiceKey, set[Addr]] = {}
        self._refs: Counter[Addr] = Counter()
        endpoints.subscribe(self._changed)
        for key in endpoints.services():
            self._changed(key)
        services.add_handler(self._on_service)

    # -- lookups -----------------------------------------------------------------------------

    def resolve(self, backend: Backend) -> EndpointSet:
        found = self._sets.get(backend)
        if found is None:
            found = EndpointSet(self._compute(backend), self.failed)
            self._sets[backend] = found
            self._by_service.setdefault((backend.namespace, backend.service), set()).add(backend)
        return found

    def is_ready(self, addr: Addr) -> bool:
        """Whether some Service has ``addr`` among its ready endpoints."""
        return addr in self._refs

    def mark_failed(self, addr: Addr, until: float) -> None:
        self.failed[addr] = until

    def mark_ok(self, addr: Addr) -> None:
        self.failed.pop(addr, None)

    def _compute(self, backend: Backend) -> tuple[Addr, ...]:
        port_name: str | None
        if isinstance(backend.port, int):
            service = self.services.get(backend.service, backend.namespace)
            if service is None:
                return ()
            port_name = None
            for port in (service.get("spec") or {}).get("ports") or []:
                if port.get("port") == backend.port:
                    port_name = str(port.get("name") or "")
                    break
            if port_name is None:
                return ()
        else:
            port_name = backend.port
        return self.endpoints.ready(backend.namespace, backend.service, port_name)

    # -- change tracking ---------------------------------------------------------------------

    def _on_service(self, _etype: str, obj: Obj, _old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        self._changed((str(meta.get("namespace") or ""), str(meta.get("name") or "")))

    def _changed(self, key: ServiceKey) -> None:
        for backend in self._by_service.pop(key, ()):
            old = self._sets.pop(backend, None)
            if old is not None:
                # Keep the cursor, so that frequent slice updates do not pin one endpoint.
                self._sets[backend] = EndpointSet(self._compute(backend), self.failed, old._next)
                self._by_service.setdefault(key, set()).add(backend)
        before = self._service_addrs.get(key, set())
        after = {
            addr for port in self.endpoints.ports(key[0], key[1]).values() for addr in port.ready
        }
        if after:
            self._service_addrs[key] = after
        else:
            self._service_addrs.pop(key, None)
        for addr in after - before:
            self._refs[addr] += 1
        for addr in before - after:
            self._refs[addr] -= 1
            if self._refs[addr] <= 0:
                del self._refs[addr]
                self.failed.pop(addr, None)
                if self.on_removed is not None:
                    self.on_removed(addr)
