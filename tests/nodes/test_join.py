"""Nodes on other hosts: ``procorch agent`` joins a control plane over the network.

Each host is a network namespace of its own (see conftest). The control plane runs in the
test's process, on the bridge's address; agents run as real ``procorch agent`` processes on
their hosts, with the node token, and talk to the API over HTTPS with their own certificates.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.http import HttpClient
from procorch.kit.pki import JoinToken
from procorch.launcher.up import Procorch
from tests.conftest import KUBECTL, Kubectl
from tests.nodes.conftest import Host, HostNetwork, join
from tests.workloads.conftest import eventually

NODES = must("core/nodes")
PODS = must("core/pods")
DEPLOYMENTS = must("apps/deployments")


async def ready_nodes(plane: Procorch, *names: str) -> dict[str, dict[str, Any]]:
    async def check() -> dict[str, dict[str, Any]] | None:
        nodes = {n["metadata"]["name"]: n for n in (await plane.admin.list(NODES)).items}
        for name in names:
            conditions = (nodes.get(name) or {}).get("status", {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return None
        return nodes

    result: dict[str, dict[str, Any]] = await eventually(
        check, timeout=60, what=f"nodes {names} Ready"
    )
    return result


def web(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "command": [
                                "sh",
                                "-c",
                                'echo "hello from $POD_IP"; exec sleep 600',
                            ],
                            "env": [
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                }
                            ],
                        }
                    ]
                },
            },
        },
    }


async def test_agents_on_two_hosts_join_run_spread_pods_and_serve_their_logs(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    hosts = [network.add_host("node-a"), network.add_host("node-b")]
    for host in hosts:
        await join(network, plane, host, tmp_path)
    nodes = await ready_nodes(plane, "node-a", "node-b")

    # Each node has its own pod CIDR from the cluster CIDR, and its host's address.
    cidrs = {name: ipaddress.ip_network(n["spec"]["podCIDR"]) for name, n in nodes.items()}
    assert not cidrs["node-a"].overlaps(cidrs["node-b"]), cidrs
    for host in hosts:
        addresses = nodes[host.name]["status"]["addresses"]
        assert {"type": "InternalIP", "address": host.address} in addresses

    await plane.admin.create(DEPLOYMENTS, web(4), namespace="default")

    async def running() -> list[dict[str, Any]] | None:
        pods = (await plane.admin.list(PODS, namespace="default")).items
        ok = len(pods) == 4 and all(
            (p.get("status") or {}).get("phase") == "Running" and p["status"].get("podIP")
            for p in pods
        )
        return pods if ok else None

    pods = await eventually(running, timeout=60, what="4 pods Running")
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
    assert sorted(len(v) for v in by_node.values()) == [2, 2], by_node.keys()
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 4
    for pod in pods:
        node = pod["spec"]["nodeName"]
        assert ipaddress.ip_address(pod["status"]["podIP"]) in cidrs[node]
        assert pod["status"]["hostIP"] == next(h.address for h in hosts if h.name == node)

    # kubectl logs reaches the agent on the pod's host (mutual TLS, through the API server).
    if KUBECTL is not None:
        kubectl = Kubectl(plane.kubeconfig_path, tmp_path / "kube-cache")
        for pod in pods:
            name, ip = pod["metadata"]["name"], pod["status"]["podIP"]

            async def logged(name: str = name, ip: str = ip) -> str | None:
                out = await kubectl("logs", name, check=False)
                return out.stdout if f"hello from {ip}\n" == out.stdout else None

            await eventually(logged, timeout=20, what=f"kubectl logs {name}")
        await follow_logs_previous_logs_and_top(plane, kubectl, tmp_path, hosts[1])


async def follow_logs_previous_logs_and_top(
    plane: Procorch, kubectl: Kubectl, tmp_path: Path, host_b: Host
) -> None:
    """``kubectl logs -f`` and ``--previous``, ``kubectl top pod`` and ``top node``, ``exec``
    and ``port-forward`` for pods on another host: each goes through the API server to that
    node's agent."""
    mark = tmp_path / "ticker-ran-once"
    script = (
        f"if [ -e {mark} ]; then i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done;"
        f" else touch {mark}; echo first run; exit 1; fi"
    )
    ticker = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ticker", "namespace": "default"},
        "spec": {
            "nodeName": "node-b",
            "containers": [{"name": "main", "command": ["sh", "-c", script]}],
        },
    }
    await plane.admin.create(PODS, ticker, namespace="default")

    async def restarted() -> bool:
        pod = await plane.admin.get(PODS, "ticker", namespace="default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return (
            bool(statuses)
            and statuses[0].get("restartCount", 0) >= 1
            and bool((statuses[0].get("state") or {}).get("running"))
        )

    await eventually(restarted, timeout=30, what="ticker restarted once and running")
    previous = await kubectl("logs", "ticker", "--previous")
    assert previous.stdout == "first run\n"

    # -f streams: lines written after kubectl started arrive while it runs.
    assert KUBECTL is not None
    follower = await asyncio.create_subprocess_exec(
        KUBECTL,
        f"--kubeconfig={plane.kubeconfig_path}",
        "logs",
        "-f",
        "ticker",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert follower.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = int((await follower.stdout.readline()).split()[1])
            seen = first
            while seen < first + 20:  # two seconds' worth, at 10 lines a second
                line = await follower.stdout.readline()
                assert line.startswith(b"tick "), line
                number = int(line.split()[1])
                assert number == seen + 1, (seen, line)
                seen = number
    finally:
        follower.kill()
        await follower.wait()

    async def topped(*args: str) -> str | None:
        out = await kubectl("top", *args, "--no-headers", check=False)
        return out.stdout if out.ok and out.stdout.strip() else None

    pod_row = (await eventually(lambda: topped("pod", "ticker"), what="kubectl top pod")).split()
    assert pod_row[0] == "ticker" and pod_row[1].endswith("m") and pod_row[2].endswith("Mi")
    assert int(pod_row[2][:-2]) > 0, pod_row
    node_row = (await eventually(lambda: topped("node", "node-b"), what="kubectl top node")).split()
    assert node_row[0] == "node-b" and node_row[1].endswith("m"), node_row

    # exec runs its process on the pod's host (in that host's network namespace), and
    # port-forward connects there to the pod's port.
    out = await kubectl(
        "exec", "ticker", "--", "sh", "-c", "readlink /proc/self/ns/net; exit 3", check=False
    )
    assert out.returncode == 3, out.stderr
    assert out.stdout == f"net:[{os.stat(f'/run/netns/{host_b.netns}').st_ino}]\n"
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "server-b", "namespace": "default"},
        "spec": {
            "nodeName": "node-b",
            "containers": [
                {
                    "name": "main",
                    "command": ["python3", "-m", "http.server", "8000", "--bind", "$(POD_IP)"],
                    "env": [
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                    ],
                    "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
                }
            ],
        },
    }
    await plane.admin.create(PODS, server, namespace="default")

    async def served() -> bool:
        pod = await plane.admin.get(PODS, "server-b", namespace="default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return bool(statuses) and bool(statuses[0].get("ready"))

    await eventually(served, timeout=30, what="server-b ready")
    async with kubectl.port_forward("pod/server-b", ":8000") as (port,):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), 20)
        writer.close()
    assert response.startswith(b"HTTP/1.0 200 OK"), response[:100]


