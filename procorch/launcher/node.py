"""One node's components, as ``procorch up`` runs them beside the control plane and
``procorch agent`` runs them on another machine: the node relay (the pod network across
machines), the Service proxy (kube-proxy's part), cluster DNS (NodeLocal DNSCache's and
CoreDNS's), the node agent (kubelet's, with its supervisor process) and the Ingress router. The same code either way; only the client differs
(in-process, or HTTPS with the node's certificate).

They read the API through the process's one informer factory and record Events through its
one recorder, both owned by the caller: ``procorch up`` shares its controllers', a node on its
own has a factory scoped by :func:`node_scope`. So a node's process opens one watch per
resource it reads.

Start order: relay (its address goes on the Node the agent registers) → Service proxy and
cluster DNS (before any pod runs, so pods reach Services and resolve names at once) → agent →
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
    from procorch.proxy.dns import ClusterDNS
    from procorch.proxy.ingress import IngressRouter
    from procorch.proxy.l4 import ServiceProxy
    from procorch.proxy.relay import NodeRelay


PODS = must("core/pods")


def node_scope(node_name: str) -> dict[ResourceType, Selectors]:
    """What a node on its own watches: everything. Unlike kubelet, which watches only its own
    pods, the node's relay answers the declared ports of every pod on other machines, so the
    one pod watch is of all pods (the agent's view picks its own, ``spec.nodeName=<name>``)."""
    del node_name
    return {}


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
    relay_port: int = 0
    """Where other nodes reach this node's relay (on the node IP); 0 picks a free port."""
    relay: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.relay.RelaySettings` fields."""
    dns: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.dns.DNSSettings` fields."""


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
        self.relay: NodeRelay | None = None
        self.dns: ClusterDNS | None = None

    async def start(self, *, before_ingress: Callable[[Agent], Any] | None = None) -> None:
        """Start everything; ``before_ingress(agent)`` runs once the agent is up."""
        from procorch.agent.agent import Agent
        from procorch.proxy.dns import ClusterDNS, DNSSettings
        from procorch.proxy.ingress import IngressRouter, IngressSettings
        from procorch.proxy.l4 import ServiceProxy
        from procorch.proxy.relay import RELAY_ANNOTATION, NodeRelay, RelaySettings
        from procorch.proxy.settings import ProxySettings

        settings = self.config.agent
        self.relay = NodeRelay(
            self.informers,
            RelaySettings(
                host=settings.node_ip,
                port=self.config.relay_port,
                cert_file=settings.tls_cert_file,
                key_file=settings.tls_key_file,
                ca_file=settings.client_ca_file,
                **self.config.relay,
            ),
            node_name=settings.node_name,
            on_crash=self.on_crash,
        )
        await self.relay.start()
        if self.relay.enabled:
            settings.node_annotations[RELAY_ANNOTATION] = self.relay.address
        proxy_settings = ProxySettings(
            node_ip=settings.node_ip, node_name=settings.node_name, **self.config.service_proxy
        )
        self.service_proxy = ServiceProxy(
            self.client,
            self.informers,
            proxy_settings,
            events=self.events,
            dial=self.relay.dial,
            on_crash=self.on_crash,
        )
        await self.service_proxy.start()
        self.dns = ClusterDNS(
            self.informers, DNSSettings(**self.config.dns), on_crash=self.on_crash
        )
        await self.dns.start()
        settings.cluster_dns = self.dns.served()
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
        self.ingress = IngressRouter(
            self.client, self.informers, ingress, dial=self.relay.dial, on_crash=self.on_crash
        )
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
        if self.dns is not None:
            await self.dns.stop()  # after the agent: terminating pods may still resolve
            self.dns = None
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
