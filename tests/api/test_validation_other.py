"""Secret, ConfigMap, Namespace, Node, Event, ServiceAccount, PVC, Lease, HPA and RBAC
rules, and the dispatcher's coverage of every served kind."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from procorch.api.registry import BUILTIN, apply_defaults, validate
from procorch.api.resources import RESOURCES


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [c.render() for c in validate(obj["apiVersion"], obj["kind"], obj, old=old)]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(**fields: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        **fields,
    }
    apply_defaults("v1", "Secret", obj)
    return obj


def test_every_served_kind_has_one_definition_with_a_validator() -> None:
    assert sorted(r.key for r in RESOURCES) == sorted(d.resource.key for d in BUILTIN)
    assert all(d.validate is not None for d in BUILTIN)


def test_secret_with_string_data_is_valid() -> None:
    assert causes(secret(stringData={"password": "hunter2"}, data={"user": b64("me")})) == []


def test_secret_keys_and_base64_values() -> None:
    obj = secret(data={"bad/key": b64("x"), "ok": "not base64!"})
    assert causes(obj) == [
        (
            'data[ok]: Invalid value: "<value omitted>": illegal base64 data: values must be '
            "base64-encoded"
        ),
        (
            'data[bad/key]: Invalid value: "bad/key": a valid config key must consist of '
            "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
            "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        ),
    ]


def test_string_data_keys_are_validated_as_data_keys() -> None:
    assert causes(secret(stringData={"..": "x"})) == [
        "data[..]: Invalid value: \"..\": must not be '..'"
    ]


def test_secret_type_specific_keys() -> None:
    assert causes(secret(type="kubernetes.io/tls", data={"tls.crt": b64("c")})) == [
        "data[tls.key]: Required value"
    ]
    assert causes(secret(type="kubernetes.io/dockerconfigjson")) == [
        "data[.dockerconfigjson]: Required value"
    ]
    bad_json = secret(
        type="kubernetes.io/dockerconfigjson", data={".dockerconfigjson": b64("{nope")}
    )
    assert causes(bad_json)[0].startswith(
        'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": '
    )
    assert causes(secret(type="kubernetes.io/basic-auth")) == [
        "data[username]: Required value",
        "data[password]: Required value",
    ]
    assert causes(secret(type="kubernetes.io/service-account-token")) == [
        "metadata.annotations[kubernetes.io/service-account.name]: Required value"
    ]


def test_secret_size_limit() -> None:
    big = secret(data={"blob": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()})
    assert causes(big) == ["data: Too long: may not be more than 1048576 bytes"]


def test_immutable_secret_cannot_change() -> None:
    old = secret(data={"a": b64("1")}, immutable=True)
    new = copy.deepcopy(old)
    new["data"]["a"] = b64("2")
    new["type"] = "example.com/other"
    del new["immutable"]
    assert causes(new, old) == [
        'type: Invalid value: "example.com/other": field is immutable',
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


def config_map(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        **fields,
    }


def test_config_map_keys_and_binary_data() -> None:
    assert causes(config_map(data={"app.conf": "x"}, binaryData={"logo.png": b64("png")})) == []
    obj = config_map(data={"a": "1", "b c": "2"}, binaryData={"a": b64("1")})
    assert causes(obj) == [
        'data[a]: Invalid value: "a": duplicate of key present in binaryData',
        (
            'data[b c]: Invalid value: "b c": a valid config key must consist of alphanumeric '
            "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
            "used for validation is '[-._a-zA-Z0-9]+')"
        ),
    ]


def test_immutable_config_map_cannot_change() -> None:
    old = config_map(data={"a": "1"}, immutable=True)
    new = config_map(data={"a": "2"}, immutable=True)
    assert causes(new, old) == ["data: Forbidden: field is immutable when `immutable` is set"]
    assert causes(copy.deepcopy(old), old) == []


def test_namespace_spec_finalizers() -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team"},
        "spec": {"finalizers": ["kubernetes", "cleanup"]},
    }
    assert causes(ns) == [
        (
            'spec.finalizers: Invalid value: "cleanup": name is neither a '
            "standard finalizer name nor is it fully qualified"
        )
    ]


def test_node_taints_and_capacity() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1"},
        "spec": {
            "taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "x", "effect": "NoSchedule"},
                {"key": "gpu", "effect": "Sometimes"},
            ]
        },
        "status": {"capacity": {"cpu": "4", "memory": "-1", "pods": "1.5"}},
    }
    found = causes(node)
    assert found[0].startswith('metadata.taints[1]: Duplicate value: {"effect":"NoSchedule"')
    assert found[0].endswith(": taints must be unique by key and effect pair")
    assert found[1:] == [
        (
            'metadata.taints[2].effect: Unsupported value: "Sometimes": supported values: '
            '"NoSchedule", "PreferNoSchedule", "NoExecute"'
        ),
        'status.capacity.memory: Invalid value: "-1": must be greater than or equal to 0',
        "status.capacity.pods: Invalid value: 1500m: must be an integer",
    ]


def test_event_namespace_must_match_involved_object() -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started",
        "message": "Started container",
        "type": "Normal",
    }
    assert causes(event) == []
    event["involvedObject"]["namespace"] = "other"
    assert causes(event) == [
        ('involvedObject.namespace: Invalid value: "other": does not match event.namespace')
    ]
    node_event = copy.deepcopy(event)
    node_event["involvedObject"] = {"kind": "Node", "name": "node-1"}
    assert causes(node_event) == []


def test_service_account_name() -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": "default"},
    }
    assert causes(sa) == []


def pvc(**spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
    }
    apply_defaults("v1", "PersistentVolumeClaim", obj)
    return obj


def test_pvc_needs_access_modes_and_storage() -> None:
    assert causes(pvc()) == []
    obj = pvc(accessModes=[], resources={})
    assert causes(obj) == [
        "spec.accessModes: Required value: at least 1 access mode is required",
        "spec.resources[storage]: Required value",
    ]
    obj = pvc(
        accessModes=["ReadWriteOncePod", "ReadWriteOnce", "Everything"],
        resources={"requests": {"storage": "0"}},
    )
    assert causes(obj) == [
        (
            'spec.accessModes: Unsupported value: "Everything": supported values: "ReadOnlyMany", '
            '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'
        ),
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
        'spec.resources[storage]: Invalid value: "0": must be greater than zero',
    ]


def test_pvc_spec_is_immutable_and_storage_cannot_shrink() -> None:
    old = pvc(resources={"requests": {"storage": "2Gi"}})
    new = pvc(resources={"requests": {"storage": "1Gi"}})
    assert causes(new, old) == [
        (
            "spec: Forbidden: spec is immutable after creation except resources.requests and "
            "volumeAttributesClassName for bound claims"
        ),
        "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
    ]
    bound_old = copy.deepcopy(old)
    bound_old["status"] = {"phase": "Bound"}
    grown = pvc(resources={"requests": {"storage": "3Gi"}})
    grown["status"] = {"phase": "Bound"}
    assert causes(grown, bound_old) == []


def test_lease_durations() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 0, "leaseTransitions": -1},
    }
    assert causes(lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
    ]


def hpa(**spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
            **spec,
        },
    }
    apply_defaults("autoscaling/v2", "HorizontalPodAutoscaler", obj)
    return obj


def test_realistic_hpa_is_valid() -> None:
    assert (
        causes(
            hpa(
                minReplicas=2,
                metrics=[
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "memory",
                            "target": {"type": "AverageValue", "averageValue": "500Mi"},
                        },
                    }
                ],
                behavior={"scaleDown": {"stabilizationWindowSeconds": 120}},
            )
        )
        == []
    )


def test_hpa_replica_bounds_and_target() -> None:
    obj = hpa(minReplicas=0, maxReplicas=0, scaleTargetRef={"kind": "Deployment"})
    assert causes(obj) == [
        "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
        "spec.maxReplicas: Invalid value: 0: must be greater than 0",
        "spec.scaleTargetRef.name: Required value",
        (
            "spec.metrics: Forbidden: must specify at least one Object or External metric to support "
            "scaling to zero replicas"
        ),
    ]
    assert causes(hpa(minReplicas=6)) == [
        "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`"
    ]


def test_hpa_metric_specs() -> None:
    obj = hpa(
        metrics=[
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 0},
                },
            },
            {"type": "Pods"},
            {
                "type": "Resource",
                "pods": {},
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": 50,
                        "averageValue": "1",
                    },
                },
            },
        ]
    )
    assert causes(obj) == [
        (
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater "
            "than 0"
        ),
        (
            "spec.metrics[1].pods: Required value: must populate information for the given metric "
            "source"
        ),
        "spec.metrics[2].pods.metric.name: Required value: must specify a metric name",
        "spec.metrics[2].pods.target.type: Required value: must specify a metric target type",
        (
            'spec.metrics[2].pods.target.type: Invalid value: "": must be either Utilization, Value, '
            "or AverageValue"
        ),
        (
            "spec.metrics[2].pods.target.averageValue: Required value: must specify a positive "
            "target averageValue"
        ),
        "spec.metrics[2].pods: Forbidden: must populate the given metric source only",
    ]


def test_hpa_behavior_policies() -> None:
    obj = hpa(
        behavior={
            "scaleUp": {"policies": [{"type": "Nodes", "value": 0, "periodSeconds": 3600}]},
            "scaleDown": {"policies": [], "stabilizationWindowSeconds": 4000},
        }
    )
    assert causes(obj) == [
        (
            'spec.behavior.scaleUp.policies[0].type: Unsupported value: "Nodes": supported values: '
            '"Percent", "Pods"'
        ),
        "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
        (
            "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 3600: must be less than "
            "or equal to 1800"
        ),
        (
            "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000: must be less "
            "than or equal to 3600"
        ),
        "spec.behavior.scaleDown.policies: Required value: must specify at least one Policy",
    ]


RBAC = "rbac.authorization.k8s.io/v1"


def test_role_rules_need_verbs_groups_and_resources() -> None:
    role = {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": "default"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"resources": ["pods"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
        ],
    }
    assert causes(role) == [
        "rules[1].verbs: Required value: verbs must contain at least one value",
        "rules[1].apiGroups: Required value: resource rules must supply at least one api group",
        (
            'rules[2].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply '
            "to non-resource URLs"
        ),
    ]
    cluster_role = {
        "apiVersion": RBAC,
        "kind": "ClusterRole",
        "metadata": {"name": "health"},
        "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
    }
    assert causes(cluster_role) == []


def binding(kind: str = "RoleBinding", **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "read-pods"}
    if kind == "RoleBinding":
        meta["namespace"] = "default"
    obj = {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "default"},
        ],
        **fields,
    }
    apply_defaults(RBAC, kind, obj)
    return obj


def test_bindings_role_ref_and_subjects() -> None:
    assert causes(binding()) == []
    assert causes(binding("ClusterRoleBinding")) == []
    obj = binding(
        roleRef={"apiGroup": "example.com", "kind": "Policy", "name": ""},
        subjects=[{"kind": "Robot", "name": "r2"}, {"kind": "ServiceAccount"}],
    )
    assert causes(obj) == [
        (
            'roleRef.apiGroup: Unsupported value: "example.com": supported values: '
            '"rbac.authorization.k8s.io"'
        ),
        'roleRef.kind: Unsupported value: "Policy": supported values: "Role", "ClusterRole"',
        "roleRef.name: Required value",
        (
            'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
            '"User", "Group"'
        ),
        "subjects[1].name: Required value",
    ]


def test_cluster_role_binding_needs_cluster_role_and_sa_namespace() -> None:
    obj = binding(
        "ClusterRoleBinding",
        roleRef={"kind": "Role", "name": "x"},
        subjects=[{"kind": "ServiceAccount", "name": "ci"}],
    )
    assert causes(obj) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value",
    ]


def test_role_ref_cannot_change() -> None:
    old = binding()
    new = copy.deepcopy(old)
    new["roleRef"]["name"] = "edit"
    assert causes(new, old) == [
        (
            'roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole",'
            '"name":"edit"}: cannot change roleRef'
        )
    ]


@pytest.mark.parametrize("key", sorted(d.gvk for d in BUILTIN))
def test_every_validator_survives_garbage(key: tuple[str, str]) -> None:
    garbage: dict[str, Any] = {
        "metadata": {"name": 5, "labels": [], "ownerReferences": "x", "finalizers": {}},
        "spec": {
            "containers": 3,
            "ports": [None, 4],
            "template": "x",
            "rules": 2,
            "selector": [],
            "jobTemplate": [],
            "metrics": [1],
            "behavior": {"scaleUp": 1},
            "schedule": 5,
            "timeZone": 3,
            "accessModes": "x",
            "resources": "y",
            "taints": [3],
            "strategy": "z",
            "type": ["x"],
            "clusterIPs": "abc",
        },
        "data": [],
        "subsets": {},
        "endpoints": 3,
        "roleRef": [],
        "subjects": [None],
        "rules": [[], None],
        "status": {"capacity": []},
    }
    assert isinstance(validate(key[0], key[1], garbage), list)
    assert isinstance(validate(key[0], key[1], garbage, old=copy.deepcopy(garbage)), list)
