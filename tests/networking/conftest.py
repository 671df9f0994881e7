"""Services, EndpointSlices and the L4 proxy: fixtures and helpers.

``plane`` is a bare control plane (API server, controllers, the endpoints controller among
them) with a :class:`ServiceProxy` of the test's own on top, and ``backends`` are small TCP
servers on pod-range addresses (127.1.251.x, far from what the node agent hands out) that
the tests publish as Services with hand-made EndpointSlices, or as fake pods whose status the
test writes. ``cluster`` is a whole procorch with its node, running real pods.

Every procorch here takes its Service range at random from 127.112.0.0-127.126.255.255, so
that its listeners (``kubernetes`` on the range's first address, port 443, among them) never
meet those of another procorch running on this machine at the same time.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.launcher.up import Procorch, UpConfig
from procorch.proxy.l4 import ServiceProxy
from procorch.proxy.settings import ProxySettings
from tests.agent.conftest import FAST, Cluster
from tests.conftest import KUBECTL, Kubectl

SERVICES = must("core/services")
PODS = must("core/pods")
SLICES = must("discovery.k8s.io/endpointslices")
ENDPOINTS = must("core/endpoints")

_addresses = itertools.count(random.randrange(250))


def next_ip() -> str:
    return f"127.1.251.{next(_addresses) % 250 + 1}"


def service_cidr() -> str:
    return f"127.{random.randint(112, 126)}.{random.randint(0, 255)}.0/24"


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


# -- backends ------------------------------------------------------------------------------------


class Backend:
    """A TCP server speaking a line protocol, one command per connection (then more):

    ``who`` → its name; ``echo N`` → echoes N bytes back as they come; ``send N`` → N bytes of
    a pattern; ``drain`` → reads to EOF, answers how many bytes it read, then closes;
    ``hold`` → nothing (the connection stays open)."""

    def __init__(self, name: str, ip: str, port: int) -> None:
        self.name = name
        self.ip = ip
        self.port = port
        self.connections = 0
        self.open = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.peers: list[str] = []

    @property
    def addr(self) -> tuple[str, int]:
        return (self.ip, self.port)

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(
            self._serve, self.ip, self.port, reuse_address=True, limit=1 << 20
        )
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.writers.add(writer)
        peer = writer.get_extra_info("peername")
        self.peers.append(str(peer[0]) if peer else "")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd, _, arg = line.decode().strip().partition(" ")
                if cmd == "who":
                    writer.write(f"{self.name}\n".encode())
                elif cmd == "echo":
                    left = int(arg)
                    while left:
                        chunk = await reader.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        left -= len(chunk)
                        writer.write(chunk)
                        await writer.drain()
                elif cmd == "send":
                    block = pattern(1 << 20)
                    left = int(arg)
                    while left:
                        piece = block[: min(left, len(block))]
                        writer.write(piece)
                        await writer.drain()
                        left -= len(piece)
                elif cmd == "drain":
                    total = 0
                    while chunk := await reader.read(1 << 16):
                        total += len(chunk)
                    writer.write(f"{total}\n".encode())
                    await writer.drain()
                    break
                elif cmd == "hold":
                    await reader.read()
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            self.writers.discard(writer)
            writer.close()


def pattern(size: int) -> bytes:
    block = bytes(range(256)) * 4096
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., Awaitable[Backend]]]:
    started: list[Backend] = []

    async def make(name: str, *, port: int = 9000, ip: str | None = None) -> Backend:
        backend = await Backend(name, ip or next_ip(), port).start()
        started.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in started:
            await backend.stop()


async def ask(
    host: str, port: int, command: str, *, local: str | None = None, timeout: float = 5.0
) -> str:
    """Open a connection, send ``command``, return the first line of the answer."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            host, port, local_addr=(local, 0) if local else None
        )
        try:
            writer.write(f"{command}\n".encode())
            await writer.drain()
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()


# -- the API side ----------------------------------------------------------------------------


