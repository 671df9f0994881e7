"""A procorch with its local node (scheduler + agent) for tests that run real pods."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from procorch.api import errors
from procorch.api.resources import must
from procorch.launcher.up import Procorch, UpConfig
from tests.conftest import KUBECTL, Kubectl

PODS = must("core/pods")

FAST = {
    "crashloop_initial": 1.0,
    "crashloop_max": 4.0,
    "metrics_interval": 0.5,
    "orphan_timeout": 5.0,
    "shutdown_grace": 5.0,
    "status_sync_interval": 2.0,
}


class Cluster:
    def __init__(self, procorch: Procorch, tmp_path: Path) -> None:
        self.procorch = procorch
        self.client = procorch.admin
        self.tmp_path = tmp_path

    @property
    def agent(self) -> Any:
        return self.procorch.agent

    async def apply(self, manifest: str, namespace: str = "default") -> None:
        for doc in yaml.safe_load_all(manifest):
            if doc:
                from procorch.api.resources import by_kind

                rt = by_kind(doc["apiVersion"], doc["kind"])
                assert rt is not None
                await self.client.create(rt, doc, namespace=namespace if rt.namespaced else "")

    async def pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return await self.client.get(PODS, name, namespace=namespace)

    async def wait_pod(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 20.0,
        namespace: str = "default",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = await self.pod(name, namespace)
            except errors.NotFound:
                last = {}
            if last and predicate(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"pod {name} did not reach the expected state; last: {last.get('status')}"
        )

    async def wait_gone(self, name: str, *, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await self.pod(name)
            except errors.NotFound:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"pod {name} still exists")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def container_state(pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for cs in statuses:
        if name is None or cs["name"] == name:
            return cs
    return {}


def running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
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
