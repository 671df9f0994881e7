"""One watch per resource per process: ``procorch up`` (controllers, scheduler, and its node's
agent, Service proxy and Ingress router, all in one process) and a node on its own
(``procorch agent``) each keep exactly one watch open of every resource they read, however
many of their components read it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from procorch.api.resources import ResourceType
from procorch.client.base import WatchEvent
from procorch.client.http import HttpClient
from procorch.client.local import LocalClient
from procorch.launcher.agent import AgentConfig, RemoteNode
from procorch.launcher.up import Procorch, UpConfig
from tests.agent.conftest import FAST

SHARED = {
    "core/pods",
    "core/services",
    "discovery.k8s.io/endpointslices",
    "core/secrets",
    "core/configmaps",
    "core/nodes",
}
NODE = {
    "batch/jobs",
    "core/configmaps",
    "core/nodes",
    "core/persistentvolumeclaims",
    "core/pods",
    "core/secrets",
    "core/services",
    "discovery.k8s.io/endpointslices",
    "networking.k8s.io/ingressclasses",
    "networking.k8s.io/ingresses",
}


class OpenWatches:
    """Watch streams open right now, per client class and resource (and their selectors)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open: dict[str, Counter[str]] = {"local": Counter(), "http": Counter()}
        self.field_selectors: dict[tuple[str, str], set[str]] = {}
        for kind, cls in (("local", LocalClient), ("http", HttpClient)):
            monkeypatch.setattr(cls, "watch", self._counting(kind, cls.watch))

    def _counting(self, kind: str, original: Any) -> Any:
        counts = self.open[kind]

        def watch(client: Any, rt: ResourceType, **kw: Any) -> AsyncIterator[WatchEvent]:
            async def stream() -> AsyncIterator[WatchEvent]:
                counts[rt.key] += 1
                selector = str(kw.get("field_selector") or "")
                self.field_selectors.setdefault((kind, rt.key), set()).add(selector)
                try:
                    async for event in original(client, rt, **kw):
                        yield event
                finally:
                    counts[rt.key] -= 1

            return stream()

        return watch

    def now(self, kind: str) -> dict[str, int]:
        return {key: n for key, n in self.open[kind].items() if n}


async def test_up_and_a_node_on_its_own_each_watch_every_resource_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watches = OpenWatches(monkeypatch)
    up = Procorch(
        UpConfig(
            data_dir=tmp_path / "up", api_port=0, node=True, remote_nodes=True, agent=dict(FAST)
        )
    )
    await up.start()
    try:
        await up.informers.wait_synced()  # each informer watches once its list is in
        in_up = watches.now("local")
        assert SHARED <= in_up.keys()
        assert {key: n for key, n in in_up.items() if n != 1} == {}
        node = RemoteNode(
            AgentConfig(
                server=up.api_url,
                token=str(up.control_plane.join_token),
                data_dir=tmp_path / "agent",
                node_name="elsewhere",
                ingress_port=0,
                ingress_tls_port=0,
                agent=dict(FAST, runtime="inprocess"),
            )
        )
        await node.start()
        try:
            assert node.components is not None
            await node.components.informers.wait_synced()
            assert watches.now("http") == dict.fromkeys(NODE, 1)
            # Every pod, once: the agent's own through a view, the others' addresses for the
            # node relay (see procorch.launcher.node.node_scope).
            assert watches.field_selectors[("http", "core/pods")] == {""}
        finally:
            await node.stop()
        assert watches.now("http") == {}
    finally:
        await up.stop()