async def test_a_node_holds_its_own_identity_and_nothing_more(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    host = network.add_host("node-a")
    await join(network, plane, host, tmp_path)
    await ready_nodes(plane, "node-a")

    pki = tmp_path / "node-a" / "agent" / "pki"
    # The agent never holds the admin token; its key is private to it.
    admin_token = (plane.data_dir / "admin-token").read_text().strip()
    for path in (tmp_path / "node-a").rglob("*"):
        if path.is_file():
            assert admin_token.encode() not in path.read_bytes(), path
    assert (pki / "node.key").stat().st_mode & 0o077 == 0

    # With the node's token: system:node:node-a in system:nodes; it may read pods and
    # write its own Node, but not another's, and create no workloads.
    assert (pki / "token").stat().st_mode & 0o077 == 0
    node = HttpClient(
        plane.api_url,
        token=(pki / "token").read_text().strip(),
        ca_data=(pki / "ca.crt").read_bytes(),
    )
    try:
        await node.list(PODS, namespace="default")
        await node.patch(NODES, "node-a", {"metadata": {"labels": {"mine": "yes"}}})
        with pytest.raises(errors.Forbidden) as refused:
            await node.create(
                NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-z"}}
            )
        assert 'node "node-a" is not allowed to modify nodes "node-z"' in str(refused.value)
        with pytest.raises(errors.Forbidden) as refused:
            await node.create(DEPLOYMENTS, web(1), namespace="default")
        assert 'User "system:node:node-a" cannot create resource "deployments"' in str(
            refused.value
        )
        # A token for another node name with this node's signature is refused.
        forged = HttpClient(
            plane.api_url,
            token=(pki / "token").read_text().strip().replace("node-a", "node-z", 1),
            ca_data=(pki / "ca.crt").read_bytes(),
        )
        with pytest.raises(errors.Unauthorized):
            await forged.list(PODS, namespace="default")
        await forged.close()
    finally:
        await node.close()


async def test_a_wrong_token_a_wrong_ca_or_no_server_is_a_clear_error_and_registers_nothing(
    network: HostNetwork, control_plane: Procorch, tmp_path: Path
) -> None:
    plane = control_plane
    host = network.add_host("node-x")
    good = JoinToken.parse((plane.data_dir / "node-token").read_text())
    cases = {
        "wrong secret": (
            str(JoinToken(good.ca_hash, "not-the-secret-at-all")),
            None,
            "refused the join token (401 Unauthorized)",
        ),
        "wrong CA": (
            str(JoinToken("0" * 64, good.secret)),
            None,
            "is not the one the token pins",
        ),
        "no server": (str(good), f"https://{network.prefix}.250:6443", "cannot reach"),
        "not a token": ("hunter2", None, "not a procorch join token"),
    }
    for case, (token, server, message) in cases.items():
        log = tmp_path / f"{host.name}.log"
        log.unlink(missing_ok=True)
        proc = await join(network, plane, host, tmp_path, token=token, server=server)
        code = await asyncio.wait_for(proc.wait(), 60)
        output = log.read_text()
        assert code == 2, (case, code, output)
        assert message in output, (case, output)
        assert "nothing was registered" in output, (case, output)
    assert (await plane.admin.list(NODES)).items == []
