"""Patch and apply against the real Deployment, Pod, Service and ConfigMap schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.patch import (
    apply_patch,
    json_patch,
    server_side_apply,
    strategic_merge_patch,
    update_managed_fields,
)
from procorch.api.registry import schema_for
from procorch.api.schema import SchemaNode

NOW, LATER = "2026-03-01T10:00:00Z", "2026-03-01T10:05:00Z"


def schema(api_version: str, kind: str) -> SchemaNode:
    node = schema_for(api_version, kind)
    assert node is not None
    return node


DEPLOYMENT = schema("apps/v1", "Deployment")
POD = schema("v1", "Pod")
SERVICE = schema("v1", "Service")
CONFIGMAP = schema("v1", "ConfigMap")


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "python:3.12",
                            "command": ["python", "-m", "http.server"],
                            "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
        "status": {"replicas": 2, "observedGeneration": 1},
    }


def container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return found


# ---- strategic merge patch on real types --------------------------------------------------


def test_deployment_kubectl_apply_patch() -> None:
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"image": "python:3.13", "name": "web"}],
                }
            }
        },
    }
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert container(result)["image"] == "python:3.13"
    assert container(result)["env"] == [{"name": "A", "value": "1"}]
    assert result["status"] == {"replicas": 2, "observedGeneration": 1}


def test_deployment_env_ports_mounts_and_volumes_merge_by_their_keys() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                            "env": [{"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 8000, "name": "http"}],
                            "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "data",
                            "$retainKeys": ["name", "hostPath"],
                            "hostPath": {"path": "/srv"},
                        }
                    ],
                }
            }
        }
    }
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    web = container(result)
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert web["ports"] == [{"containerPort": 8000, "protocol": "TCP", "name": "http"}]
    assert web["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert result["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/srv"}}
    ]


def test_deployment_strategy_switch_with_retain_keys() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_rollout_pause_then_resume() -> None:
    body = b'{"spec":{"paused":true}}'
    paused = apply_patch("application/strategic-merge-patch+json", deployment(), body, DEPLOYMENT)
    assert paused["spec"]["paused"] is True
    body = b'{"spec":{"paused":null}}'
    resumed = apply_patch("application/strategic-merge-patch+json", paused, body, DEPLOYMENT)
    assert "paused" not in resumed["spec"]


def test_deployment_rollout_undo_json_patch() -> None:
    template = json.loads(json.dumps(deployment()["spec"]["template"]))
    template["metadata"]["creationTimestamp"] = None
    template["spec"]["containers"][0]["image"] = "python:3.11"
    ops = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": {"deployment.kubernetes.io/revision": "1"},
        },
    ]
    live = deployment()
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    result = json_patch(live, ops)
    assert container(result)["image"] == "python:3.11"
    assert result["spec"]["template"]["metadata"]["creationTimestamp"] is None
    assert result["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    # Without the annotations the replace has nothing to replace: 422, as Kubernetes answers.
    with pytest.raises(errors.ApiError) as info:
        json_patch(deployment(), ops)
    assert info.value.code == 422


def test_pod_container_delete_directive() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["y"]}]},
    }
    patch = {"spec": {"containers": [{"$patch": "delete", "name": "a"}]}}
    result = strategic_merge_patch(pod, patch, POD)
    assert result["spec"]["containers"] == [{"name": "b", "command": ["y"]}]


def test_pod_finalizers_union_and_delete() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]}}
    added = strategic_merge_patch(pod, {"metadata": {"finalizers": ["b"]}}, POD)
    assert sorted(added["metadata"]["finalizers"]) == ["a", "b"]
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    assert strategic_merge_patch(added, patch, POD)["metadata"]["finalizers"] == ["b"]


def test_service_ports_merge_by_port() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "ports": [
                {"port": 80, "targetPort": 8000, "protocol": "TCP"},
                {"port": 443, "targetPort": 8443, "protocol": "TCP"},
            ]
        },
    }
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 9000}]}}
    ports = strategic_merge_patch(svc, patch, SERVICE)["spec"]["ports"]
    assert ports == [
        {"port": 80, "targetPort": 9000, "protocol": "TCP"},
        {"port": 443, "targetPort": 8443, "protocol": "TCP"},
    ]


# ---- managedFields and server-side apply on real types ------------------------------------


def created(obj: dict[str, Any], manager: str, node: SchemaNode) -> dict[str, Any]:
    obj["metadata"]["managedFields"] = update_managed_fields(
        old=None,
        new=obj,
        manager=manager,
        api_version=obj["apiVersion"],
        now=NOW,
        schema=node,
        has_status=True,
    )
    return obj


def test_deployment_create_tracks_spec_not_status() -> None:
    obj = created(deployment(), "kubectl-create", DEPLOYMENT)
    fields = obj["metadata"]["managedFields"][0]["fieldsV1"]
    assert "f:status" not in fields
    assert fields["f:spec"]["f:selector"] == {}  # atomic: owned whole
    web = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web["f:ports"]['k:{"containerPort":8000,"protocol":"TCP"}'] == {
        ".": {},
        "f:containerPort": {},
        "f:protocol": {},
    }
    assert web["f:volumeMounts"]['k:{"mountPath":"/data"}'] == {
        ".": {},
        "f:mountPath": {},
        "f:name": {},
    }


def test_deployment_apply_conflicts_on_the_container_image_then_forces() -> None:
    live = created(deployment(), "kubectl-create", DEPLOYMENT)
    config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "python:3.13"}]}}},
    }
    kwargs: dict[str, Any] = {
        "live": live,
        "config": config,
        "manager": "ci",
        "api_version": "apps/v1",
        "now": LATER,
        "schema": DEPLOYMENT,
        "has_status": True,
    }
    with pytest.raises(errors.Conflict) as info:
        server_side_apply(force=False, **kwargs)
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: '
        '.spec.template.spec.containers[name="web"].image'
    )
    new = server_side_apply(force=True, **kwargs)
    assert container(new)["image"] == "python:3.13"
    assert container(new)["env"] == [{"name": "A", "value": "1"}]
    assert new["status"] == {"replicas": 2, "observedGeneration": 1}
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == ["ci", "kubectl-create"]


def test_apply_with_ports_omitting_the_default_protocol_matches_the_live_item() -> None:
    live = created(deployment(), "kubectl-create", DEPLOYMENT)
    config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "ports": [{"containerPort": 8000, "name": "http"}]}
                    ]
                }
            }
        },
    }
    new = server_side_apply(
        live=live,
        config=config,
        manager="ci",
        force=False,
        api_version="apps/v1",
        now=LATER,
        schema=DEPLOYMENT,
        has_status=True,
    )
    assert container(new)["ports"] == [{"containerPort": 8000, "protocol": "TCP", "name": "http"}]


def test_configmap_client_side_then_server_side_apply() -> None:
    last = '{"apiVersion":"v1","data":{"a":"1"},"kind":"ConfigMap","metadata":{"name":"cfg"}}\n'
    live = created(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "cfg",
                "namespace": "default",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last},
            },
            "data": {"a": "1"},
        },
        "kubectl-client-side-apply",
        CONFIGMAP,
    )
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "2"},
    }
    with pytest.raises(errors.Conflict) as info:
        server_side_apply(
            live=live,
            config=config,
            manager="other",
            force=False,
            api_version="v1",
            now=LATER,
            schema=CONFIGMAP,
        )
    assert info.value.details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-client-side-apply" using v1',
                "field": ".data.a",
            }
        ]
    }
    migrated = server_side_apply(
        live=live,
        config=config,
        manager="kubectl",
        force=False,
        api_version="v1",
        now=LATER,
        schema=CONFIGMAP,
    )
    assert migrated["data"] == {"a": "2"}
    ops = [(e["manager"], e["operation"]) for e in migrated["metadata"]["managedFields"]]
    assert ops == [("kubectl", "Apply"), ("kubectl-client-side-apply", "Update")]
