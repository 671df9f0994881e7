"""RBAC's rule matching, escalation coverage and aggregation, as Kubernetes decides them."""

from __future__ import annotations

import pytest

from procorch.api.rbac import Policy, Request, Subject, held, rule_covers
from procorch.api.rbac.policy import cluster_role_bindings, cluster_roles


def rule(verbs: list[str], groups: list[str], resources: list[str], **extra: list[str]) -> dict:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources, **extra}


@pytest.mark.parametrize(
    ("granted", "request_", "expected"),
    [
        (rule(["get"], [""], ["pods"]), Request("get", "", "pods"), True),
        (rule(["get"], [""], ["pods"]), Request("list", "", "pods"), False),
        (rule(["get"], [""], ["pods"]), Request("get", "apps", "pods"), False),
        (rule(["get"], [""], ["pods"]), Request("get", "", "pods", "log"), False),
        (rule(["get"], [""], ["pods/log"]), Request("get", "", "pods", "log"), True),
        (rule(["get"], [""], ["*/log"]), Request("get", "", "pods", "log"), True),
        (rule(["get"], [""], ["*"]), Request("get", "", "pods", "exec"), True),
        (rule(["*"], ["*"], ["deployments"]), Request("patch", "apps", "deployments"), True),
        (
            rule(["get"], [""], ["configmaps"], resourceNames=["a"]),
            Request("get", "", "configmaps", name="a"),
            True,
        ),
        (
            rule(["get"], [""], ["configmaps"], resourceNames=["a"]),
            Request("list", "", "configmaps"),
            False,
        ),
        ({"verbs": ["get"], "nonResourceURLs": ["/api/*"]}, Request("get", path="/api/v1"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/api"]}, Request("get", path="/api/v1"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["*"]}, Request("get", path="/metrics"), True),
    ],
)
def test_a_rule_covers_what_kubernetes_lets_it(
    granted: dict, request_: Request, expected: bool
) -> None:
    assert rule_covers(granted, request_) is expected


def test_escalation_coverage_needs_every_part_held() -> None:
    holding = [rule(["get", "list"], [""], ["pods", "configmaps"])]
    assert held(holding, rule(["get"], [""], ["pods"]))
    assert not held(holding, rule(["get", "delete"], [""], ["pods"]))
    # A `*` asked is held only by a `*` held.
    assert not held(holding, rule(["*"], [""], ["pods"]))
    assert held([rule(["*"], ["*"], ["*"])], rule(["*"], ["apps"], ["*"]))
    # Names narrow what is asked, never what is held.
    assert held(holding, rule(["get"], [""], ["pods"], resourceNames=["web"]))
    assert not held(
        [rule(["get"], [""], ["pods"], resourceNames=["web"])], rule(["get"], [""], ["pods"])
    )


def test_bootstrap_aggregation_makes_admin_hold_edit_and_view() -> None:
    policy = Policy(cluster_roles=cluster_roles(), cluster_role_bindings=cluster_role_bindings())
    view = policy.role_rules("ClusterRole", "", "view") or []
    edit = policy.role_rules("ClusterRole", "", "edit") or []
    admin = policy.role_rules("ClusterRole", "", "admin") or []
    assert all(r in edit for r in view) and all(r in admin for r in edit)
    assert any("roles" in r.get("resources", []) for r in admin)
    assert not any("roles" in r.get("resources", []) for r in edit)
    assert policy.allows(
        Subject("anyone", ("system:authenticated",)), Request("get", path="/version")
    )
    assert not policy.allows(
        Subject("anyone", ("system:authenticated",)), Request("get", "", "pods")
    )
    masters = Subject("root", ("system:masters",))
    assert policy.reason(masters, Request("delete", "", "nodes", name="n1")) == (
        'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to '
        'Group "system:masters"'
    )


def test_a_binding_counts_only_in_its_namespace_and_a_missing_role_grants_nothing() -> None:
    binding = {
        "metadata": {"name": "b", "namespace": "team"},
        "roleRef": {"kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "team"}],
    }
    role = {
        "metadata": {"name": "reader", "namespace": "team"},
        "rules": [rule(["get"], [""], ["pods"])],
    }
    bot = Subject("system:serviceaccount:team:bot", ("system:serviceaccounts",))
    policy = Policy(roles=[role], role_bindings=[binding])
    assert policy.allows(bot, Request("get", "", "pods", namespace="team"))
    assert not policy.allows(bot, Request("get", "", "pods", namespace="other"))
    assert not policy.allows(bot, Request("get", "", "pods"))
    assert not Policy(role_bindings=[binding]).allows(
        bot, Request("get", "", "pods", namespace="team")
    )
