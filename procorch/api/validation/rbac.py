"""Role, ClusterRole, RoleBinding, ClusterRoleBinding (rbac.authorization.k8s.io/v1): policy
rules, role references, subjects; a binding's roleRef cannot change.

Mirrors Kubernetes' RBAC validation; names are path segments (``ValidateRBACName``).
Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import invalid, not_supported, required
from procorch.api.validation._base import Causes, as_dict, as_list, as_str, child, index, items
from procorch.api.validation.meta import (
    name_is_dns_subdomain,
    name_is_path_segment,
    selector_is_valid,
    validate_label_selector,
    validate_object_meta,
)

GROUP = "rbac.authorization.k8s.io"


def _rule(rule: dict[str, Any], *, namespaced: bool, path: str) -> Causes:
    causes: Causes = []
    if not as_list(rule.get("verbs")):
        causes.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            causes.append(
                invalid(
                    child(path, "nonResourceURLs"),
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if any(as_list(rule.get(f)) for f in ("apiGroups", "resources", "resourceNames")):
            causes.append(
                invalid(
                    child(path, "nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return causes
    if not as_list(rule.get("apiGroups")):
        causes.append(
            required(child(path, "apiGroups"), "resource rules must supply at least one api group")
        )
    if not as_list(rule.get("resources")):
        causes.append(
            required(child(path, "resources"), "resource rules must supply at least one resource")
        )
    return causes


def _validate_role(obj: dict[str, Any], *, namespaced: bool) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=namespaced, name_fn=name_is_path_segment
    )
    for i, rule in items(obj.get("rules")):
        causes += _rule(rule, namespaced=namespaced, path=index("rules", i))
    return causes


def validate_role(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    return _validate_role(obj, namespaced=True)


def validate_cluster_role(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = _validate_role(obj, namespaced=False)
    aggregation = obj.get("aggregationRule")
    if aggregation is not None:
        selectors = as_list(as_dict(aggregation).get("clusterRoleSelectors"))
        path = "aggregationRule.clusterRoleSelectors"
        if not selectors:
            causes.append(
                required(
                    path, "at least one clusterRoleSelector required if aggregationRule is non-nil"
                )
            )
        for i, selector in enumerate(selectors):
            causes += validate_label_selector(selector, index(path, i))
            if not selector_is_valid(selector):
                causes.append(invalid(index(path, i), selector, "invalid label selector."))
    return causes


def _subject(subject: dict[str, Any], *, namespaced: bool, path: str) -> Causes:
    causes: Causes = []
    name = as_str(subject.get("name"))
    if not name:
        causes.append(required(child(path, "name")))
    kind = subject.get("kind")
    api_group = as_str(subject.get("apiGroup"))
    if kind == "ServiceAccount":
        if name:
            causes += [
                invalid(child(path, "name"), name, msg)
                for msg in name_is_dns_subdomain(name, False)
            ]
        if api_group:
            causes.append(not_supported(child(path, "apiGroup"), api_group, [""]))
        if not namespaced and not as_str(subject.get("namespace")):
            causes.append(required(child(path, "namespace")))
    elif kind in ("User", "Group"):
        if api_group != GROUP:
            causes.append(not_supported(child(path, "apiGroup"), api_group, [GROUP]))
    else:
        causes.append(not_supported(child(path, "kind"), kind, ["ServiceAccount", "User", "Group"]))
    return causes


def _validate_binding(
    obj: dict[str, Any], old: dict[str, Any] | None, *, namespaced: bool
) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=namespaced, name_fn=name_is_path_segment
    )
    ref = as_dict(obj.get("roleRef"))
    if ref.get("apiGroup") != GROUP:
        causes.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        causes.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    name = as_str(ref.get("name"))
    if not name:
        causes.append(required("roleRef.name"))
    else:
        causes += [invalid("roleRef.name", name, msg) for msg in name_is_path_segment(name, False)]
    for i, subject in items(obj.get("subjects")):
        causes += _subject(subject, namespaced=namespaced, path=index("subjects", i))
    if old is not None and as_dict(old.get("roleRef")) != ref:
        causes.append(invalid("roleRef", ref, "cannot change roleRef"))
    return causes


def validate_role_binding(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    return _validate_binding(obj, old, namespaced=True)


def validate_cluster_role_binding(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    return _validate_binding(obj, old, namespaced=False)
