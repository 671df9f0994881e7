"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) as kubectl sends them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.patch import json_merge_patch, json_patch


def configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "web", "env": "dev"}},
        "data": {"a": "1", "b": "2"},
    }


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "annotations": {"deployment.kubernetes.io/revision": "3"},
        },
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "v3"}]},
            },
        },
    }


# ---- merge patch -------------------------------------------------------------------------


def test_kubectl_label_adds_a_label() -> None:
    result = json_merge_patch(configmap(), {"metadata": {"labels": {"tier": "fe"}}})
    assert result["metadata"]["labels"] == {"app": "web", "env": "dev", "tier": "fe"}


def test_kubectl_label_minus_removes_with_null() -> None:
    result = json_merge_patch(configmap(), {"metadata": {"labels": {"env": None}}})
    assert result["metadata"]["labels"] == {"app": "web"}


def test_kubectl_scale_body_sets_replicas() -> None:
    assert json_merge_patch(deployment(), {"spec": {"replicas": 3}})["spec"]["replicas"] == 3


def test_merge_patch_replaces_lists_whole() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}}
    result = json_merge_patch(deployment(), patch)
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "x"}]


def test_merge_patch_drops_nulls_inside_new_objects() -> None:
    result = json_merge_patch(configmap(), {"binaryData": {"k": "eA==", "gone": None}})
    assert result["binaryData"] == {"k": "eA=="}


def test_merge_patch_does_not_mutate_inputs() -> None:
    original, patch = configmap(), {"metadata": {"labels": {"env": None}}, "data": {"c": "3"}}
    before = copy.deepcopy((original, patch))
    json_merge_patch(original, patch)
    assert (original, patch) == before


@pytest.mark.parametrize("patch", [None, [], "x", 3])
def test_merge_patch_that_is_not_an_object_is_a_bad_request(patch: Any) -> None:
    with pytest.raises(errors.BadRequest):
        json_merge_patch(configmap(), patch)


# ---- JSON patch --------------------------------------------------------------------------


def test_rollout_undo_patch_replaces_template_and_annotations() -> None:
    template = {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "v2", "resources": {}}]},
    }
    ops = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": {"deployment.kubernetes.io/revision": "3", "kubernetes.io/change-cause": "x"},
        },
    ]
    result = json_patch(deployment(), ops)
    assert result["spec"]["template"] == template
    assert result["metadata"]["annotations"]["kubernetes.io/change-cause"] == "x"
    assert result["spec"]["replicas"] == 2


def test_json_patch_add_remove_move_copy() -> None:
    ops = [
        {"op": "add", "path": "/data/c", "value": "3"},
        {"op": "remove", "path": "/data/a"},
        {"op": "move", "from": "/data/b", "path": "/data/moved"},
        {"op": "copy", "from": "/data/c", "path": "/data/copied"},
        {"op": "add", "path": "/metadata/finalizers", "value": []},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "f"},
    ]
    result = json_patch(configmap(), ops)
    assert result["data"] == {"c": "3", "moved": "2", "copied": "3"}
    assert result["metadata"]["finalizers"] == ["f"]


def test_failed_test_operation_is_422_invalid() -> None:
    ops = [
        {"op": "test", "path": "/data/a", "value": "nope"},
        {"op": "replace", "path": "/data/a", "value": "x"},
    ]
    original = configmap()
    with pytest.raises(errors.ApiError) as info:
        json_patch(original, ops)
    assert info.value.code == 422
    assert info.value.reason == "Invalid"
    assert original["data"]["a"] == "1"


def test_passing_test_operation_lets_the_patch_apply() -> None:
    ops = [
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "x"},
    ]
    assert json_patch(configmap(), ops)["data"]["a"] == "x"


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "/spec/missing/deeper", "value": 1},
        {"op": "remove", "path": "/data/absent"},
        {"op": "add", "path": "/metadata/labels/x/y", "value": 1},
    ],
)
def test_operation_on_a_missing_path_is_422(op: dict[str, Any]) -> None:
    with pytest.raises(errors.ApiError) as info:
        json_patch(configmap(), [op])
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    assert "the server rejected our request" in info.value.message


@pytest.mark.parametrize(
    ("op", "reason"),
    [
        (
            {"op": "test", "path": "/data/a", "value": "nope"},
            "testing value /data/a failed: test failed",
        ),
        (
            {"op": "test", "path": "/spec/x/y", "value": 1},
            "test operation does not apply: is missing path: /spec/x/y: missing value",
        ),
        (
            {"op": "remove", "path": "/data/absent"},
            "error in remove for path: '/data/absent': Unable to remove nonexistent key: absent: "
            "missing value",
        ),
        (
            {"op": "replace", "path": "/spec/missing/deeper", "value": 1},
            "replace operation does not apply: doc is missing path: /spec/missing/deeper: "
            "missing value",
        ),
        (
            {"op": "add", "path": "/metadata/labels/x/y", "value": 1},
            'add operation does not apply: doc is missing path: "/metadata/labels/x/y": '
            "missing value",
        ),
        (
            {"op": "move", "from": "/nowhere/x", "path": "/data/x"},
            "move operation does not apply: doc is missing from path: /nowhere/x: missing value",
        ),
    ],
)
def test_a_failed_operation_is_explained_as_the_apiservers_json_patch_library_does(
    op: dict[str, Any], reason: str
) -> None:
    with pytest.raises(errors.ApiError) as info:
        json_patch(configmap(), [{"op": "test", "path": "/kind", "value": "ConfigMap"}, op])
    assert info.value.message == (
        f"the server rejected our request due to an error in our request: {reason}"
    )
    assert "<class" not in info.value.message


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "add", "path": "/a", "value": 1},
        ["add"],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/data/x"}],
        [{"op": "move", "path": "/data/x"}],
    ],
)
def test_malformed_json_patch_is_a_bad_request(ops: Any) -> None:
    with pytest.raises(errors.BadRequest):
        json_patch(configmap(), ops)


def test_json_patch_over_the_operation_limit_is_413() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "ConfigMap"}] * 10001
    with pytest.raises(errors.ApiError) as info:
        json_patch(configmap(), ops)
    assert info.value.code == 413


def test_json_patch_does_not_mutate_the_original() -> None:
    original = configmap()
    json_patch(original, [{"op": "remove", "path": "/metadata/labels"}])
    assert original == configmap()
