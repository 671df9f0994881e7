"""One pod network across machines: pods, hosts, Services (by address and by name, through
each node's cluster DNS), NodePorts and the Ingress router on one node reach pods on another
through the node relay (mutual TLS between the nodes), and the relay lets nobody else in.

Hosts are network namespaces (see conftest), each with a loopback of its own: a pod IP of node C
means nothing on node B's loopback until B's relay answers it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import ssl
from pathlib import Path
from typing import Any

from procorch.api.resources import must
from procorch.launcher.up import Procorch
from procorch.proxy.relay import RELAY_ANNOTATION, wire
from tests.nodes.conftest import FETCH, SERVER, HostNetwork, fetch_each, join
from tests.nodes.test_join import ready_nodes
from tests.workloads.conftest import eventually

PODS = must("core/pods")
NODES = must("core/nodes")
SERVICES = must("core/services")
DEPLOYMENTS = must("apps/deployments")
INGRESSES = must("networking.k8s.io/ingresses")
INGRESS_PORT = 18080
UNDECLARED_PORT = 8081
SERVER_ALSO_UNDECLARED = SERVER.replace(
    "http.server.ThreadingHTTPServer((",
    "import threading\n"
    "threading.Thread(target=http.server.ThreadingHTTPServer("
    f'(os.environ["POD_IP"], {UNDECLARED_PORT}), H).serve_forever, daemon=True).start()\n'
    "http.server.ThreadingHTTPServer((",
)
"""The pod's server, and the same on a port the pod does not declare."""
REDIRECT = shutil.which("nft") is not None
"""Whether node-b reaches every port of node-c's pods (an nftables redirect: root and nft)."""


