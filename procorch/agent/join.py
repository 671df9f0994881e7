"""A node joins a control plane: from a join token to credentials of its own.

The token (``K10<sha256 of the CA>::node:<secret>``, see :mod:`procorch.apiserver.join`) pins the
server's CA. The agent reads the CA from the server's ``/cacerts`` and trusts it only if its hash is
the pinned one; from then on every byte goes over TLS verified with it. It makes a key that never
leaves this machine, sends a CSR with the token's secret, and keeps what it gets (the certificate
its endpoint serves with, and the node token it acts on the API with, both ``system:node:<name>``)
with the key and the CA in ``<data-dir>/agent/pki``. A restarted agent reuses them while they are
this CA's, this node's, for this node IP, and more than 30 days from expiry. Nothing is registered
before this succeeds, and every failure says what to check.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from procorch.kit.pki import (
    CA_PATH,
    JOIN_PATH,
    NODES_GROUP,
    JoinToken,
    ca_fingerprint,
    certificate_fresh,
    certificate_request,
    key_pem,
    new_key,
    node_user,
    write_private,
)


class JoinError(Exception):
    """Joining failed; the message says why and what to check."""


@dataclass(frozen=True)
class NodeCredentials:
    ca_file: Path
    cert_file: Path
    """The agent endpoint's serving certificate (``system:node:<name>``, for its IP)."""
    key_file: Path
    token_file: Path
    """The node's bearer token on the API (``system:node:<name>``)."""

    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    def token(self) -> str:
        return self.token_file.read_text().strip()


def credentials_in(directory: Path) -> NodeCredentials:
    return NodeCredentials(
        directory / "ca.crt", directory / "node.crt", directory / "node.key", directory / "token"
    )


async def join(
    server: str,
    token: JoinToken,
    *,
    node_name: str,
    node_ip: str,
    directory: Path,
    timeout: float = 15.0,
) -> NodeCredentials:
    """This node's credentials for ``server``: the ones kept in ``directory`` if still good,
    else new ones from the server. Raises :class:`JoinError`."""
    creds = credentials_in(directory)
    if _still_good(creds, token, node_name, node_ip):
        return creds
    server = server.rstrip("/")
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        ca_pem = await _pinned_ca(session, server, token)
        key = new_key()
        csr = certificate_request(
            key, common_name=node_user(node_name), organizations=(NODES_GROUP,)
        )
        verified = ssl.create_default_context(cadata=ca_pem.decode())
        body = {"nodeName": node_name, "nodeIP": node_ip, "csr": csr.decode()}
        try:
            async with session.post(
                server + JOIN_PATH,
                json=body,
                headers={"Authorization": f"Bearer {token.secret}"},
                ssl=verified,
            ) as resp:
                if resp.status == 401:
                    raise JoinError(
                        f"{server} refused the join token (401 Unauthorized): copy it again "
                        "from the control plane's <data-dir>/node-token"
                    )
                if resp.status != 201:
                    raise JoinError(f"{server} answered {resp.status}: {await _message(resp)}")
                answer = await resp.json()
        except aiohttp.ClientSSLError as exc:
            raise JoinError(f"TLS with {server} failed: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JoinError(f"cannot reach {server}: {exc or type(exc).__name__}") from None
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    write_private(creds.key_file, key_pem(key))
    _write(creds.cert_file, str(answer["certificate"]).encode())
    write_private(creds.token_file, str(answer["token"]).encode())
    _write(creds.ca_file, ca_pem)
    return creds


async def _pinned_ca(session: aiohttp.ClientSession, server: str, token: JoinToken) -> bytes:
    """The server's CA, if its hash is the token's. Read without verifying the server (there
    is nothing to verify it with yet): the hash is the check."""
    if not server.startswith("https://"):
        raise JoinError(f"the server must be an https:// URL, not {server!r}")
    try:
        async with session.get(server + CA_PATH, ssl=False) as resp:
            if resp.status != 200:
                raise JoinError(
                    f"{server} is not a procorch control plane: GET {CA_PATH} answered "
                    f"{resp.status}"
                )
            ca_pem = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise JoinError(f"cannot reach {server}: {exc or type(exc).__name__}") from None
    try:
        served = ca_fingerprint(ca_pem)
    except ValueError:
        raise JoinError(f"{server} served no CA certificate at {CA_PATH}") from None
    if served != token.ca_hash:
        raise JoinError(
            f"the CA of {server} (sha256 {served[:16]}...) is not the one the token pins "
            f"({token.ca_hash[:16]}...): a wrong token, or not the server it came from"
        )
    return ca_pem


def _still_good(creds: NodeCredentials, token: JoinToken, node_name: str, node_ip: str) -> bool:
    try:
        ca_pem = creds.ca_pem()
        return (
            creds.key_file.exists()
            and creds.token_file.exists()
            and ca_fingerprint(ca_pem) == token.ca_hash
            and certificate_fresh(
                creds.cert_file.read_bytes(),
                ca_pem,
                common_name=node_user(node_name),
                hosts=(node_ip,),
            )
        )
    except (OSError, ValueError):
        return False


async def _message(resp: aiohttp.ClientResponse) -> str:
    try:
        body = await resp.json(content_type=None)
        return str(body.get("message") or body)
    except ValueError:
        return (await resp.text())[:200]


def _write(path: Path, data: bytes) -> None:
    """Public material (certificates) readable by all, as the cluster CA is."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
