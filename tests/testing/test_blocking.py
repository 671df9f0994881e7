"""procorch.testing runs its cluster beside the test, so the test's code may block.

An async test may call ``urllib``, ``time.sleep`` or ``subprocess.run`` inside
``async with cluster(...)``; a plain test uses ``cluster_sync`` or the
``procorch_cluster_sync`` fixture. Leaving a block, however it is left, stops every process
of the cluster and its thread.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from procorch.api.resources import must
from procorch.client.apply import ApplyError
from procorch.testing import SyncCluster, cluster, cluster_sync

HELLO = Path(__file__).parent / "hello.yaml"
KUBECTL = shutil.which("kubectl")
PODS = must("core/pods")


def hello_processes() -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["environ"])
        if (p.info["environ"] or {}).get("POD_NAME", "").startswith("hello-")
    ]


def cluster_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("procorch-testing")]


def get(url: str) -> tuple[int, bytes]:
    """A blocking GET, as a test using urllib or requests makes it."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


async def test_an_async_test_may_block_on_urlopen_of_a_service_url() -> None:
    async with cluster([HELLO]) as c:
        await c.wait_ready(timeout=30)
        status, body = get(await c.service_url("hello") + "/")
        assert status == 200 and b"Directory listing" in body


async def test_an_async_test_may_time_sleep_while_the_cluster_starts_its_pods(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "started"
    (tmp_path / "pod.yaml").write_text(
        textwrap.dedent(
            f"""
            apiVersion: v1
            kind: Pod
            metadata: {{name: marker}}
            spec:
              containers:
              - name: marker
                command: ["{sys.executable}", "-c", "import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('up'); time.sleep(3600)", "{marker}"]
            """  # noqa: E501
        )
    )
    async with cluster([tmp_path / "pod.yaml"]) as c:
        # Nothing is awaited: the controllers, scheduler and node agent run on while the
        # test's loop is blocked in time.sleep.
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the pod did not start while the test slept"
        await c.wait_ready(timeout=30)


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
async def test_an_async_test_may_run_kubectl_with_subprocess_run(tmp_path: Path) -> None:
    assert KUBECTL is not None
    async with cluster([HELLO]) as c:
        await c.wait_ready(timeout=30)
        result = subprocess.run(
            [
                KUBECTL,
                f"--kubeconfig={c.kubeconfig}",
                f"--cache-dir={tmp_path / 'kube-cache'}",
                "--request-timeout=20s",
                "get",
                "pods",
                "-l",
                "app=hello",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.split()) == 2


async def test_the_async_handle_client_works_on_the_tests_loop() -> None:
    async with cluster([HELLO]) as c:
        await c.wait_ready(timeout=30)
        pods = await c.client.list(PODS, label_selector="app=hello")
        assert len(pods.items) == 2
        name = pods.items[0]["metadata"]["name"]
        assert 'GET / HTTP/1.1" 200' in await c.logs(name)


async def test_a_failing_async_block_still_stops_everything() -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        async with cluster([HELLO]) as c:
            await c.wait_ready(timeout=30)
            assert len(hello_processes()) == 2
            raise RuntimeError("the test failed")
    assert not hello_processes()
    assert not cluster_threads()


async def test_a_test_cancelled_while_its_cluster_starts_leaves_nothing() -> None:
    entered = False

    async def body() -> None:
        nonlocal entered
        async with cluster([HELLO]):
            entered = True

    task = asyncio.create_task(body())
    await asyncio.sleep(0.1)  # the start takes about 0.25 s
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not entered
    assert not hello_processes()
    assert not cluster_threads()


async def test_a_bad_manifest_fails_the_async_cluster_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HELLO.read_text().replace("replicas: 2", "replicas: two"))
    with pytest.raises(ApplyError, match="spec.replicas"):
        async with cluster([bad]):
            pytest.fail("the block must not run")
    assert not cluster_threads()


def test_a_plain_test_uses_cluster_sync() -> None:
    with cluster_sync([HELLO]) as c:
        c.wait_ready(timeout=30)
        assert c.kubeconfig.exists() and c.api_url.startswith("https://127.0.0.1:")
        assert c.ingress_url.startswith("http://127.0.0.1:")
        url = c.service_url("hello", port="http")
        assert url.startswith("http://127.") and url.endswith(":80")
        assert get(url + "/")[0] == 200
        pods = c.run(c.client.list(PODS, label_selector="app=hello"))
        assert len(pods.items) == 2
        assert 'GET / HTTP/1.1" 200' in c.logs(pods.items[0]["metadata"]["name"])
        assert hello_processes()
    assert not hello_processes()
    assert not cluster_threads()


@pytest.mark.procorch(manifests=[HELLO])
def test_the_sync_fixture_gives_a_running_cluster(procorch_cluster_sync: SyncCluster) -> None:
    procorch_cluster_sync.wait_ready(timeout=30)
    assert get(procorch_cluster_sync.service_url("hello") + "/")[0] == 200


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failing_sync_block_still_stops_everything(error: type[BaseException]) -> None:
    with pytest.raises(error), cluster_sync([HELLO]) as c:
        c.wait_ready(timeout=30)
        assert len(hello_processes()) == 2
        raise error("the test failed")
    assert not hello_processes()
    assert not cluster_threads()


def test_a_bad_manifest_fails_cluster_sync_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HELLO.read_text().replace("replicas: 2", "replicas: two"))
    with pytest.raises(ApplyError, match="spec.replicas"), cluster_sync([bad]):
        pytest.fail("the block must not run")
    assert not cluster_threads()


PLAIN_SUITE = f"""
import urllib.request

import pytest
@pytest.mark.procorch(manifests=[{str(HELLO)!r}])
def test_a_plain_suite(procorch_cluster_sync):
    procorch_cluster_sync.wait_ready(timeout=30)
    url = procorch_cluster_sync.service_url("hello")
    assert urllib.request.urlopen(url, timeout=10).status == 200
"""


WITHOUT_PYTEST_ASYNCIO = """
import sys

import pytest


class NoPytestAsyncio:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pytest_asyncio":
            raise ImportError("pytest-asyncio is not installed here")


sys.meta_path.insert(0, NoPytestAsyncio())
sys.exit(pytest.main(["-p", "no:asyncio", "-p", "no:cacheprovider", "-q", *sys.argv[1:]]))
"""


def test_the_sync_fixture_works_without_pytest_asyncio(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(PLAIN_SUITE)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYTEST_ASYNCIO, "--strict-markers", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
