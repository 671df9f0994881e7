"""``pods/portforward`` end to end: real kubectl (its SPDY-in-WebSocket tunnel) to a pod, a
Service and a Deployment, several ports and many connections at once, and the official Python
client's ``portforward()``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward

from tests.agent.conftest import PODS, Cluster, ready
from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl

# An echo server on two ports of the pod's IP; each connection echoes until its client's
# end of file, then closes.
ECHO = """
import asyncio, os
async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    servers = [await asyncio.start_server(echo, os.environ["POD_IP"], p) for p in (7001, 7002)]
    print("listening", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

ECHO_POD = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      containers:
      - name: main
        command: ["python3", "-c", {json.dumps(ECHO)}]
        env: [{{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}]
        ports: [{{containerPort: 7001, name: first}}, {{containerPort: 7002}}]
        readinessProbe: {{tcpSocket: {{port: 7001}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: first}}]
"""


async def echo_pod(cluster: Cluster) -> str:
    """Start the echo Deployment; the name of its pod once it is ready."""
    await cluster.apply(ECHO_POD)
    async with asyncio.timeout(20):
        while True:
            items = (await cluster.client.list(PODS, namespace="default")).items
            if items:
                break
            await asyncio.sleep(0.05)
    name = str(items[0]["metadata"]["name"])
    await cluster.wait_pod(name, ready)
    return name


async def echo_through(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()  # the half-close reaches the pod; its close comes back
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return data


async def test_kubectl_port_forward_to_a_pod_a_service_a_deployment_and_a_closed_port(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    name = await echo_pod(cluster)
    async with kubectl.port_forward(f"pod/{name}", ":7001", ":7002") as (first, second):
        big = os.urandom(10 * 1024 * 1024)
        assert await echo_through(first, big) == big
        payloads = [os.urandom(1000 * i) for i in range(40)]
        got = await asyncio.gather(
            *(echo_through(first if i % 2 else second, p) for i, p in enumerate(payloads))
        )
        assert got == payloads
    # The Service's port 80 is the pod's port named "first" (7001).
    async with kubectl.port_forward("svc/echo", ":80") as (port,):
        assert await echo_through(port, b"via the service") == b"via the service"
    async with kubectl.port_forward("deploy/echo", ":7002") as (port,):
        assert await echo_through(port, b"via the deployment") == b"via the deployment"
    proc = await kubectl.start("port-forward", "--address=127.0.0.1", f"pod/{name}", ":7999")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        port = int(re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line).group(1))  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 20) == b""
        writer.close()
        assert await asyncio.wait_for(proc.wait(), 20) == 1
        err = (await proc.stderr.read()).decode()
        assert f"error forwarding port 7999 to pod default/{name}" in err
        assert "connection refused" in err
        assert "error: lost connection to pod" in err
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def test_the_python_clients_port_forward(cluster: Cluster) -> None:
    name = await echo_pod(cluster)
    kube = k8s_config.new_client_from_config(str(cluster.procorch.kubeconfig_path))
    api = k8s.CoreV1Api(kube)

    def forward() -> tuple[bytes, bytes, str | None]:
        pf = portforward(
            api.connect_get_namespaced_pod_portforward, name, "default", ports="7001,7002,7999"
        )
        received = []
        for port in (7001, 7002):
            sock = pf.socket(port)
            sock.setblocking(True)
            sock.sendall(f"hello {port}".encode())
            received.append(sock.recv(100))
        error = pf.error(7999)
        pf.close()
        return received[0], received[1], error

    try:
        first, second, error = await asyncio.to_thread(forward)
    finally:
        await asyncio.to_thread(kube.close)
    assert (first, second) == (b"hello 7001", b"hello 7002")
    assert error is not None and "failed to connect" in error and ":7999" in error
