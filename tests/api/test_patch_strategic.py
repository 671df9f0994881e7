"""Strategic merge patch: kubectl's real bodies, list merges, directives, errors."""

from __future__ import annotations

import copy
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from procorch.api import errors
from procorch.api.patch import apply_patch, strategic_merge_patch
from procorch.api.schema import ListMap, ListSet, MergeByKey, RetainKeys, node_for

# ---- a small Deployment-shaped schema carrying the same markers as the real types ----------


class EnvVar(BaseModel):
    name: str
    value: str | None = None


class Port(BaseModel):
    containerPort: int
    protocol: str | None = None
    name: str | None = None


class Mount(BaseModel):
    name: str
    mountPath: str
    readOnly: bool | None = None


class Container(BaseModel):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: Annotated[list[EnvVar] | None, ListMap("name")] = None
    ports: Annotated[
        list[Port] | None, ListMap("containerPort", "protocol", merge_key="containerPort")
    ] = None
    volumeMounts: Annotated[list[Mount] | None, MergeByKey("mountPath")] = None


class Volume(BaseModel):
    name: str
    emptyDir: dict[str, Any] | None = None
    hostPath: dict[str, Any] | None = None
    configMap: dict[str, Any] | None = None


class PodSpec(BaseModel):
    containers: Annotated[list[Container] | None, ListMap("name")] = None
    volumes: Annotated[list[Volume] | None, ListMap("name", retain_keys=True)] = None


class Meta(BaseModel):
    name: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: Annotated[list[str] | None, ListSet()] = None


class Template(BaseModel):
    metadata: Meta | None = None
    spec: PodSpec | None = None


class Strategy(BaseModel):
    type: str | None = None
    rollingUpdate: dict[str, Any] | None = None


class Spec(BaseModel):
    replicas: int | None = None
    paused: bool | None = None
    strategy: Annotated[Strategy | None, RetainKeys()] = None
    template: Template | None = None


class Deployment(BaseModel):
    apiVersion: str | None = None
    kind: str | None = None
    metadata: Meta | None = None
    spec: Spec | None = None
    status: dict[str, Any] | None = None


SCHEMA = node_for(Deployment)


def deployment(**container: Any) -> dict[str, Any]:
    web = {"name": "web", "image": "nginx:1.25", "command": ["python", "-m", "http.server"]}
    web.update(container)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [web]},
            },
        },
    }


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def smp(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return strategic_merge_patch(original, patch, SCHEMA)


# ---- kubectl's bodies ---------------------------------------------------------------------


def test_kubectl_apply_patch_updates_the_container_and_keeps_the_rest() -> None:
    original = deployment(env=[{"name": "A", "value": "1"}])
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"image": "nginx:1.26", "name": "web"}],
                }
            }
        },
    }
    result = smp(original, patch)
    assert pod_spec(result)["containers"] == [
        {
            "name": "web",
            "image": "nginx:1.26",
            "command": ["python", "-m", "http.server"],
            "env": [{"name": "A", "value": "1"}],
        }
    ]
    assert result["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": "{}"
    }
    assert result["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert "$setElementOrder/containers" not in pod_spec(result)


def test_rollout_restart_adds_the_template_annotation() -> None:
    patch = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-02T03:04:05Z"}
                }
            }
        }
    }
    result = smp(deployment(), patch)
    assert result["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-02T03:04:05Z"},
    }


def test_rollout_pause_sets_paused_and_resume_with_null_removes_it() -> None:
    paused = smp(deployment(), {"spec": {"paused": True}})
    assert paused["spec"]["paused"] is True
    resumed = smp(paused, {"spec": {"paused": None}})
    assert "paused" not in resumed["spec"]
    assert resumed["spec"]["replicas"] == 2


def test_null_label_removes_only_that_label() -> None:
    result = smp(deployment(), {"metadata": {"labels": {"tier": None, "env": "prod"}}})
    assert result["metadata"]["labels"] == {"app": "web", "env": "prod"}


def test_kubectl_set_image_reorders_by_set_element_order() -> None:
    original = deployment()
    pod_spec(original)["containers"].append({"name": "side", "image": "busybox"})
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                    "containers": [{"name": "side", "image": "busybox:2"}],
                }
            }
        }
    }
    containers = pod_spec(smp(original, patch))["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("side", "busybox:2"),
        ("web", "nginx:1.25"),
    ]


