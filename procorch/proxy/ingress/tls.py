"""TLS for the Ingress HTTPS listener: a certificate per host, chosen by SNI.

Each ``spec.tls`` entry of an Ingress names a ``kubernetes.io/tls`` Secret (``tls.crt``,
``tls.key``) in the Ingress's namespace and the hosts it serves (exact or ``*.`` wildcard). An
entry without hosts supplies the default certificate. A client whose SNI name matches nothing
(or sends none) gets the default: that entry's certificate if any, else a self-signed
certificate made at start (as ingress-nginx's "Fake Certificate"). The oldest Ingress wins a
host claimed twice. Secrets that do not load are logged (by name, never their data) and
skipped.

``ssl`` loads keys only from files: each PEM pair is written to a private temporary file,
loaded, and removed at once.

Concurrency: single event loop; the SNI callback runs inside the TLS handshake on that loop.
"""

from __future__ import annotations

import base64
import datetime
import os
import ssl
import tempfile
from collections.abc import Iterable
from typing import Any

from procorch.kit.logging import get_logger
from procorch.reconcile.views import InformerView

log = get_logger("proxy.ingress.tls")

Obj = dict[str, Any]
SecretKey = tuple[str, str]


class Certificates:
    def __init__(self, secrets: InformerView) -> None:
        self.secrets = secrets
        self._hosts: dict[str, SecretKey] = {}
        self._wildcards: dict[str, SecretKey] = {}
        self._default_secret: SecretKey | None = None
        self._contexts: dict[SecretKey, tuple[str, ssl.SSLContext | None]] = {}
        self._fallback: ssl.SSLContext | None = None
        self.server_context: ssl.SSLContext | None = None

    def start(self) -> ssl.SSLContext:
        """The listener's context: the self-signed default plus the SNI callback."""
        cert, key = self_signed("procorch ingress default certificate")
        self._fallback = _context(cert, key)
        context = _context(cert, key)
        context.sni_callback = self._sni
        self.server_context = context
        return context

    def rebuild(self, ingresses: Iterable[Obj]) -> None:
        """Host → Secret from the (owned, oldest first) Ingresses' ``spec.tls``."""
        hosts: dict[str, SecretKey] = {}
        wildcards: dict[str, SecretKey] = {}
        default: SecretKey | None = None
        for ingress in ingresses:
            meta = ingress.get("metadata") or {}
            namespace = str(meta.get("namespace") or "default")
            for entry in (ingress.get("spec") or {}).get("tls") or []:
                name = entry.get("secretName")
                if not name:
                    continue
                key = (namespace, str(name))
                names = [str(h).lower() for h in entry.get("hosts") or []]
                if not names and default is None:
                    default = key
                for host in names:
                    if host.startswith("*."):
                        wildcards.setdefault(host[2:], key)
                    else:
                        hosts.setdefault(host, key)
        self._hosts, self._wildcards, self._default_secret = hosts, wildcards, default
        wanted = set(hosts.values()) | set(wildcards.values()) | ({default} if default else set())
        for key in [k for k in self._contexts if k not in wanted]:
            del self._contexts[key]

    def has_tls(self, ingress: Obj) -> bool:
        return any(e.get("secretName") for e in (ingress.get("spec") or {}).get("tls") or [])

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        key: SecretKey | None = None
        if server_name:
            name = server_name.lower().rstrip(".")
            key = self._hosts.get(name)
            if key is None:
                _, dot, parent = name.partition(".")
                key = self._wildcards.get(parent) if dot else None
        if key is None:
            key = self._default_secret
        return self._load(key) if key is not None else None

    def _sni(self, sslobj: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
        context = self.context_for(server_name) or self._fallback
        if context is not None and context is not _context:
            sslobj.context = context

    def _load(self, key: SecretKey) -> ssl.SSLContext | None:
        secret = self.secrets.get(key[1], key[0])
        if secret is None:
            return None
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._contexts.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        context: ssl.SSLContext | None = None
        try:
            data = secret.get("data") or {}
            cert = base64.b64decode(data.get("tls.crt") or "")
            private = base64.b64decode(data.get("tls.key") or "")
            context = _context(cert, private)
        except (ValueError, ssl.SSLError, OSError) as exc:
            log.warning(
                "TLS secret does not load; using the default certificate",
                namespace=key[0],
                secret=key[1],
                error=type(exc).__name__,
            )
        self._contexts[key] = (version, context)
        return context


def _context(cert: bytes, key: bytes) -> ssl.SSLContext:
    if not cert or not key:
        raise ValueError("tls.crt and tls.key are required")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    fd, path = tempfile.mkstemp(prefix="procorch-ingress-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp: mode 0600, only we can read it
            handle.write(cert.rstrip(b"\n") + b"\n" + key)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


def self_signed(common_name: str, hosts: Iterable[str] = ()) -> tuple[bytes, bytes]:
    """A self-signed EC certificate and key (PEM), for the default and for tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    names = [x509.DNSName(h) for h in hosts]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
