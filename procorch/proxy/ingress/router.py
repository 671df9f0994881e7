"""The Ingress router: one L7 listener per node (plus HTTPS), fed by informers.

:class:`IngressRouter` is an API client like every other component. It watches Ingresses,
IngressClasses, Services, EndpointSlices and ``kubernetes.io/tls`` Secrets; compiles the
Ingresses of its class (an Ingress naming no class counts when this router's class is the
cluster default) into a :class:`~procorch.proxy.ingress.routes.RouteTable`, swapped whole on
every change; resolves backends to ready endpoints
(:class:`~procorch.proxy.ingress.backends.BackendIndex`, over the shared
:class:`~procorch.proxy.endpoints.EndpointIndex`); and serves HTTP on ``port`` and HTTPS
on ``tls_port`` (the TLS listener always runs unless disabled, serving a self-signed default
certificate until an Ingress names one). It writes ``status.loadBalancer.ingress`` of the
Ingresses it serves, and creates its default IngressClass at start if missing. What it watches
it reads through views of the process's informers
(:class:`~procorch.reconcile.factory.InformerFactory`): it opens no watch of its own.

Start: IngressClass → informers synced → route table → listeners → sweeper and status writer.
Stop: listeners closed, idle connections closed, requests in flight given ``drain_timeout``,
then every connection cut, pools closed, informer views closed, tasks cancelled in reverse
order.

Connections waiting for a request (new, or idle between requests) are bounded by a share of
the open-files limit, the oldest closed first (:meth:`IngressRouter.waiting_for_request`), so
that slow or silent clients cannot take every descriptor from real ones.

Concurrency: single event loop. Owned tasks: the sweeper (timeouts, and the coarse clock the
data plane reads), the status writer, and one short task per upstream connect.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

from procorch.api.resources import must
from procorch.client.base import Client
from procorch.kit.logging import get_logger
from procorch.kit.oldest import OldestFirst
from procorch.kit.tasks import TaskSet, wait_cancelled
from procorch.proxy.balancer import label_value
from procorch.proxy.endpoints import SERVICE_NAME_LABEL, EndpointIndex
from procorch.proxy.ingress import routes
from procorch.proxy.ingress.backends import Addr, BackendIndex
from procorch.proxy.ingress.downstream import ClientConnection
from procorch.proxy.ingress.settings import IngressSettings
from procorch.proxy.ingress.status import (
    INGRESS_CLASSES,
    INGRESSES,
    LoadBalancer,
    StatusWriter,
    ensure_default_class,
)
from procorch.proxy.ingress.tls import Certificates
from procorch.proxy.ingress.upstream import Pool
from procorch.proxy.transports import Dialer, connect_directly
from procorch.reconcile.factory import InformerFactory
from procorch.reconcile.views import InformerView

log = get_logger("proxy.ingress")

SERVICES = must("core/services")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")
SECRETS = must("core/secrets")
_SYNC_TIMEOUT = 30.0

Obj = dict[str, Any]


class IngressRouter:
    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        settings: IngressSettings | None = None,
        *,
        dial: Dialer | None = None,
        on_crash: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or IngressSettings()
        self.dial: Dialer = dial or connect_directly
        """How endpoints are connected to (the node relay's, for pods on other machines)."""
        self.tasks = TaskSet("ingress", on_crash=on_crash)
        self.conns: set[ClientConnection] = set()
        self.waiting: OldestFirst[ClientConnection] = OldestFirst(
            limit=self.settings.waiting_bound(),
            grace=self.settings.waiting_grace,
            evict=lambda conn: conn.evict(),
            clock=time.monotonic,
            what="connections waiting for a request",
        )
        """Client connections without a request in progress, oldest first: the ones closed to
        make room (:meth:`waiting_for_request`)."""
        self.clock = 0.0
        """Loop time, refreshed by the sweeper: what the data plane stamps its timers with."""
        self.table = routes.RouteTable()
        self.ingresses = informers.get(INGRESSES)
        self.classes = informers.get(INGRESS_CLASSES)
        self.services = informers.get(SERVICES)
        self.slices = informers.get(ENDPOINT_SLICES, label_selector=SERVICE_NAME_LABEL)
        self.secrets = informers.get(SECRETS, field_selector="type=kubernetes.io/tls")
        self.endpoints = EndpointIndex(self.slices)
        self.backends = BackendIndex(self.services, self.endpoints, on_removed=self._retire)
        s = self.settings
        self.pool = Pool(
            timebase=self,
            is_ready=self.backends.is_ready,
            max_idle=s.max_idle_per_endpoint,
            idle_timeout=s.upstream_idle_timeout,
            write_high=s.read_buffer_high,
            max_head=s.max_response_head_bytes,
        )
        self.certs = Certificates(self.secrets)
        self.status = StatusWriter(
            client, self.ingresses, desired=self._desired_status, ours=self._status_of
        )
        self.requests: dict[tuple[routes.Backend | None, int], int] = {}
        """Responses by backend (None: no rule matched) and status, for :meth:`metrics_text`."""
        self.port = 0
        self.tls_port = 0
        self._owned: set[tuple[str, str]] = set()
        self._servers: list[Any] = []
        self._connecting: set[asyncio.Task[None]] = set()
        self._rebuild_handle: asyncio.Handle | None = None

    def count(self, backend: routes.Backend | None, status: int) -> None:
        key = (backend, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1

    def metrics_text(self) -> str:
        """Responses by backend Service and status code, in the Prometheus text format."""
        name = "procorch_ingress_requests_total"
        lines = [
            f"# HELP {name} Responses sent, by backend Service and status code "
            '(service="" when no rule matched).',
            f"# TYPE {name} counter",
        ]
        totals: dict[tuple[str, str, int], int] = {}
        for (backend, status), count in self.requests.items():
            ns, svc = (backend.namespace, backend.service) if backend else ("", "")
            totals[(ns, svc, status)] = totals.get((ns, svc, status), 0) + count
        for (ns, svc, status), count in sorted(totals.items()):
            labels = f'namespace="{label_value(ns)}",service="{label_value(svc)}",code="{status}"'
            lines.append(f"{name}{{{labels}}} {count}")
        return "\n".join(lines) + "\n"

    @property
    def address(self) -> str:
        host = self.settings.host
        return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://{self.address}:{self.tls_port}" if self.tls_port else ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self.clock = loop.time()
        self.waiting.limit = s.waiting_bound()  # after procorch raised its open-files limit
        if s.create_default_class:
            await ensure_default_class(self.client, s.class_name)
        for informer in (self.ingresses, self.classes, self.secrets):
            informer.add_handler(self._on_config)
        self.ingresses.add_handler(lambda _t, obj, _o: self.status.enqueue(obj))
        async with asyncio.timeout(_SYNC_TIMEOUT):
            await asyncio.gather(*(view.synced.wait() for view in self._views()))
        self._rebuild()
        self.port = await self._listen(b"http", s.port, None, option="--ingress-port")
        if s.tls_port is not None:
            self.tls_port = await self._listen(
                b"https", s.tls_port, self.certs.start(), option="--ingress-tls-port"
            )
        self.tasks.start("sweeper", self._sweeper())
        self.tasks.start("status", self.status.run())
        self.status.enqueue_all()
        log.info("ingress router listening", http=self.url, https=self.tls_url or "off")

    async def _listen(
        self, scheme: bytes, port: int, context: ssl.SSLContext | None, *, option: str
    ) -> int:
        s = self.settings
        extra: dict[str, Any] = {}
        if context is not None:
            extra = {"ssl": context, "ssl_handshake_timeout": min(s.header_timeout, 10.0)}
        try:
            server = await asyncio.get_running_loop().create_server(
                lambda: ClientConnection(self, scheme=scheme),
                s.host,
                port,
                backlog=1024,
                reuse_address=True,
                **extra,
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the Ingress router cannot listen on {s.host}:{port} "
                f"({os.strerror(exc.errno) if exc.errno else exc}); "
                f"choose another port with {option} (0 picks a free one)",
            ) from exc
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self.conns):
            conn.drain()
        if self.conns:
            try:
                async with asyncio.timeout(self.settings.drain_timeout):
                    while self.conns:
                        await asyncio.sleep(0.05)
            except TimeoutError:
                pass
        for conn in list(self.conns):
            conn._close(abort=True)  # noqa: SLF001 - the router owns its connections
        for task in list(self._connecting):
            task.cancel()
            await wait_cancelled(task, timeout=1.0)
        self.pool.close_all()
        for view in self._views():
            view.close()
        if self._rebuild_handle is not None:
            self._rebuild_handle.cancel()
        await self.tasks.stop(timeout=5.0)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def _views(self) -> tuple[InformerView, ...]:
        return (self.classes, self.ingresses, self.services, self.slices, self.secrets)

    # -- configuration -----------------------------------------------------------------------

    def _on_config(self, _etype: str, _obj: Obj, _old: Obj | None) -> None:
        if self._rebuild_handle is None:
            self._rebuild_handle = asyncio.get_running_loop().call_soon(self._rebuild)

    def _rebuild(self) -> None:
        self._rebuild_handle = None
        ours, default_ours = routes.owned_classes(self.classes.list())
        mine = sorted(
            (i for i in self.ingresses.list() if routes.is_ours(i, ours, default_ours)),
            key=routes._age_key,  # noqa: SLF001 - same ordering as the table
        )
        self.table = routes.build(mine)
        self.certs.rebuild(mine)
        owned = {_key(i) for i in mine}
        if owned != self._owned:
            self._owned = owned
            self.status.enqueue_all()
        log.debug("routes rebuilt", ingresses=len(mine))

    def _desired_status(self, ingress: Obj) -> LoadBalancer | None:
        if _key(ingress) not in self._owned or not self.port:
            return None
        return self._status_of(ingress)

    def _status_of(self, ingress: Obj) -> LoadBalancer:
        ports = [{"port": self.port, "protocol": "TCP"}]
        if self.tls_port and self.certs.has_tls(ingress):
            ports.append({"port": self.tls_port, "protocol": "TCP"})
        entry: dict[str, Any] = (
            {"hostname": self.settings.status_hostname}
            if self.settings.status_hostname
            else {"ip": self.address}
        )
        entry["ports"] = ports
        return [entry]

    # -- data plane support ------------------------------------------------------------------

    def start_connect(self, coro: Coroutine[Any, Any, None], addr: Addr) -> asyncio.Task[None]:
        """A connect attempt as an owned task (cancelled on stop or when its client leaves)."""
        task = asyncio.get_running_loop().create_task(
            coro, name=f"ingress/connect:{addr[0]}:{addr[1]}"
        )
        self._connecting.add(task)
        task.add_done_callback(self._connect_done)
        return task

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("upstream connect failed unexpectedly", error=repr(task.exception()))

    def waiting_for_request(self, conn: ClientConnection) -> None:
        """``conn`` has no request in progress (just accepted, or idle after a response): it
        becomes the youngest waiting connection, and the oldest go if there are too many
        (:class:`~procorch.kit.oldest.OldestFirst`)."""
        self.waiting.add(conn)

    def _retire(self, addr: Addr) -> None:
        self.pool.retire(addr)

    async def _sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.sweep_interval
        while True:
            await asyncio.sleep(interval)
            now = self.clock = loop.time()
            for conn in list(self.conns):
                conn.sweep(now)
            self.pool.sweep(now)


def _key(ingress: Obj) -> tuple[str, str]:
    meta = ingress.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
