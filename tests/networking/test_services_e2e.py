"""Services end to end: real pods (processes) behind a Service, reached through the L4 proxy,
driven with kubectl; service environment variables; the ``kubernetes`` Service from a pod;
and a Deployment's rolling update under load through the Service, with no failed request."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from procorch.agent.podlogs import container_log_path
from procorch.api.resources import must
from tests.agent.conftest import Cluster, ready, running
from tests.conftest import Kubectl
from tests.networking.conftest import PODS, SERVICES, eventually

pytestmark = pytest.mark.kubectl

DEPLOYMENTS = must("apps/deployments")

# An HTTP server answering "<pod name> <VERSION>"; /healthz fails while the file $UNREADY
# exists. On SIGTERM it stops accepting, lets requests in flight finish, then exits.
APP = textwrap.dedent(
    """
    import http.server, os, signal, sys, threading, time
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/healthz" and os.path.exists(os.environ.get("UNREADY", "/nonexistent")):
                self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers()
                return
            body = (os.environ["POD_NAME"] + " " + os.environ.get("VERSION", "1")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H)
    server.daemon_threads = True
    def stop(*_):
        def run():
            server.shutdown(); server.server_close(); time.sleep(0.3); os._exit(0)
        threading.Thread(target=run).start()
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.05)
    """
).strip()


def web_pod(name: str, *, unready: str = "", version: str = "1") -> dict[str, Any]:
    env = [{"name": "VERSION", "value": version}]
    if unready:
        env.append({"name": "UNREADY", "value": unready})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "web",
                    "command": [sys.executable, "-c", APP],
                    "env": env,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http"},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


async def http_get(host: str, port: int, path: str = "/", *, timeout: float = 5.0) -> str:
    """One request on a fresh connection; the body of a 200, else an AssertionError."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.0 200"), f"status {status!r}"
    return body.decode()


async def test_a_service_spreads_requests_over_its_ready_pods_and_answers_on_its_node_port(
    cluster: Cluster, kubectl: Kubectl
) -> None:
    flag = cluster.tmp_path / "c-unready"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    manifest = yaml.safe_dump_all(
        [service, web_pod("web-a"), web_pod("web-b"), web_pod("web-c", unready=str(flag))]
    )
    flag.touch()
    await kubectl("apply", "-f", "-", input=manifest)
    for name in ("web-a", "web-b"):
        await cluster.wait_pod(name, ready, timeout=20)
    await cluster.wait_pod("web-c", running, timeout=20)
    svc = await cluster.client.get(SERVICES, "web", namespace="default")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]

    async def spread() -> Counter[str]:
        answers = await asyncio.gather(*(http_get(ip, 80) for _ in range(12)))
        return Counter(a.split()[0] for a in answers)

    async def two_ready() -> bool:
        return set(await spread()) == {"web-a", "web-b"}

    await eventually(two_ready, timeout=10)
    assert await spread() == {"web-a": 6, "web-b": 6}
    # web-c turns ready: it gets its share; then unready again: it gets none.
    flag.unlink()

    async def three() -> bool:
        return set(await spread()) == {"web-a", "web-b", "web-c"}

    await eventually(three, timeout=10)
    flag.touch()

    async def two_again() -> bool:
        return set(await spread()) == {"web-a", "web-b"}

    await eventually(two_again, timeout=10)
    assert (await http_get("127.0.0.1", node_port)).split()[0] in {"web-a", "web-b"}
    # kubectl shows the address and the endpoints.
    row = (await kubectl("get", "svc", "web", "--no-headers")).stdout.split()
    assert row[1:3] == ["NodePort", ip] and row[4] == f"80:{node_port}/TCP"
    described = (await kubectl("describe", "svc", "web")).stdout
    line = next(x for x in described.splitlines() if x.startswith("Endpoints:"))
    pods = [await cluster.pod(n) for n in ("web-a", "web-b")]
    assert sorted(line.split()[1].split(",")) == sorted(
        f"{p['status']['podIP']}:8080" for p in pods
    )
    # The proxy's per-Service counters are exported at the API server's /metrics.
    metrics = (await kubectl("get", "--raw", "/metrics")).stdout
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in metrics.splitlines()
        if line.startswith("procorch_service_") and 'service="web"' in line
    }
    web = '{namespace="default",service="web"}'
    served = 12 * 5 + 1  # every request above, over the Service
    assert samples[f"procorch_service_connections_total{web}"] >= served
    assert samples[f"procorch_service_rejected_total{web}"] == 0
    assert samples[f"procorch_service_ready_endpoints{web}"] == 2
    assert samples[f"procorch_service_bytes_sent_total{web}"] > served * 50
    assert "# TYPE procorch_apiserver_requests_total counter" in metrics
    assert "# TYPE procorch_ingress_requests_total counter" in metrics  # the router's, beside


