"""``procorch agent``: one node of a control plane that runs elsewhere.

Joins with the token (see :mod:`procorch.agent.join`), then runs the node's components
(:mod:`procorch.launcher.node`: Service proxy, agent with its supervisor process, Ingress router)
against the API over HTTPS with the node's own token (``system:node:<name>``); it never holds the
admin token. The first SIGINT/SIGTERM stops every pod and the node goes NotReady; a second forces an
exit (the supervisor process then stops the containers on its own).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procorch.agent.join import JoinError, join
from procorch.agent.settings import AgentSettings
from procorch.client.events import EventRecorder
from procorch.client.http import HttpClient
from procorch.kit.gcpolicy import GcPolicy
from procorch.kit.limits import raise_open_files_limit
from procorch.kit.logging import get_logger
from procorch.kit.pki import JoinToken
from procorch.kit.tasks import TaskSet
from procorch.launcher.node import NodeComponents, NodeConfig, node_scope
from procorch.launcher.signals import stop_on_signals
from procorch.reconcile.factory import InformerFactory

log = get_logger("launcher.agent")


@dataclass
class AgentConfig:
    server: str
    token: str
    data_dir: Path = Path(".procorch-agent")
    node_name: str = ""
    node_ip: str = "127.0.0.1"
    ingress_port: int = 8080
    ingress_tls_port: int | None = 8443
    relay_port: int = 0
    relay_redirect: bool = True
    """Every port of other machines' pods through an nftables redirect (root and nft)."""
    agent: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.agent.settings.AgentSettings` fields."""


class RemoteNode:
    """A joined node: start it, use ``components``, stop it."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        settings = AgentSettings(data_dir=self.data_dir, **config.agent)
        if config.node_name:
            settings.node_name = config.node_name
        settings.node_ip = config.node_ip
        settings.kubelet_host = config.node_ip  # the API server calls the agent there
        self.settings = settings
        self.client: HttpClient | None = None
        self.tasks = TaskSet("node", on_crash=self._on_crash)
        """The node process's informers and Event writer, shared by its components."""
        self.components: NodeComponents | None = None
        self.crashed = asyncio.Event()
        self.crash_reason = ""

    def _on_crash(self, name: str, exc: BaseException | None) -> None:
        self.crash_reason = f"{name}: {exc!r}" if exc else f"{name} exited"
        self.crashed.set()

    async def start(self) -> None:
        """Join (raising :class:`JoinError` with nothing registered), then run the node."""
        try:
            token = JoinToken.parse(self.config.token)
        except ValueError as exc:
            raise JoinError(str(exc)) from None
        raise_open_files_limit()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        settings = self.settings
        creds = await join(
            self.config.server,
            token,
            node_name=settings.node_name,
            node_ip=settings.node_ip,
            directory=self.data_dir / "agent" / "pki",
        )
        log.info("joined", server=self.config.server, node=settings.node_name)
        settings.tls_cert_file, settings.tls_key_file = creds.cert_file, creds.key_file
        settings.client_ca_file = creds.ca_file
        self.client = HttpClient(
            self.config.server,
            token=creds.token(),
            ca_data=creds.ca_pem(),
            field_manager="procorch-agent",
        )
        events = EventRecorder(self.client, component="procorch-agent", host=settings.node_name)
        self.tasks.start("events", events.run())
        self.components = NodeComponents(
            self.client,
            NodeConfig(
                agent=settings,
                ingress_port=self.config.ingress_port,
                ingress_tls_port=self.config.ingress_tls_port,
                relay_port=self.config.relay_port,
                relay={"redirect": self.config.relay_redirect},
            ),
            informers=InformerFactory(
                self.client, self.tasks, scope=node_scope(settings.node_name)
            ),
            events=events,
            on_crash=self._on_crash,
        )
        await self.components.start()

    async def stop(self) -> None:
        if self.components is not None:
            await self.components.stop()
            self.components = None
        await self.tasks.stop(timeout=5.0)
        if self.client is not None:
            await self.client.close()
            self.client = None


async def run_agent(
    config: AgentConfig, *, on_ready: Callable[[RemoteNode], None] | None = None
) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code (2: could not join)."""
    stop = asyncio.Event()
    with stop_on_signals(stop, "stopping the node"):
        return await _run_agent(config, stop, on_ready)


async def _run_agent(
    config: AgentConfig, stop: asyncio.Event, on_ready: Callable[[RemoteNode], None] | None
) -> int:
    node = RemoteNode(config)
    gc_policy = GcPolicy()
    code = 0
    try:
        try:
            await node.start()
        except JoinError as exc:
            log.error("could not join the control plane; nothing was registered", error=str(exc))
            return 2
        gc_policy.start()
        if on_ready is not None:
            on_ready(node)
        crashed = asyncio.create_task(node.crashed.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([crashed, stopped], return_when=asyncio.FIRST_COMPLETED)
        for task in (crashed, stopped):
            task.cancel()
        if node.crashed.is_set():
            log.error("a component failed; stopping", reason=node.crash_reason)
            code = 1
    finally:
        await gc_policy.stop()
        await node.stop()
    return code
