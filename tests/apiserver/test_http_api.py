"""The REST API on the wire: authentication, discovery, errors, concurrency, watch, paging."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from procorch.api import errors, resources
from procorch.client.http import HttpClient

CM = resources.must("core/configmaps")
DEPLOY = resources.must("apps/deployments")
SECRETS = resources.must("core/secrets")
NS = resources.must("core/namespaces")

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    }


def deployment(name: str, replicas: Any = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "command": ["sleep", "1"]}]},
            },
        },
    }


async def test_requests_without_a_valid_token_are_refused(raw) -> None:
    async with raw.session.get(f"{raw.url}/api/v1/namespaces") as r:
        assert r.status == 401
        body = await r.json()
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    bad = {"Authorization": "Bearer not-the-token"}
    async with raw.session.get(f"{raw.url}/api/v1/namespaces", headers=bad) as r:
        assert r.status == 401


async def test_health_endpoints_and_version_answer_anonymously(raw) -> None:
    for path in ("/livez", "/readyz", "/healthz"):
        async with raw.session.get(raw.url + path) as r:
            assert r.status == 200 and await r.text() == "ok"
    async with raw.session.get(raw.url + "/version/") as r:
        assert (await r.json())["minor"] == "32"


async def test_metrics_need_a_token_and_count_requests_by_method_and_status(raw) -> None:
    async with raw.session.get(raw.url + "/metrics") as r:
        assert r.status == 401
    async with raw.session.get(f"{raw.url}/api/v1/namespaces/nope", headers=raw.headers()) as r:
        assert r.status == 404
    async with raw.session.get(raw.url + "/metrics", headers=raw.headers()) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    counts = {
        line.split(" ")[0]: int(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("procorch_apiserver_requests_total{")
    }
    assert counts['procorch_apiserver_requests_total{method="GET",code="404"}'] >= 1
    assert counts['procorch_apiserver_requests_total{method="GET",code="401"}'] >= 1
    assert "procorch_apiserver_watches_open 0" in text.splitlines()


async def test_self_access_reviews_ask_the_authorizer_for_the_caller(raw, procorch) -> None:
    from procorch.apiserver.auth import User

    url = f"{raw.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets"}},
    }
    async with raw.session.post(url, json=review, headers=raw.headers()) as r:
        assert r.status == 201
        answer = await r.json()
    assert answer["status"]["allowed"] is True and answer["spec"] == review["spec"]
    # A user outside system:masters is refused by the authorizer that serves every request.
    procorch.control_plane.authenticator.add("viewer-token", User(name="viewer"))
    viewer = {"Authorization": "Bearer viewer-token"}
    async with raw.session.post(url, json=review, headers=viewer) as r:
        assert (await r.json())["status"] == {"allowed": False}  # no rule: no reason, as RBAC
    # ... and so is its scrape of /metrics, as can-i says.
    async with raw.session.get(f"{raw.url}/metrics", headers=viewer) as r:
        assert r.status == 403
    whoami = f"{raw.url}/apis/authentication.k8s.io/v1/selfsubjectreviews"
    async with raw.session.post(whoami, json={"metadata": None}, headers=viewer) as r:
        answer = await r.json()
    assert answer["status"]["userInfo"] == {"username": "viewer", "groups": []}
    assert (answer["apiVersion"], answer["kind"]) == (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
    )
    # Exactly one kind of attributes.
    async with raw.session.post(url, json={"spec": {}}, headers=raw.headers()) as r:
        assert r.status == 422
        assert (await r.json())["details"]["causes"][0]["field"] == "spec.resourceAttributes"


async def test_aggregated_discovery_uses_the_exact_content_type(raw) -> None:
    accept = f"{AGGREGATED},application/json"
    async with raw.session.get(f"{raw.url}/apis", headers=raw.headers(Accept=accept)) as r:
        assert r.headers["Content-Type"] == AGGREGATED
        doc = await r.json()
    apps = next(g for g in doc["items"] if g["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["shortNames"] == ["deploy"] and deploy["categories"] == ["all"]
    assert {s["subresource"] for s in deploy["subresources"]} == {"status", "scale"}
    async with raw.session.get(f"{raw.url}/apis", headers=raw.headers()) as r:
        legacy = await r.json()
    assert legacy["kind"] == "APIGroupList"
    async with raw.session.get(f"{raw.url}/apis/apps/v1", headers=raw.headers()) as r:
        names = {res["name"] for res in (await r.json())["resources"]}
    assert {"deployments", "deployments/scale", "replicasets/status"} <= names


async def test_stale_resource_version_is_a_conflict_status(http: HttpClient) -> None:
    created = await http.create(CM, configmap("c", a="1"))
    await http.update(CM, {**created, "data": {"a": "2"}})
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await http.update(CM, {**created, "data": {"a": "3"}})
    assert (await http.get(CM, "c", namespace="default"))["data"] == {"a": "2"}


async def test_resource_version_is_the_revision_of_the_last_write(http: HttpClient) -> None:
    # Controllers write too (the namespace defaults, ...), so revisions need not be adjacent.
    a = await http.create(CM, configmap("a"))
    b = await http.create(CM, configmap("b"))
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    listed = await http.list(CM, namespace="default")
    assert int(listed.resource_version) >= int(b["metadata"]["resourceVersion"])
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed.items}
    assert versions["a"] == a["metadata"]["resourceVersion"]
    assert versions["b"] == b["metadata"]["resourceVersion"]


async def test_spec_changes_bump_generation_but_metadata_changes_do_not(http: HttpClient) -> None:
    created = await http.create(DEPLOY, deployment("web"))
    assert created["metadata"]["generation"] == 1
    labelled = await http.patch(
        DEPLOY, "web", {"metadata": {"labels": {"x": "y"}}}, namespace="default"
    )
    assert labelled["metadata"]["generation"] == 1
    scaled = await http.patch(DEPLOY, "web", {"spec": {"replicas": 3}}, namespace="default")
    assert scaled["metadata"]["generation"] == 2
    # The deployment controller writes this Deployment too: write from a fresh read, as any
    # client would, until no write of its own comes in between.
    written = await _write_fresh(
        http, lambda d: http.update_status(DEPLOY, {**d, "status": {"observedGeneration": 2}})
    )
    assert written["metadata"]["generation"] == 2
    assert written["status"]["observedGeneration"] == 2
    # A main-resource update cannot change status.
    again = await _write_fresh(
        http, lambda d: http.update(DEPLOY, {**d, "status": {"replicas": 99}})
    )
    assert again["status"].get("replicas") != 99


async def _write_fresh(http: HttpClient, write: Any) -> Any:
    for _ in range(50):
        fresh = await http.get(DEPLOY, "web", namespace="default")
        try:
            return await write(fresh)
        except errors.Conflict:
            await asyncio.sleep(0.02)
    raise AssertionError("the Deployment kept changing")


async def test_invalid_object_reports_every_field_and_stores_nothing(http: HttpClient) -> None:
    bad = deployment("bad", replicas="three")
    bad["spec"]["template"]["spec"]["containers"][0].pop("command")
    with pytest.raises(errors.Invalid) as caught:
        await http.create(DEPLOY, bad)
    fields = {c["field"] for c in caught.value.details["causes"]}
    assert "spec.replicas" in fields
    assert "must be an integer" in caught.value.message
    with pytest.raises(errors.NotFound):
        await http.get(DEPLOY, "bad", namespace="default")


async def test_container_without_command_is_refused_with_a_reason(http: HttpClient) -> None:
    bad = deployment("nocmd")
    bad["spec"]["template"]["spec"]["containers"][0].pop("command")
    with pytest.raises(errors.Invalid) as caught:
        await http.create(DEPLOY, bad)
    assert "spec.template.spec.containers[0].command" in caught.value.message
    assert "procorch runs processes" in caught.value.message


async def test_strict_field_validation_rejects_unknown_fields(raw) -> None:
    body = json.dumps({**configmap("strict"), "dataz": {"a": "b"}})
    url = f"{raw.url}/api/v1/namespaces/default/configmaps"
    headers = raw.headers(**{"Content-Type": "application/json"})
    async with raw.session.post(url + "?fieldValidation=Strict", data=body, headers=headers) as r:
        assert r.status == 400
        status = await r.json()
    assert 'strict decoding error: unknown field "dataz"' in status["message"]
    async with raw.session.post(url, data=body, headers=headers) as r:
        assert r.status == 201
        assert 'unknown field \\"dataz\\"' in r.headers["Warning"]
        assert "dataz" not in await r.json()


async def test_dry_run_validates_without_storing(http: HttpClient) -> None:
    result = await http.create(CM, configmap("dry"), dry_run=True)
    assert result["metadata"]["name"] == "dry"
    with pytest.raises(errors.NotFound):
        await http.get(CM, "dry", namespace="default")


async def test_creating_into_a_missing_namespace_is_not_found(http: HttpClient) -> None:
    obj = configmap("x")
    obj["metadata"]["namespace"] = "nowhere"
    with pytest.raises(errors.NotFound, match='namespaces "nowhere" not found'):
        await http.create(CM, obj)


async def test_unknown_kind_names_the_kind(raw) -> None:
    async with raw.session.get(
        f"{raw.url}/apis/apps/v1/namespaces/default/replicasets-of-nothing", headers=raw.headers()
    ) as r:
        assert r.status == 404
        assert (await r.json())["kind"] == "Status"


async def test_secret_string_data_is_merged_into_base64_data(http: HttpClient) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default"},
        "data": {"a": "YQ=="},
        "stringData": {"b": "bee"},
    }
    created = await http.create(SECRETS, secret)
    assert created["data"] == {"a": "YQ==", "b": "YmVl"}
    assert "stringData" not in created and created["type"] == "Opaque"


async def test_generate_name_gives_a_unique_name(http: HttpClient) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"generateName": "job-", "namespace": "default"},
    }
    names = {(await http.create(CM, body))["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("job-") and len(n) == 9 for n in names)


async def test_table_responses_carry_columns_and_row_metadata(raw, http: HttpClient) -> None:
    await http.create(CM, configmap("t", a="1", b="2"))
    async with raw.session.get(
        f"{raw.url}/api/v1/namespaces/default/configmaps",
        params={"fieldSelector": "metadata.name=t"},  # not kube-root-ca.crt
        headers=raw.headers(Accept=TABLE),
    ) as r:
        table = await r.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    row = table["rows"][0]
    assert row["cells"][:2] == ["t", 2]
    assert row["object"]["metadata"]["name"] == "t"


async def test_label_and_field_selectors_filter_lists(http: HttpClient) -> None:
    for name, tier in (("a", "fe"), ("b", "be"), ("c", None)):
        obj = configmap(name)
        obj["metadata"]["labels"] = {"suite": "sel", **({"tier": tier} if tier else {})}
        await http.create(CM, obj)

    async def names(**kw: str) -> list[str]:
        return [o["metadata"]["name"] for o in (await http.list(CM, **kw)).items]

    assert await names(namespace="default", label_selector="tier=fe") == ["a"]
    assert await names(namespace="default", label_selector="tier in (fe,be)") == ["a", "b"]
    assert await names(namespace="default", label_selector="suite=sel,!tier") == ["c"]
    assert await names(namespace="default", label_selector="tier,tier!=fe") == ["b"]
    assert await names(field_selector="metadata.name=b,metadata.namespace=default") == ["b"]
    with pytest.raises(errors.BadRequest, match="field label not supported"):
        await names(field_selector="spec.nothing=x")


async def test_paginated_list_is_consistent_across_pages(raw, http: HttpClient) -> None:
    for i in range(7):
        obj = configmap(f"p{i}")
        obj["metadata"]["labels"] = {"suite": "page"}
        await http.create(CM, obj)
    url = f"{raw.url}/api/v1/namespaces/default/configmaps"
    first_page = {"limit": "3", "labelSelector": "suite=page"}
    async with raw.session.get(url, params=first_page, headers=raw.headers()) as r:
        first = await r.json()
    token = first["metadata"]["continue"]
    assert len(first["items"]) == 3 and first["metadata"]["remainingItemCount"] == 4
    late = configmap("p-late")
    late["metadata"]["labels"] = {"suite": "page"}
    await http.create(CM, late)  # not in the snapshot being paged
    seen = [i["metadata"]["name"] for i in first["items"]]
    while token:
        async with raw.session.get(
            url, params={"limit": "3", "continue": token}, headers=raw.headers()
        ) as r:
            page = await r.json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert seen == [f"p{i}" for i in range(7)]


async def _events(raw, params: dict[str, str], count: int, *, accept: str = "") -> list[dict]:
    headers = raw.headers(**({"Accept": accept} if accept else {}))
    out: list[dict] = []
    async with raw.session.get(
        f"{raw.url}/api/v1/namespaces/default/configmaps",
        params={"watch": "true", **params},
        headers=headers,
    ) as r:
        assert r.status == 200
        async for line in r.content:
            out.append(json.loads(line))
            if len(out) >= count:
                break
    return out


async def test_watch_from_zero_starts_with_synthetic_added_events(raw, http) -> None:
    for name in ("w1", "w2"):
        obj = configmap(name)
        obj["metadata"]["labels"] = {"suite": "watch"}
        await http.create(CM, obj)
    params = {"resourceVersion": "0", "labelSelector": "suite=watch"}
    events = await asyncio.wait_for(_events(raw, params, 2), 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"),
        ("ADDED", "w2"),
    ]


async def test_watch_from_a_revision_replays_then_streams(raw, http: HttpClient) -> None:
    first = await http.create(CM, configmap("w"))
    rv = first["metadata"]["resourceVersion"]
    await http.patch(CM, "w", {"data": {"x": "1"}}, namespace="default")
    params = {"resourceVersion": rv, "fieldSelector": "metadata.name=w"}
    task = asyncio.create_task(_events(raw, params, 2))
    await asyncio.sleep(0.2)
    await http.delete(CM, "w", namespace="default")
    events = await asyncio.wait_for(task, 5)
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]


async def test_watch_reports_objects_leaving_a_selector_as_deleted(raw, http) -> None:
    obj = configmap("sel")
    obj["metadata"]["labels"] = {"app": "a"}
    created = await http.create(CM, obj)
    task = asyncio.create_task(
        _events(
            raw,
            {"resourceVersion": created["metadata"]["resourceVersion"], "labelSelector": "app=a"},
            2,
        )
    )
    await asyncio.sleep(0.2)
    await http.patch(CM, "sel", {"metadata": {"labels": {"app": "b"}}}, namespace="default")
    await http.patch(CM, "sel", {"metadata": {"labels": {"app": "a"}}}, namespace="default")
    events = await asyncio.wait_for(task, 5)
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


async def test_watch_from_a_too_old_revision_sends_an_expired_error(procorch, raw, http) -> None:
    procorch.control_plane.store._hub._compacted["core/configmaps"] = 10_000  # as if compacted
    events = await asyncio.wait_for(_events(raw, {"resourceVersion": "1"}, 1), 5)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


async def test_watch_bookmarks_carry_the_current_revision(procorch, raw, http) -> None:
    procorch.control_plane.http.bookmark_interval = 0.2
    created = await http.create(CM, configmap("bm"))
    rv = created["metadata"]["resourceVersion"]
    params = {
        "resourceVersion": rv,
        "allowWatchBookmarks": "true",
        "fieldSelector": "metadata.name=bm",  # controllers write other configmaps meanwhile
    }
    events = await asyncio.wait_for(_events(raw, params, 1), 5)
    assert events[0]["type"] == "BOOKMARK"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)


async def test_watch_as_table_sends_rows(raw, http: HttpClient) -> None:
    await http.create(CM, configmap("tw", a="1"))
    params = {"resourceVersion": "0", "fieldSelector": "metadata.name=tw"}
    events = await asyncio.wait_for(_events(raw, params, 1, accept=TABLE), 5)
    assert events[0]["object"]["kind"] == "Table"
    assert events[0]["object"]["rows"][0]["cells"][0] == "tw"


async def test_deleting_a_namespace_deletes_its_contents_then_itself(http: HttpClient) -> None:
    await http.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    obj = configmap("inside")
    obj["metadata"]["namespace"] = "doomed"
    await http.create(CM, obj)
    deleting = await http.delete(NS, "doomed")
    assert deleting["status"]["phase"] == "Terminating"
    for _ in range(100):
        try:
            await http.get(NS, "doomed")
        except errors.NotFound:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("namespace was not deleted")
    assert (await http.list(CM, namespace="doomed")).items == []


async def test_system_namespaces_exist(http: HttpClient) -> None:
    names = {n["metadata"]["name"] for n in (await http.list(NS)).items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


async def test_deletecollection_deletes_matching_objects(http: HttpClient, raw) -> None:
    for name in ("d1", "d2", "keep"):
        obj = configmap(name)
        obj["metadata"]["labels"] = {"del": "yes" if name != "keep" else "no"}
        await http.create(CM, obj)
    async with raw.session.delete(
        f"{raw.url}/api/v1/namespaces/default/configmaps",
        params={"labelSelector": "del=yes"},
        headers=raw.headers(),
    ) as r:
        assert r.status == 200
    left = await http.list(CM, namespace="default", label_selector="del")
    assert [o["metadata"]["name"] for o in left.items] == ["keep"]
