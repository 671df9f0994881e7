"""Joining nodes to the control plane: the join token, the CA it pins, node certificates.

``procorch up`` writes ``<data-dir>/node-token`` (mode 0600), in k3s's shape::

    K10<sha256 of the cluster CA's DER>::node:<secret>

A joining agent (:mod:`procorch.agent.join`) first reads the CA from ``/cacerts`` (anonymous,
as ``kube-public/cluster-info`` is on kubeadm clusters) and checks that its hash is the one in
the token before it trusts anything the server says, so joining is never trust-on-first-use.
Then, over TLS verified with that CA, it presents the secret (a bootstrap token: user
``system:bootstrap:node`` in ``system:bootstrappers``, allowed nothing but this) and a CSR of
its own key, and gets back a certificate for ``system:node:<name>`` in ``system:nodes``, the
serving certificate of its agent endpoint (for its node IP), and a node token with which it
acts on the API as ``system:node:<name>``. The agent never sees the admin token, and its key
never leaves its machine.

The API server talks to agents' endpoints with a client certificate of its own
(``kube-apiserver-kubelet-client`` in ``system:masters``, as kubeadm names it), and checks
their serving certificates against the same CA.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable
from pathlib import Path

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from procorch.api import errors
from procorch.api.validation.formats import is_dns1123_subdomain
from procorch.apiserver import decode
from procorch.apiserver.auth import User
from procorch.apiserver.certs import Pki, sign
from procorch.kit.pki import NODES_GROUP, JoinToken, ca_fingerprint, node_user, write_private

TOKEN_FILE = "node-token"
BOOTSTRAPPERS = "system:bootstrappers"
BOOTSTRAP_USER = User(name="system:bootstrap:node", groups=(BOOTSTRAPPERS, "system:authenticated"))


def load_or_create_token(data_dir: Path, ca_pem: bytes) -> JoinToken:
    """The node token in the data dir; its secret is kept across restarts, and its CA hash
    is always the current CA's."""
    path = data_dir / TOKEN_FILE
    secret = ""
    try:
        secret = JoinToken.parse(path.read_text()).secret
    except (OSError, ValueError):
        pass
    token = JoinToken(ca_hash=ca_fingerprint(ca_pem), secret=secret or secrets.token_hex(24))
    write_private(path, f"{token}\n".encode())
    return token


class JoinEndpoints:
    """``GET /cacerts`` (anonymous) and ``POST /procorch/v1/node-certificate`` (bootstrap)."""

    def __init__(self, pki: Pki, node_token: Callable[[str], str]) -> None:
        self.pki = pki
        self.node_token = node_token

    async def ca(self, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=self.pki.ca_pem(), content_type="application/x-pem-file")

    async def node_certificate(self, request: web.BaseRequest, user: User) -> web.StreamResponse:
        """Sign a joining node's CSR: ``{"nodeName", "nodeIP", "csr"}`` →
        ``{"certificate", "ca"}`` (PEM) and the node's API ``token``."""
        if request.method != "POST":
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        if BOOTSTRAPPERS not in user.groups and not user.is_admin:
            raise errors.Forbidden(
                f'User "{user.name}" cannot create node certificates: it takes the join token',
                details={},
            )
        body = (await decode.read_body(request)).value
        if not isinstance(body, dict):
            raise errors.BadRequest("the request body must be a JSON object")
        name, node_ip, csr_pem = body.get("nodeName"), body.get("nodeIP"), body.get("csr")
        if not isinstance(name, str) or is_dns1123_subdomain(name):
            raise errors.BadRequest(f"nodeName: Invalid value: {name!r}: not a valid node name")
        try:
            ipaddress.ip_address(str(node_ip))
        except ValueError:
            raise errors.BadRequest(f"nodeIP: Invalid value: {node_ip!r}: not an IP") from None
        try:
            csr = x509.load_pem_x509_csr(str(csr_pem).encode())
        except ValueError:
            raise errors.BadRequest("csr: not a PEM certificate signing request") from None
        public_key = csr.public_key()
        if not csr.is_signature_valid or not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise errors.BadRequest("csr: must be signed by its own EC key")
        certificate = sign(
            self.pki,
            public_key,
            common_name=node_user(name),
            organizations=(NODES_GROUP,),
            hosts=(str(node_ip), name),
            server=True,
        )
        answer = {
            "certificate": certificate.decode(),
            "ca": self.pki.ca_pem().decode(),
            "token": self.node_token(name),
        }
        return web.Response(
            status=201, body=orjson.dumps(answer), headers={"Content-Type": "application/json"}
        )
