"""RBAC decides every request, as kube-apiserver's authorizer does, driven by real kubectl:
the bootstrap roles, bindings to users and groups (cluster-wide and per namespace), a
namespaced Role, escalation prevention, impersonation, and ``kubectl auth can-i``."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest

from procorch.cli.commands import user_kubeconfig
from procorch.kit.tokens import KEY_FILE, TokenSigner, user_claims
from procorch.launcher.up import Procorch
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
    # Reading namespaces through a RoleBinding reads that namespace only.
    await kubectl("--as", "alice", "get", "namespace", "default")
    assert not (await kubectl("--as", "alice", "get", "namespace", "other", check=False)).ok
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

    # SubjectAccessReview: the same question for someone else, for those allowed to ask.
    review = (
        '{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":'
        '{"user":"alice","resourceAttributes":{"namespace":"default","verb":"list",'
        '"resource":"pods"}}}'
    )
    sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    answer = await kubectl("create", "--raw", sar, "-f", "-", input=review)
    assert '"allowed":true' in answer.stdout
    assert (
        'RBAC: allowed by RoleBinding \\"alice-view/default\\" of ClusterRole \\"view\\" to User \\"alice\\"'
        in answer.stdout
    )
    local = "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews"
    asked = review.replace("SubjectAccessReview", "LocalSubjectAccessReview").replace(
        '"list"', '"delete"'
    )
    answer = await kubectl("create", "--raw", local, "-f", "-", "--as", "carol", input=asked)
    assert '"allowed":false' in answer.stdout
    refused = await kubectl(
        "create", "--raw", local, "-f", "-", "--as", "alice", input=asked, check=False
    )
    assert 'cannot create resource "localsubjectaccessreviews"' in refused.stderr
    refused = await kubectl(
        "create", "--raw", sar, "-f", "-", "--as", "carol", input=review, check=False
    )
    assert 'cannot create resource "subjectaccessreviews"' in refused.stderr

    # A Role limited to one name allows a list or watch pinned to that name (kubectl get NAME
    # -w asks with fieldSelector metadata.name=NAME), and nothing wider.
    await kubectl(
        "create",
        "role",
        "one-cm",
        "--verb=get,list,watch",
        "--resource=configmaps",
        "--resource-name=c1",
    )
    await kubectl("create", "rolebinding", "nina-one", "--role=one-cm", "--user=nina")
    await until_can(kubectl, "get", "configmaps/c1", "--as", "nina")
    pinned = "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dc1"
    listed = await kubectl("get", "--raw", pinned, "--as", "nina")
    assert '"name":"c1"' in listed.stdout
    watched = await kubectl("get", "--raw", f"{pinned}&watch=1&timeoutSeconds=1", "--as", "nina")
    assert '"type":"ADDED"' in watched.stdout and '"name":"c1"' in watched.stdout
    wider = await kubectl("get", "configmaps", "--as", "nina", check=False)
    assert 'User "nina" cannot list resource "configmaps"' in wider.stderr

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
    # An aggregationRule takes its rules from other roles: only someone holding everything
    # may set one, even on a role whose own rules it holds.
    await kubectl(
        "create",
        "clusterrole",
        "role-writer",
        "--verb=get,create,update,patch",
        "--resource=clusterroles",
    )
    await kubectl(
        "create",
        "clusterrolebinding",
        "mallory-writes",
        "--clusterrole=role-writer",
        "--user=mallory",
    )
    await until_can(kubectl, "create", "clusterroles", "--as", "mallory")
    sneaky = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: sneaky}\n"
        "aggregationRule:\n  clusterRoleSelectors:\n"
        "  - matchLabels: {kubernetes.io/bootstrapping: rbac-defaults}\nrules: []\n"
    )
    refused = await kubectl("--as", "mallory", "create", "-f", "-", input=sneaky, check=False)
    assert (
        'clusterroles.rbac.authorization.k8s.io "sneaky" is forbidden: must have cluster-admin '
        "privileges to use the aggregationRule" in refused.stderr
    )
    patch = '{"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]}}'
    refused = await kubectl(
        "--as", "mallory", "patch", "clusterrole", "role-writer", "-p", patch, check=False
    )
    assert "must have cluster-admin privileges to use the aggregationRule" in refused.stderr
    assert not await can_i(kubectl, "list", "secrets", "-A", "--as", "mallory")

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


def user_kubectl(
    procorch: Procorch, kubectl: Kubectl, tmp_path: Path, user: str, *groups: str
) -> Kubectl:
    """kubectl with a kubeconfig of ``user``'s own (``procorch kubeconfig --user``)."""
    path = tmp_path / f"{user}.kubeconfig"
    path.write_text(
        user_kubeconfig(
            procorch.config.data_dir, procorch.kubeconfig_path, user, list(groups), "default", "1h"
        )
    )
    return Kubectl(path, kubectl.cache_dir)


