"""Ingress router tests: a real control plane, a real router on port 0, real backends.

Backends are aiohttp servers that the tests start on 127.1.250.x addresses (the pod range, far
from what the node agent hands out) and ephemeral ports (nothing else on a shared machine can
hold them), published as Services with EndpointSlices created through the API, as the
EndpointSlice controller would (one slice per target port). Clients are aiohttp or raw
sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from procorch.api import errors
from procorch.api.resources import must
from procorch.launcher.up import Procorch
from procorch.proxy.ingress import IngressRouter, IngressSettings
from tests.agent.conftest import cluster  # noqa: F401 - the fixture, for real pods

SERVICES = must("core/services")
SLICES = must("discovery.k8s.io/endpointslices")
INGRESSES = must("networking.k8s.io/ingresses")
CLASSES = must("networking.k8s.io/ingressclasses")
SECRETS = must("core/secrets")

_addresses = itertools.count(1)


def next_ip() -> str:
    n = next(_addresses)
    return f"127.1.250.{n % 250 + 1}"


def unused_addr() -> tuple[str, int]:
    """An address where nothing listens (a port just freed): connecting is refused."""
    ip = next_ip()
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return ip, int(sock.getsockname()[1])


async def raw_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, tuple[str, int]]:
    server = await asyncio.start_server(serve, next_ip(), 0)
    host, port = server.sockets[0].getsockname()[:2]
    return server, (str(host), int(port))


class Api:
    """Creates the objects a test needs, as a user (or the EndpointSlice controller) would."""

    def __init__(self, procorch: Procorch) -> None:
        self.client = procorch.admin

    async def service(
        self,
        name: str,
        endpoints: list[tuple[str, int]] | list[tuple[str, int, bool]],
        *,
        port: int = 80,
        port_name: str = "http",
        namespace: str = "default",
    ) -> None:
        await self.client.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"ports": [{"name": port_name, "port": port, "targetPort": port_name}]},
            },
            namespace=namespace,
        )
        await self.slice(name, endpoints, port_name=port_name, namespace=namespace)

    async def slice(
        self,
        service: str,
        endpoints: list[tuple[str, int]] | list[tuple[str, int, bool]],
        *,
        port_name: str = "http",
        namespace: str = "default",
    ) -> None:
        """Publish the endpoints: one EndpointSlice per target port, created or replaced."""
        by_port: dict[int, list[tuple[str, bool]]] = {}
        for endpoint in endpoints:
            ready = bool(endpoint[2]) if len(endpoint) > 2 else True  # type: ignore[misc]
            by_port.setdefault(endpoint[1], []).append((endpoint[0], ready))
        for port, members in by_port.items():
            body = _slice(service, port, members, port_name=port_name)
            try:
                await self.client.create(SLICES, body, namespace=namespace)
            except errors.AlreadyExists:
                name = body["metadata"]["name"]
                current = await self.client.get(SLICES, name, namespace=namespace)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.client.update(SLICES, body, namespace=namespace)

    async def ingress(
        self, name: str, spec: dict[str, Any], *, namespace: str = "default"
    ) -> dict[str, Any]:
        return await self.client.create(
            INGRESSES,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name},
                "spec": spec,
            },
            namespace=namespace,
        )


def _slice(
    service: str, port: int, members: list[tuple[str, bool]], *, port_name: str
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{port}",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in members],
    }


def rule(
    path: str,
    service: str,
    *,
    host: str | None = None,
    path_type: str = "Prefix",
    port: int | str = 80,
) -> dict[str, Any]:
    port_ref = {"number": port} if isinstance(port, int) else {"name": port}
    entry: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": path_type,
                    "backend": {"service": {"name": service, "port": port_ref}},
                }
            ]
        }
    }
    if host:
        entry["host"] = host
    return entry


class Backend:
    """An aiohttp server on its own loopback address. It answers ``/…`` with JSON describing
    the request (its name, path, headers, the connection it came on), echoes ``/echo`` bodies
    as a stream, and serves WebSocket echo on ``/ws``."""

    def __init__(self, name: str, ip: str, port: int = 0) -> None:
        self.name = name
        self.ip = ip
        self.port = port
        self.requests = 0
        self.connections: set[int] = set()
        self.runner: web.AppRunner | None = None
        self.extra: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}

    @property
    def addr(self) -> tuple[str, int]:
        return (self.ip, self.port)

    async def start(self) -> Backend:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.ip, self.port).start()
        self.port = int(self.runner.addresses[0][1])  # the ephemeral port, once, then kept
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        transport = request.transport
        conn = id(transport)
        self.connections.add(conn)
        handler = self.extra.get(request.path)
        if handler is not None:
            return await handler(request)
        if request.path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"{self.name}:{msg.data}")
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws
        if request.path == "/echo":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            async for chunk in request.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
        body = await request.read()
        return web.json_response(
            {
                "backend": self.name,
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": len(body),
                "connection": conn,
            }
        )


@pytest.fixture
def api(procorch: Procorch) -> Api:
    return Api(procorch)


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., Awaitable[Backend]]]:
    started: list[Backend] = []

    async def start(name: str) -> Backend:
        backend = await Backend(name, next_ip()).start()
        started.append(backend)
        return backend

    try:
        yield start
    finally:
        for backend in started:
            await backend.stop()


@pytest.fixture
async def make_router(
    procorch: Procorch,
) -> AsyncIterator[Callable[..., Awaitable[IngressRouter]]]:
    routers: list[IngressRouter] = []

    async def start(**overrides: Any) -> IngressRouter:
        settings = IngressSettings(port=0, tls_port=0, sweep_interval=0.1, **overrides)
        router = IngressRouter(procorch.client, procorch.informers, settings)
        await router.start()
        routers.append(router)
        return router

    try:
        yield start
    finally:
        for router in routers:
            await router.stop()
            assert not router.conns, "client connections left open"
            assert not len(router.pool), "pooled upstream connections left open"
            assert not router._connecting, "connect attempts left running"  # noqa: SLF001
        assert not [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("ingress")], (
            "leaked router tasks"
        )


@pytest.fixture
async def router(make_router: Callable[..., Awaitable[IngressRouter]]) -> IngressRouter:
    return await make_router()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    host: str | None = None,
    method: str = "GET",
    **kwargs: Any,
) -> tuple[int, Any]:
    headers = dict(kwargs.pop("headers", {}) or {})
    if host:
        headers["Host"] = host
    async with session.request(method, url, headers=headers, **kwargs) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def routed(
    session: aiohttp.ClientSession,
    url: str,
    *,
    host: str | None = None,
    status: int = 200,
    timeout: float = 10.0,
) -> Any:
    """Wait until the route is in place (the router learns through a watch), return the body."""
    last: tuple[int, Any] = (0, None)

    async def check() -> bool:
        nonlocal last
        last = await get(session, url, host=host)
        return last[0] == status

    try:
        await eventually(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{url} (host {host}) never answered {status}; last: {last}") from None
    return last[1]


async def raw_request(
    port: int, data: bytes, *, read_until_close: bool = True, timeout: float = 5.0
) -> bytes:
    """Send raw bytes, read the answer until the router closes (or ``timeout``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close:
                    break
        return b"".join(chunks)
    finally:
        writer.close()
