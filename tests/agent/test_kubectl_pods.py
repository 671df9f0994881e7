"""Real kubectl against pods on the local node: get, describe, logs, top."""

from __future__ import annotations

import asyncio
import json
import ssl
import textwrap

import aiohttp
import pytest

from procorch.client.kubeconfig import read
from tests.agent.conftest import Cluster, container_state, running

pytestmark = pytest.mark.kubectl


async def apply(kubectl, cluster: Cluster, manifest: str) -> None:  # type: ignore[no-untyped-def]
    path = cluster.tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(manifest))
    await kubectl("apply", "-f", str(path))


async def test_kubectl_logs_current_previous_follow_and_tail(kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: talker}
        spec:
          containers:
          - name: main
            command: ["sh", "-c", "for i in 1 2 3; do echo line-$i; done; sleep 0.5; exit 1"]
        """,
    )
    await cluster.wait_pod("talker", lambda p: container_state(p).get("restartCount", 0) >= 1)
    previous = await kubectl("logs", "talker", "--previous")
    assert previous.stdout == "line-1\nline-2\nline-3\n"
    tail = await kubectl("logs", "talker", "--previous", "--tail=1")
    assert tail.stdout == "line-3\n"
    stamped = await kubectl("logs", "talker", "--previous", "--timestamps")
    first = stamped.stdout.splitlines()[0]
    assert first.endswith(" line-1") and first[:4].isdigit() and "T" in first.split()[0]
    # -f streams the running container until it exits, then kubectl exits 0.
    await cluster.wait_pod("talker", lambda p: container_state(p).get("state", {}).get("running"))
    followed = await kubectl("logs", "-f", "talker", timeout=30)
    assert "line-3\n" in followed.stdout


async def test_kubectl_logs_errors_read_like_kubernetes(kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: fresh}
        spec:
          containers:
          - {name: main, command: ["sleep", "60"]}
        """,
    )
    await cluster.wait_pod("fresh", running)
    out = await kubectl("logs", "fresh", "--previous", check=False)
    assert out.returncode == 1
    assert 'previous terminated container "main" in pod "fresh" not found' in out.stderr


async def test_proxy_says_what_to_do_instead(kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: web, labels: {app: web}}
        spec:
          containers:
          - {name: main, command: ["sleep", "60"], ports: [{containerPort: 8000}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports: [{port: 80, targetPort: 8000}]
        """,
    )
    pod = await cluster.wait_pod("web", running)
    ip = pod["status"]["podIP"]
    out = await kubectl("get", "--raw", "/api/v1/namespaces/default/pods/web/proxy/", check=False)
    assert (
        "proxy is not supported by procorch; the pod's ports are open on this "
        f"machine: connect to {ip}:8000"
    ) in out.stderr
    svc = (await kubectl("get", "svc", "web", "-o", "json")).stdout
    cluster_ip = json.loads(svc)["spec"]["clusterIP"]
    out = await kubectl(
        "get", "--raw", "/api/v1/namespaces/default/services/web:80/proxy/", check=False
    )
    assert f"connect to {cluster_ip}:80" in out.stderr
    # Kubernetes' scheme:name:port forms name the same Service.
    for name in ("http:web:80", ":web:80", "web:"):
        out = await kubectl(
            "get", "--raw", f"/api/v1/namespaces/default/services/{name}/proxy/", check=False
        )
        assert f"connect to {cluster_ip}:80" in out.stderr, (name, out.stderr)
    # A pod that does not exist is still simply not found.
    out = await kubectl("get", "--raw", "/api/v1/namespaces/default/pods/nope/proxy/", check=False)
    assert 'pods "nope" not found' in out.stderr


async def test_kubectl_get_and_describe_show_crash_loops(kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: crashy}
        spec:
          containers:
          - {name: main, command: ["sh", "-c", "exit 3"]}
        """,
    )
    await cluster.wait_pod(
        "crashy",
        lambda p: (
            container_state(p).get("state", {}).get("waiting", {}).get("reason")
            == "CrashLoopBackOff"
        ),
    )
    table = (await kubectl("get", "pod", "crashy")).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:3] == ["crashy", "0/1", "CrashLoopBackOff"]
    described = (await kubectl("describe", "pod", "crashy")).stdout
    assert "Back-off restarting failed container main" in described
    assert "Started container main" in described
    assert "Exit Code:    3" in described


async def test_kubectl_top_pod_and_node(kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: busy}
        spec:
          containers:
          - name: main
            command: ["python3", "-c", "x = bytearray(50*1024*1024)\\nwhile True: pass"]
        """,
    )
    await cluster.wait_pod("busy", running)
    await asyncio.sleep(1.5)  # two samples (metrics_interval is 0.5 s in tests)
    top = (await kubectl("top", "pod", "busy", "--no-headers")).stdout.split()
    assert top[0] == "busy"
    assert int(top[1].rstrip("m")) > 300  # a busy loop: most of a core
    assert int(top[2].rstrip("Mi")) >= 50
    nodes = (await kubectl("top", "node", "--no-headers")).stdout.split()
    assert nodes[0] == cluster.agent.settings.node_name
    raw = json.loads((await kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/pods")).stdout)
    assert raw["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in raw["items"]] == ["busy"]


async def test_a_followed_log_that_its_reader_closes_ends_quietly(cluster: Cluster) -> None:
    """Closing ``logs?follow=true`` is how every follower stops: not a failed request."""
    await cluster.apply(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: ticker}
        spec:
          containers:
          - {name: main, command: ["sh", "-c", "while true; do echo tick; sleep 0.05; done"]}
        """
    )
    await cluster.wait_pod("ticker", running)
    counts = cluster.procorch.control_plane.http.requests_total
    before = dict(counts)
    creds = read(cluster.procorch.kubeconfig_path)
    context = ssl.create_default_context(cadata=creds.ca_data.decode())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        url = f"{creds.server}/api/v1/namespaces/default/pods/ticker/log?follow=true"
        async with session.get(url, headers={"Authorization": f"Bearer {creds.token}"}) as resp:
            assert resp.status == 200
            assert b"tick" in await resp.content.readuntil(b"\n")
        # Leaving the block closes the connection: the next tick written finds it gone.

    def finished() -> int:
        return sum(n for (method, _), n in counts.items() if method == "GET") - sum(
            n for (method, _), n in before.items() if method == "GET"
        )

    deadline = asyncio.get_running_loop().time() + 10
    while not finished():
        assert asyncio.get_running_loop().time() < deadline, "the log request never ended"
        await asyncio.sleep(0.02)
    assert counts.get(("GET", 500), 0) == before.get(("GET", 500), 0)
    assert counts.get(("GET", 200), 0) == before.get(("GET", 200), 0) + 1
