"""RBAC decides every request, as kube-apiserver's authorizer does, driven by real kubectl:
the bootstrap roles, bindings to users and groups (cluster-wide and per namespace), a
namespaced Role, escalation prevention, impersonation, and ``kubectl auth can-i``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl

FORBIDDEN_LIST_PODS = (
    'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
    '"pods" in API group "" in the namespace "default"'
)


async def can_i(kubectl: Kubectl, *args: str) -> bool:
    result = await kubectl("auth", "can-i", *args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


async def until_can(kubectl: Kubectl, *args: str, allowed: bool = True) -> None:
    """A binding takes effect once its watch event reaches the authorizer (milliseconds)."""
    deadline = time.monotonic() + 10
    while await can_i(kubectl, *args) != allowed:
        assert time.monotonic() < deadline, f"can-i {args} never became {allowed}"
        await asyncio.sleep(0.05)


async def test_bootstrap_roles_and_bindings_grant_what_kubernetes_grants(kubectl: Kubectl) -> None:
    names = set((await kubectl("get", "clusterroles", "-o", "name")).stdout.split())
    for role in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ):
        assert f"clusterrole.rbac.authorization.k8s.io/{role}" in names
    bindings = (await kubectl("get", "clusterrolebinding", "cluster-admin", "-o", "wide")).stdout
    assert "system:masters" in bindings
    # Nobody but the admin may do anything yet; every authenticated user may discover.
    denied = await kubectl("--as", "alice", "get", "pods", check=False)
    assert denied.returncode == 1 and FORBIDDEN_LIST_PODS in denied.stderr
    assert not await can_i(kubectl, "list", "pods", "--as", "alice")
    assert await can_i(kubectl, "get", "/apis", "--as", "alice")
    assert await can_i(kubectl, "get", "/healthz", "--as", "alice")
    assert not await can_i(kubectl, "get", "/metrics", "--as", "alice")
    assert await can_i(kubectl, "create", "selfsubjectaccessreviews", "--as", "alice")
    # The admin holds everything through system:masters.
    assert await can_i(kubectl, "*", "*")


async def test_view_edit_admin_and_a_namespaced_role(kubectl: Kubectl, tmp_path: Path) -> None:
    await kubectl("create", "namespace", "other")
    await kubectl("create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice")
    await kubectl("create", "rolebinding", "devs-edit", "--clusterrole=edit", "--group=devs")
    await kubectl("create", "rolebinding", "carol-admin", "--clusterrole=admin", "--user=carol")
    await kubectl(
        "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps", "-n", "other"
    )
    await kubectl(
        "create", "rolebinding", "dave-cm", "--role=cm-reader", "--user=dave", "-n", "other"
    )
    await until_can(kubectl, "get", "configmaps", "-n", "other", "--as", "dave")
    await until_can(kubectl, "list", "pods", "--as", "alice")
    # user -> {(verb, resource): allowed} in namespace default
    matrix = {
        "alice": {  # view
            ("get", "pods"): True,
            ("get", "pods/log"): True,
            ("list", "deployments.apps"): True,
            ("watch", "jobs.batch"): True,
            ("get", "secrets"): False,
            ("create", "pods"): False,
            ("delete", "configmaps"): False,
            ("create", "pods/exec"): False,
            ("list", "roles.rbac.authorization.k8s.io"): False,
        },
        "bob": {  # edit, through the group devs
            ("get", "secrets"): True,
            ("create", "deployments.apps"): True,
            ("update", "deployments.apps/scale"): True,
            ("create", "pods/exec"): True,
            ("delete", "services"): True,
            ("create", "rolebindings.rbac.authorization.k8s.io"): False,
            ("list", "nodes"): False,
        },
        "carol": {  # admin
            ("create", "roles.rbac.authorization.k8s.io"): True,
            ("create", "rolebindings.rbac.authorization.k8s.io"): True,
            ("delete", "secrets"): True,
            ("delete", "namespaces"): False,
        },
        "dave": {("get", "configmaps"): False},  # his Role is in "other" only
        "erin": {("get", "pods"): False},  # bound to nothing
    }
    for user, cases in matrix.items():
        extra = ["--as-group", "devs"] if user == "bob" else []
        for (verb, resource), expected in cases.items():
            got = await can_i(kubectl, verb, resource, "--as", user, *extra)
            assert got == expected, (user, verb, resource)
    # Cluster-scoped: a RoleBinding grants nothing outside its namespace.
    assert not await can_i(kubectl, "list", "pods", "-n", "other", "--as", "alice")
    assert await can_i(kubectl, "list", "configmaps", "-n", "other", "--as", "dave")
    assert not await can_i(kubectl, "delete", "configmaps", "-n", "other", "--as", "dave")

    # Real requests are decided the same way.
    await kubectl("create", "configmap", "c1", "--from-literal=a=1")
    await kubectl("--as", "alice", "get", "configmap", "c1")
    refused = await kubectl("--as", "alice", "delete", "configmap", "c1", check=False)
    assert refused.returncode == 1
    assert (
        'configmaps "c1" is forbidden: User "alice" cannot delete resource "configmaps" in API '
        'group "" in the namespace "default"' in refused.stderr
    )
    await kubectl("--as", "bob", "--as-group", "devs", "create", "configmap", "c2")
    await kubectl("--as", "dave", "-n", "other", "get", "configmaps")
    assert not (await kubectl("--as", "dave", "get", "configmaps", check=False)).ok

    # can-i --list from the same rules.
    listed = (await kubectl("auth", "can-i", "--list", "-n", "other", "--as", "dave")).stdout
    assert "configmaps" in listed and "[get list]" in listed


async def test_no_one_grants_what_they_do_not_hold(kubectl: Kubectl) -> None:
    await kubectl("create", "rolebinding", "carol-admin", "--clusterrole=admin", "--user=carol")
    await until_can(kubectl, "create", "rolebindings", "--as", "carol")
    # admin may bind admin, edit and view in its namespace (it holds all they grant) ...
    await kubectl(
        "--as", "carol", "create", "rolebinding", "frank-edit", "--clusterrole=edit", "--user=frank"
    )
    # ... but not cluster-admin, nor a Role with a permission it lacks.
    refused = await kubectl(
        "--as",
        "carol",
        "create",
        "rolebinding",
        "carol-root",
        "--clusterrole=cluster-admin",
        "--user=carol",
        check=False,
    )
    assert refused.returncode == 1
    assert (
        'rolebindings.rbac.authorization.k8s.io "carol-root" is forbidden: user "carol" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held:" in refused.stderr
    )
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in refused.stderr
    refused = await kubectl(
        "--as",
        "carol",
        "create",
        "role",
        "nodes-reader",
        "--verb=get",
        "--resource=nodes",
        check=False,
    )
    assert refused.returncode == 1 and "not currently held" in refused.stderr
    assert '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in refused.stderr
    # Nothing was written.
    assert not (await kubectl("get", "rolebinding", "carol-root", check=False)).ok
    # With `bind` on the role, binding it is allowed without holding it.
    await kubectl(
        "create",
        "clusterrole",
        "bind-cluster-admin",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=cluster-admin",
    )
    await kubectl(
        "create",
        "clusterrolebinding",
        "carol-binds",
        "--clusterrole=bind-cluster-admin",
        "--user=carol",
    )
    deadline = time.monotonic() + 10
    while True:
        allowed = await kubectl(
            "--as",
            "carol",
            "create",
            "rolebinding",
            "gina-root",
            "--clusterrole=cluster-admin",
            "--user=gina",
            check=False,
        )
        if allowed.ok or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert allowed.ok, allowed.stderr


async def test_impersonation_needs_the_impersonate_verb(kubectl: Kubectl) -> None:
    await kubectl("create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice")
    await until_can(kubectl, "list", "pods", "--as", "alice")
    # alice may not act as anyone else ...
    refused = await kubectl("--as", "alice", "get", "pods", "--as", "bob", check=False)
    assert refused.ok is False or "bob" in refused.stderr
    whoami = await kubectl("auth", "whoami", "--as", "alice", "--as-group", "devs", "-o", "json")
    assert '"username": "alice"' in whoami.stdout and '"devs"' in whoami.stdout
    assert '"system:authenticated"' in whoami.stdout
    # ... until a ClusterRole lets her impersonate bob.
    await kubectl(
        "create",
        "clusterrole",
        "be-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    )
    await kubectl(
        "create", "clusterrolebinding", "alice-be-bob", "--clusterrole=be-bob", "--user=alice"
    )
    await kubectl("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob")
    await until_can(kubectl, "impersonate", "users/bob", "--as", "alice")
