"""Details kubectl and clients rely on: OpenAPI v2, error messages, list resourceVersions,
patches that race with other writers."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from procorch.api import errors, resources
from procorch.client.http import HttpClient

CM = resources.must("core/configmaps")
DEPLOY = resources.must("apps/deployments")
SECRETS = resources.must("core/secrets")


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"suite": "rv"}},
        "data": data,
    }


BAD_DEPLOYMENT = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: bad4}
    spec:
      replicas: -1
      selector: {matchLabels: {app: bad4}}
      template:
        metadata: {labels: {app: bad4}}
        spec:
          containers:
          - {name: main, command: [sleep, "1"]}
    """)


# -- OpenAPI v2 ---------------------------------------------------------------------------------


async def test_openapi_v2_is_an_empty_document(raw) -> None:
    async with raw.session.get(
        f"{raw.url}/openapi/v2",
        headers=raw.headers(Accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
    ) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert await r.read() == b""


@pytest.mark.kubectl
async def test_kubectl_names_an_unknown_kind_like_kubernetes(kubectl, tmp_path: Path) -> None:
    gadget = tmp_path / "gadget.yaml"
    gadget.write_text("apiVersion: v1\nkind: Gadget\nmetadata:\n  name: x\n")
    expected = (
        'error: resource mapping not found for name: "x" namespace: "" from "'
        f'{gadget}": no matches for kind "Gadget" in version "v1"\n'
        "ensure CRDs are installed first"
    )
    for verb in ("apply", "create", "replace"):
        result = await kubectl(verb, "-f", str(gadget), check=False)
        assert result.returncode == 1
        assert result.stderr.strip() == expected, verb
    # Known kinds still go through, validated by the server.
    known = tmp_path / "cm.yaml"
    known.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\ndata: {a: '1'}\n")
    assert "configmap/k created" in (await kubectl("apply", "-f", str(known))).stdout
    known.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\ndata: {a: '2'}\n")
    assert "configmap/k configured" in (await kubectl("apply", "-f", str(known))).stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndataa: {a: '1'}\n")
    strict = await kubectl("create", "-f", str(typo), check=False)
    assert 'unknown field "dataa"' in strict.stderr


# -- error messages ----------------------------------------------------------------------------


async def test_invalid_names_the_group_qualified_kind(raw) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad4"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"app": "bad4"}},
            "template": {
                "metadata": {"labels": {"app": "bad4"}},
                "spec": {"containers": [{"name": "main", "command": ["sleep", "1"]}]},
            },
        },
    }
    async with raw.session.post(
        f"{raw.url}/apis/apps/v1/namespaces/default/deployments",
        data=json.dumps(body),
        headers=raw.headers(**{"Content-Type": "application/json"}),
    ) as r:
        assert r.status == 422
        status = await r.json()
    assert status["message"] == (
        'Deployment.apps "bad4" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    assert status["details"]["kind"] == "Deployment"
    assert status["details"]["group"] == "apps"
    core = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 1}}
    async with raw.session.post(
        f"{raw.url}/api/v1/namespaces/default/configmaps",
        data=json.dumps(core),
        headers=raw.headers(**{"Content-Type": "application/json"}),
    ) as r:
        assert (await r.json())["message"].startswith('ConfigMap "c" is invalid: ')


@pytest.mark.kubectl
async def test_kubectl_prints_invalid_objects_as_against_kubernetes(
    kubectl, tmp_path: Path
) -> None:
    one = tmp_path / "bad.yaml"
    one.write_text(BAD_DEPLOYMENT)
    single = (
        'The Deployment "bad4" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    for verb in ("create", "apply"):
        result = await kubectl(verb, "-f", str(one), check=False)
        assert result.stderr.strip() == single, verb
    two = tmp_path / "bad2.yaml"
    two.write_text(BAD_DEPLOYMENT + "---\n" + BAD_DEPLOYMENT.replace("bad4", "bad5"))
    result = await kubectl("create", "-f", str(two), check=False)
    assert result.stderr.splitlines() == [
        f'Error from server (Invalid): error when creating "{two}": Deployment.apps "{name}" '
        "is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        for name in ("bad4", "bad5")
    ]


async def test_failed_json_patch_test_speaks_kubernetes(raw, http: HttpClient) -> None:
    await http.create(CM, configmap("jp", a="json"))
    async with raw.session.patch(
        f"{raw.url}/api/v1/namespaces/default/configmaps/jp",
        data=json.dumps([{"op": "test", "path": "/data/a", "value": "nope"}]),
        headers=raw.headers(**{"Content-Type": "application/json-patch+json"}),
    ) as r:
        assert r.status == 422
        status = await r.json()
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        "the server rejected our request due to an error in our request: "
        "testing value /data/a failed: test failed"
    )


