"""Secret-based ServiceAccount tokens, as Kubernetes 1.32 still populates them.

A Secret of type ``kubernetes.io/service-account-token`` annotated
``kubernetes.io/service-account.name`` gets, from this controller (kube-controller-manager's
tokens controller), ``data.token`` (a JWT of the legacy issuer ``kubernetes/serviceaccount``,
with no expiry), ``data.ca.crt`` and ``data.namespace``, and the account's uid in the
``kubernetes.io/service-account.uid`` annotation. Such a token authenticates as its
ServiceAccount while the Secret exists, still holds it, and names an account that exists
(:func:`authenticate`). Nothing is generated for an account on its own (since Kubernetes 1.24).

Concurrency: one task on the API server's loop watches Secrets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
from typing import Any

from procorch.api import errors
from procorch.api.meta import deep_copy
from procorch.api.rbac.index import SERVICE_ACCOUNT_PREFIX
from procorch.api.resources import must
from procorch.apiserver.auth import SYSTEM, User, service_account_user
from procorch.apiserver.verbs_core import ServiceCore
from procorch.kit.logging import get_logger
from procorch.kit.tokens import LEGACY_ISSUER, Claims, TokenError, TokenSigner
from procorch.store.base import Event, Key
from procorch.store.follow import follow

log = get_logger("apiserver.tokens")

SECRETS = must("core/secrets")
SERVICE_ACCOUNTS = must("core/serviceaccounts")
TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"
_PREFIX = "kubernetes.io/serviceaccount/"


def authenticate(store: Any, claims: Claims, token: str) -> User:
    """The ServiceAccount a legacy token stands for (:class:`TokenError` if none now)."""
    namespace = str(claims.get(f"{_PREFIX}namespace") or "")
    secret_name = str(claims.get(f"{_PREFIX}secret.name") or "")
    account = str(claims.get(f"{_PREFIX}service-account.name") or "")
    uid = str(claims.get(f"{_PREFIX}service-account.uid") or "")
    secret = store.get(Key(SECRETS.key, namespace, secret_name))
    if secret is None:
        raise TokenError("its Secret is gone")
    data = secret.object.get("data") or {}
    try:
        held = base64.b64decode(str(data.get("token") or ""))
    except ValueError:
        held = b""
    if not hmac.compare_digest(held, token.encode()):
        raise TokenError("its Secret no longer holds it")
    stored = store.get(Key(SERVICE_ACCOUNTS.key, namespace, account))
    if stored is None or stored.object["metadata"].get("uid") != uid:
        raise TokenError("its ServiceAccount is gone")
    return service_account_user(namespace, account, uid=uid)


class LegacyTokenController:
    def __init__(self, service: ServiceCore, signer: TokenSigner, ca_pem: bytes) -> None:
        self.service = service
        self.store = service.store
        self.signer = signer
        self.ca_pem = ca_pem
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        revision = await self._resync()
        self._task = asyncio.create_task(self._watch(revision), name="apiserver/legacy-tokens")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self, revision: int) -> None:
        await follow(
            self.store, SECRETS.key, revision, on_event=self._on_event, resync=self._resync
        )

    async def _on_event(self, event: Event) -> None:
        if event.type != "DELETED":
            await self._populate_safely(event.current.object)

    async def _resync(self) -> int:
        items, revision = self.store.list(SECRETS.key)
        for item in items:
            await self._populate_safely(item.object)
        return revision

    async def _populate_safely(self, secret: dict[str, Any]) -> None:
        try:
            await self._populate(secret)
        except (errors.NotFound, errors.Conflict):
            pass  # gone, or changed meanwhile: its next event comes
        except Exception:  # noqa: BLE001 - one bad Secret must not stop the others
            log.exception("populating a ServiceAccount token Secret failed")

    async def _populate(self, secret: dict[str, Any]) -> None:
        if secret.get("type") != TYPE:
            return
        meta = secret["metadata"]
        annotations = meta.get("annotations") or {}
        account_name = str(annotations.get(NAME_ANNOTATION) or "")
        namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
        data = secret.get("data") or {}
        if not account_name or meta.get("deletionTimestamp"):
            return
        account = self.store.get(Key(SERVICE_ACCOUNTS.key, namespace, account_name))
        if account is None:
            return  # Kubernetes deletes such a Secret; procorch leaves it, unpopulated
        uid = str(account.object["metadata"].get("uid") or "")
        if data.get("token") and annotations.get(UID_ANNOTATION) == uid:
            return
        claims = {
            "iss": LEGACY_ISSUER,
            f"{_PREFIX}namespace": namespace,
            f"{_PREFIX}secret.name": name,
            f"{_PREFIX}service-account.name": account_name,
            f"{_PREFIX}service-account.uid": uid,
            "sub": f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{account_name}",
        }
        updated = deep_copy(secret)
        updated["metadata"].setdefault("annotations", {})[UID_ANNOTATION] = uid
        updated["data"] = {
            **data,
            "token": base64.b64encode(self.signer.sign(claims).encode()).decode(),
            "ca.crt": base64.b64encode(self.ca_pem).decode(),
            "namespace": base64.b64encode(namespace.encode()).decode(),
        }
        await self.service.update(SYSTEM, SECRETS, namespace, name, updated)
        log.info("populated a ServiceAccount token Secret", namespace=namespace, secret=name)
