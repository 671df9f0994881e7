"""Fixtures for the workload controllers: a procorch with its node (real pods as processes),
real kubectl bound to it, and helpers to wait on Deployments and count their processes.

The HPA controller is made fast for tests (sync every 0.3 s, no CPU initialization period) by
swapping the defaults it reads at construction, before the cluster starts.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from procorch.api import errors
from procorch.api.resources import must
from procorch.controllers import hpa
from procorch.launcher.up import Procorch, UpConfig
from tests.agent.conftest import FAST, Cluster
from tests.conftest import KUBECTL, Kubectl

DEPLOYMENTS = must("apps/deployments")
REPLICASETS = must("apps/replicasets")
PODS = must("core/pods")
HPAS = must("autoscaling/horizontalpodautoscalers")

TEST_HPA = hpa.HPASettings(
    sync_period=0.3,
    downscale_stabilization=300.0,
    cpu_initialization_period=0.0,
    initial_readiness_delay=0.0,
)


@pytest.fixture
def fast_hpa(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hpa, "DEFAULT_SETTINGS", TEST_HPA)
    yield


@pytest.fixture
async def cluster(tmp_path: Path, fast_hpa: None) -> AsyncIterator[Cluster]:
    instance = Procorch(
        UpConfig(data_dir=tmp_path / "data", api_port=0, node=True, agent=dict(FAST))
    )
    await instance.start()
    try:
        yield Cluster(instance, tmp_path)
    finally:
        await instance.stop()


@pytest.fixture
def kubectl(cluster: Cluster, tmp_path: Path) -> Kubectl:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed on this machine (tests that drive it skip)")
    return Kubectl(cluster.procorch.kubeconfig_path, tmp_path / "kube-cache")


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout} s (last: {last!r})")


def deployment(
    name: str,
    *,
    replicas: int = 3,
    command: list[str] | None = None,
    extra_spec: str = "",
    container_extra: str = "",
) -> str:
    """A Deployment manifest whose pods run ``command`` (``sleep 600`` by default)."""
    cmd = command or ["sleep", "600"]
    args = json.dumps(cmd)[1:-1]
    body = f"""
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: {name}
    spec:
      replicas: {replicas}
      selector:
        matchLabels: {{app: {name}}}
      template:
        metadata:
          labels: {{app: {name}}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: main
            command: [{args}]
    """
    text = textwrap.dedent(body)
    if container_extra:
        text += textwrap.indent(textwrap.dedent(container_extra).strip(), " " * 8) + "\n"
    if extra_spec:
        text = text.replace(
            "  selector:",
            textwrap.indent(textwrap.dedent(extra_spec).strip(), "  ") + "\n  selector:",
        )
    return text


async def apply(kubectl: Kubectl, cluster: Cluster, manifest: str, name: str = "m.yaml") -> None:
    path = cluster.tmp_path / name
    path.write_text(manifest)
    await kubectl("apply", "-f", str(path))


async def get(cluster: Cluster, rt: Any, name: str) -> dict[str, Any] | None:
    try:
        return await cluster.client.get(rt, name, namespace="default")
    except errors.NotFound:
        return None


async def pods_of(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    listed = await cluster.client.list(PODS, namespace="default", label_selector=f"app={app}")
    return listed.items


def processes(marker: str) -> list[psutil.Process]:
    """Live processes (ours, any depth) whose command line contains ``marker``."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and marker in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.Error:
            continue
    return out


async def rolled_out(cluster: Cluster, name: str) -> bool:
    """kubectl's rollout-status test, on the Deployment's status."""
    d = await get(cluster, DEPLOYMENTS, name)
    if d is None:
        return False
    spec, status = d["spec"], d.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration") or 0) >= int(d["metadata"]["generation"])
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
        and int(status.get("availableReplicas") or 0) >= int(status.get("updatedReplicas") or 0)
    )