def test_set_element_order_keeps_server_only_items() -> None:
    original = deployment(env=[{"name": "A"}, {"name": "B"}, {"name": "X"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "$setElementOrder/env": [{"name": "B"}, {"name": "A"}, {"name": "C"}],
                            "env": [{"name": "C", "value": "3"}],
                        }
                    ]
                }
            }
        }
    }
    env = pod_spec(smp(original, patch))["containers"][0]["env"]
    # Items named by $setElementOrder come in its order; the server-only X is placed by its
    # original position, after them (as Kubernetes' own test cases show).
    assert env == [{"name": "B"}, {"name": "A"}, {"name": "C", "value": "3"}, {"name": "X"}]


def test_set_element_order_that_contradicts_the_patch_is_refused() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                    "containers": [{"name": "side"}, {"name": "web"}],
                }
            }
        }
    }
    with pytest.raises(errors.BadRequest, match="doesn't match"):
        smp(deployment(), patch)


# ---- keyed lists --------------------------------------------------------------------------


def test_env_merge_updates_by_name_and_appends_after_the_last_patched_item() -> None:
    original = deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                        }
                    ]
                }
            }
        }
    }
    env = pod_spec(smp(original, patch))["containers"][0]["env"]
    assert env == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]


def test_env_merge_puts_new_items_ahead_of_remaining_server_items_like_kubernetes() -> None:
    original = deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "env": [{"name": "A", "value": "one"}, {"name": "C", "value": "3"}],
                        }
                    ]
                }
            }
        }
    }
    env = pod_spec(smp(original, patch))["containers"][0]["env"]
    # Without $setElementOrder, Kubernetes emits a patch item it did not have before the
    # server-only items still to come (kubectl always sends the directive, so it is unaffected).
    assert env == [
        {"name": "A", "value": "one"},
        {"name": "C", "value": "3"},
        {"name": "B", "value": "2"},
    ]


def test_new_container_without_order_directive_is_prepended() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "b"}]}}}}
    containers = pod_spec(smp(deployment(), patch))["containers"]
    assert [c["name"] for c in containers] == ["side", "web"]


def test_ports_merge_by_container_port() -> None:
    original = deployment(ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 9090}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "web", "ports": [{"containerPort": 80, "name": "web"}]}]
                }
            }
        }
    }
    ports = pod_spec(smp(original, patch))["containers"][0]["ports"]
    assert ports == [{"containerPort": 80, "name": "web"}, {"containerPort": 9090}]


def test_volume_mounts_merge_by_mount_path() -> None:
    original = deployment(volumeMounts=[{"name": "data", "mountPath": "/data"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "volumeMounts": [
                                {"mountPath": "/data", "readOnly": True},
                                {"name": "cfg", "mountPath": "/etc/cfg"},
                            ],
                        }
                    ]
                }
            }
        }
    }
    mounts = pod_spec(smp(original, patch))["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in mounts
    assert {"name": "cfg", "mountPath": "/etc/cfg"} in mounts
    assert len(mounts) == 2


def test_volumes_merge_by_name_and_retain_keys_drops_the_old_source() -> None:
    original = deployment()
    pod_spec(original)["volumes"] = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "app"}},
    ]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {
                            "name": "scratch",
                            "$retainKeys": ["hostPath", "name"],
                            "hostPath": {"path": "/tmp/x"},
                        }
                    ]
                }
            }
        }
    }
    volumes = pod_spec(smp(original, patch))["volumes"]
    assert volumes == [
        {"name": "scratch", "hostPath": {"path": "/tmp/x"}},
        {"name": "cfg", "configMap": {"name": "app"}},
    ]


def test_retain_keys_on_a_struct_clears_fields_not_listed() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert smp(deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_name_every_patched_field() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}
    with pytest.raises(errors.BadRequest, match="invalid patch format of retainKeys"):
        smp(deployment(), patch)


def test_patch_delete_item_removes_the_keyed_item() -> None:
    original = deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "web", "env": [{"$patch": "delete", "name": "A"}]}]
                }
            }
        }
    }
    env = pod_spec(smp(original, patch))["containers"][0]["env"]
    assert env == [{"name": "B", "value": "2"}]


def test_patch_replace_item_replaces_the_whole_list() -> None:
    original = deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "env": [{"$patch": "replace"}, {"name": "Z", "value": "26"}],
                        }
                    ]
                }
            }
        }
    }
    env = pod_spec(smp(original, patch))["containers"][0]["env"]
    assert env == [{"name": "Z", "value": "26"}]


def test_patch_replace_on_a_map_replaces_it() -> None:
    patch = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert smp(deployment(), patch)["metadata"]["labels"] == {"only": "this"}


def test_patch_delete_on_a_map_empties_it() -> None:
    patch = {"spec": {"strategy": {"$patch": "delete"}}}
    assert smp(deployment(), patch)["spec"]["strategy"] == {}


