"""Impersonation: ``kubectl --as``, ``--as-group``, ``--as-uid``, as kube-apiserver's
impersonation filter handles them.

A request carrying ``Impersonate-User`` (and optionally ``Impersonate-Group`` headers,
``Impersonate-Uid`` and ``Impersonate-Extra-<key>``) is served as that user, when the
authenticated user may ``impersonate`` each of them: ``users`` (or the ``serviceaccounts``
object, for ``system:serviceaccount:<ns>:<name>``) and ``groups`` in the core group,
``uids`` and ``userextras/<key>`` in ``authentication.k8s.io``. The impersonated user is in
``system:authenticated`` (and a ServiceAccount in ``system:serviceaccounts`` and
``system:serviceaccounts:<ns>`` unless groups are given), as Kubernetes adds them.
"""

from __future__ import annotations

from urllib.parse import unquote

from multidict import CIMultiDictProxy

from procorch.api import errors
from procorch.api.rbac.index import SERVICE_ACCOUNT_PREFIX
from procorch.apiserver.auth import AUTHENTICATED, Attributes, Authorizer, User, forbidden_message

USER = "Impersonate-User"
GROUP = "Impersonate-Group"
UID = "Impersonate-Uid"
EXTRA = "impersonate-extra-"
ANONYMOUS = "system:anonymous"


def impersonated(user: User, headers: CIMultiDictProxy[str], authorizer: Authorizer) -> User:
    """The user the request acts as: ``user`` itself without impersonation headers, else the
    impersonated one (Forbidden unless ``user`` may impersonate every part of it)."""
    name = headers.get(USER, "")
    groups = [g for g in headers.getall(GROUP, []) if g]
    uid = headers.get(UID, "")
    extra: dict[str, tuple[str, ...]] = {}
    for key in headers:
        if key.lower().startswith(EXTRA):
            field = unquote(key[len(EXTRA) :]).lower()
            extra[field] = tuple(headers.getall(key, []))
    if not name:
        if groups or uid or extra:
            raise errors.BadRequest(
                "requested impersonation of groups, uid or extra fields without impersonating "
                "a user"
            )
        return user
    checks: list[Attributes] = []
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, account = name[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        checks.append(
            Attributes(
                verb="impersonate", resource="serviceaccounts", namespace=namespace, name=account
            )
        )
        if not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        checks.append(Attributes(verb="impersonate", resource="users", name=name))
    for group in headers.getall(GROUP, []):
        if group:
            checks.append(Attributes(verb="impersonate", resource="groups", name=group))
    if uid:
        checks.append(
            Attributes(verb="impersonate", group="authentication.k8s.io", resource="uids", name=uid)
        )
    for field, values in extra.items():
        for value in values:
            checks.append(
                Attributes(
                    verb="impersonate",
                    group="authentication.k8s.io",
                    resource="userextras",
                    subresource=field,
                    name=value,
                )
            )
    for attrs in checks:
        allowed, _ = authorizer.allowed(user, attrs)
        if not allowed:
            raise errors.Forbidden(
                forbidden_message(user, attrs),
                details={"name": attrs.name, "kind": attrs.resource, "group": attrs.group},
            )
    if name != ANONYMOUS and AUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return User(name=name, groups=tuple(groups), uid=uid, extra=extra)
