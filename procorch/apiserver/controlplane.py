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
    ensure_cluster_dns_service,
    ensure_kubernetes_service,
)
from procorch.apiserver.auth import (
    ADMIN,
    SYSTEM,
    TokenAuthenticator,
    load_or_create_key,
    load_or_create_token,
)
from procorch.apiserver.certs import Pki, ensure_pki, issue
from procorch.apiserver.crds import CrdController
from procorch.apiserver.hpa_v1 import PREFIX as HPA_V1_PREFIX
from procorch.apiserver.hpa_v1 import AutoscalingV1
from procorch.apiserver.http import ApiServer
from procorch.apiserver.join import BOOTSTRAP_USER, JoinEndpoints
from procorch.apiserver.join import load_or_create_token as load_or_create_join_token
from procorch.apiserver.legacytokens import LegacyTokenController
from procorch.apiserver.nodeproxy import METRICS_PREFIX, NodeProxy, register_discovery
from procorch.apiserver.podstreams import PodStreams
from procorch.apiserver.rbac import RbacAuthorizer
from procorch.apiserver.reviews import AUTHN_PREFIX, AUTHZ_PREFIX, SelfReviews
from procorch.apiserver.reviews import register_discovery as register_reviews
from procorch.apiserver.service import ApiService
from procorch.apiserver.tokens import DISCOVERY_PATH, JWKS_PATH, Tokens
from procorch.kit.logging import get_logger
from procorch.kit.pki import (
    CA_PATH,
    JOIN_PATH,
    KUBELET_CLIENT,
    MASTERS_GROUP,
    NODES_GROUP,
    JoinToken,
    node_user,
)
from procorch.kit.tokens import KEY_FILE
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
        advertise_address: str = "",
    ) -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.ca_pem = b""
        self.pki: Pki | None = None
        self.join_token: JoinToken | None = None
        self.host = host
        self.advertise_address = advertise_address
        self.requested_port = port
        self.store = SQLiteStore(data_dir / "store.db")
        self.rbac = RbacAuthorizer(self.store)
        self.service = ApiService(self.store, authorizer=self.rbac, service_cidr=service_cidr)
        self.authenticator = TokenAuthenticator()
        self.http = ApiServer(self.service, self.authenticator.authenticate)
        self.node_proxy = NodeProxy(self.service)
        self.crds = CrdController(self.service)
        self.http.subresource_handlers[("core/pods", "log")] = self.node_proxy.pod_log
        pod_streams = PodStreams(self.node_proxy)
        self.http.subresource_handlers[("core/pods", "exec")] = pod_streams.exec
        self.http.subresource_handlers[("core/pods", "attach")] = pod_streams.attach
        self.http.subresource_handlers[("core/pods", "portforward")] = pod_streams.port_forward
        # kubectl autoscale creates its HPA at autoscaling/v1.
        self.http.prefix_handlers[HPA_V1_PREFIX] = AutoscalingV1(self.service).handle
        # kubectl auth can-i / whoami.
        register_reviews()
        self.tokens = Tokens(self.service)
        self.legacy_tokens: LegacyTokenController | None = None
        self.service.tokens = self.tokens
        self.http.subresource_handlers[("core/serviceaccounts", "token")] = (
            self.tokens.token_request
        )
        for path in (DISCOVERY_PATH, JWKS_PATH):
            self.http.prefix_handlers[path] = self.tokens.issuer_discovery
        reviews = SelfReviews(self.rbac, self.tokens)
        self.http.prefix_handlers[AUTHZ_PREFIX] = reviews.handle
        self.http.prefix_handlers[AUTHN_PREFIX] = reviews.handle
        self.admin_token = ""

    @property
    def url(self) -> str:
        """Where clients, kubeconfigs and joining nodes reach the API: the advertised address,
        else the bound one (loopback for a wildcard)."""
        host = self.advertise_address or self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.http.port}"

    def issue_node_credentials(
        self, node_name: str, node_ip: str, directory: Path
    ) -> tuple[Path, Path, Path]:
        """(certificate, key, CA) files for a node whose agent runs in this process, as a
        joining node gets them (see :mod:`procorch.apiserver.join`)."""
        if self.pki is None:
            raise RuntimeError("node credentials need TLS")
        cert, key = issue(
            self.pki,
            directory,
            "node",
            common_name=node_user(node_name),
            organizations=(NODES_GROUP,),
            hosts=(node_ip, node_name),
            server=True,
        )
        return cert, key, self.pki.ca_cert

    async def start(self) -> None:
        await self.store.start()
        self.tokens.use_key(self.data_dir / KEY_FILE)
        self.authenticator.accept_signed(self.tokens.authenticate)
        await self._bootstrap()
        await self.rbac.start()
        await self.rbac.bootstrap(self.service)
        await self.crds.start()  # custom resources are served before the API opens
        self.admin_token = load_or_create_token(self.data_dir / "admin-token")
        self.authenticator.add(self.admin_token, ADMIN)
        context = None
        if self.tls:
            pki = ensure_pki(
                self.data_dir / "pki",
                hosts=[
                    self.host,
                    *([self.advertise_address] if self.advertise_address else []),
                    *api_service_names(self.service.allocators),
                ],
            )
            self.pki = pki
            self.ca_pem = pki.ca_pem()
            context = pki.server_context()
            self._serve_nodes(pki)
        self.legacy_tokens = LegacyTokenController(self.service, self.tokens.signer, self.ca_pem)
        await self.legacy_tokens.start()
        await self.http.start(host=self.host, port=self.requested_port, ssl_context=context)
        await ensure_kubernetes_service(self.service, host=self.host, port=self.http.port)
        await ensure_cluster_dns_service(self.service)

    def _serve_nodes(self, pki: Pki) -> None:
        """The join token and endpoints, the API server's credentials towards node agents,
        and ``metrics.k8s.io`` served from the nodes."""
        self.join_token = load_or_create_join_token(self.data_dir, pki.ca_pem())
        self.authenticator.add(self.join_token.secret, BOOTSTRAP_USER)
        self.authenticator.sign_nodes_with(load_or_create_key(self.data_dir / "node-token-key"))
        join = JoinEndpoints(pki, self.authenticator.node_token)
        self.http.anonymous_handlers[CA_PATH] = join.ca
        self.http.prefix_handlers[JOIN_PATH] = join.node_certificate
        cert, key = issue(
            pki,
            pki.ca_cert.parent,
            "apiserver-kubelet-client",
            common_name=KUBELET_CLIENT,
            organizations=(MASTERS_GROUP,),
        )
        self.node_proxy.use_tls(pki.ca_cert, cert, key)
        register_discovery()
        self.http.prefix_handlers[METRICS_PREFIX] = self.node_proxy.metrics

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
        await self.crds.stop()
        if self.legacy_tokens is not None:
            await self.legacy_tokens.stop()
        await self.rbac.stop()
        await self.node_proxy.close()
        await self.store.close()
