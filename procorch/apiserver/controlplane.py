"""The control plane as one unit: store, API service, authentication and the HTTP server.

The launcher (and tests) build the API through this class, so that nothing outside the
``apiserver`` package imports the store (DESIGN.md layers).
"""

from __future__ import annotations

from pathlib import Path

from procorch.api import errors, resources
from procorch.apiserver.allocators import (
    DEFAULT_SERVICE_CIDR,
    api_service_names,
    ensure_kubernetes_service,
)
from procorch.apiserver.auth import ADMIN, SYSTEM, TokenAuthenticator, load_or_create_token
from procorch.apiserver.certs import ensure_pki
from procorch.apiserver.hpa_v1 import PREFIX as HPA_V1_PREFIX
from procorch.apiserver.hpa_v1 import AutoscalingV1
from procorch.apiserver.http import ApiServer
from procorch.apiserver.nodeproxy import METRICS_PREFIX, NodeProxy, register_discovery
from procorch.apiserver.reviews import AUTHN_PREFIX, AUTHZ_PREFIX, SelfReviews
from procorch.apiserver.reviews import register_discovery as register_reviews
from procorch.apiserver.service import ApiService
from procorch.kit.logging import get_logger
from procorch.store.sqlite import SQLiteStore

log = get_logger("controlplane")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ControlPlane:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
    ) -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.ca_pem = b""
        self.host = host
        self.requested_port = port
        self.store = SQLiteStore(data_dir / "store.db")
        self.service = ApiService(self.store, service_cidr=service_cidr)
        self.authenticator = TokenAuthenticator()
        self.http = ApiServer(self.service, self.authenticator.authenticate)
        self.node_proxy = NodeProxy(self.service)
        self.http.subresource_handlers[("core/pods", "log")] = self.node_proxy.pod_log
        # kubectl autoscale creates its HPA at autoscaling/v1.
        self.http.prefix_handlers[HPA_V1_PREFIX] = AutoscalingV1(self.service).handle
        # kubectl auth can-i / whoami.
        register_reviews()
        reviews = SelfReviews(self.service.authorizer)
        self.http.prefix_handlers[AUTHZ_PREFIX] = reviews.handle
        self.http.prefix_handlers[AUTHN_PREFIX] = reviews.handle
        self.admin_token = ""

    def set_kubelet_token(self, token: str) -> None:
        """The token the API server presents to node agents (for logs and metrics), and serve
        ``metrics.k8s.io`` from them."""
        self.node_proxy.kubelet_token = token
        register_discovery()
        self.http.prefix_handlers[METRICS_PREFIX] = self.node_proxy.metrics

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"{'https' if self.tls else 'http'}://{host}:{self.http.port}"

    async def start(self) -> None:
        await self.store.start()
        await self._bootstrap()
        self.admin_token = load_or_create_token(self.data_dir / "admin-token")
        self.authenticator.add(self.admin_token, ADMIN)
        context = None
        if self.tls:
            pki = ensure_pki(
                self.data_dir / "pki",
                hosts=[self.host, *api_service_names(self.service.allocators)],
            )
            self.ca_pem = pki.ca_pem()
            context = pki.server_context()
        await self.http.start(host=self.host, port=self.requested_port, ssl_context=context)
        await ensure_kubernetes_service(self.service, host=self.host, port=self.http.port)

    async def _bootstrap(self) -> None:
        namespaces = resources.by_key("core/namespaces")
        assert namespaces is not None
        for name in SYSTEM_NAMESPACES:
            if self.store.get(self.service.key(namespaces, "", name)) is not None:
                continue
            try:
                await self.service.create(
                    SYSTEM,
                    namespaces,
                    "",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                )
            except errors.AlreadyExists:
                pass

    async def stop(self) -> None:
        await self.http.stop()
        await self.node_proxy.close()
        await self.store.close()
