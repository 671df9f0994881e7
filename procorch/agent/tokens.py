"""ServiceAccount tokens for pods' projected volumes, fetched and renewed as the kubelet's
token manager does.

For each ``serviceAccountToken`` source of a pod's projected volumes, :meth:`Tokens.ensure`
asks the API for a token of the pod's ServiceAccount, bound to the pod, for the source's
audience (default: the API server) and ``expirationSeconds`` (default 3607, as the admission
plugin writes it): a TokenRequest, which a node may make only for its own pods. A token is
renewed when 80 % of its life has passed (or a day, whichever comes first); a renewal that
fails keeps the token it had while that still holds, and tries again ten seconds later. The
volume code reads what is cached (:meth:`Tokens.token`), so writing files never waits for
the API.

Concurrency: one instance per agent, on its event loop; ``ensure`` for one pod is called by
that pod's worker only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.kit.logging import get_logger

log = get_logger("agent.tokens")

SERVICE_ACCOUNTS = must("core/serviceaccounts")
DEFAULT_SECONDS = 3607
RENEW_FRACTION = 0.8
MAX_AGE = 24 * 3600
RENEW_RETRY = 10.0


@dataclass(frozen=True)
class _Token:
    value: str
    issued: float
    renew_at: float
    expires: float


def sources(pod: dict[str, Any]) -> list[tuple[str, int]]:
    """The (audience, expirationSeconds) of every serviceAccountToken the pod's volumes
    project (audience ``""``: the API server's)."""
    found: list[tuple[str, int]] = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        projected = volume.get("projected") or {}
        for source in projected.get("sources") or []:
            token = source.get("serviceAccountToken")
            if isinstance(token, dict):
                seconds = token.get("expirationSeconds") or DEFAULT_SECONDS
                found.append((str(token.get("audience") or ""), int(seconds)))
    return found


class Tokens:
    def __init__(self, client: Client) -> None:
        self.client = client
        # pod uid -> (audience, seconds) -> its token
        self._cache: dict[str, dict[tuple[str, int], _Token]] = {}

    async def ensure(self, pod: dict[str, Any]) -> None:
        """Fetch or renew the tokens ``pod`` needs (an API error propagates: the volume
        cannot be set up yet)."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        now = time.time()
        held = self._cache.setdefault(uid, {})
        for audience, seconds in sources(pod):
            key = (audience, seconds)
            cached = held.get(key)
            if cached is not None and now < cached.renew_at:
                continue
            try:
                held[key] = await self._request(pod, audience, seconds)
            except (errors.ApiError, OSError) as exc:
                if cached is None or now >= cached.expires:
                    raise
                # A renewal failed while the token still holds: keep it, try again soon.
                log.warning("renewing a pod's token failed", pod=meta.get("name"), error=str(exc))
                held[key] = replace(cached, renew_at=now + RENEW_RETRY)

    async def _request(self, pod: dict[str, Any], audience: str, seconds: int) -> _Token:
        meta = pod["metadata"]
        account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        spec: dict[str, Any] = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        answer = await self.client.create_subresource(
            SERVICE_ACCOUNTS,
            account,
            "token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            namespace=str(meta.get("namespace") or ""),
        )
        issued = time.time()
        life = min(seconds * RENEW_FRACTION, MAX_AGE)
        return _Token(str(answer["status"]["token"]), issued, issued + life, issued + seconds)

    def token(self, pod_uid: str, audience: str, seconds: int) -> str | None:
        cached = self._cache.get(pod_uid, {}).get((audience, seconds))
        return cached.value if cached is not None else None

    def next_renewal(self, pod_uid: str) -> float | None:
        """When the first of the pod's tokens is due for renewal (wall-clock seconds)."""
        due = [t.renew_at for t in self._cache.get(pod_uid, {}).values()]
        return min(due) if due else None

    def forget(self, pod_uid: str) -> None:
        self._cache.pop(pod_uid, None)
