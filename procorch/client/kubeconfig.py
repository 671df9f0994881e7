"""Kubeconfig files: write the one ``procorch up`` hands to kubectl, read any simple one.

procorch writes ``<data-dir>/kubeconfig`` with mode 0600 (it holds the admin bearer token),
atomically, so kubectl never reads a half-written file.
"""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "procorch"


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str
    namespace: str = "default"
    ca_data: bytes = b""  # PEM of the CA that signed the server's certificate
    insecure: bool = False
    user: str = "admin"  # names the user entry: procorch-<user>


def render(creds: Credentials) -> str:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": _cluster(creds)}],
        "users": [{"name": f"{CONTEXT}-{creds.user}", "user": {"token": creds.token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {
                    "cluster": CONTEXT,
                    "user": f"{CONTEXT}-{creds.user}",
                    "namespace": creds.namespace,
                },
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _cluster(creds: Credentials) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": creds.server}
    if creds.ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(creds.ca_data).decode()
    if creds.insecure:
        cluster["insecure-skip-tls-verify"] = True
    return cluster


def write(path: Path, creds: Credentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(render(creds))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class KubeconfigError(Exception):
    pass


def read(path: Path, *, context: str | None = None) -> Credentials:
    """Server, token and namespace of a kubeconfig's current (or named) context."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise KubeconfigError(
            f"no kubeconfig at {path}: is `procorch up` running with this data dir?"
        ) from None
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{path} is not valid YAML: {exc}") from None
    name = context or doc.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or []}
    ctx = contexts.get(name)
    if ctx is None:
        raise KubeconfigError(f"{path}: context {name!r} not found")
    clusters = {c.get("name"): c.get("cluster") or {} for c in doc.get("clusters") or []}
    users = {u.get("name"): u.get("user") or {} for u in doc.get("users") or []}
    cluster = clusters.get(ctx.get("cluster"))
    if not cluster or not cluster.get("server"):
        raise KubeconfigError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
    user = users.get(ctx.get("user")) or {}
    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    ca_data = b""
    if cluster.get("certificate-authority-data"):
        ca_data = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        if not ca_path.is_absolute():
            ca_path = path.parent / ca_path
        ca_data = ca_path.read_bytes()
    return Credentials(
        server=str(cluster["server"]),
        token=str(token),
        namespace=str(ctx.get("namespace") or "default"),
        ca_data=ca_data,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
