"""One node's components, as ``procorch up`` runs them beside the control plane and
``procorch agent`` runs them on another machine: the Service proxy (kube-proxy's part), the
node agent (kubelet's, with its supervisor process) and the Ingress router. The same code
either way; only the client differs (in-process, or HTTPS with the node's certificate).

The three read the API through the process's one informer factory and record Events through
its one recorder, both owned by the caller: ``procorch up`` shares its controllers' (which
watch every pod), a node on its own has a factory scoped by :func:`node_scope`. So a node's
process opens one watch per resource it reads.

Start order: Service proxy (before any pod runs, so pods reach Services at once) → agent →
Ingress router; stop order the reverse, the agent stopping every pod within its grace period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from procorch.agent.settings import AgentSettings
from procorch.api.resources import ResourceType, must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.reconcile.factory import InformerFactory, Selectors

if TYPE_CHECKING:
    from procorch.agent.agent import Agent
    from procorch.proxy.ingress import IngressRouter
    from procorch.proxy.l4 import ServiceProxy


PODS = must("core/pods")


def node_scope(node_name: str) -> dict[ResourceType, Selectors]:
    """What a node on its own watches: only its own pods (as kubelet does), all of the rest."""
    return {PODS: Selectors(field=f"spec.nodeName={node_name}")}


@dataclass
class NodeConfig:
    agent: AgentSettings
    ingress_port: int = 0
    """The Ingress HTTP listener; 0 picks a free port."""
    ingress_tls_port: int | None = 0
    """The Ingress HTTPS listener; 0 picks a free port, None disables it."""
    ingress: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.ingress.IngressSettings` fields."""
    service_proxy: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.settings.ProxySettings` fields."""


class NodeComponents:
    def __init__(
        self,
        client: Client,
        config: NodeConfig,
        *,
        informers: InformerFactory,
        events: EventRecorder,
        on_crash: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.informers = informers
        self.events = events
        self.on_crash = on_crash
        self.agent: Agent | None = None
        self.ingress: IngressRouter | None = None
        self.service_proxy: ServiceProxy | None = None

    async def start(self, *, before_ingress: Callable[[Agent], Any] | None = None) -> None:
        """Start everything; ``before_ingress(agent)`` runs once the agent is up."""
        from procorch.agent.agent import Agent
        from procorch.proxy.ingress import IngressRouter, IngressSettings
        from procorch.proxy.l4 import ServiceProxy
        from procorch.proxy.settings import ProxySettings

        settings = self.config.agent
        proxy_settings = ProxySettings(
            node_ip=settings.node_ip, node_name=settings.node_name, **self.config.service_proxy
        )
        self.service_proxy = ServiceProxy(
            self.client,
            self.informers,
            proxy_settings,
            events=self.events,
            on_crash=self.on_crash,
        )
        await self.service_proxy.start()
        self.agent = Agent(
            self.client, self.informers, settings, events=self.events, on_crash=self.on_crash
        )
        await self.agent.start()
        if before_ingress is not None:
            await before_ingress(self.agent)
        ingress = IngressSettings(
            port=self.config.ingress_port,
            tls_port=self.config.ingress_tls_port,
            **self.config.ingress,
        )
        self.ingress = IngressRouter(self.client, self.informers, ingress, on_crash=self.on_crash)
        await self.ingress.start()

    async def stop(self) -> None:
        """Stop in reverse order; safe to call more than once."""
        if self.ingress is not None:
            await self.ingress.stop()
            self.ingress = None
        if self.service_proxy is not None:
            await self.service_proxy.stop()
            self.service_proxy = None
        if self.agent is not None:
            await self.agent.stop(graceful=True)
            self.agent = None