async def test_pods_see_the_services_created_before_them_and_reach_the_api(
    cluster: Cluster,
) -> None:
    db = await cluster.client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "my-db"},
            "spec": {"ports": [{"name": "pg", "port": 5432}]},
        },
        namespace="default",
    )
    # The cluster's CA as a pod has it (procorch's data dir is hidden from pods).
    ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    script = textwrap.dedent(
        f"""
        import json, os, ssl, urllib.request
        env = {{k: v for k, v in os.environ.items() if "SERVICE" in k or k.startswith(("MY_DB_", "KUBERNETES_"))}}
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        context = ssl.create_default_context(cafile={ca!r})
        try:
            urllib.request.urlopen(f"https://{{host}}:{{port}}/version", context=context, timeout=5)
            env["API"] = "200"
        except urllib.error.HTTPError as exc:
            env["API"] = str(exc.code)
        except Exception as exc:
            env["API"] = repr(exc)
        print(json.dumps(env), flush=True)
        import time; time.sleep(60)
        """
    )
    await cluster.client.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reader"},
            "spec": {"containers": [{"name": "main", "command": [sys.executable, "-c", script]}]},
        },
        namespace="default",
    )
    await cluster.wait_pod("reader", running, timeout=20)
    env: dict[str, Any] = {}

    async def printed() -> bool:
        nonlocal env
        worker = cluster.agent.worker_for("default", "reader")
        record = worker.record("main")
        attempt = int(record.run_id.rsplit("_", 1)[-1])
        path = container_log_path(cluster.agent.settings.node_dir, worker.pod, "main", attempt)
        from procorch.agent.runtime.logs import read_log

        text = b"".join([c async for c in read_log(path)]).decode()
        if not text.strip():
            return False
        env = json.loads(text.strip().splitlines()[0])
        return True

    await eventually(printed, timeout=15)
    ip = db["spec"]["clusterIP"]
    assert env["MY_DB_SERVICE_HOST"] == ip
    assert env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_PG"] == "5432"
    assert env["MY_DB_PORT"] == f"tcp://{ip}:5432"
    assert env["MY_DB_PORT_5432_TCP"] == f"tcp://{ip}:5432"
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == ip
    assert env["MY_DB_PORT_5432_TCP_PROTO"] == "tcp"
    master = await cluster.client.get(SERVICES, "kubernetes", namespace="default")
    assert env["KUBERNETES_SERVICE_HOST"] == master["spec"]["clusterIP"]
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    # TLS to the API server through the Service, verified with the cluster CA: /version
    # answers (401 without a token is an answer too).
    assert env["API"] in ("200", "401", "403"), env["API"]


async def test_a_rolling_update_under_load_through_the_service_drops_nothing(
    cluster: Cluster, kubectl: Kubectl
) -> None:
    template = web_pod("x")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    await kubectl("apply", "-f", "-", input=yaml.safe_dump_all([service, deployment]))
    ip = (await cluster.client.get(SERVICES, "web", namespace="default"))["spec"]["clusterIP"]
    await wait_rolled_out(cluster, version="1")
    load = Load(ip, 80, workers=6)
    async with load:
        await asyncio.sleep(0.5)
        await kubectl("set", "env", "deployment/web", "VERSION=2")
        await wait_rolled_out(cluster, version="2", timeout=60)
        await asyncio.sleep(0.5)
    assert load.failures == [], f"{len(load.failures)} failed of {load.ok + len(load.failures)}"
    assert load.versions["1"] > 0 and load.versions["2"] > 0, load.versions
    assert load.ok > 100
    assert {(await http_get(ip, 80)).split()[1] for _ in range(6)} == {"2"}


async def wait_rolled_out(cluster: Cluster, *, version: str, timeout: float = 40.0) -> None:
    """Until the Deployment's pods are all of ``version``, ready, and no other pod is left."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        d = await cluster.client.get(DEPLOYMENTS, "web", namespace="default")
        pods = (
            await cluster.client.list(PODS, namespace="default", label_selector="app=web")
        ).items
        env_ok = all(
            {"name": "VERSION", "value": version} in p["spec"]["containers"][0].get("env", [])
            for p in pods
        )
        status = d.get("status") or {}
        last = status
        if (
            len(pods) == 3
            and env_ok
            and all(ready(p) for p in pods)
            and status.get("updatedReplicas") == 3
            and status.get("availableReplicas") == 3
            and status.get("observedGeneration", 0) >= d["metadata"]["generation"]
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"deployment web did not roll out to {version}: {last}")


class Load:
    """Workers sending requests without pause, each on a new connection; every failure kept."""

    def __init__(self, host: str, port: int, *, workers: int) -> None:
        self.host = host
        self.port = port
        self.workers = workers
        self.ok = 0
        self.failures: list[str] = []
        self.versions: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"load-{i}") for i in range(self.workers)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                body = await http_get(self.host, self.port)
                self.ok += 1
                self.versions[body.split()[-1]] += 1
            except (OSError, TimeoutError, AssertionError) as exc:
                self.failures.append(repr(exc))
