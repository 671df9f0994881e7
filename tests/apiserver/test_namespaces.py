"""Namespace lifecycle on the wire: termination waits for content, immortal namespaces,
and reads in a namespace that does not exist."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from procorch.api import errors, resources
from procorch.client.http import HttpClient

CM = resources.must("core/configmaps")
NS = resources.must("core/namespaces")


async def _namespace(http: HttpClient, name: str) -> dict[str, Any]:
    return await http.create(
        NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


def _conditions(ns: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (ns.get("status") or {}).get("conditions") or []}


async def _eventually_gone(http: HttpClient, name: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            await http.get(NS, name)
        except errors.NotFound:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"namespace {name} was not removed")


async def test_namespace_stays_terminating_while_an_object_in_it_has_a_finalizer(
    http: HttpClient,
) -> None:
    await _namespace(http, "held")
    await http.create(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "keep", "namespace": "held", "finalizers": ["x.io/hold"]},
        },
    )
    await http.create(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "other", "namespace": "held"},
        },
    )
    await http.delete(NS, "held")
    await asyncio.sleep(1.5)  # several passes of the namespace controller
    ns = await http.get(NS, "held")
    assert ns["status"]["phase"] == "Terminating"
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    conditions = _conditions(ns)
    assert conditions["NamespaceContentRemaining"] == {
        **conditions["NamespaceContentRemaining"],
        "status": "True",
        "reason": "SomeResourcesRemain",
        "message": "Some resources are remaining: configmaps. has 1 resource instances",
    }
    assert conditions["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: x.io/hold in 1 resource instances"
    )
    assert conditions["NamespaceDeletionContentFailure"]["status"] == "False"
    kept = await http.get(CM, "keep", namespace="held")
    assert kept["metadata"]["deletionTimestamp"]
    with pytest.raises(errors.NotFound):
        await http.get(CM, "other", namespace="held")
    # The finalizer goes; so does the configmap, and then the namespace.
    await http.patch(CM, "keep", {"metadata": {"finalizers": None}}, namespace="held")
    await _eventually_gone(http, "held")


async def test_status_writes_to_a_terminating_namespace_do_not_remove_it(
    http: HttpClient,
) -> None:
    """The namespace registry's rule: spec.finalizers hold a namespace as metadata.finalizers
    hold any object, also through an update (which is what removed it too early)."""
    await _namespace(http, "statusy")
    await http.create(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "keep", "namespace": "statusy", "finalizers": ["x.io/hold"]},
        },
    )
    deleting = await http.delete(NS, "statusy")
    deleting["status"]["conditions"] = [
        {"type": "Custom", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    ]
    for _ in range(5):  # the controller writes status too: retry on a conflict
        try:
            await http.update_status(NS, deleting)
            break
        except errors.Conflict:
            deleting = await http.get(NS, "statusy")
    assert (await http.get(NS, "statusy"))["status"]["phase"] == "Terminating"
    await http.patch(CM, "keep", {"metadata": {"finalizers": None}}, namespace="statusy")
    await _eventually_gone(http, "statusy")


async def test_second_delete_of_a_terminating_namespace_is_a_conflict(http: HttpClient) -> None:
    await _namespace(http, "twice")
    await http.create(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "keep", "namespace": "twice", "finalizers": ["x.io/hold"]},
        },
    )
    await http.delete(NS, "twice")
    with pytest.raises(errors.Conflict) as info:
        await http.delete(NS, "twice")
    assert info.value.message == (
        'Operation cannot be fulfilled on namespaces "twice": The system is ensuring all '
        "content is removed from this namespace.  Upon completion, this namespace will "
        "automatically be purged by the system."
    )
    await http.patch(CM, "keep", {"metadata": {"finalizers": None}}, namespace="twice")
    await _eventually_gone(http, "twice")


async def test_creating_in_a_terminating_namespace_says_why(http: HttpClient) -> None:
    await _namespace(http, "closing")
    await http.create(
        CM,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "keep", "namespace": "closing", "finalizers": ["x.io/hold"]},
        },
    )
    await http.delete(NS, "closing")
    with pytest.raises(errors.Forbidden) as info:
        await http.create(
            CM,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "n", "namespace": "closing"},
            },
        )
    assert info.value.message == (
        'configmaps "n" is forbidden: unable to create new content in namespace closing '
        "because it is being terminated"
    )
    assert info.value.details["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": "namespace closing is being terminated",
            "field": "metadata.namespace",
        }
    ]
    await http.patch(CM, "keep", {"metadata": {"finalizers": None}}, namespace="closing")
    await _eventually_gone(http, "closing")


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_system_namespaces_may_not_be_deleted(raw, http: HttpClient, name: str) -> None:
    for params in ({}, {"dryRun": "All"}):
        async with raw.session.delete(
            f"{raw.url}/api/v1/namespaces/{name}", params=params, headers=raw.headers()
        ) as r:
            assert r.status == 403
            body = await r.json()
        assert body["reason"] == "Forbidden"
        assert (
            body["message"]
            == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        )
        assert body["details"] == {"name": name, "kind": "namespaces"}
    assert not (await http.get(NS, name))["metadata"].get("deletionTimestamp")


async def test_kube_node_lease_is_deletable_as_in_kubernetes(raw) -> None:
    async with raw.session.delete(
        f"{raw.url}/api/v1/namespaces/kube-node-lease",
        params={"dryRun": "All"},
        headers=raw.headers(),
    ) as r:
        assert r.status == 200


async def test_get_in_a_missing_namespace_names_the_object_not_the_namespace(raw) -> None:
    async with raw.session.get(
        f"{raw.url}/api/v1/namespaces/nonexistent/configmaps/x", headers=raw.headers()
    ) as r:
        assert r.status == 404
        body = await r.json()
    assert body["message"] == 'configmaps "x" not found'
    assert body["details"] == {"name": "x", "kind": "configmaps"}
    async with raw.session.post(
        f"{raw.url}/api/v1/namespaces/nonexistent/configmaps",
        data=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        headers=raw.headers(**{"Content-Type": "application/json"}),
    ) as r:
        assert r.status == 404
        assert (await r.json())["message"] == 'namespaces "nonexistent" not found'


# -- kubectl ------------------------------------------------------------------------------------


@pytest.mark.kubectl
async def test_kubectl_namespace_with_held_content_stays_terminating(kubectl) -> None:
    await kubectl("create", "ns", "term2")
    await kubectl("-n", "term2", "create", "cm", "keep")
    await kubectl(
        "-n",
        "term2",
        "patch",
        "cm",
        "keep",
        "--type",
        "merge",
        "-p",
        '{"metadata":{"finalizers":["x.io/hold"]}}',
    )
    out = await kubectl("delete", "ns", "term2", "--wait=false")
    assert 'namespace "term2" deleted' in out.stdout
    await asyncio.sleep(1.5)
    ns = json.loads((await kubectl("get", "ns", "term2", "-o", "json")).stdout)
    assert ns["status"]["phase"] == "Terminating"
    assert _conditions(ns)["NamespaceFinalizersRemaining"]["status"] == "True"
    listed = (await kubectl("get", "ns", "term2")).stdout
    assert "Terminating" in listed
    again = await kubectl("delete", "ns", "term2", "--wait=false", check=False)
    assert "Error from server (Conflict)" in again.stderr
    await kubectl(
        "-n",
        "term2",
        "patch",
        "cm",
        "keep",
        "--type",
        "merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    await kubectl("wait", "--for=delete", "ns/term2", "--timeout=20s")


@pytest.mark.kubectl
async def test_kubectl_cannot_delete_default(kubectl) -> None:
    for extra in ((), ("--dry-run=server",)):
        result = await kubectl("delete", "ns", "default", *extra, check=False)
        assert result.returncode != 0
        assert result.stderr.strip() == (
            'Error from server (Forbidden): namespaces "default" is forbidden: '
            "this namespace may not be deleted"
        )
