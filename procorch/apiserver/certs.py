"""The API server's TLS material: a private CA and a serving certificate, in the data dir.

kubectl (client-go) never sends a bearer token over plain HTTP, so the API is served over
HTTPS, as Kubernetes and k3s serve it. On first start procorch makes a CA (kept for ten
years) and a serving certificate signed by it for ``localhost``, ``127.0.0.1``, ``::1``, the
host's name and any address the server is told to bind; the kubeconfig carries the CA so
clients verify the server. The serving certificate is re-issued when the wanted names change
or it is within 30 days of expiry. Keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from procorch.kit.pki import certificate_fresh, key_pem, new_key, write_private

CA_DAYS = 3650
SERVING_DAYS = 825


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    ca_key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.serving_cert, self.serving_key)
        # No TLS 1.3 session tickets: issuing OpenSSL's default two took 200 of a handshake's
        # 440 us of server CPU here, and Kubernetes clients never resume a session (client-go
        # and kubectl set no session cache; urllib3 and aiohttp keep none), so every watch
        # that reconnects paid for tickets nobody used.
        context.num_tickets = 0
        return context


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "procorch-ca")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    write_private(directory / "ca.key", key_pem(key))
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return cert, key


def wanted_names(extra_hosts: list[str]) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) the serving certificate must cover."""
    dns = {"localhost", "procorch"}
    ips = {"127.0.0.1", "::1"}
    try:
        dns.add(socket.gethostname())
    except OSError:
        pass
    for host in extra_hosts:
        if not host or host in ("0.0.0.0", "::"):
            continue
        try:
            ips.add(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.add(host)
    return dns, ips


def ensure_pki(directory: Path, *, hosts: list[str]) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    loaded = _load_ca(directory)
    ca_cert, ca_key = loaded if loaded is not None else _make_ca(directory)
    pki = Pki(
        directory / "ca.crt",
        directory / "apiserver.crt",
        directory / "apiserver.key",
        directory / "ca.key",
    )
    dns, ips = wanted_names(hosts)
    try:
        fresh = pki.serving_key.exists() and certificate_fresh(
            pki.serving_cert.read_bytes(), pki.ca_pem(), hosts=dns | ips
        )
    except FileNotFoundError:
        fresh = False
    if fresh:
        return pki
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(dns)]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(ips)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "procorch-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVING_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(pki.serving_key, key_pem(key))
    pki.serving_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pki


# -- client and node certificates ---------------------------------------------------------

CLIENT_DAYS = 365


def sign(
    pki: Pki,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    hosts: tuple[str, ...] = (),
    server: bool = False,
    days: int = CLIENT_DAYS,
) -> bytes:
    """A certificate for ``public_key`` signed by the cluster CA: client authentication, plus
    server authentication for ``hosts`` (IP addresses or names) when ``server``."""
    loaded = _load_ca(pki.ca_cert.parent)
    if loaded is None:
        raise ValueError("the cluster CA is missing")
    ca_cert, ca_key = loaded
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + (
        [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    )
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server and hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(
    pki: Pki,
    directory: Path,
    stem: str,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    hosts: tuple[str, ...] = (),
    server: bool = False,
) -> tuple[Path, Path]:
    """Key and certificate files ``<stem>.key``/``<stem>.crt`` in ``directory``, made anew
    unless the ones there are this CA's, for this subject and these hosts, and not within 30
    days of expiry. Returns (certificate, key)."""
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    try:
        if key_path.exists() and certificate_fresh(
            cert_path.read_bytes(), pki.ca_pem(), common_name=common_name, hosts=hosts
        ):
            return cert_path, key_path
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key()
    cert = sign(
        pki,
        key.public_key(),
        common_name=common_name,
        organizations=organizations,
        hosts=hosts,
        server=server,
    )
    write_private(key_path, key_pem(key))
    cert_path.write_bytes(cert)
    return cert_path, key_path
