"""Self-reviews: "may I?" and "who am I?", as ``kubectl auth can-i`` and ``kubectl auth whoami``
ask them.

* ``authorization.k8s.io/v1`` ``selfsubjectaccessreviews``: one request's attributes
  (``spec.resourceAttributes`` or ``spec.nonResourceAttributes``) put to the API server's own
  authorizer for the calling user; ``status.allowed`` and ``status.reason``.
* ``authorization.k8s.io/v1`` ``selfsubjectrulesreviews`` (``can-i --list``): the RBAC rules
  the user holds in a namespace (everything for ``system:masters``).
* ``authorization.k8s.io/v1`` ``subjectaccessreviews`` and ``localsubjectaccessreviews``: the
  same question for another user (``spec.user``, ``spec.groups``), for those who may create
  them (``system:auth-delegator``; ``admin`` for the local ones in its namespace).
* ``authentication.k8s.io/v1`` ``selfsubjectreviews``: the calling user's name, uid and groups.
* ``authentication.k8s.io/v1`` ``tokenreviews``: who a token stands for
  (:meth:`procorch.apiserver.tokens.Tokens.review`), for those who may create them.

All are create-only, never stored (the request comes back with its ``status``), and answered
through :attr:`ApiServer.prefix_handlers`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from procorch.api import errors
from procorch.apiserver import decode, discovery
from procorch.apiserver.auth import Attributes, User, forbidden_message, user_info
from procorch.apiserver.rbac import RbacAuthorizer
from procorch.apiserver.tokens import Tokens

AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"
AUTHZ_PREFIX = f"/apis/{AUTHZ}/v1/"
AUTHN_PREFIX = f"/apis/{AUTHN}/v1/"

Obj = dict[str, Any]


def _resource(group: str, plural: str, kind: str) -> Obj:
    return {
        "resource": plural,
        "responseKind": {"group": group, "version": "v1", "kind": kind},
        "scope": "Cluster",
        "singularResource": kind.lower(),
        "verbs": ["create"],
    }


def register_discovery() -> None:
    """Announce both groups."""
    discovery.register_extra(
        AUTHZ,
        "v1",
        [
            _resource(AUTHZ, "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
            _resource(AUTHZ, "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
            _resource(AUTHZ, "subjectaccessreviews", "SubjectAccessReview"),
            {
                **_resource(AUTHZ, "localsubjectaccessreviews", "LocalSubjectAccessReview"),
                "scope": "Namespaced",
            },
        ],
    )
    discovery.register_extra(
        AUTHN,
        "v1",
        [
            _resource(AUTHN, "selfsubjectreviews", "SelfSubjectReview"),
            _resource(AUTHN, "tokenreviews", "TokenReview"),
        ],
    )


class SelfReviews:
    """The ``prefix_handlers`` entry for both groups."""

    def __init__(self, authorizer: RbacAuthorizer, tokens: Tokens) -> None:
        self.authorizer = authorizer
        self.tokens = tokens

    async def handle(self, request: web.BaseRequest, user: User) -> web.StreamResponse:
        path = request.path.rstrip("/")
        group, _, resource = path[len("/apis/") :].partition("/v1/")
        namespace = ""
        if resource.startswith("namespaces/") and resource.count("/") == 2:
            _, namespace, resource = resource.split("/")
            if resource != "localsubjectaccessreviews":
                raise errors.NotFound(
                    "the server could not find the requested resource", details={}
                )
        elif resource == "localsubjectaccessreviews":
            raise errors.NotFound("the server could not find the requested resource", details={})
        handlers = {
            (AUTHZ, "selfsubjectaccessreviews"): self._access,
            (AUTHZ, "selfsubjectrulesreviews"): self._rules,
            (AUTHN, "selfsubjectreviews"): self._whoami,
            (AUTHZ, "subjectaccessreviews"): self._subject_access,
            (AUTHZ, "localsubjectaccessreviews"): self._subject_access,
            (AUTHN, "tokenreviews"): self.tokens.review,
        }
        handler = handlers.get((group, resource))
        if handler is None:
            raise errors.NotFound("the server could not find the requested resource", details={})
        if request.method != "POST":
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        # kubectl's typed clients send protobuf; others JSON or YAML.
        body = (await decode.read_body(request)).value
        if not isinstance(body, dict):
            raise errors.BadRequest("the request body must be a JSON object")
        kind = {
            "selfsubjectaccessreviews": "SelfSubjectAccessReview",
            "selfsubjectrulesreviews": "SelfSubjectRulesReview",
            "selfsubjectreviews": "SelfSubjectReview",
            "tokenreviews": "TokenReview",
            "subjectaccessreviews": "SubjectAccessReview",
            "localsubjectaccessreviews": "LocalSubjectAccessReview",
        }[resource]
        body["metadata"] = {**_dict(body.get("metadata")), "creationTimestamp": None}
        if namespace:
            body["metadata"]["namespace"] = namespace
        answer = {**handler(body, user), "apiVersion": f"{group}/v1", "kind": kind}
        return web.Response(
            status=201, body=orjson.dumps(answer), headers={"Content-Type": "application/json"}
        )

    def _subject_access(self, body: Obj, user: User) -> Obj:
        """Whether ``spec.user`` in ``spec.groups`` may do what the review asks."""
        namespace = str(_dict(body.get("metadata")).get("namespace") or "")
        local = bool(namespace)
        kind = "LocalSubjectAccessReview" if local else "SubjectAccessReview"
        resource = "localsubjectaccessreviews" if local else "subjectaccessreviews"
        asking = Attributes(verb="create", group=AUTHZ, resource=resource, namespace=namespace)
        if not self.authorizer.allowed(user, asking)[0]:
            raise errors.Forbidden(
                forbidden_message(user, asking), details={"group": AUTHZ, "kind": resource}
            )
        spec = _dict(body.get("spec"))
        causes = []
        if not spec.get("user") and not spec.get("groups"):
            causes.append(
                errors.invalid("spec.user", "", "at least one of user or group must be specified")
            )
        attributes = _dict(spec.get("resourceAttributes"))
        if local and attributes.get("namespace") not in (None, "", namespace):
            causes.append(
                errors.invalid(
                    "spec.resourceAttributes.namespace",
                    attributes.get("namespace"),
                    "must match metadata.namespace",
                )
            )
        if causes:
            raise errors.Invalid(kind=kind, name="", group=AUTHZ, causes=causes)
        if local:
            spec["resourceAttributes"] = (
                {**attributes, "namespace": namespace} if attributes else None
            )
        groups = tuple(g for g in spec.get("groups") or [] if isinstance(g, str))
        extra = {
            str(k): tuple(v) for k, v in _dict(spec.get("extra")).items() if isinstance(v, list)
        }
        subject = User(
            name=str(spec.get("user") or ""),
            groups=groups,
            uid=str(spec.get("uid") or ""),
            extra=extra,
        )
        return self._access(
            {**body, "spec": {k: v for k, v in spec.items() if v is not None}}, subject, kind=kind
        )

    def _access(self, body: Obj, user: User, *, kind: str = "SelfSubjectAccessReview") -> Obj:
        spec = _dict(body.get("spec"))
        res, non = _dict(spec.get("resourceAttributes")), _dict(spec.get("nonResourceAttributes"))
        if bool(res) == bool(non):
            raise errors.Invalid(
                kind=kind,
                name="",
                group=AUTHZ,
                causes=[
                    errors.Cause(
                        "FieldValueInvalid",
                        'Invalid value: "null": exactly one of nonResourceAttributes or '
                        "resourceAttributes must be specified",
                        "spec.resourceAttributes",
                    )
                ],
            )
        if res:
            attrs = Attributes(
                verb=str(res.get("verb") or ""),
                group=str(res.get("group") or ""),
                resource=str(res.get("resource") or ""),
                subresource=str(res.get("subresource") or ""),
                namespace=str(res.get("namespace") or ""),
                name=str(res.get("name") or ""),
            )
        else:
            attrs = Attributes(verb=str(non.get("verb") or ""), path=str(non.get("path") or ""))
        allowed, reason = self.authorizer.allowed(user, attrs)
        if allowed and not reason:
            reason = f'user "{user.name}" is in group "system:masters"' if user.is_admin else ""
        status: Obj = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        return {**body, "status": status}

    def _rules(self, body: Obj, user: User) -> Obj:
        spec = _dict(body.get("spec"))
        namespace = str(spec.get("namespace") or "")
        status: Obj = {"resourceRules": [], "nonResourceRules": [], "incomplete": False}
        if user.is_admin:
            status["resourceRules"] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
            status["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        for rule in self.authorizer.rules_for(user, namespace):
            if rule.get("nonResourceURLs"):
                status["nonResourceRules"].append(
                    {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
                )
                continue
            listed = {k: rule.get(k) for k in ("verbs", "apiGroups", "resources", "resourceNames")}
            status["resourceRules"].append({k: v for k, v in listed.items() if v})
        return {**body, "status": status}

    def _whoami(self, body: Obj, user: User) -> Obj:
        return {**body, "status": {"userInfo": user_info(user)}}


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}
