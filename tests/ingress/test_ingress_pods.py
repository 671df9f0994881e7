"""The Ingress in front of real pods on a real node: readiness, and a rolling update of a
Deployment under continuous load that drops no request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from procorch.api.resources import must
from procorch.client.base import Client
from tests.agent.conftest import Cluster
from tests.ingress.conftest import eventually, routed, rule

PODS = must("core/pods")
SERVICES = must("core/services")
INGRESSES = must("networking.k8s.io/ingresses")
DEPLOYMENTS = must("apps/deployments")

# A web server that says which pod and version answered; it is ready while the flag file
# named by $UNREADY is absent; on SIGTERM it finishes what is in flight, then exits.
APP = textwrap.dedent(
    """
    import http.server, os, signal, sys, threading, time
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # one send per response (else Nagle and delayed ACKs: 40 ms each)
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
        threading.Thread(target=lambda: (server.shutdown(), time.sleep(0.5), os._exit(0))).start()
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    """
)


@contextlib.asynccontextmanager
async def service(cluster: Cluster, name: str) -> AsyncIterator[str]:
    """Service ``name`` over the pods labelled ``app=name``; yields its ClusterIP."""
    created = await cluster.client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        namespace="default",
    )
    yield str(created["spec"]["clusterIP"])


def pod_manifest(name: str, *, version: str = "1", unready_flag: str = "") -> dict[str, Any]:
    env = [{"name": "VERSION", "value": version}]
    if unready_flag:
        env.append({"name": "UNREADY", "value": unready_flag})
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


async def test_the_ingress_sends_requests_to_ready_pods_only(cluster: Cluster) -> None:
    router = cluster.procorch.ingress
    assert router is not None
    flag = cluster.tmp_path / "b-unready"
    await cluster.client.create(PODS, pod_manifest("web-a"), namespace="default")
    await cluster.client.create(
        PODS, pod_manifest("web-b", unready_flag=str(flag)), namespace="default"
    )
    async with service(cluster, "web"), aiohttp.ClientSession() as session:
        await cluster.client.create(
            INGRESSES,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "web"},
                "spec": {"rules": [rule("/", "web", host="web.test")]},
            },
            namespace="default",
        )
        await routed(session, f"{router.url}/", host="web.test", timeout=20)

        async def spread() -> Counter[str]:
            seen: Counter[str] = Counter()
            for _ in range(20):
                async with session.get(f"{router.url}/", headers={"Host": "web.test"}) as r:
                    assert r.status == 200
                    seen[(await r.text()).split()[0]] += 1
            return seen

        async def both() -> bool:
            return set(await spread()) == {"web-a", "web-b"}

        await eventually(both, timeout=20)
        flag.touch()  # web-b fails its readiness probe: it leaves the endpoints

        async def only_a() -> bool:
            return set(await spread()) == {"web-a"}

        await eventually(only_a, timeout=20)


class Load:
    """Clients sending GETs without pause through one URL; every failure is kept."""

    def __init__(self, url: str, *, host: str | None = None, workers: int) -> None:
        self.url = url
        self.host = host
        self.workers = workers
        self.ok = 0
        self.failures: list[str] = []
        self.answers: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.workers),
            timeout=aiohttp.ClientTimeout(total=10),
        )
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"load-{i}") for i in range(self.workers)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._session.close()

    async def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                headers = {"Host": self.host} if self.host else None
                async with self._session.get(self.url, headers=headers) as r:
                    text = await r.text()
                    if r.status == 200:
                        self.ok += 1
                        self.answers[text.split()[-1]] += 1
                    else:
                        self.failures.append(f"{r.status} {text.strip()}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.failures.append(repr(exc))
            await asyncio.sleep(0)


async def wait_rolled_out(client: Client, name: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = await client.get(DEPLOYMENTS, name, namespace="default")
        status, spec = d.get("status") or {}, d["spec"]
        replicas = spec.get("replicas", 1)
        pods = (await client.list(PODS, namespace="default", label_selector="app=web")).items
        if (
            status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas") == replicas
            and status.get("replicas") == replicas
            and status.get("availableReplicas") == replicas
            and len(pods) == replicas
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"deployment {name} did not roll out: {json.dumps(d.get('status'))}")


@pytest.mark.slow
async def test_a_rolling_update_under_load_drops_no_request(cluster: Cluster) -> None:
    router = cluster.procorch.ingress
    assert router is not None
    template = pod_manifest("unused")
    await cluster.client.create(
        DEPLOYMENTS,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                },
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]},
            },
        },
        namespace="default",
    )
    async with service(cluster, "web") as cluster_ip, aiohttp.ClientSession() as session:
        await cluster.client.create(
            INGRESSES,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "web"},
                "spec": {"rules": [rule("/", "web", host="web.test")]},
            },
            namespace="default",
        )
        await routed(session, f"{router.url}/", host="web.test", timeout=30)
        await routed(session, f"http://{cluster_ip}/", timeout=30)
        await wait_rolled_out(cluster.client, "web")
        through_ingress = Load(f"{router.url}/", host="web.test", workers=3)
        through_service = Load(f"http://{cluster_ip}/", workers=3)
        async with through_ingress, through_service:
            await asyncio.sleep(1.0)
            await cluster.client.patch(
                DEPLOYMENTS,
                "web",
                {
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": "web", "env": [{"name": "VERSION", "value": "2"}]}
                                ]
                            }
                        }
                    }
                },
                namespace="default",
                patch_type="strategic",
            )
            await wait_rolled_out(cluster.client, "web")
            await asyncio.sleep(1.0)
        for path, load in (("ingress", through_ingress), ("service", through_service)):
            assert not load.failures, (
                f"through the {path}: {len(load.failures)} failed of {load.ok}: {load.failures[:5]}"
            )
            assert load.answers["1"] > 0 and load.answers["2"] > 0, (path, load.answers)
            assert load.ok > 200, (path, load.ok)
