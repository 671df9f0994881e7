"""X.509 helpers that the control plane and node agents share, and the names of the
identities they carry (Kubernetes' own: ``system:node:<name>`` in ``system:nodes``,
``kube-apiserver-kubelet-client``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
KUBELET_CLIENT = "kube-apiserver-kubelet-client"
MASTERS_GROUP = "system:masters"

# The join protocol's two paths on the API server (see procorch.apiserver.join).
CA_PATH = "/cacerts"
JOIN_PATH = "/procorch/v1/node-certificate"
TOKEN_PREFIX = "K10"
_TOKEN = re.compile(r"^K10([0-9a-f]{64})::node:([A-Za-z0-9_\-]{16,})$")


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str
    secret: str

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}{self.ca_hash}::node:{self.secret}"

    @classmethod
    def parse(cls, text: str) -> JoinToken:
        match = _TOKEN.match(text.strip())
        if match is None:
            raise ValueError(
                "not a procorch join token (expected K10<sha256 of the CA>::node:<secret>, "
                "as written to <data-dir>/node-token by `procorch up`)"
            )
        return cls(ca_hash=match.group(1), secret=match.group(2))


def node_user(name: str) -> str:
    return f"{NODE_USER_PREFIX}{name}"


def ca_fingerprint(ca_pem: bytes) -> str:
    """sha256 (hex) of a CA certificate's DER: what a join token pins."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate_request(
    key: ec.EllipticCurvePrivateKey, *, common_name: str, organizations: tuple[str, ...] = ()
) -> bytes:
    """A PEM CSR for ``CN=common_name, O=organizations``."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def subject_of(peercert: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(common name, organizations) of a certificate as ``SSLSocket.getpeercert()`` gives it."""
    common_name = ""
    organizations: list[str] = []
    for rdn in peercert.get("subject") or ():
        for attribute, value in rdn:
            if attribute == "commonName":
                common_name = value
            elif attribute == "organizationName":
                organizations.append(value)
    return common_name, tuple(organizations)


RENEW_BEFORE = dt.timedelta(days=30)
"""A certificate this close to expiry is made anew."""


def certificate_fresh(
    cert_pem: bytes, ca_pem: bytes, *, common_name: str = "", hosts: Iterable[str] = ()
) -> bool:
    """Whether a certificate was issued by this CA, for ``common_name`` (when given) and
    every one of ``hosts`` (IP addresses or DNS names), with more than ``RENEW_BEFORE`` left."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        return False
    if cert.issuer != ca.subject:
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) <= RENEW_BEFORE:
        return False
    if common_name:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names or names[0].value != common_name:
            return False
    wanted = set(hosts)
    if not wanted:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = set(san.get_values_for_type(x509.DNSName))
    have |= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return {_canonical(h) for h in wanted} <= have


def _canonical(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def write_private(path: Path, data: bytes) -> None:
    """Write a secret (key, token) readable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)
