"""Authentication (bearer tokens) and the authorization seam.

Every API request carries ``Authorization: Bearer <token>``. :class:`TokenAuthenticator` maps tokens
to users; the admin token that ``procorch up`` writes into the kubeconfig belongs to
``procorch-admin`` in ``system:masters``; the join token's secret to ``system:bootstrap:node`` in
``system:bootstrappers``, which may only join; a node token (:meth:`TokenAuthenticator.node_token`)
to ``system:node:<name>`` in ``system:nodes``. (No client certificates on the API port: asking every
client for one cost 500 us per TLS handshake here, client and server together.) Tokens are compared
in constant time and never logged.

:class:`Authorizer` decides whether a user may perform a verb on a resource: the API server's
is :class:`procorch.apiserver.rbac.RbacAuthorizer` (``system:masters``, :func:`node_may`, then
RBAC).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from procorch.api import errors
from procorch.api.rbac.index import SERVICE_ACCOUNT_PREFIX
from procorch.api.rbac.rules import Request
from procorch.kit.pki import MASTERS_GROUP, NODE_USER_PREFIX, NODES_GROUP, write_private


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return MASTERS_GROUP in self.groups


AUTHENTICATED = "system:authenticated"
ADMIN = User(name="procorch-admin", groups=("system:masters", "system:authenticated"))
# What in-process components run as: full access, but a distinct name in managedFields/logs.
SYSTEM = User(name="system:procorch", groups=("system:masters", "system:authenticated"))


Attributes = Request
"""What a request wants to do, in Kubernetes authorization terms (RBAC's own request type)."""


def service_account_user(
    namespace: str, name: str, *, uid: str = "", extra: dict[str, tuple[str, ...]] | None = None
) -> User:
    """The user a ServiceAccount's token stands for, in the groups Kubernetes gives it."""
    return User(
        name=f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        uid=uid,
        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        extra=extra or {},
    )


def user_info(user: User) -> dict[str, Any]:
    """``UserInfo`` as reviews answer it: username, uid, groups, extra."""
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


class Authorizer(Protocol):
    def allowed(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason explains a refusal."""
        ...


NODE_LEASE_NAMESPACE = "kube-node-lease"
READ_VERBS = frozenset({"get", "list", "watch"})
# What a node's agent, Service proxy and Ingress router read: (group, resource).
NODE_READS = frozenset(
    {
        ("", "pods"),
        ("", "nodes"),
        ("", "services"),
        ("", "endpoints"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"),
        ("", "namespaces"),
        ("", "serviceaccounts"),
        ("discovery.k8s.io", "endpointslices"),
        ("batch", "jobs"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("coordination.k8s.io", "leases"),
    }
)
NODE_HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})


NODE_GROUPS = (NODES_GROUP, "system:authenticated")


def node_name_of(user: User) -> str | None:
    """The node a ``system:node:<name>`` user in ``system:nodes`` is, else None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
        return user.name[len(NODE_USER_PREFIX) :] or None
    return None


def node_may(node: str, attrs: Attributes) -> bool:
    """What the Node authorizer lets node ``node`` do, in its spirit: read what its pods and
    proxies use; write its own Node and heartbeat Lease, its pods' status, pod deletion,
    Events, and the status of Services and Ingresses it serves. Names on create are checked
    by :func:`node_restriction` (the attributes carry none)."""
    verb, what, sub = attrs.verb, (attrs.group, attrs.resource), attrs.subresource
    if not attrs.is_resource:
        return verb == "get" and attrs.path in NODE_HEALTH_PATHS
    if verb in READ_VERBS and sub in ("", "status") and what in NODE_READS:
        return True
    own = attrs.name == node
    if what == ("", "nodes"):
        return verb == "create" or (own and verb in ("get", "update", "patch"))
    if what == ("coordination.k8s.io", "leases") and attrs.namespace == NODE_LEASE_NAMESPACE:
        return verb == "create" or (own and verb in ("get", "update", "patch"))
    if what == ("", "pods"):
        # Kubernetes also checks that the pod is bound to this node (NodeRestriction).
        return (verb == "delete" and not sub) or (sub == "status" and verb in ("update", "patch"))
    if what in (("", "events"), ("events.k8s.io", "events")):
        return verb in ("create", "update", "patch")
    if what in (("", "services"), ("networking.k8s.io", "ingresses")):
        return sub == "status" and verb in ("get", "update", "patch")
    if what == ("", "serviceaccounts"):
        # Its pods' tokens; which pods is checked where the token is issued.
        return sub == "token" and verb == "create"
    return False


def node_restriction(user: User, group: str, resource: str, name: str) -> None:
    """On create: a node registers only its own Node and heartbeat Lease (NodeRestriction)."""
    node = node_name_of(user)
    if node is None or (group, resource) not in (("", "nodes"), ("coordination.k8s.io", "leases")):
        return
    if name != node:
        raise errors.Forbidden(
            f'{resource} "{name}" is forbidden: node "{node}" is not allowed to modify '
            f'{resource} "{name}"',
            details={"name": name, "kind": resource, "group": group},
        )


def node_owns(user: User, rt_key: str, obj: dict[str, Any], *, verb: str) -> None:
    """A node changes or deletes only the pods bound to it (NodeRestriction)."""
    node = node_name_of(user)
    if node is None or rt_key != "core/pods":
        return
    if ((obj.get("spec") or {}).get("nodeName") or "") == node:
        return
    name = str((obj.get("metadata") or {}).get("name") or "")
    what = "update pod status for" if verb == "update" else "delete"
    raise errors.Forbidden(
        f'pods "{name}" is forbidden: node "{node}" can only {what} pods with spec.nodeName '
        "set to itself",
        details={"name": name, "kind": "pods"},
    )


NODE_TOKEN_PREFIX = "procorch-node."


class TokenAuthenticator:
    def __init__(self) -> None:
        self._tokens: dict[str, User] = {}
        self._node_key = b""
        self._signed: Callable[[str], User] | None = None

    def accept_signed(self, authenticate: Callable[[str], User]) -> None:
        """Accept signed tokens (JWTs: ServiceAccount and user tokens) that ``authenticate``
        maps to a user, raising for any it does not."""
        self._signed = authenticate

    def add(self, token: str, user: User) -> None:
        self._tokens[token] = user

    def sign_nodes_with(self, key: bytes) -> None:
        """Accept node tokens signed with ``key`` (see :meth:`node_token`)."""
        self._node_key = key

    def node_token(self, node: str) -> str:
        """``procorch-node.<name>.<HMAC-SHA256 of the name>``: the bearer token a joined node
        acts with (``system:node:<name>`` in ``system:nodes``), checked without any state.
        (Until ServiceAccount-style signed tokens exist it has no expiry; a new key in the
        data dir revokes every node's.)"""
        if not self._node_key:
            raise RuntimeError("no node token key")
        mac = hmac.new(self._node_key, node.encode(), hashlib.sha256).hexdigest()
        return f"{NODE_TOKEN_PREFIX}{node}.{mac}"

    def authenticate(self, header: str | None) -> User:
        if not header:
            raise errors.Unauthorized("Unauthorized")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized("Unauthorized")
        token = token.strip()
        if token.startswith(NODE_TOKEN_PREFIX) and self._node_key:
            node = token[len(NODE_TOKEN_PREFIX) :].rpartition(".")[0]
            if node and hmac.compare_digest(self.node_token(node).encode(), token.encode()):
                return User(name=f"{NODE_USER_PREFIX}{node}", groups=NODE_GROUPS)
            raise errors.Unauthorized("Unauthorized")
        for known, user in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        if self._signed is not None and token.count(".") == 2:
            try:
                return self._signed(token)
            except Exception:  # noqa: BLE001 - any reason is the same 401, and says nothing
                pass
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
    write_private(path, f"{token}\n".encode())
    return token


def load_or_create_key(path: Path) -> bytes:
    """32 random bytes kept in the data dir (mode 0600), made on first use."""
    try:
        key = bytes.fromhex(path.read_text().strip())
        if len(key) == 32:
            return key
    except (OSError, ValueError):
        pass
    key = secrets.token_bytes(32)
    write_private(path, f"{key.hex()}\n".encode())
    return key
