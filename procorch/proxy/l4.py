"""The L4 Service proxy of a node (procorch's kube-proxy): TCP listeners for every Service.

:class:`ServiceProxy` is an API client like every other component. It watches Services and
EndpointSlices and keeps one listener per address a Service is reachable on:

* ``clusterIP:port`` for every TCP port of a Service with a cluster IP (not headless, not
  ExternalName: those get no proxy);
* ``nodePort`` on the node's address and on 127.0.0.1, for NodePort and LoadBalancer Services;
* ``port`` on the node's address for a LoadBalancer Service, which is then reported in its
  ``status.loadBalancer.ingress`` (as k3s's service load balancer does). A port another
  Service already holds leaves the later one pending, without an address.

A Service annotated :data:`~procorch.api.clusterdns.SERVED_ON_EVERY_NODE` (kube-dns) gets no
listener: every node's cluster DNS answers its address itself.

A Service whose ``internalTrafficPolicy`` is ``Local`` sends cluster-IP traffic only to the
endpoints on this node, and one whose ``externalTrafficPolicy`` is ``Local`` does so for its
NodePort and LoadBalancer traffic (none elsewhere is used: with no local endpoint, the
connection is refused), as kube-proxy does. Endpoints on other machines are dialed through the
node relay (:mod:`procorch.proxy.relay`).

Each Service port has one :class:`~procorch.proxy.balancer.Balancer` (shared by its
listeners), whose endpoints follow :class:`~procorch.proxy.endpoints.EndpointIndex` inside
the informer's event: an endpoint that leaves the ready set gets no new connection from then
on, while the connections it has go on until they end. A listener that is no longer wanted
stops accepting; its connections are not cut either.

Counters per Service (:class:`~procorch.proxy.balancer.ServiceStats`) are in :attr:`stats`;
:meth:`ServiceProxy.metrics_text` renders them in the Prometheus text format; ``procorch up``
serves that at the API server's ``/metrics``.

It reads Services and EndpointSlices through views of the process's informers
(:class:`~procorch.reconcile.factory.InformerFactory`), opening no watch of its own, and records
Events through the process's recorder.

Start: informers synced → listeners → sync loop and sweeper. Stop: listeners closed, every
connection dropped, informer views closed, tasks cancelled in reverse order.

Concurrency: single event loop. Owned tasks: the sync loop (listeners and load-balancer status,
one change at a time), the sweeper (idle connections, affinity expiry, the coarse clock), and
one short task per connection while it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from procorch.api import errors
from procorch.api.clusterdns import SERVED_ON_EVERY_NODE
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.kit.logging import get_logger
from procorch.kit.tasks import TaskSet
from procorch.proxy import transports
from procorch.proxy.balancer import Balancer, ServiceStats, render_metrics
from procorch.proxy.endpoints import SERVICE_NAME_LABEL, Addr, EndpointIndex, ServiceKey
from procorch.proxy.settings import ProxySettings
from procorch.proxy.tcp import ClientConnection
from procorch.proxy.transports import Dialer
from procorch.reconcile.factory import InformerFactory

log = get_logger("proxy.l4")

SERVICES = must("core/services")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")
_SYNC_TIMEOUT = 30.0

Obj = dict[str, Any]
PortKey = tuple[str, bool]  # port name, node-local endpoints only
Bind = tuple[str, int]  # host, port


@dataclass(frozen=True)
class Want:
    """A listener a Service asks for."""

    service: ServiceKey
    port_name: str
    kind: str  # ClusterIP, NodePort, LoadBalancer
    created: str  # the Service's creationTimestamp: the older one wins a contested port
    local: bool = False
    """Only this node's endpoints (the traffic policy that applies to ``kind`` is Local)."""

    @property
    def port_key(self) -> PortKey:
        return (self.port_name, self.local)


@dataclass
class Listener:
    host: str
    port: int
    want: Want
    balancer: Balancer
    server: asyncio.AbstractServer | None = None


