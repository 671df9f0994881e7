"""procorch.testing as a user's async test suite uses it."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import psutil
import pytest

from procorch.testing import Cluster, NotReady, cluster

POD = textwrap.dedent(
    """
    apiVersion: v1
    kind: Pod
    metadata: {name: web, labels: {app: web}}
    spec:
      containers:
      - name: web
        command: ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
    """
)


def our_processes() -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["environ"])
        if (p.info["environ"] or {}).get("POD_NAME") == "web"
    ]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(POD)
    return path


async def test_cluster_runs_the_stack_and_stops_it(manifest: Path) -> None:
    async with cluster([manifest]) as c:
        await c.wait_ready(timeout=30)
        assert c.kubeconfig.exists() and c.api_url.startswith("https://127.0.0.1:")
        assert 'GET / HTTP/1.1" 200' in await c.logs("web")  # the readiness probe
        assert our_processes()
    assert not our_processes()


async def test_wait_ready_names_what_is_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(POD.replace('["python3", "-m", "http.server"', '["no-such-server"'))
    async with cluster([path]) as c:
        with pytest.raises(
            NotReady,
            match='pod/web: web: RunContainerError exec: "no-such-server": executable file not found',
        ):
            await c.wait_ready(timeout=3)


async def test_a_cancelled_test_leaves_nothing_running(manifest: Path) -> None:
    started = asyncio.Event()

    async def body() -> None:
        async with cluster([manifest]) as c:
            await c.wait_ready(timeout=30)
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await asyncio.wait_for(started.wait(), 30)
    assert our_processes()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not our_processes()


@pytest.mark.procorch(manifests=[])
async def test_the_pytest_fixture_gives_a_running_cluster(procorch_cluster: Cluster) -> None:
    from procorch.api.resources import must

    nodes = await procorch_cluster.client.list(must("core/nodes"))
    assert len(nodes.items) == 1


async def test_a_deployment_and_service_answer_through_service_url(tmp_path: Path) -> None:
    import aiohttp

    (tmp_path / "app.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: hello}
            spec:
              replicas: 2
              selector: {matchLabels: {app: hello}}
              template:
                metadata: {labels: {app: hello}}
                spec:
                  containers:
                  - name: hello
                    command: ["python3", "-m", "http.server", "8000", "--bind", "$(POD_IP)"]
                    ports: [{name: http, containerPort: 8000}]
                    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: hello}
            spec:
              selector: {app: hello}
              ports: [{name: http, port: 80, targetPort: http}]
            """
        )
    )
    async with cluster([tmp_path / "app.yaml"]) as c:
        await c.wait_ready(timeout=30)
        url = await c.service_url("hello")
        assert url.startswith("http://127.") and url.endswith(":80")
        async with aiohttp.ClientSession() as http, http.get(url + "/") as reply:
            assert reply.status == 200
    assert not [
        p
        for p in psutil.process_iter(["environ"])
        if (p.info["environ"] or {}).get("POD_NAME", "").startswith("hello-")
    ]
