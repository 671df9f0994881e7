"""Authentication (bearer tokens) and the authorization seam.

Every API request carries ``Authorization: Bearer <token>``. :class:`TokenAuthenticator` maps
tokens to users; the admin token that ``procorch up`` writes into the kubeconfig belongs to
``procorch-admin`` in ``system:masters``. Tokens are compared in constant time and never logged.

:class:`Authorizer` decides whether a user may perform a verb on a resource; the default lets
``system:masters`` do everything (RBAC plugs in behind the same interface).
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from procorch.api import errors


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


ADMIN = User(name="procorch-admin", groups=("system:masters", "system:authenticated"))
# What in-process components run as: full access, but a distinct name in managedFields/logs.
SYSTEM = User(name="system:procorch", groups=("system:masters", "system:authenticated"))


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do, in Kubernetes authorization terms."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests (/version, /healthz)

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


class Authorizer(Protocol):
    def allowed(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason explains a refusal."""
        ...


class MastersOnly:
    """Allows ``system:masters`` everything and everyone else nothing."""

    def allowed(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        if user.is_admin:
            return True, ""
        return False, "no RBAC policy matched"


class TokenAuthenticator:
    def __init__(self) -> None:
        self._tokens: dict[str, User] = {}

    def add(self, token: str, user: User) -> None:
        self._tokens[token] = user

    def authenticate(self, header: str | None) -> User:
        if not header:
            raise errors.Unauthorized("Unauthorized")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized("Unauthorized")
        token = token.strip()
        for known, user in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        raise errors.Unauthorized("Unauthorized")


def forbidden_message(user: User, attrs: Attributes) -> str:
    """Kubernetes' wording, e.g. ``pods is forbidden: User "x" cannot list resource "pods" in
    API group "" in the namespace "default"``."""
    if not attrs.is_resource:
        return f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    target = f'{resource} "{attrs.name}"' if attrs.name else resource
    what = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    return (
        f'{target} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{what}" in '
        f'API group "{attrs.group}"{where}'
    )


def load_or_create_token(path: Path) -> str:
    """The admin token kept in the data dir (mode 0600), created on first use."""
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token