async def test_impersonation_needs_the_impersonate_verb(
    procorch: Procorch, kubectl: Kubectl, tmp_path: Path
) -> None:
    alice = user_kubectl(procorch, kubectl, tmp_path, "alice", "devs")
    whoami = await alice("auth", "whoami", "-o", "json")
    assert '"username": "alice"' in whoami.stdout
    assert '"devs"' in whoami.stdout and '"system:authenticated"' in whoami.stdout
    await kubectl("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob")
    await until_can(kubectl, "list", "pods", "--as", "bob")
    # alice may not act as bob ...
    refused = await alice("get", "pods", "--as", "bob", check=False)
    assert refused.returncode == 1
    assert (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API '
        'group "" at the cluster scope' in refused.stderr
    )
    # ... until a ClusterRole lets her impersonate bob (and only bob).
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
    await until_can(kubectl, "impersonate", "users/bob", "--as", "alice")
    assert "bob" in (await alice("auth", "whoami", "--as", "bob")).stdout
    await alice("get", "pods", "--as", "bob")
    assert not (await alice("get", "pods", "--as", "carol", check=False)).ok
    # Groups are impersonated separately: bob's view does not come with an extra group.
    refused = await alice("get", "pods", "--as", "bob", "--as-group", "admins", check=False)
    assert 'groups "admins" is forbidden' in refused.stderr