async def test_a_deleting_object_refuses_new_finalizers_in_go_syntax(http: HttpClient) -> None:
    obj = configmap("fin")
    obj["metadata"]["finalizers"] = ["a.io/x"]
    await http.create(CM, obj)
    await http.delete(CM, "fin", namespace="default")
    with pytest.raises(errors.Invalid) as info:
        await http.patch(
            CM, "fin", {"metadata": {"finalizers": ["a.io/x", "b.io/y"]}}, namespace="default"
        )
    assert info.value.message == (
        'ConfigMap "fin" is invalid: metadata.finalizers: Forbidden: no new finalizers can be '
        'added if the object is being deleted, found new finalizers []string{"b.io/y"}'
    )
    await http.patch(CM, "fin", {"metadata": {"finalizers": None}}, namespace="default")


# -- list resourceVersion -----------------------------------------------------------------------


async def _list(raw, **params: str) -> tuple[int, dict[str, Any]]:
    async with raw.session.get(
        f"{raw.url}/api/v1/namespaces/default/configmaps",
        params={"labelSelector": "suite=rv", **params},
        headers=raw.headers(),
    ) as r:
        return r.status, await r.json()


def _items(body: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    return [(i["metadata"]["name"], i["data"]) for i in body["items"]]


async def test_exact_list_is_the_state_at_that_revision(raw, http: HttpClient) -> None:
    await http.create(CM, configmap("a", v="1"))
    middle = (await http.create(CM, configmap("b", v="1")))["metadata"]["resourceVersion"]
    await http.patch(CM, "a", {"data": {"v": "2"}}, namespace="default")
    await http.delete(CM, "b", namespace="default")
    await http.create(CM, configmap("c", v="1"))
    status, body = await _list(raw, resourceVersion=middle, resourceVersionMatch="Exact")
    assert status == 200
    assert body["metadata"]["resourceVersion"] == middle
    assert _items(body) == [("a", {"v": "1"}), ("b", {"v": "1"})]
    status, now = await _list(raw, resourceVersion=middle, resourceVersionMatch="NotOlderThan")
    assert status == 200 and _items(now) == [("a", {"v": "2"}), ("c", {"v": "1"})]


async def test_exact_list_older_than_the_history_is_expired(procorch, raw, http) -> None:
    await http.create(CM, configmap("old"))
    procorch.control_plane.store._hub._compacted["core/configmaps"] = 10_000  # as if compacted
    status, body = await _list(raw, resourceVersion="1", resourceVersionMatch="Exact")
    assert status == 410
    assert body["reason"] == "Expired"
    assert body["message"] == "The resourceVersion for the provided list is too old."


async def test_list_newer_than_the_store_waits_then_times_out(raw, http: HttpClient) -> None:
    current = int((await http.list(CM, namespace="default")).resource_version)
    ahead = str(current + 1_000)
    started = asyncio.get_running_loop().time()
    status, body = await _list(raw, resourceVersion=ahead, resourceVersionMatch="NotOlderThan")
    assert asyncio.get_running_loop().time() - started >= 2.5  # the watch cache waits 3 s
    assert status == 504
    assert body["reason"] == "Timeout"
    assert body["message"].startswith(f"Timeout: Too large resource version: {ahead}, current: ")
    assert body["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    ]


async def test_list_waits_for_a_revision_that_arrives(raw, http: HttpClient) -> None:
    current = int((await http.list(CM, namespace="default")).resource_version)

    async def write_later() -> None:
        await asyncio.sleep(0.3)
        for i in range(3):
            await http.create(CM, configmap(f"late{i}"))

    writer = asyncio.create_task(write_later())
    status, body = await _list(raw, resourceVersion=str(current + 3))
    await writer
    assert status == 200
    assert int(body["metadata"]["resourceVersion"]) >= current + 3


async def test_list_options_are_validated(raw) -> None:
    status, body = await _list(raw, resourceVersionMatch="Exact")
    assert status == 422
    assert body["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
    )
    status, body = await _list(raw, resourceVersion="0", resourceVersionMatch="Exact")
    assert status == 422 and 'resourceVersionMatch "exact" is forbidden' in body["message"]


# -- patches racing other writers --------------------------------------------------------------


async def test_a_patch_that_loses_a_race_is_retried_not_refused(procorch, http) -> None:
    """A patch without a resourceVersion of its own retries on a newer object (as
    Kubernetes' GuaranteedUpdate does) instead of answering 409."""
    await http.create(CM, configmap("race", a="1"))
    store = procorch.control_plane.store
    original = store.update
    raced = False

    async def update_after_a_rival(key: Any, obj: dict[str, Any], **kw: Any) -> Any:
        nonlocal raced
        if not raced and key.name == "race":
            raced = True
            current = store.get(key)
            rival = {**current.object, "metadata": dict(current.object["metadata"])}
            rival["metadata"]["labels"] = {"suite": "rv", "rival": "yes"}
            await original(key, rival, expected_rv=current.revision)  # another writer wins
        return await original(key, obj, **kw)

    store.update = update_after_a_rival
    try:
        patched = await http.patch(CM, "race", {"data": {"b": "2"}}, namespace="default")
    finally:
        store.update = original
    assert raced
    assert patched["data"] == {"a": "1", "b": "2"}
    assert patched["metadata"]["labels"]["rival"] == "yes"
    stale = {"metadata": {"resourceVersion": "1"}, "data": {"c": "3"}}
    with pytest.raises(errors.Conflict):
        await http.patch(CM, "race", stale, namespace="default")
    # A failed precondition of the patch itself is answered at once, in its own words.
    other_uid = {"metadata": {"uid": "00000000-0000-0000-0000-000000000000"}}
    with pytest.raises(errors.Conflict, match="Precondition failed: UID in precondition"):
        await http.patch(CM, "race", other_uid, namespace="default")


async def test_status_bodies_are_kube_apiservers_text(raw, http: HttpClient) -> None:
    """Fields in Go's order, empty details where kube-apiserver sends them (kubectl debug
    reads them), a trailing newline (the official client's tests compare the text)."""
    async with raw.session.get(f"{raw.url}/api/v1/nosuchthings", headers=raw.headers()) as r:
        assert r.status == 404
        assert await r.read() == (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            b'"message":"the server could not find the requested resource",'
            b'"reason":"NotFound","details":{},"code":404}\n'
        )
    url = f"{raw.url}/apis/apps/v1/namespaces/default/deployments/nope"
    async with raw.session.get(url, headers=raw.headers()) as r:
        assert await r.read() == (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            b'"message":"deployments.apps \\"nope\\" not found","reason":"NotFound",'
            b'"details":{"name":"nope","group":"apps","kind":"deployments"},"code":404}\n'
        )
    created = await http.create(CM, configmap("gone"), namespace="default")
    url = f"{raw.url}/api/v1/namespaces/default/configmaps/gone"
    async with raw.session.delete(url, headers=raw.headers()) as r:
        assert await r.read() == (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
            b'"details":{"name":"gone","kind":"configmaps","uid":"'
            + created["metadata"]["uid"].encode()
            + b'"}}\n'
        )


async def test_bodies_kubernetes_accepts_are_accepted(raw, http: HttpClient) -> None:
    """A Secret's base64 wrapped over lines (a YAML block); a create whose resourceVersion is
    not a version (only a decimal other than 0 is refused, as kube-apiserver's storage)."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "wrapped"},
        "data": {"key": "aGVsbG8gd29y\nbGQgaGVsbG8g\r\nd29ybGQ=\n"},
    }
    stored = await http.create(SECRETS, secret, namespace="default")
    assert stored["data"]["key"] == "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="  # "hello world hello world"
    for version in ("abc", "0", "-3", ""):
        obj = configmap(f"rv-{len(version)}-{version.strip('-') or 'x'}")
        obj["metadata"]["resourceVersion"] = version
        made = await http.create(CM, obj, namespace="default")
        assert made["metadata"]["resourceVersion"] not in ("abc", "0", "-3", "")
    obj = configmap("rv-set")
    obj["metadata"]["resourceVersion"] = "12"
    with pytest.raises(errors.BadRequest, match="resourceVersion should not be set"):
        await http.create(CM, obj, namespace="default")
