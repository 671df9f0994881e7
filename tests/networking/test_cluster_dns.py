"""Cluster DNS, record by record, as CoreDNS answers: asked over UDP and TCP with a DNS client at
the ``kube-dns`` Service's address, on a whole procorch with its node and real pods.

The host's resolvers are stood in for by a small DNS server of the test's own (a real one, on a
real socket), so that forwarding is seen without the machine's network.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from procorch.api.resources import must
from procorch.kit.resolvconf import ResolvConf
from procorch.launcher.up import Procorch, UpConfig
from tests.agent.conftest import FAST, Cluster
from tests.networking.conftest import service_cidr
from tests.workloads.conftest import eventually

SERVICES = must("core/services")
PODS = must("core/pods")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="port 53 needs root")
HOST_SEARCHES = ResolvConf.parse(Path("/etc/resolv.conf").read_text()).searches


class Upstream(BaseResolver):  # type: ignore[misc]
    """The 'host resolver': knows one name."""

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        if str(request.q.qname).rstrip(".") == "outside.example" and request.q.qtype == QTYPE.A:
            reply.add_answer(RR("outside.example", QTYPE.A, rdata=A("192.0.2.7"), ttl=60))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = DNSServer(Upstream(), address="127.0.0.1", port=port)
    server.start_thread()
    try:
        yield ("127.0.0.1", port)
    finally:
        server.stop()


@pytest.fixture
async def dns_cluster(tmp_path: Path, upstream: tuple[str, int]) -> AsyncIterator[Cluster]:
    instance = Procorch(
        UpConfig(
            data_dir=tmp_path / "data",
            api_port=0,
            node=True,
            agent=dict(FAST, ready_settle=0.2),
            service_cidr=service_cidr(),
            dns={"upstreams": [upstream], "forward_timeout": 1.0, "tcp_idle_timeout": 0.5},
        )
    )
    await instance.start()
    try:
        yield Cluster(instance, tmp_path)
    finally:
        await instance.stop()


async def ask(server: str, name: str, qtype: str, *, tcp: bool = False) -> DNSRecord:
    question = DNSRecord.question(name, qtype)
    question.header.id = random.randrange(65536)
    raw = await asyncio.to_thread(question.send, server, 53, tcp=tcp, timeout=3)
    reply = DNSRecord.parse(raw)
    assert reply.header.id == question.header.id
    return reply


def answers(reply: DNSRecord) -> list[tuple[str, str, str]]:
    return sorted((str(rr.rname), QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr)


MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: outside.example
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: db, command: [sleep, "600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, labels: {app: db}}
spec:
  containers: [{name: db, command: [sleep, "600"]}]
"""