class Api:
    """Creates Services, EndpointSlices and fake pods as a user (or a controller) would."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def service(
        self, name: str, spec: dict[str, Any], *, namespace: str = "default"
    ) -> dict[str, Any]:
        return await self.client.create(
            SERVICES,
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec},
            namespace=namespace,
        )

    async def slice(
        self,
        service: str,
        endpoints: list[tuple[str, bool]],
        *,
        port: int,
        port_name: str = "",
        name: str | None = None,
        namespace: str = "default",
    ) -> None:
        """Publish ``endpoints`` ((ip, ready) pairs) for ``service`` in a hand-made slice."""
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name or f"{service}-manual",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in endpoints
            ],
        }
        try:
            await self.client.create(SLICES, body, namespace=namespace)
        except errors.AlreadyExists:
            current = await self.client.get(SLICES, body["metadata"]["name"], namespace=namespace)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self.client.update(SLICES, body, namespace=namespace)

    async def pod(
        self,
        name: str,
        *,
        labels: dict[str, str],
        ip: str,
        ready: bool = True,
        ports: list[dict[str, Any]] | None = None,
        finalizers: list[str] | None = None,
        namespace: str = "default",
    ) -> dict[str, Any]:
        """A pod object whose status the test writes (no node runs it)."""
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if finalizers:
            meta["finalizers"] = finalizers
        created = await self.client.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": {
                    "containers": [{"name": "main", "command": ["true"], "ports": ports or []}]
                },
            },
            namespace=namespace,
        )
        return await self.set_pod(created, ip=ip, ready=ready)

    async def set_pod(
        self, pod: dict[str, Any], *, ip: str | None = None, ready: bool = True
    ) -> dict[str, Any]:
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        current = await self.client.get(PODS, name, namespace=namespace)
        status = current.setdefault("status", {})
        status["phase"] = "Running"
        if ip is not None:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        status["conditions"] = [
            {"type": "Ready", "status": "True" if ready else "False"},
            {"type": "ContainersReady", "status": "True" if ready else "False"},
        ]
        return await self.client.update_status(PODS, current, namespace=namespace)

    async def slices_of(self, service: str, namespace: str = "default") -> list[dict[str, Any]]:
        return (
            await self.client.list(
                SLICES, namespace=namespace, label_selector=f"kubernetes.io/service-name={service}"
            )
        ).items


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Procorch]:
    """A bare control plane (the endpoints controller runs; no node)."""
    instance = Procorch(
        UpConfig(data_dir=tmp_path / "data", api_port=0, node=False, service_cidr=service_cidr())
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
def api(plane: Procorch) -> Api:
    return Api(plane.admin)


@pytest.fixture
def proxy_settings() -> ProxySettings:
    return ProxySettings(node_ip="127.0.0.1", connect_timeout=1.0)


@pytest.fixture
async def proxy(plane: Procorch, proxy_settings: ProxySettings) -> AsyncIterator[ServiceProxy]:
    instance = ServiceProxy(plane.client, plane.informers, proxy_settings, events=plane.events)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def listening(proxy: ServiceProxy, host: str, port: int) -> None:
    async def check() -> bool:
        return any(h == host and p == port for h, p, *_ in proxy.listening())

    await eventually(check)


# -- a whole procorch with its node ----------------------------------------------------------


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    agent = dict(FAST, ready_settle=0.2)
    instance = Procorch(
        UpConfig(
            data_dir=tmp_path / "data",
            api_port=0,
            node=True,
            agent=agent,
            service_cidr=service_cidr(),
        )
    )
    await instance.start()
    try:
        yield Cluster(instance, tmp_path)
    finally:
        await instance.stop()


@pytest.fixture
def kubectl(request: pytest.FixtureRequest, tmp_path: Path) -> Kubectl:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed on this machine (tests that drive it skip)")
    target = "cluster" if "cluster" in request.fixturenames else "plane"
    instance = request.getfixturevalue(target)
    procorch = instance.procorch if isinstance(instance, Cluster) else instance
    return Kubectl(procorch.kubeconfig_path, tmp_path / "kube-cache")
