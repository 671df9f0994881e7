"""Cluster DNS, record by record, as CoreDNS answers: asked over UDP and TCP with a DNS client at
the ``kube-dns`` Service's address, on a whole procorch with its node and real pods.

The host's resolvers are stood in for by a small DNS server of the test's own (a real one, on a
real socket), so that forwarding is seen without the machine's network.
"""

from __future__ import annotations

import asyncio
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
from procorch.launcher.up import Procorch, UpConfig
from tests.agent.conftest import FAST, Cluster
from tests.networking.conftest import service_cidr
from tests.workloads.conftest import eventually

SERVICES = must("core/services")
PODS = must("core/pods")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="port 53 needs root")


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
            dns={"upstreams": [upstream], "forward_timeout": 1.0},
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
