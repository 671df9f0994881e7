"""managedFields bookkeeping and server-side apply: ownership, conflicts, force, pruning."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from procorch.api import errors
from procorch.api.patch import (
    LAST_APPLIED_ANNOTATION,
    decode_apply_body,
    server_side_apply,
    update_managed_fields,
)
from procorch.api.schema import Atomic, ListMap, ListSet, node_for

T0, T1, T2, T3 = (f"2026-01-01T00:00:0{i}Z" for i in range(4))


class Meta(BaseModel):
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: Annotated[list[str] | None, ListSet()] = None
    managedFields: list[dict[str, Any]] | None = None


class ConfigMap(BaseModel):
    apiVersion: str | None = None
    kind: str | None = None
    metadata: Meta | None = None
    data: dict[str, str] | None = None


class Port(BaseModel):
    containerPort: int
    protocol: str | None = None


class Container(BaseModel):
    name: str
    image: str | None = None
    args: list[str] | None = None
    ports: Annotated[
        list[Port] | None, ListMap("containerPort", "protocol", merge_key="containerPort")
    ] = None


class Selector(BaseModel):
    matchLabels: dict[str, str] | None = None


class Spec(BaseModel):
    replicas: int | None = None
    selector: Annotated[Selector | None, Atomic()] = None
    containers: Annotated[list[Container] | None, ListMap("name")] = None


class Thing(BaseModel):
    apiVersion: str | None = None
    kind: str | None = None
    metadata: Meta | None = None
    spec: Spec | None = None
    status: dict[str, Any] | None = None


CM = node_for(ConfigMap)
THING = node_for(Thing)


def configmap(data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", **meta},
        "data": data,
    }


def thing(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.io/v1",
        "kind": "Thing",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": {"containers": containers, **spec},
    }


def entry(obj: dict[str, Any], manager: str, operation: str | None = None) -> dict[str, Any]:
    found = [
        e
        for e in obj["metadata"].get("managedFields", [])
        if e["manager"] == manager and (operation is None or e["operation"] == operation)
    ]
    assert len(found) == 1, obj["metadata"].get("managedFields")
    return found[0]


def managers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields", [])]


def create(obj: dict[str, Any], manager: str, schema: Any = CM, **kw: Any) -> dict[str, Any]:
    api_version = obj["apiVersion"]
    obj["metadata"]["managedFields"] = update_managed_fields(
        old=None, new=obj, manager=manager, api_version=api_version, now=T0, schema=schema, **kw
    )
    return obj


def update(
    old: dict[str, Any],
    new: dict[str, Any],
    manager: str,
    now: str = T1,
    schema: Any = CM,
    **kw: Any,
) -> dict[str, Any]:
    new = json.loads(json.dumps(new))
    new["metadata"]["managedFields"] = update_managed_fields(
        old=old,
        new=new,
        manager=manager,
        api_version=new["apiVersion"],
        now=now,
        schema=schema,
        **kw,
    )
    return new


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    *,
    force: bool = False,
    now: str = T1,
    schema: Any = CM,
    **kw: Any,
) -> dict[str, Any]:
    return server_side_apply(
        live=live,
        config=config,
        manager=manager,
        force=force,
        api_version=config["apiVersion"],
        now=now,
        schema=schema,
        **kw,
    )


# ---- Update operations --------------------------------------------------------------------


def test_create_tracks_every_set_field_in_fields_v1() -> None:
    obj = create(configmap({"a": "1"}, labels={"app": "web"}), "kubectl-create")
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:data": {".": {}, "f:a": {}},
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            },
        }
    ]


def test_server_set_metadata_is_never_tracked() -> None:
    obj = configmap(
        {"a": "1"},
        uid="u-1",
        resourceVersion="7",
        generation=1,
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    fields = create(obj, "m")["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields == {"f:data": {".": {}, "f:a": {}}}


def test_status_is_not_tracked_on_the_main_resource_of_a_kind_with_status() -> None:
    obj = thing([{"name": "web", "image": "v1"}])
    obj["status"] = {"ready": True}
    fields = create(obj, "m", schema=THING, has_status=True)["metadata"]["managedFields"][0]
    assert "f:status" not in fields["fieldsV1"]
    tracked = create(thing([]), "m", schema=THING)
    assert "f:status" not in json.dumps(tracked["metadata"].get("managedFields", []))


def test_update_moves_changed_fields_to_the_writer() -> None:
    old = create(configmap({"a": "1", "b": "2"}), "creator")
    new = update(old, configmap({"a": "changed", "b": "2"}), "editor")
    assert entry(new, "creator")["fieldsV1"] == {"f:data": {".": {}, "f:b": {}}}
    assert entry(new, "editor")["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert entry(new, "editor")["time"] == T1
    assert entry(new, "creator")["time"] == T0


def test_update_that_changes_nothing_adds_no_entry_and_keeps_times() -> None:
    old = create(configmap({"a": "1"}), "creator")
    new = update(old, configmap({"a": "1"}), "idle", now=T2)
    assert managers(new) == [("creator", "Update")]
    assert entry(new, "creator")["time"] == T0


def test_removed_fields_leave_every_manager() -> None:
    old = create(configmap({"a": "1"}), "creator")
    new = update(old, configmap({"b": "2"}), "editor")
    # The creator still owns the data map it created (as in Kubernetes), not the removed key.
    assert entry(new, "creator")["fieldsV1"] == {"f:data": {}}
    assert entry(new, "editor")["fieldsV1"] == {"f:data": {"f:b": {}}}


def test_managers_left_with_nothing_are_dropped() -> None:
    old = create(configmap({"a": "1"}, labels={"x": "1"}), "creator")
    old = update(old, configmap({"a": "2"}, labels={"x": "1"}), "editor")
    new = update(old, configmap({}, labels={"x": "1"}), "cleaner")
    assert [m for m, _ in managers(new)] == ["creator"]


def test_same_manager_accumulates_its_fields() -> None:
    old = create(configmap({"a": "1"}), "m")
    new = update(old, configmap({"a": "1", "b": "2"}), "m")
    assert entry(new, "m")["fieldsV1"] == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}


def test_existing_untracked_object_stays_untracked_on_update() -> None:
    result = update_managed_fields(
        old=configmap({"a": "1"}),
        new=configmap({"a": "2"}),
        manager="m",
        api_version="v1",
        now=T1,
        schema=CM,
    )
    assert result == []


@pytest.mark.parametrize("reset", [[], [{}]])
def test_client_can_reset_managed_fields(reset: list[dict[str, Any]]) -> None:
    old = create(configmap({"a": "1"}), "creator")
    new = configmap({"a": "1"})
    new["metadata"]["managedFields"] = reset
    result = update_managed_fields(
        old=old, new=new, manager="m", api_version="v1", now=T1, schema=CM
    )
    assert result == []


def test_status_subresource_write_owns_status_only_and_is_labelled() -> None:
    old = create(thing([{"name": "web", "image": "v1"}]), "creator", schema=THING, has_status=True)
    new = dict(old, status={"ready": True})
    new["spec"] = {"replicas": 9, "containers": [{"name": "web", "image": "v1"}]}
    new = update(old, new, "agent", schema=THING, subresource="status", has_status=True)
    agent = entry(new, "agent")
    assert agent["subresource"] == "status"
    assert agent["fieldsV1"] == {"f:status": {".": {}, "f:ready": {}}}


def test_more_than_ten_update_managers_fold_into_ancient_changes() -> None:
    obj = create(configmap({"k0": "v"}), "m0")
    for i in range(1, 12):
        data = {f"k{j}": "v" for j in range(i + 1)}
        obj = update(obj, configmap(data), f"m{i}", now=f"2026-01-01T00:{i:02d}:00Z")
    names = [m for m, _ in managers(obj)]
    assert len(names) == 10
    assert "ancient-changes" in names
    assert "m0" not in names and "m1" not in names and "m2" not in names
    ancient = entry(obj, "ancient-changes")["fieldsV1"]["f:data"]
    assert {"f:k0", "f:k1", "f:k2"} <= set(ancient)


# ---- server-side apply --------------------------------------------------------------------


def test_apply_creates_the_object_and_records_an_apply_entry() -> None:
    config = configmap({"a": "1"}, labels={"app": "web"})
    obj = apply(None, config, "kubectl")
    assert obj["data"] == {"a": "1"}
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:data": {"f:a": {}},
                "f:metadata": {"f:labels": {"f:app": {}}},
            },
        }
    ]


def test_apply_tracks_list_items_by_key_and_atomic_structs_whole() -> None:
    config = thing(
        [{"name": "web", "image": "v1", "ports": [{"containerPort": 80}]}],
        selector={"matchLabels": {"app": "web"}},
    )
    fields = apply(None, config, "mgr", schema=THING)["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields == {
        "f:spec": {
            "f:containers": {
                'k:{"name":"web"}': {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {
                        'k:{"containerPort":80,"protocol":"TCP"}': {
                            ".": {},
                            "f:containerPort": {},
                        }
                    },
                }
            },
            "f:selector": {},
        }
    }


def test_reapplying_with_a_new_value_updates_the_object() -> None:
    live = apply(None, configmap({"a": "1"}), "mgr")
    new = apply(live, configmap({"a": "2"}), "mgr", now=T2)
    assert new["data"] == {"a": "2"}
    assert entry(new, "mgr")["time"] == T2


def test_noop_apply_keeps_the_time() -> None:
    live = apply(None, configmap({"a": "1"}), "mgr")
    again = apply(live, configmap({"a": "1"}), "mgr", now=T3)
    assert entry(again, "mgr")["time"] == T1


def test_conflict_with_an_update_manager_has_kubernetes_exact_status() -> None:
    live = create(configmap({"a": "1"}), "kubectl-client-side-apply")
    with pytest.raises(errors.Conflict) as info:
        apply(live, configmap({"a": "2"}), "other")
    assert info.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using v1: .data.a",
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-client-side-apply" using v1',
                    "field": ".data.a",
                }
            ]
        },
        "code": 409,
    }


def test_several_conflicts_are_grouped_per_manager_and_pluralised() -> None:
    live = create(configmap({"a": "1", "b": "1"}), "creator")
    live = apply(live, configmap({"c": "1"}), "applier")
    with pytest.raises(errors.Conflict) as info:
        apply(live, configmap({"a": "2", "b": "2", "c": "2"}), "other")
    assert info.value.message == (
        "Apply failed with 3 conflicts: "
        'conflicts with "applier":\n- .data.c\n'
        'conflicts with "creator" using v1:\n- .data.a\n- .data.b'
    )
    fields = [c["field"] for c in info.value.details["causes"]]
    assert fields == [".data.c", ".data.a", ".data.b"]


def test_conflict_path_names_keyed_list_items() -> None:
    live = create(thing([{"name": "web", "image": "v1"}]), "creator", schema=THING)
    config = thing([{"name": "web", "image": "v2"}])
    with pytest.raises(errors.Conflict) as info:
        apply(live, config, "other", schema=THING)
    assert info.value.details["causes"][0]["field"] == '.spec.containers[name="web"].image'


def test_applying_the_same_value_shares_ownership_without_conflict() -> None:
    live = create(configmap({"a": "1"}), "creator")
    new = apply(live, configmap({"a": "1"}), "applier")
    assert entry(new, "creator")["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    assert entry(new, "applier")["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_force_takes_the_field_over() -> None:
    live = create(configmap({"a": "1", "b": "1"}), "creator")
    new = apply(live, configmap({"a": "2"}), "applier", force=True)
    assert new["data"] == {"a": "2", "b": "1"}
    assert entry(new, "creator")["fieldsV1"] == {"f:data": {".": {}, "f:b": {}}}
    assert entry(new, "applier")["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_fields_left_out_of_a_later_apply_are_removed() -> None:
    live = apply(None, configmap({"a": "1", "b": "2"}), "mgr")
    new = apply(live, configmap({"a": "1"}), "mgr", now=T2)
    assert new["data"] == {"a": "1"}
    assert entry(new, "mgr")["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_fields_left_out_stay_when_another_manager_owns_them() -> None:
    live = apply(None, configmap({"a": "1", "b": "2"}), "mgr")
    live = apply(live, configmap({"b": "2"}), "other")
    new = apply(live, configmap({"a": "1"}), "mgr", now=T2)
    assert new["data"] == {"a": "1", "b": "2"}
    assert entry(new, "other")["fieldsV1"] == {"f:data": {"f:b": {}}}


def test_fields_another_manager_set_are_not_pruned_by_an_applier() -> None:
    live = apply(None, configmap({"a": "1"}), "mgr")
    live = update(live, configmap({"a": "1", "z": "edit"}), "kubectl-edit")
    new = apply(live, configmap({"a": "1", "b": "2"}), "mgr", now=T2)
    assert new["data"] == {"a": "1", "b": "2", "z": "edit"}


def test_list_items_dropped_from_the_config_are_removed() -> None:
    config = thing([{"name": "web", "image": "v1"}, {"name": "side", "image": "s"}])
    live = apply(None, config, "mgr", schema=THING)
    new = apply(live, thing([{"name": "web", "image": "v1"}]), "mgr", schema=THING, now=T2)
    assert new["spec"]["containers"] == [{"name": "web", "image": "v1"}]


def test_two_appliers_share_a_keyed_list() -> None:
    live = apply(None, thing([{"name": "web", "image": "v1"}]), "a", schema=THING)
    live = apply(live, thing([{"name": "side", "image": "s"}]), "b", schema=THING)
    assert [c["name"] for c in live["spec"]["containers"]] == ["web", "side"]
    # "a" re-applies its own config: "side" belongs to "b" and must survive.
    again = apply(live, thing([{"name": "web", "image": "v2"}]), "a", schema=THING, now=T2)
    assert again["spec"]["containers"] == [
        {"name": "web", "image": "v2"},
        {"name": "side", "image": "s"},
    ]


def test_apply_merges_into_fields_it_does_not_mention() -> None:
    live = create(
        thing([{"name": "web", "image": "v1", "args": ["-x"]}], replicas=3), "creator", schema=THING
    )
    new = apply(live, thing([{"name": "web", "image": "v1"}]), "app", schema=THING)
    assert new["spec"]["replicas"] == 3
    assert new["spec"]["containers"][0]["args"] == ["-x"]


def test_first_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    live = configmap({"a": "1"})
    with pytest.raises(errors.Conflict, match='conflict with "before-first-apply" using v1'):
        apply(live, configmap({"a": "2"}), "applier")
    forced = apply(live, configmap({"a": "2"}), "applier", force=True)
    assert entry(forced, "applier")["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert entry(forced, "before-first-apply")["fieldsV1"] == {"f:data": {}}


# ---- client-side apply to server-side apply (contract §7) --------------------------------


def csa_created(data: dict[str, str]) -> dict[str, Any]:
    config = configmap(data)
    del config["metadata"]["namespace"]
    annotation = json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"
    obj = configmap(data, annotations={LAST_APPLIED_ANNOTATION: annotation})
    return create(obj, "kubectl-client-side-apply")


def test_managed_fields_after_client_side_apply_then_server_side_apply() -> None:
    live = csa_created({"a": "1"})
    assert managers(live) == [("kubectl-client-side-apply", "Update")]
    new = apply(live, configmap({"a": "1", "b": "2"}), "kubectl", now=T2)
    assert managers(new) == [("kubectl", "Apply"), ("kubectl-client-side-apply", "Update")]
    assert entry(new, "kubectl")["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    csa = entry(new, "kubectl-client-side-apply")["fieldsV1"]
    assert csa["f:data"] == {".": {}, "f:a": {}}
    assert "f:kubectl.kubernetes.io/last-applied-configuration" in json.dumps(csa)


def test_kubectl_server_side_apply_takes_over_fields_from_client_side_apply() -> None:
    live = csa_created({"a": "1"})
    new = apply(live, configmap({"a": "2"}), "kubectl", now=T2)
    assert new["data"] == {"a": "2"}
    assert "f:a" not in entry(new, "kubectl-client-side-apply")["fieldsV1"]["f:data"]
    assert entry(new, "kubectl")["fieldsV1"] == {"f:data": {"f:a": {}}}
    # kubectl's server-side apply keeps the client-side annotation in step with what it applied.
    recorded = json.loads(new["metadata"]["annotations"][LAST_APPLIED_ANNOTATION])
    assert recorded["data"] == {"a": "2"}
    assert new["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].endswith("\n")


def test_other_managers_still_conflict_with_client_side_apply() -> None:
    live = csa_created({"a": "1"})
    with pytest.raises(errors.Conflict) as info:
        apply(live, configmap({"a": "2"}), "my-tool")
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.a'
    )


def test_kubectl_still_conflicts_on_fields_edited_after_the_client_side_apply() -> None:
    live = csa_created({"a": "1"})
    live = update(live, dict(live, data={"a": "edited"}), "kubectl-edit")
    with pytest.raises(errors.Conflict, match='"kubectl-edit" using v1: .data.a'):
        apply(live, configmap({"a": "2"}), "kubectl", now=T2)


# ---- requests refused ---------------------------------------------------------------------


def test_apply_refuses_a_different_api_version() -> None:
    config = dict(configmap({"a": "1"}), apiVersion="v2")
    with pytest.raises(errors.BadRequest, match="Incorrect version specified in apply patch"):
        server_side_apply(
            live=None, config=config, manager="m", force=False, api_version="v1", now=T1, schema=CM
        )


def test_apply_refuses_managed_fields_in_the_config() -> None:
    config = configmap({"a": "1"}, managedFields=[])
    with pytest.raises(errors.BadRequest, match="metadata.managedFields must be nil"):
        apply(None, config, "m")


def test_apply_refuses_duplicate_keys_in_a_list_map() -> None:
    config = thing([{"name": "web"}, {"name": "web"}])
    with pytest.raises(errors.BadRequest, match="duplicate entries for key"):
        apply(None, config, "m", schema=THING)


def test_apply_refuses_a_config_without_kind() -> None:
    config = configmap({"a": "1"})
    del config["kind"]
    with pytest.raises(errors.BadRequest, match="Kind"):
        apply(None, config, "m")


def test_apply_does_not_mutate_its_inputs() -> None:
    live = create(configmap({"a": "1", "b": "1"}), "creator")
    config = configmap({"a": "2"})
    before = json.dumps([live, config], sort_keys=True)
    apply(live, config, "applier", force=True)
    assert json.dumps([live, config], sort_keys=True) == before


def test_apply_body_decodes_from_json_and_yaml() -> None:
    assert decode_apply_body(b'{"kind":"ConfigMap"}') == {"kind": "ConfigMap"}
    doc = decode_apply_body(b"kind: ConfigMap\ndata:\n  when: 2026-01-01T00:00:00Z\n")
    assert doc == {"kind": "ConfigMap", "data": {"when": "2026-01-01T00:00:00Z"}}
    with pytest.raises(errors.BadRequest):
        decode_apply_body(b"- a list\n")