async def test_cluster_names_answer_as_coredns_does_and_the_rest_is_forwarded(
    dns_cluster: Cluster,
) -> None:
    cluster = dns_cluster
    client = cluster.client
    dns = (await client.get(SERVICES, "kube-dns", namespace="kube-system"))["spec"]
    server = dns["clusterIP"]
    assert server.endswith(".10") and {(p["protocol"], p["port"]) for p in dns["ports"]} == {
        ("UDP", 53),
        ("TCP", 53),
    }
    await cluster.apply(MANIFEST)
    api_ip = (await client.get(SERVICES, "api", namespace="default"))["spec"]["clusterIP"]

    async def db_pods() -> dict[str, str] | None:
        pods = (await client.list(PODS, namespace="default", label_selector="app=db")).items
        ips = {p["metadata"]["name"]: (p.get("status") or {}).get("podIP") for p in pods}
        ready = all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
            for p in pods
            if p.get("status", {}).get("conditions")
        )
        return ips if len(ips) == 2 and all(ips.values()) and ready else None

    ips = await eventually(db_pods, timeout=30, what="the db pods Ready")
    zone = "svc.cluster.local."

    # A Service: its cluster IP, over UDP and TCP, the name echoed as asked.
    for tcp in (False, True):
        reply = await ask(server, "API.default.svc.cluster.local", "A", tcp=tcp)
        assert reply.header.aa == 1 and reply.header.rcode == RCODE.NOERROR
        assert answers(reply) == [(f"API.default.{zone}", "A", api_ip)]
        assert reply.rr[0].ttl == 5

    # Headless: one A per ready endpoint, and the pod that set hostname/subdomain by name.
    async def both_endpoints() -> DNSRecord | None:
        reply = await ask(server, "db.default.svc.cluster.local", "A")
        return reply if len(reply.rr) == 2 else None

    reply = await eventually(both_endpoints, timeout=10, what="two A records for db")
    assert sorted(str(rr.rdata) for rr in reply.rr) == sorted(ips.values())
    reply = await ask(server, "db-0.db.default.svc.cluster.local", "A")
    assert answers(reply) == [(f"db-0.db.default.{zone}", "A", ips["db-0"])]
    dashed = ips["db-1"].replace(".", "-")
    reply = await ask(server, f"{dashed}.db.default.svc.cluster.local", "A")
    assert answers(reply) == [(f"{dashed}.db.default.{zone}", "A", ips["db-1"])]

    # SRV for named ports: to the Service, or to each endpoint of a headless one.
    reply = await ask(server, "_http._tcp.api.default.svc.cluster.local", "SRV")
    assert answers(reply) == [
        (f"_http._tcp.api.default.{zone}", "SRV", f"0 100 80 api.default.{zone}")
    ]
    assert [(str(rr.rname), str(rr.rdata)) for rr in reply.ar] == [(f"api.default.{zone}", api_ip)]
    reply = await ask(server, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    targets = sorted(str(rr.rdata).split()[-1] for rr in reply.rr)
    assert targets == sorted([f"db-0.db.default.{zone}", f"{dashed}.db.default.{zone}"])

    # PTR: a cluster IP, a headless endpoint, and a pod no Service names.
    reply = await ask(server, ".".join(reversed(api_ip.split("."))) + ".in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == [f"api.default.{zone}"]
    reply = await ask(server, ".".join(reversed(ips["db-0"].split("."))) + ".in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in reply.rr] == [f"db-0.db.default.{zone}"]

    # ExternalName: a CNAME, and its target's address from upstream.
    reply = await ask(server, "ext.default.svc.cluster.local", "A")
    assert answers(reply) == [
        ("ext.default.svc.cluster.local.", "A", "192.0.2.7"),
        ("ext.default.svc.cluster.local.", "CNAME", "outside.example."),
    ] or answers(reply) == [
        ("ext.default.svc.cluster.local.", "CNAME", "outside.example."),
        ("outside.example.", "A", "192.0.2.7"),
    ]

    # Unknown in the cluster domain: NXDOMAIN with the zone's SOA; known but no such record:
    # NOERROR and no answer.
    for name in ("nope.default.svc.cluster.local", "api.nons.svc.cluster.local", "x.cluster.local"):
        reply = await ask(server, name, "A")
        assert reply.header.rcode == RCODE.NXDOMAIN and not reply.rr, name
        assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"], name
    reply = await ask(server, "api.default.svc.cluster.local", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr and reply.auth

    # ExternalNames that lead to each other: followed a few hops, then the chain so far.
    await cluster.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: loop}\n"
        "spec: {type: ExternalName, externalName: loop.default.svc.cluster.local}\n"
    )

    async def looped() -> DNSRecord | None:
        reply = await ask(server, "loop.default.svc.cluster.local", "A")
        return reply if reply.rr else None

    reply = await eventually(looped, timeout=10, what="the loop Service in DNS")
    assert reply.header.rcode == RCODE.NOERROR and 1 < len(reply.rr) <= 9, answers(reply)
    assert {QTYPE[rr.rtype] for rr in reply.rr} == {"CNAME"}
    # The zone's apex answers its SOA.
    assert [QTYPE[rr.rtype] for rr in (await ask(server, "cluster.local", "SOA")).rr] == ["SOA"]

    # A TCP client that says nothing is let go (CoreDNS: after 10 s; here the test's 0.5 s).
    reader, writer = await asyncio.open_connection(server, 53)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()

    # Everything else: the host's resolvers.
    reply = await ask(server, "outside.example", "A")
    assert answers(reply) == [("outside.example.", "A", "192.0.2.7")]
    assert (await ask(server, "nowhere.example", "A")).header.rcode == RCODE.NXDOMAIN

    # An answer follows the endpoints at once: db-1 deleted, one A record left.
    await client.delete(PODS, "db-1", namespace="default")

    async def one_endpoint() -> bool:
        reply = await ask(server, "db.default.svc.cluster.local", "A")
        return [str(rr.rdata) for rr in reply.rr] == [ips["db-0"]]

    await eventually(one_endpoint, timeout=10, what="db down to one A record")
    await a_pod_resolves_through_its_own_resolv_conf(cluster, api_ip, ips["db-0"], server)


WHO = """
import json, socket, sys
print(json.dumps({
    "api": socket.gethostbyname("api"),
    "api.default": socket.getaddrinfo("api.default", 80, proto=socket.IPPROTO_TCP)[0][4][0],
    "db-0.db": socket.gethostbyname("db-0.db"),
    "outside": socket.gethostbyname("outside.example"),
    "hostname": socket.gethostname(),
    "self": socket.gethostbyname(socket.gethostname()),
    "resolv.conf": open("/etc/resolv.conf").read(),
}))
sys.stdout.flush()
"""


async def a_pod_resolves_through_its_own_resolv_conf(
    cluster: Cluster, api_ip: str, db_ip: str, server: str
) -> None:
    """getaddrinfo in a pod's process: short names through the search path, the pod's own
    name from its /etc/hosts, other names forwarded; its hostname is its own."""
    out = cluster.tmp_path / "who.json"
    await cluster.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: who}}
spec:
  hostname: whoami
  restartPolicy: Never
  containers:
  - name: who
    command: [sh, -c, 'python3 -c "$0" > {out}.tmp && mv {out}.tmp {out}']
    args: [{json.dumps(WHO)}]
"""
    )

    async def done() -> str | None:
        return out.read_text() if out.exists() else None

    seen = json.loads(await eventually(done, timeout=30, what="the pod's answers"))
    pod = await cluster.client.get(PODS, "who", namespace="default")
    assert seen["api"] == api_ip and seen["api.default"] == api_ip, seen
    assert seen["db-0.db"] == db_ip and seen["outside"] == "192.0.2.7", seen
    assert seen["hostname"] == "whoami" and seen["self"] == pod["status"]["podIP"], seen
    assert seen["resolv.conf"] == (
        "search default.svc.cluster.local svc.cluster.local cluster.local"
        + "".join(f" {d}" for d in HOST_SEARCHES)
        + f"\nnameserver {server}\noptions ndots:5\n"
    ), seen["resolv.conf"]
