"""ServiceAccount tokens and user tokens: issuing, authenticating, reviewing, discovery.

* ``POST .../serviceaccounts/{name}/token`` (TokenRequest, ``kubectl create token``): a bound
  token, a JWT signed with the cluster's token key (:mod:`procorch.kit.tokens`), for the
  requested audiences (default: the API server), valid ``expirationSeconds`` (default an
  hour, at least 10 minutes, as Kubernetes clamps it), bound to a Pod, Secret or Node when
  ``boundObjectRef`` says so.
* Authentication (:meth:`Tokens.authenticate`): a token of ours whose ServiceAccount, and
  bound object, still exist with the uids it names acts as
  ``system:serviceaccount:<ns>:<name>`` in ``system:serviceaccounts`` and
  ``system:serviceaccounts:<ns>``, with the pod's name and uid and the token's id in
  ``extra``, as Kubernetes names them. A token whose pod is deleted stops working at once.
* User tokens (``procorch kubeconfig --user``): the same JWTs with a user name and groups
  (:func:`procorch.kit.tokens.user_claims`); they end when they expire, or for all at once when the key is
  replaced.
* TokenReview (``authentication.k8s.io/v1``) answers from the same checks.
* ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``: issuer discovery, for
  whoever may ``get`` those paths (``system:service-account-issuer-discovery``).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from procorch.api import errors
from procorch.api.meta import rfc3339
from procorch.api.rbac.index import SERVICE_ACCOUNT_PREFIX
from procorch.api.resources import ResourceType, must
from procorch.apiserver import decode, legacytokens
from procorch.apiserver.auth import (
    AUTHENTICATED,
    Attributes,
    User,
    forbidden_message,
    node_name_of,
    service_account_user,
    user_info,
)
from procorch.apiserver.verbs_core import ServiceCore
from procorch.kit.tokens import ISSUER, LEGACY_ISSUER, USER_CLAIM, TokenError, TokenSigner
from procorch.store.base import Key

Claims = dict[str, Any]
KUBERNETES = "kubernetes.io"
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 2**32
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
_BINDABLE = {"Pod": "core/pods", "Secret": "core/secrets", "Node": "core/nodes"}
SERVICE_ACCOUNTS = must("core/serviceaccounts")


class Tokens:
    """See the module docstring."""

    def __init__(self, service: ServiceCore) -> None:
        self.service = service
        self.store = service.store
        self._signer: TokenSigner | None = None

    def use_key(self, path: Path) -> None:
        """Sign and check with the key at ``path`` (made on first use)."""
        self._signer = TokenSigner.load_or_create(path)

    @property
    def signer(self) -> TokenSigner:
        if self._signer is None:
            raise RuntimeError("the token key is not loaded yet")
        return self._signer

    # -- authentication ----------------------------------------------------------------------

    def authenticate(self, token: str, *, audiences: tuple[str, ...] = (ISSUER,)) -> User:
        """The user ``token`` stands for; :class:`TokenError` if it stands for nobody."""
        claims = self.signer.verify(token, audiences=audiences)
        if claims.get("iss") == LEGACY_ISSUER:
            return legacytokens.authenticate(self.store, claims, token)
        bound = claims.get(KUBERNETES)
        if isinstance(bound, dict):
            return self._service_account(claims, bound)
        user = claims.get(USER_CLAIM)
        name = claims.get("sub")
        if isinstance(user, dict) and isinstance(name, str) and name:
            groups = [g for g in user.get("groups") or [] if isinstance(g, str)]
            if AUTHENTICATED not in groups:
                groups.append(AUTHENTICATED)
            return User(name=name, groups=tuple(groups))
        raise TokenError("neither a ServiceAccount's nor a user's token")

    def _service_account(self, claims: Claims, bound: dict[str, Any]) -> User:
        namespace = str(bound.get("namespace") or "")
        account = bound.get("serviceaccount") or {}
        name = str(account.get("name") or "")
        uid = str(account.get("uid") or "")
        stored = self.store.get(Key(SERVICE_ACCOUNTS.key, namespace, name))
        if stored is None or (uid and stored.object["metadata"].get("uid") != uid):
            raise TokenError(f"service account {namespace}/{name} is gone")
        extra: dict[str, tuple[str, ...]] = {}
        for kind in ("pod", "secret", "node"):
            ref = bound.get(kind)
            if not isinstance(ref, dict):
                continue
            key = _BINDABLE[kind.capitalize()]
            where = "" if kind == "node" else namespace
            obj = self.store.get(Key(key, where, str(ref.get("name") or "")))
            if obj is None or obj.object["metadata"].get("uid") != ref.get("uid"):
                raise TokenError(f"the {kind} the token is bound to is gone")
            extra[f"authentication.kubernetes.io/{kind}-name"] = (str(ref.get("name")),)
            extra[f"authentication.kubernetes.io/{kind}-uid"] = (str(ref.get("uid")),)
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = (f"JTI={claims['jti']}",)
        return service_account_user(namespace, name, uid=uid, extra=extra)

    # -- TokenRequest --------------------------------------------------------------------------

    async def token_request(
        self, request: web.BaseRequest, user: User, rt: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        """``POST .../serviceaccounts/{name}/token`` over HTTP."""
        if request.method != "POST":
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        body = (await decode.read_body(request)).value
        if not isinstance(body, dict):
            raise errors.BadRequest("the body of the request must be a TokenRequest object")
        answer = self.request(user, namespace, name, body)
        return web.Response(
            status=201, body=orjson.dumps(answer), headers={"Content-Type": "application/json"}
        )

    def request(
        self, user: User, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A TokenRequest by ``user`` for ServiceAccount ``namespace/name``: authorized
        (``create serviceaccounts/token``; a node only for a pod bound to it and running as
        that account, as NodeRestriction allows), then issued."""
        self.service.authorize(
            user, "create", SERVICE_ACCOUNTS, namespace=namespace, name=name, subresource="token"
        )
        stored = self.store.get(Key(SERVICE_ACCOUNTS.key, namespace, name))
        if stored is None:
            raise errors.NotFound(
                f'serviceaccounts "{name}" not found',
                details={"name": name, "kind": "serviceaccounts"},
            )
        account = stored.object
        node = node_name_of(user)
        if node is not None:
            self._node_may_request(node, namespace, name, body)
        return self.issue(account, body)

    def _node_may_request(self, node: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        ref = spec.get("boundObjectRef") if isinstance(spec.get("boundObjectRef"), dict) else {}
        assert isinstance(ref, dict)
        pod = None
        if ref.get("kind") == "Pod":
            pod = self.store.get(Key("core/pods", namespace, str(ref.get("name") or "")))
        reason = ""
        if pod is None:
            reason = "node requested token not bound to a pod"
        elif (pod.object.get("spec") or {}).get("nodeName") != node:
            reason = "node requested token bound to a pod scheduled on a different node"
        elif ((pod.object.get("spec") or {}).get("serviceAccountName") or "default") != name:
            reason = "node requested token for a service account its pod does not use"
        if reason:
            raise errors.Forbidden(
                f'serviceaccounts "{name}" is forbidden: {reason}',
                details={"name": name, "kind": "serviceaccounts"},
            )

    def issue(self, account: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """Sign a token for ``account`` as the TokenRequest ``body`` asks; the TokenRequest
        with its ``status``."""
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        meta = account["metadata"]
        namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
        causes: list[errors.Cause] = []
        audiences = spec.get("audiences") or [ISSUER]
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            causes.append(errors.invalid("spec.audiences", audiences, "must be a list of strings"))
        seconds = spec.get("expirationSeconds")
        seconds = DEFAULT_SECONDS if seconds is None else seconds
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            causes.append(errors.invalid("spec.expirationSeconds", seconds, "must be an integer"))
        elif seconds < MIN_SECONDS:
            causes.append(
                errors.invalid(
                    "spec.expirationSeconds",
                    seconds,
                    "may not specify a duration less than 10 minutes",
                )
            )
        elif seconds > MAX_SECONDS:
            causes.append(
                errors.invalid(
                    "spec.expirationSeconds",
                    seconds,
                    "may not specify a duration larger than 2^32 seconds",
                )
            )
        bound: dict[str, Any] = {}
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict) and ref:
            kind = str(ref.get("kind") or "")
            if kind not in _BINDABLE:
                causes.append(
                    errors.not_supported("spec.boundObjectRef.kind", kind, sorted(_BINDABLE))
                )
            else:
                where = "" if kind == "Node" else namespace
                target = self.store.get(Key(_BINDABLE[kind], where, str(ref.get("name") or "")))
                if target is None:
                    raise errors.NotFound(
                        f'{kind.lower()}s "{ref.get("name")}" not found',
                        details={"name": str(ref.get("name")), "kind": f"{kind.lower()}s"},
                    )
                target_uid = target.object["metadata"].get("uid")
                runs_as = (target.object.get("spec") or {}).get("serviceAccountName") or "default"
                if kind == "Pod" and runs_as != name:
                    raise errors.BadRequest(
                        f'cannot bind token for serviceaccount "{name}" to pod running with '
                        f"different serviceaccount name."
                    )
                if ref.get("uid") and ref.get("uid") != target_uid:
                    raise errors.Conflict(
                        f"the UID in the bound object reference ({ref.get('uid')}) does not "
                        f"match the UID in record. The object might have been deleted and then "
                        f"recreated",
                        details={"name": str(ref.get("name"))},
                    )
                bound[kind.lower()] = {"name": str(ref.get("name")), "uid": target_uid}
        if causes:
            raise errors.Invalid(
                kind="TokenRequest", name=name, causes=causes, group="authentication.k8s.io"
            )
        issued = int(time.time())
        assert isinstance(seconds, int)
        claims = {
            "aud": audiences,
            "exp": issued + seconds,
            "iat": issued,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            KUBERNETES: {
                "namespace": namespace,
                **bound,
                "serviceaccount": {"name": name, "uid": meta.get("uid")},
            },
            "nbf": issued,
            "sub": f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        }
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {
                "audiences": audiences,
                "expirationSeconds": seconds,
                "boundObjectRef": ref if isinstance(ref, dict) and ref else None,
            },
            "status": {
                "token": self.signer.sign(claims),
                "expirationTimestamp": rfc3339(datetime.fromtimestamp(issued + seconds, UTC)),
            },
        }

    # -- TokenReview -----------------------------------------------------------------------------

    def review(self, body: dict[str, Any], user: User) -> dict[str, Any]:
        """``authentication.k8s.io/v1`` TokenReview, for whoever may create tokenreviews."""
        attrs = Attributes(verb="create", group="authentication.k8s.io", resource="tokenreviews")
        allowed, _ = self.service.authorizer.allowed(user, attrs)
        if not allowed:
            raise errors.Forbidden(forbidden_message(user, attrs), details={})
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        token = spec.get("token")
        asked = spec.get("audiences") or [ISSUER]
        if not isinstance(asked, list) or not all(isinstance(a, str) for a in asked):
            raise errors.Invalid(
                kind="TokenReview",
                name="",
                group="authentication.k8s.io",
                causes=[errors.invalid("spec.audiences", asked, "must be a list of strings")],
            )
        audiences = tuple(asked)
        status: dict[str, Any] = {"authenticated": False, "user": {}}
        try:
            who = self.authenticate(str(token or ""), audiences=audiences)
        except TokenError:
            status["error"] = "[invalid bearer token, token lookup failed]"
            return {**body, "status": status}
        status.update(authenticated=True, user=user_info(who), audiences=list(audiences))
        return {**body, "status": status}

    # -- issuer discovery ---------------------------------------------------------------------------

    async def issuer_discovery(self, request: web.BaseRequest, user: User) -> web.StreamResponse:
        """``/.well-known/openid-configuration`` and ``/openid/v1/jwks``."""
        path = request.path.rstrip("/")
        attrs = Attributes(verb="get", path=request.path)
        allowed, _ = self.service.authorizer.allowed(user, attrs)
        if not allowed:
            raise errors.Forbidden(forbidden_message(user, attrs), details={})
        if path == DISCOVERY_PATH:
            base = f"{request.scheme}://{request.host}"
            document: dict[str, Any] = {
                "issuer": ISSUER,
                "jwks_uri": f"{base}{JWKS_PATH}",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            }
        elif path == JWKS_PATH:
            document = self.signer.jwks()
        else:
            raise errors.NotFound("the server could not find the requested resource", details={})
        return web.Response(
            body=orjson.dumps(document), headers={"Content-Type": "application/json"}
        )