def test_unknown_patch_directive_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest, match="unknown patch type: shuffle"):
        smp(deployment(), {"metadata": {"labels": {"$patch": "shuffle"}}})


def test_item_without_merge_key_is_a_bad_request() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
    with pytest.raises(errors.BadRequest, match="does not contain declared merge key: name"):
        smp(deployment(), patch)


# ---- scalar lists -------------------------------------------------------------------------


def test_finalizers_are_unioned() -> None:
    original = deployment()
    original["metadata"]["finalizers"] = ["a", "b"]
    result = smp(original, {"metadata": {"finalizers": ["b", "c"]}})
    assert sorted(result["metadata"]["finalizers"]) == ["a", "b", "c"]
    assert len(result["metadata"]["finalizers"]) == 3


def test_delete_from_primitive_list_removes_values() -> None:
    original = deployment()
    original["metadata"]["finalizers"] = ["a", "b", "c"]
    result = smp(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}})
    assert result["metadata"]["finalizers"] == ["a", "c"]


def test_delete_from_primitive_list_works_on_replace_lists_and_never_adds() -> None:
    original = deployment(args=["-v", "--debug"])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "$deleteFromPrimitiveList/args": ["--debug", "--absent"]}
                    ]
                }
            }
        }
    }
    assert pod_spec(smp(original, patch))["containers"][0]["args"] == ["-v"]
    bare = smp(deployment(), patch)
    assert "args" not in pod_spec(bare)["containers"][0]


def test_lists_without_strategy_are_replaced() -> None:
    original = deployment(args=["a", "b"])
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["c"]}]}}}}
    assert pod_spec(smp(original, patch))["containers"][0]["args"] == ["c"]


# ---- positions the schema does not know ---------------------------------------------------


def test_unknown_positions_fall_back_to_json_merge() -> None:
    original = deployment()
    original["status"] = {"conditions": [{"type": "A"}], "nested": {"x": 1, "y": 2}}
    patch = {"status": {"conditions": [{"type": "B"}], "nested": {"x": None, "z": 3}}}
    status = smp(original, patch)["status"]
    assert status == {"conditions": [{"type": "B"}], "nested": {"y": 2, "z": 3}}


# ---- directives never leak, inputs never change -------------------------------------------


def test_directives_in_new_subtrees_do_not_reach_the_result() -> None:
    original = deployment()
    del original["spec"]["template"]["spec"]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}],
                    "containers": [
                        {
                            "name": "a",
                            "env": [
                                {"name": "X", "value": None},
                                {"$patch": "delete", "name": "Q"},
                            ],
                        },
                        {"$patch": "delete", "name": "gone"},
                    ],
                    "volumes": [{"name": "v", "$retainKeys": ["name"]}],
                }
            }
        }
    }
    spec = pod_spec(smp(original, patch))
    assert spec == {
        "containers": [{"name": "a", "env": [{"name": "X"}]}],
        "volumes": [{"name": "v"}],
    }


def test_inputs_are_not_mutated() -> None:
    original = deployment(env=[{"name": "A"}])
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"name": "web", "env": [{"$patch": "delete", "name": "A"}]}],
                }
            }
        }
    }
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    smp(original, patch)
    assert original == before_original
    assert patch == before_patch


# ---- dispatch ----------------------------------------------------------------------------


def test_apply_patch_dispatches_on_content_type() -> None:
    original = deployment(args=["a"])
    body = b'{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"x"}]}}}}'
    strategic = apply_patch("application/strategic-merge-patch+json", original, body, SCHEMA)
    assert pod_spec(strategic)["containers"][0]["args"] == ["a"]
    merged = apply_patch("application/merge-patch+json; charset=utf-8", original, body, SCHEMA)
    assert pod_spec(merged)["containers"] == [{"name": "web", "image": "x"}]
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 5}]
    assert (
        apply_patch("application/json-patch+json", original, ops, SCHEMA)["spec"]["replicas"] == 5
    )


def test_apply_patch_refuses_unknown_media_types_with_415() -> None:
    with pytest.raises(errors.UnsupportedMediaType) as info:
        apply_patch("application/yaml", deployment(), b"{}", SCHEMA)
    assert info.value.code == 415
    assert "application/strategic-merge-patch+json" in info.value.message


def test_apply_patch_refuses_invalid_json_with_400() -> None:
    with pytest.raises(errors.BadRequest, match="invalid JSON patch"):
        apply_patch("application/strategic-merge-patch+json", deployment(), b"{nope", SCHEMA)


def test_strategic_patch_must_be_an_object() -> None:
    with pytest.raises(errors.BadRequest):
        apply_patch("application/strategic-merge-patch+json", deployment(), b"[]", SCHEMA)