@dataclass
class _Failed:
    want: Want
    error: str
    reported: bool = False


@dataclass
class _ServiceState:
    stats: ServiceStats = field(default_factory=ServiceStats)
    balancers: dict[PortKey, Balancer] = field(default_factory=dict)


class ServiceProxy:
    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        settings: ProxySettings | None = None,
        *,
        events: EventRecorder,
        dial: Dialer | None = None,
        on_crash: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or ProxySettings()
        self.dial: Dialer = dial or transports.connect_directly
        """How endpoints are connected to (the node relay's, for pods on other machines)."""
        self.tasks = TaskSet("service-proxy", on_crash=on_crash)
        self.services = informers.get(SERVICES)
        self.slices = informers.get(ENDPOINT_SLICES, label_selector=SERVICE_NAME_LABEL)
        self.index = EndpointIndex(self.slices)
        self.recorder = events.for_component("service-proxy")
        self.conns: set[ClientConnection] = set()
        self.failed: dict[Addr, float] = {}
        self.listeners: dict[Bind, Listener] = {}
        self._state: dict[ServiceKey, _ServiceState] = {}
        self._bind_failures: dict[Bind, _Failed] = {}
        self._dirty = asyncio.Event()
        self.clock = 0.0
        """Loop time, refreshed by the sweeper (what idle timeouts are measured with)."""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the proxy is not started"
        return self._loop

    @property
    def stats(self) -> dict[ServiceKey, ServiceStats]:
        """Counters per Service (namespace, name)."""
        return {key: state.stats for key, state in self._state.items()}

    def metrics_text(self) -> str:
        """The per-Service counters in the Prometheus text exposition format."""
        return render_metrics(self.stats)

    def listening(self) -> list[tuple[str, int, str, str, str, str]]:
        """(host, port, kind, namespace, service, port name) of every open listener."""
        return sorted(
            (host, port, lst.want.kind, *lst.want.service, lst.want.port_name)
            for (host, port), lst in self.listeners.items()
            if lst.server is not None
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.clock = self._loop.time()
        async with asyncio.timeout(_SYNC_TIMEOUT):
            await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
        self.index.subscribe(self._on_endpoints)
        self.services.add_handler(lambda _t, _o, _old: self._dirty.set())
        await self._sync()
        self.tasks.start("sync", self._sync_loop())
        self.tasks.start("sweeper", self._sweeper())
        log.info("service proxy started", listeners=len(self.listeners))

    async def stop(self) -> None:
        for listener in self.listeners.values():
            if listener.server is not None:
                listener.server.close()
        for conn in list(self.conns):
            conn.reset()
        self.listeners.clear()
        self.services.close()
        self.slices.close()
        await self.tasks.stop(timeout=5.0)

    # -- endpoints -----------------------------------------------------------------------------

    def _on_endpoints(self, service: ServiceKey) -> None:
        state = self._state.get(service)
        if state is not None:
            self._refresh_endpoints(service, state)

    def _refresh_endpoints(self, service: ServiceKey, state: _ServiceState) -> None:
        usable_anywhere: set[tuple[str, Addr]] = set()
        node = self.settings.node_name
        for (port_name, local), balancer in state.balancers.items():
            endpoints = self.index.port(service[0], service[1], port_name)
            usable = endpoints.usable(node if local else None)
            balancer.update(usable)
            usable_anywhere.update((port_name, addr) for addr in usable)
        state.stats.endpoints = len(usable_anywhere)

    # -- listeners -----------------------------------------------------------------------------

    def _wanted(self) -> dict[Bind, Want]:
        node_hosts = list(dict.fromkeys([self.settings.node_ip, "127.0.0.1"]))
        wanted: dict[Bind, Want] = {}

        def offer(bind: Bind, want: Want) -> None:
            current = wanted.get(bind)
            if current is None or (want.created, want.service) < (
                current.created,
                current.service,
            ):
                wanted[bind] = want

        for service in self.services.list():
            meta = service.get("metadata") or {}
            spec = service.get("spec") or {}
            kind = str(spec.get("type") or "ClusterIP")
            if kind == "ExternalName" or meta.get("deletionTimestamp"):
                continue
            if (meta.get("annotations") or {}).get(SERVED_ON_EVERY_NODE):
                continue  # every node answers it itself (cluster DNS)
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            created = str(meta.get("creationTimestamp") or "")
            cluster_ip = spec.get("clusterIP")
            internal_local = spec.get("internalTrafficPolicy") == "Local"
            external_local = spec.get("externalTrafficPolicy") == "Local"
            for port in spec.get("ports") or []:
                if (port.get("protocol") or "TCP") != "TCP" or not port.get("port"):
                    continue
                name = str(port.get("name") or "")
                if cluster_ip and cluster_ip != "None":
                    offer(
                        (str(cluster_ip), int(port["port"])),
                        Want(key, name, "ClusterIP", created, internal_local),
                    )
                if kind in ("NodePort", "LoadBalancer") and port.get("nodePort"):
                    for host in node_hosts:
                        offer(
                            (host, int(port["nodePort"])),
                            Want(key, name, "NodePort", created, external_local),
                        )
                if kind == "LoadBalancer":
                    offer(
                        (self.settings.node_ip, int(port["port"])),
                        Want(key, name, "LoadBalancer", created, external_local),
                    )
        return wanted

    def _balancer(self, want: Want, spec: Obj) -> Balancer:
        state = self._state.get(want.service)
        if state is None:
            state = self._state[want.service] = _ServiceState()
        balancer = state.balancers.get(want.port_key)
        if balancer is None:
            balancer = Balancer(
                namespace=want.service[0],
                service=want.service[1],
                port_name=want.port_name,
                stats=state.stats,
                failed=self.failed,
            )
            state.balancers[want.port_key] = balancer
        affinity: float | None = None
        if spec.get("sessionAffinity") == "ClientIP":
            config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            affinity = float(config.get("timeoutSeconds") or 10800)
        balancer.set_affinity(affinity)
        return balancer

    async def _sync(self) -> None:
        """Open, retarget and close listeners to match the Services; then write statuses."""
        wanted = self._wanted()
        used: dict[ServiceKey, set[PortKey]] = {}
        for want in wanted.values():
            used.setdefault(want.service, set()).add(want.port_key)
        # Balancers first, so that new listeners have their endpoints from the start.
        for service_key, names in used.items():
            service = self.services.get(service_key[1], service_key[0])
            spec = (service or {}).get("spec") or {}
            for name, local in names:
                self._balancer(Want(service_key, name, "", "", local), spec)
            state = self._state[service_key]
            for stale in set(state.balancers) - names:
                del state.balancers[stale]
            self._refresh_endpoints(service_key, state)
        for service_key in set(self._state) - set(used):
            del self._state[service_key]
        for bind in [b for b in self.listeners if b not in wanted]:
            listener = self.listeners.pop(bind)
            if listener.server is not None:
                listener.server.close()
            log.debug("listener closed", address=f"{bind[0]}:{bind[1]}")
        for bind in [b for b in self._bind_failures if b not in wanted]:
            del self._bind_failures[bind]
        for bind, want in wanted.items():
            balancer = self._state[want.service].balancers[want.port_key]
            existing = self.listeners.get(bind)
            if existing is not None and existing.server is not None:
                existing.want = want
                existing.balancer = balancer
                continue
            await self._listen(Listener(bind[0], bind[1], want, balancer))
        await self._write_statuses()

    async def _listen(self, listener: Listener) -> None:
        bind = (listener.host, listener.port)
        try:
            listener.server = await self.loop.create_server(
                lambda: ClientConnection(self, listener),
                host=listener.host,
                port=listener.port,
                reuse_address=True,
                backlog=self.settings.backlog,
            )
        except OSError as exc:
            failure = self._bind_failures.get(bind)
            if failure is None or failure.want != listener.want:
                failure = self._bind_failures[bind] = _Failed(listener.want, exc.strerror or "")
            if not failure.reported:
                failure.reported = True
                self._report_bind_failure(listener, exc)
            return
        self.listeners[bind] = listener
        self._bind_failures.pop(bind, None)
        log.debug(
            "listening",
            address=f"{listener.host}:{listener.port}",
            service="/".join(listener.want.service),
            kind=listener.want.kind,
        )

    def _report_bind_failure(self, listener: Listener, exc: OSError) -> None:
        namespace, name = listener.want.service
        message = (
            f"cannot listen on {listener.host}:{listener.port} ({listener.want.kind}): "
            f"{exc.strerror or exc}"
        )
        if listener.port < 1024 and exc.errno == errno.EACCES:
            message += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        log.warning("cannot open a Service listener", service=f"{namespace}/{name}", error=message)
        service = self.services.get(name, namespace)
        if service is not None:
            self.recorder.event(service, "Warning", "FailedToListen", message)

    async def _sync_loop(self) -> None:
        while True:
            timeout = self.settings.retry_bind if self._bind_failures else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad Service must not stop the proxy
                log.warning("service proxy sync failed; retrying", error=repr(exc))
                await asyncio.sleep(1.0)
                self._dirty.set()

    # -- LoadBalancer status -------------------------------------------------------------------

    def _load_balancer_status(self, service: Obj) -> list[Obj]:
        """What ``status.loadBalancer.ingress`` should say: this node's address once every TCP
        port of the Service listens there (it is this Service's)."""
        spec = service.get("spec") or {}
        meta = service.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if spec.get("type") != "LoadBalancer" or meta.get("deletionTimestamp"):
            return []
        ports = [
            int(p["port"])
            for p in spec.get("ports") or []
            if (p.get("protocol") or "TCP") == "TCP" and p.get("port")
        ]
        if not ports:
            return []
        for port in ports:
            listener = self.listeners.get((self.settings.node_ip, port))
            if (
                listener is None
                or listener.server is None
                or listener.want.service != key
                or listener.want.kind != "LoadBalancer"
            ):
                return []
        return [{"ip": self.settings.node_ip, "ipMode": "VIP"}]

    async def _write_statuses(self) -> None:
        for service in self.services.list():
            desired = self._load_balancer_status(service)
            current = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if current == desired:
                continue
            ours = [{"ip": self.settings.node_ip, "ipMode": "VIP"}]
            if not desired and current != ours:
                continue  # another controller's address: not ours to remove
            meta = service["metadata"]
            patch = {"status": {"loadBalancer": {"ingress": desired or None}}}
            try:
                await self.client.patch(
                    SERVICES,
                    str(meta["name"]),
                    patch,
                    namespace=str(meta.get("namespace") or ""),
                    subresource="status",
                )
            except errors.NotFound:
                continue
            except errors.ApiError as exc:
                log.warning(
                    "could not write a LoadBalancer status",
                    service=f"{meta.get('namespace')}/{meta['name']}",
                    error=str(exc),
                )
                self._dirty.set()

    # -- housekeeping --------------------------------------------------------------------------

    async def _sweeper(self) -> None:
        interval = self.settings.sweep_interval
        timeout = self.settings.idle_timeout
        while True:
            await asyncio.sleep(interval)
            now = self.clock = self.loop.time()
            for conn in list(self.conns):
                if conn.touched:
                    conn.touched = False
                    conn.idle_since = now
                elif now - conn.idle_since > timeout:
                    conn.close()
            for state in self._state.values():
                for balancer in state.balancers.values():
                    balancer.expire(now)
            for addr in [a for a, until in self.failed.items() if until <= now]:
                del self.failed[addr]