def api_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": "node-c"},
                    "containers": [
                        {
                            "name": "api",
                            "command": ["python3", "-c", SERVER_ALSO_UNDECLARED],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def b_server() -> dict[str, Any]:
    """A pod on node-b serving its name on the port it declares."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "b-server", "namespace": "default"},
        "spec": {
            "nodeName": "node-b",
            "containers": [
                {
                    "name": "server",
                    "command": ["python3", "-c", SERVER],
                    "ports": [{"containerPort": 8080}],
                }
            ],
        },
    }


API_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "api", "namespace": "default"},
    "spec": {
        "type": "NodePort",
        "selector": {"app": "api"},
        "ports": [{"port": 80, "targetPort": "http"}],
    },
}

API_HEADLESS = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "api-headless", "namespace": "default"},
    "spec": {"clusterIP": "None", "selector": {"app": "api"}, "ports": [{"port": 8080}]},
}

API_INGRESS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "api", "namespace": "default"},
    "spec": {
        "rules": [
            {
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "api", "port": {"number": 80}}},
                        }
                    ]
                }
            }
        ]
    },
}


async def test_pods_hosts_services_node_ports_and_ingress_reach_pods_on_another_node(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    node_b, node_c = network.add_host("node-b"), network.add_host("node-c")
    # node-b relays through the nftables redirect where it can (every port), node-c through
    # loopback listeners (the ports pods declare and Services name).
    for host, relay in ((node_b, ()), (node_c, ("--no-relay-redirect",))):
        extra = ("--ingress-port", str(INGRESS_PORT), *relay)
        await join(network, plane, host, tmp_path, extra=extra)
    await ready_nodes(plane, "node-b", "node-c")
    await plane.admin.create(PODS, b_server(), namespace="default")
    await plane.admin.create(DEPLOYMENTS, api_deployment(), namespace="default")
    service = await plane.admin.create(SERVICES, API_SERVICE, namespace="default")
    await plane.admin.create(INGRESSES, API_INGRESS, namespace="default")
    await plane.admin.create(SERVICES, API_HEADLESS, namespace="default")

    async def ready_pods() -> list[dict[str, Any]] | None:
        pods = (await plane.admin.list(PODS, namespace="default", label_selector="app=api")).items
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        return ready if len(ready) == 2 else None

    pods = await eventually(ready_pods, timeout=60, what="2 api pods Ready on node-c")
    names = {p["metadata"]["name"] for p in pods}
    assert {p["spec"]["nodeName"] for p in pods} == {"node-c"}
    cluster_ip = service["spec"]["clusterIP"]
    node_port = service["spec"]["ports"][0]["nodePort"]

    # node-b's host: each pod by IP, the Service by clusterIP (both endpoints, round robin),
    # the NodePort on node-b's own address, the Ingress router on node-b.
    urls = [f"http://{p['status']['podIP']}:8080/" for p in pods]
    urls += [f"http://{cluster_ip}/"] * 2
    urls += [f"http://{node_b.address}:{node_port}/", f"http://127.0.0.1:{INGRESS_PORT}/"]
    host_seen = json.loads(
        await network.python(node_b, f"import sys\nsys.argv[1:] = {urls!r}\n{FETCH}")
    )
    assert [body for _, body in host_seen[:2]] == [p["metadata"]["name"] for p in pods], host_seen
    assert {body for _, body in host_seen[2:4]} == names, host_seen  # round robin
    assert all(body in names for _, body in host_seen[4:]), host_seen

    # A port the pods do not declare, and no Service names: node-b reaches it through its
    # nftables redirect (root and nft); without one, nothing answers it there.
    undeclared = [f"http://{p['status']['podIP']}:{UNDECLARED_PORT}/" for p in pods]
    if REDIRECT:
        seen = json.loads(
            await network.python(node_b, f"import sys\nsys.argv[1:] = {undeclared!r}\n{FETCH}")
        )
        assert [body for _, body in seen] == [p["metadata"]["name"] for p in pods], seen
    else:
        answers = await fetch_each(network, node_b, undeclared)
        assert all("refused" in a for a in answers), answers
    # node-c, without the redirect, answers node-b's pod on the port it declares (a loopback
    # listener for it), and not on another.
    b_ip = await eventually(
        lambda: pod_ip(plane, "b-server"), timeout=30, what="b-server running on node-b"
    )
    seen = json.loads(
        await network.python(
            node_c, f"import sys\nsys.argv[1:] = {[f'http://{b_ip}:8080/']!r}\n{FETCH}"
        )
    )
    assert seen == [[f"http://{b_ip}:8080/", "b-server"]], seen
    answers = await fetch_each(network, node_c, [f"http://{b_ip}:{UNDECLARED_PORT}/"])
    assert "refused" in answers[0], answers

    # Half-close crosses the relay: a client that sends its request and shuts its side gets
    # the whole answer, and then the end of the stream.
    ip = pods[0]["status"]["podIP"]
    half = f"""
import socket
s = socket.create_connection(("{ip}", 8080), timeout=5)
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.decode().split("\\r\\n")[0], data.decode().rsplit("\\n", 1)[-1])
"""
    assert (await network.python(node_b, half)).split() == [
        "HTTP/1.1",
        "200",
        "OK",
        pods[0]["metadata"]["name"],
    ]

    # A pod on node-b: the same by pod IP, by the Service's name and its environment variables
    # (cluster DNS on node-b), by the headless Service's name (its A records are the pods on
    # node-c), and through the NodePort on node-b's address.
    out = tmp_path / "client.json"
    pod_urls = [
        urls[0],
        "http://api/",
        "http://api.default.svc.cluster.local/",
        "http://$(API_SERVICE_HOST):$(API_SERVICE_PORT)/",
        "http://api-headless:8080/",
        urls[-2],
    ]
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "default"},
        "spec": {
            "nodeName": "node-b",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "command": [
                        "sh",
                        "-c",
                        f'python3 -c "$0" "$@" > {out}.tmp && mv {out}.tmp {out}',
                    ],
                    "args": [FETCH, *pod_urls],
                }
            ],
        },
    }
    await plane.admin.create(PODS, client, namespace="default")
    seen = json.loads(
        await eventually(
            lambda: asyncio.to_thread(lambda: out.exists() and out.read_text()),
            timeout=60,
            what="the client pod's results",
        )
    )
    assert len(seen) == 6 and all(body in names for _, body in seen), seen

    await local_traffic_policies_keep_to_the_node(network, plane, names)
    await relay_lets_in_only_nodes_and_only_to_their_pods(plane, tmp_path, pods)


async def local_traffic_policies_keep_to_the_node(
    network: HostNetwork, plane: Procorch, names: set[str]
) -> None:
    """``internalTrafficPolicy: Local`` (cluster IP) and ``externalTrafficPolicy: Local``
    (NodePort): node-c, which runs the endpoints, serves both; node-b, which has none, refuses
    both rather than sending them to node-c."""
    local = {
        **API_SERVICE,
        "metadata": {"name": "api-local", "namespace": "default"},
        "spec": {
            **API_SERVICE["spec"],
            "internalTrafficPolicy": "Local",
            "externalTrafficPolicy": "Local",
        },
    }
    service = await plane.admin.create(SERVICES, local, namespace="default")
    node_b, node_c = network.hosts
    node_port = service["spec"]["ports"][0]["nodePort"]
    for host, serves in ((node_c, True), (node_b, False)):
        urls = [f"http://{service['spec']['clusterIP']}/", f"http://{host.address}:{node_port}/"]
        code = f"import sys\nsys.argv[1:] = {urls!r}\n{FETCH}"
        if serves:
            seen = json.loads(await network.python(host, code))
            assert all(body in names for _, body in seen), seen
        else:
            answers = await fetch_each(network, host, urls)
            assert all("Connection reset" in a or "refused" in a for a in answers), answers


async def pod_ip(plane: Procorch, name: str) -> str | None:
    pod = await plane.admin.get(PODS, name, namespace="default")
    status = pod.get("status") or {}
    return (
        str(status["podIP"]) if status.get("phase") == "Running" and status.get("podIP") else None
    )


async def relay_lets_in_only_nodes_and_only_to_their_pods(
    plane: Procorch, tmp_path: Path, pods: list[dict[str, Any]]
) -> None:
    """Without a node certificate the TLS handshake fails (and node-c logs who tried); with
    node-b's, node-c relays to its pods and to nothing else on its machine."""
    node_c = await plane.admin.get(NODES, "node-c")
    host, _, port = node_c["metadata"]["annotations"][RELAY_ANNOTATION].rpartition(":")
    pki = tmp_path / "node-b" / "agent" / "pki"
    anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    try:
        reader, writer = await asyncio.open_connection(
            host, int(port), ssl=anonymous, server_hostname=host
        )
        writer.write(wire.frame(wire.Kind.OPEN, 1, wire.open_payload("127.0.0.1", 22)))
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    except (ssl.SSLError, OSError) as exc:
        answer = repr(exc).encode()
    assert wire.Kind.OPENED.to_bytes(1, "big") not in answer[:1], answer

    async def logged() -> bool:
        text = (tmp_path / "node-c.log").read_text()
        return (
            "refused a relay connection" in text
            and plane.api_url.split("//")[1].split(":")[0] in text
        )

    await eventually(logged, timeout=10, what="node-c logging the refused peer and its address")

    node = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    node.load_cert_chain(pki / "node.crt", pki / "node.key")

    async def open_(target: str, number: int) -> tuple[wire.Kind, bytes]:
        reader, writer = await asyncio.open_connection(
            host, int(port), ssl=node, server_hostname=host
        )
        try:
            writer.write(wire.frame(wire.Kind.OPEN, 1, wire.open_payload(target, number)))
            head = await reader.readexactly(wire.HEADER_SIZE)
            kind, stream, length = wire.HEADER.unpack(head)
            assert stream == 1
            return wire.Kind(kind), await reader.readexactly(length)
        finally:
            writer.close()

    assert (await open_(pods[0]["status"]["podIP"], 8080))[0] is wire.Kind.OPENED
    kind, why = await open_("127.0.0.1", int(plane.api_url.rsplit(":", 1)[1]))
    assert kind is wire.Kind.REFUSED and b"127.0.0.1 is not a pod of node node-c" in why, why
    # Inside node-c's pod range, but no pod's: refused too (whatever listens there).
    spare = str(ipaddress.ip_network(node_c["spec"]["podCIDR"])[250])
    kind, why = await open_(spare, 8080)
    assert kind is wire.Kind.REFUSED and f"{spare} is not a pod".encode() in why, why