async def test_service_account_tokens(procorch: Procorch, kubectl: Kubectl) -> None:
    token = (await kubectl("create", "token", "default", "--duration", "15m")).stdout.strip()
    assert token.count(".") == 2
    who = (await kubectl("auth", "whoami", "--token", token, "-o", "json")).stdout
    assert '"username": "system:serviceaccount:default:default"' in who
    assert '"system:serviceaccounts:default"' in who
    denied = await kubectl("get", "pods", "--token", token, check=False)
    assert 'User "system:serviceaccount:default:default" cannot list' in denied.stderr
    await kubectl(
        "create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default"
    )
    await until_can(kubectl, "list", "pods", "--as", "system:serviceaccount:default:default")
    await kubectl("get", "pods", "--token", token)
    # Issuer discovery is for ServiceAccounts; the keys verify the token.
    config = await kubectl("get", "--raw", "/.well-known/openid-configuration", "--token", token)
    assert '"issuer":"https://kubernetes.default.svc.cluster.local"' in config.stdout
    jwks = await kubectl("get", "--raw", "/openid/v1/jwks", "--token", token)
    assert '"alg":"ES256"' in jwks.stdout
    # A token bound to a pod stops working when the pod is deleted.
    await kubectl("run", "p", "--image=none", "--restart=Never", "--command", "--", "sleep", "60")
    uid = (await kubectl("get", "pod", "p", "-o", "jsonpath={.metadata.uid}")).stdout
    bound = (
        await kubectl(
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
            f"--bound-object-uid={uid}",
        )
    ).stdout.strip()
    who = (await kubectl("auth", "whoami", "--token", bound)).stdout
    assert "authentication.kubernetes.io/pod-name" in who and uid in who
    # TokenReview says the same.
    review = await kubectl(
        "create",
        "--raw",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        "-f",
        "-",
        input='{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview",'
        f'"spec":{{"token":"{bound}"}}}}',
    )
    assert '"authenticated":true' in review.stdout
    assert "authentication.kubernetes.io/pod-name" in review.stdout
    await kubectl("delete", "pod", "p", "--grace-period=0", "--force")
    gone = await kubectl("auth", "whoami", "--token", bound, check=False)
    assert gone.returncode == 1 and "Unauthorized" in gone.stderr
    # A Secret-based token, populated as Kubernetes 1.32 still does, ends with its Secret.
    await kubectl(
        "create",
        "-f",
        "-",
        input="apiVersion: v1\nkind: Secret\nmetadata:\n  name: legacy\n  annotations:\n"
        "    kubernetes.io/service-account.name: default\n"
        "type: kubernetes.io/service-account-token\n",
    )
    deadline = time.monotonic() + 10
    while not (
        legacy := (await kubectl("get", "secret", "legacy", "-o", "jsonpath={.data.token}")).stdout
    ):
        assert time.monotonic() < deadline, "the Secret was never populated"
        await asyncio.sleep(0.05)
    secret = (await kubectl("get", "secret", "legacy", "-o", "json")).stdout
    assert '"ca.crt"' in secret and '"namespace": "ZGVmYXVsdA=="' in secret
    assert '"kubernetes.io/service-account.uid"' in secret
    legacy_token = base64.b64decode(legacy).decode()
    who = (await kubectl("auth", "whoami", "--token", legacy_token)).stdout
    assert "system:serviceaccount:default:default" in who
    await kubectl("delete", "secret", "legacy")
    gone = await kubectl("auth", "whoami", "--token", legacy_token, check=False)
    assert "Unauthorized" in gone.stderr

    # A token is bound only to a pod that runs as its account.
    await kubectl("create", "serviceaccount", "other")
    await kubectl("run", "q", "--image=none", "--restart=Never", "--command", "--", "sleep", "60")
    mismatch = await kubectl(
        "create", "token", "other", "--bound-object-kind=Pod", "--bound-object-name=q", check=False
    )
    assert (
        'cannot bind token for serviceaccount "other" to pod running with different '
        "serviceaccount name." in mismatch.stderr
    )

    # Bad input: too short, a missing account, garbage.
    short = await kubectl("create", "token", "default", "--duration", "5m", check=False)
    assert "spec.expirationSeconds: Invalid value: 300: may not specify a duration less " in (
        short.stderr
    )
    assert (
        'serviceaccounts "nope" not found'
        in (await kubectl("create", "token", "nope", check=False)).stderr
    )
    assert "Unauthorized" in (await kubectl("get", "pods", "--token", "a.b.c", check=False)).stderr
    # A token for another audience, an expired one, one signed by another key: 401 alike.
    other = (await kubectl("create", "token", "default", "--audience", "vault")).stdout.strip()
    signer = TokenSigner.load_or_create(procorch.config.data_dir / KEY_FILE)
    expired = signer.sign(user_claims("alice", [], seconds=600, now=time.time() - 3600))
    stranger = TokenSigner.load_or_create(procorch.config.data_dir / "other.key")
    forged = stranger.sign(user_claims("alice", ["system:masters"], seconds=600))
    for bad in (other, expired, forged):
        refused = await kubectl("get", "pods", "--token", bad, check=False)
        assert refused.returncode == 1
        assert "error: You must be logged in to the server (Unauthorized)" in refused.stderr


async def test_a_node_writes_only_its_own_pods(procorch: Procorch, kubectl: Kubectl) -> None:
    """NodeRestriction: a node's identity changes, deletes and gets tokens for the pods
    bound to it, and no others."""
    tokens = procorch.control_plane.authenticator
    n1, n2 = tokens.node_token("n1"), tokens.node_token("n2")
    await kubectl(
        "create",
        "-f",
        "-",
        input="apiVersion: v1\nkind: Pod\nmetadata: {name: on-n2}\n"
        "spec: {nodeName: n2, containers: [{name: c, command: [sleep, '60']}]}\n",
    )
    status = '{"status": {"message": "seen"}}'
    refused = await kubectl(
        "patch", "pod", "on-n2", "--subresource=status", "-p", status, "--token", n1, check=False
    )
    assert refused.returncode == 1
    assert (
        'pods "on-n2" is forbidden: node "n1" can only update pod status for pods with '
        "spec.nodeName set to itself" in refused.stderr
    )
    refused = await kubectl("delete", "pod", "on-n2", "--token", n1, check=False)
    assert 'node "n1" can only delete pods with spec.nodeName set to itself' in refused.stderr
    refused = await kubectl(
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=on-n2",
        "--token",
        n1,
        check=False,
    )
    assert "node requested token bound to a pod scheduled on a different node" in refused.stderr
    # Its own node may.
    await kubectl("patch", "pod", "on-n2", "--subresource=status", "-p", status, "--token", n2)
    await kubectl(
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=on-n2",
        "--token",
        n2,
    )
    # A node is not an admin: it reads what its pods need and writes nothing else.
    refused = await kubectl("create", "configmap", "x", "--token", n2, check=False)
    assert 'User "system:node:n2" cannot create resource "configmaps"' in refused.stderr
