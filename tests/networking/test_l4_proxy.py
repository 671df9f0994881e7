"""The L4 Service proxy with real sockets: spreading, readiness, retries, large bodies,
half-close, flow control, idle timeouts, session affinity, NodePort and LoadBalancer."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from procorch.launcher.up import Procorch
from procorch.proxy.l4 import ServiceProxy
from procorch.proxy.settings import ProxySettings
from tests.networking.conftest import (
    SERVICES,
    Api,
    Backend,
    ask,
    eventually,
    listening,
    pattern,
)

MakeBackend = Callable[..., Awaitable[Backend]]


async def publish(
    api: Api, proxy: ServiceProxy, name: str, backends: list[Backend], **spec: object
) -> tuple[str, int]:
    """A selector-less Service on port 80 with a slice of ``backends``; (clusterIP, 80) once the
    proxy listens and knows every endpoint."""
    svc = await api.service(name, {"ports": [{"port": 80, "targetPort": 9000}], **spec})
    await api.slice(name, [(b.ip, True) for b in backends], port=9000)
    ip = svc["spec"]["clusterIP"]
    await listening(proxy, ip, 80)

    async def known() -> bool:
        return len(proxy.index.ready("default", name)) == len(backends)

    await eventually(known)
    return ip, 80


async def spread(host: str, port: int, count: int, *, local: str | None = None) -> Counter[str]:
    answers = await asyncio.gather(*(ask(host, port, "who", local=local) for _ in range(count)))
    return Counter(answers)


async def test_connections_are_spread_over_ready_endpoints_only(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    a, b, c = [await backends(n) for n in "abc"]
    ip, port = await publish(api, proxy, "web", [a, b, c])
    seen = await spread(ip, port, 30)
    assert seen == {"a": 10, "b": 10, "c": 10}
    await api.slice("web", [(a.ip, True), (b.ip, False), (c.ip, True)], port=9000)
    await eventually(lambda: _ready_count(proxy, "web", 2))
    seen = await spread(ip, port, 20)
    assert set(seen) == {"a", "c"}
    stats = proxy.stats[("default", "web")]
    assert stats.connections == 50 and stats.endpoints == 2
    text = proxy.metrics_text()
    assert 'procorch_service_connections_total{namespace="default",service="web"} 50' in text
    assert "# TYPE procorch_service_bytes_sent_total counter" in text


async def _ready_count(proxy: ServiceProxy, name: str, count: int) -> bool:
    return len(proxy.index.ready("default", name)) == count


async def test_a_refused_connect_is_retried_on_another_endpoint(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    live = await backends("live")
    dead = await backends("dead")
    await dead.stop()  # published, but nothing listens there: connects are refused
    ip, port = await publish(api, proxy, "retry", [live, dead])
    seen = await spread(ip, port, 20)
    assert seen == {"live": 20}
    stats = proxy.stats[("default", "retry")]
    assert stats.connect_errors >= 1 and stats.no_endpoint == 0


async def test_without_endpoints_the_client_is_let_go_at_once(
    api: Api, proxy: ServiceProxy
) -> None:
    svc = await api.service("empty", {"ports": [{"port": 80}]})
    ip = svc["spec"]["clusterIP"]
    await listening(proxy, ip, 80)
    assert await turned_away(ip, 80)
    assert proxy.stats[("default", "empty")].no_endpoint == 1


async def turned_away(host: str, port: int) -> bool:
    """Whether a connection is closed (reset) without an answer."""
    try:
        answer = await ask(host, port, "who", timeout=2)
    except ConnectionError:
        return True
    return answer == ""


async def test_an_endpoint_removed_keeps_its_established_connections(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    a = await backends("a")
    ip, port = await publish(api, proxy, "keep", [a])
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(b"who\n")
    assert await reader.readline() == b"a\n"
    await api.slice("keep", [], port=9000)
    await eventually(lambda: _ready_count(proxy, "keep", 0))
    writer.write(b"who\n")  # the same connection goes on
    assert await reader.readline() == b"a\n"
    writer.close()
    # ...while a new one gets nowhere.
    assert await turned_away(ip, port)


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "protocols"])
async def test_ten_mebibytes_cross_intact_both_ways(
    plane: Procorch, api: Api, backends: MakeBackend, use_splice: bool
) -> None:
    proxy = ServiceProxy(
        plane.client, plane.informers, ProxySettings(splice=use_splice), events=plane.events
    )
    await proxy.start()
    try:
        a = await backends("big")
        ip, port = await publish(api, proxy, "bulk", [a])
        body = pattern(10 * 1024 * 1024)
        reader, writer = await asyncio.open_connection(ip, port)

        async def send() -> None:
            writer.write(f"echo {len(body)}\n".encode())
            for i in range(0, len(body), 1 << 18):
                writer.write(body[i : i + (1 << 18)])
                await writer.drain()

        sender = asyncio.create_task(send())
        echoed = await asyncio.wait_for(reader.readexactly(len(body)), 20)
        await sender
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(body).digest()
        writer.write(f"send {len(body)}\n".encode())
        received = await asyncio.wait_for(reader.readexactly(len(body)), 20)
        assert received == body
        writer.close()
        stats = proxy.stats[("default", "bulk")]
        assert stats.bytes_in >= len(body) and stats.bytes_out >= 2 * len(body)
        assert stats.spliced == (2 if use_splice else 0)
    finally:
        await proxy.stop()


async def test_half_close_passes_the_eof_and_the_answer_comes_back(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    a = await backends("a")
    ip, port = await publish(api, proxy, "half", [a])
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(b"drain\n" + b"x" * 300_000)
    await writer.drain()
    writer.write_eof()  # we are done sending; the backend reads to EOF, then answers
    assert await asyncio.wait_for(reader.readline(), 5) == b"300000\n"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_a_client_that_does_not_read_stops_the_endpoint_being_read(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    a = await backends("a")
    ip, port = await publish(api, proxy, "slow", [a])
    sock = socket.create_connection((ip, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        sock.sendall(b"send 200000000\n")
        await asyncio.sleep(1.0)
        stats = proxy.stats[("default", "slow")]
        moved = stats.bytes_out
        await asyncio.sleep(0.5)
        assert stats.bytes_out == moved, "still reading from the endpoint"
        assert moved < 32 * 1024 * 1024
    finally:
        sock.close()


async def test_idle_connections_are_closed(
    plane: Procorch, api: Api, backends: MakeBackend
) -> None:
    proxy = ServiceProxy(
        plane.client,
        plane.informers,
        ProxySettings(idle_timeout=0.4, sweep_interval=0.1),
        events=plane.events,
    )
    await proxy.start()
    try:
        a = await backends("a")
        ip, port = await publish(api, proxy, "idle", [a])
        reader, writer = await asyncio.open_connection(ip, port)
        writer.write(b"who\n")
        assert await reader.readline() == b"a\n"
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
        await eventually(lambda: _async(a.open == 0))
    finally:
        await proxy.stop()


async def _async(value: bool) -> bool:
    return value


async def test_client_ip_affinity_keeps_a_client_on_one_endpoint(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    pods = [await backends(n) for n in "abc"]
    ip, port = await publish(api, proxy, "sticky", pods, sessionAffinity="ClientIP")
    for client in ("127.0.0.5", "127.0.0.6", "127.0.0.7"):
        seen = await spread(ip, port, 6, local=client)
        assert len(seen) == 1, seen


async def test_node_port_and_load_balancer_answer_on_the_node(
    plane: Procorch, api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    a = await backends("a")
    svc = await api.service("np", {"type": "NodePort", "ports": [{"port": 80, "targetPort": 9000}]})
    await api.slice("np", [(a.ip, True)], port=9000)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    await listening(proxy, "127.0.0.1", node_port)
    await eventually(lambda: _ready_count(proxy, "np", 1))
    assert await ask("127.0.0.1", node_port, "who") == "a"
    assert await ask(svc["spec"]["clusterIP"], 80, "who") == "a"
    # A LoadBalancer listens on the node's address at its own port, and says so.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        lb_port = probe.getsockname()[1]
    lb = await api.service(
        "lb", {"type": "LoadBalancer", "ports": [{"port": lb_port, "targetPort": 9000}]}
    )
    await api.slice("lb", [(a.ip, True)], port=9000)

    async def published() -> bool:
        current = await plane.admin.get(SERVICES, "lb", namespace="default")
        return bool(current["status"].get("loadBalancer", {}).get("ingress"))

    await eventually(published)
    current = await plane.admin.get(SERVICES, "lb", namespace="default")
    assert current["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1", "ipMode": "VIP"}]
    await eventually(lambda: _ready_count(proxy, "lb", 1))
    assert await ask("127.0.0.1", lb_port, "who") == "a"
    assert await ask("127.0.0.1", lb["spec"]["ports"][0]["nodePort"], "who") == "a"
    # Turned into a ClusterIP Service: the node listeners and the status go.
    await plane.admin.patch(SERVICES, "lb", {"spec": {"type": "ClusterIP"}}, namespace="default")

    async def withdrawn() -> bool:
        current = await plane.admin.get(SERVICES, "lb", namespace="default")
        ports = {p for h, p, *_ in proxy.listening() if h == "127.0.0.1"}
        return not current["status"]["loadBalancer"].get("ingress") and lb_port not in ports

    await eventually(withdrawn)


async def test_headless_and_external_name_services_get_no_listener(
    api: Api, proxy: ServiceProxy
) -> None:
    await api.service("headless", {"clusterIP": "None", "ports": [{"port": 80}]})
    await api.service("ext", {"type": "ExternalName", "externalName": "example.com"})
    plain = await api.service("plain", {"ports": [{"port": 80}]})
    await listening(proxy, plain["spec"]["clusterIP"], 80)
    names = {service for *_, service, _port_name in proxy.listening()}
    assert "headless" not in names and "ext" not in names


async def test_each_port_of_a_service_reaches_its_own_target(
    api: Api, proxy: ServiceProxy, backends: MakeBackend
) -> None:
    web = await backends("web", port=8080)
    admin = await backends("admin", port=9901, ip=web.ip)
    svc = await api.service(
        "multi",
        {
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "admin", "port": 81, "targetPort": 9901},
            ]
        },
    )
    await api.slice("multi", [(web.ip, True)], port=8080, port_name="http", name="multi-http")
    await api.slice("multi", [(admin.ip, True)], port=9901, port_name="admin", name="multi-admin")
    ip = svc["spec"]["clusterIP"]
    await listening(proxy, ip, 81)

    async def both() -> bool:
        return bool(proxy.index.ready("default", "multi", "http")) and bool(
            proxy.index.ready("default", "multi", "admin")
        )

    await eventually(both)
    assert await ask(ip, 80, "who") == "web"
    assert await ask(ip, 81, "who") == "admin"
