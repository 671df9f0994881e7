"""ObjectMeta rules: names per kind, namespaces, labels, annotations, owner references,
finalizers, and what an update may not change."""

from __future__ import annotations

from typing import Any

import pytest

from procorch.api.registry import validate

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QNAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def rendered(
    api_version: str, kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> list[str]:
    return [c.render() for c in validate(api_version, kind, obj, old=old)]


def config_map(**meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", **meta},
        "data": {"k": "v"},
    }


def test_valid_config_map_has_no_causes() -> None:
    assert (
        rendered(
            "v1", "ConfigMap", config_map(labels={"app": "web"}, annotations={"example.com/x": "y"})
        )
        == []
    )


def test_name_is_required_unless_generate_name() -> None:
    obj = config_map()
    del obj["metadata"]["name"]
    assert rendered("v1", "ConfigMap", obj) == [
        "metadata.name: Required value: name or generateName is required"
    ]


def test_generate_name_prefix_may_end_with_a_dash() -> None:
    obj = config_map(generateName="web-")
    obj["metadata"]["name"] = "web-x7k2p"
    assert rendered("v1", "ConfigMap", obj) == []
    obj["metadata"]["generateName"] = "Web-"
    assert rendered("v1", "ConfigMap", obj) == [
        f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}'
    ]


def test_most_kinds_use_dns_subdomain_names() -> None:
    obj = config_map(name="My_Config")
    assert rendered("v1", "ConfigMap", obj) == [
        f'metadata.name: Invalid value: "My_Config": {SUBDOMAIN_MSG}'
    ]
    assert rendered("v1", "ConfigMap", config_map(name="a.b.c")) == []


def test_subdomain_names_are_limited_to_253_characters() -> None:
    name = "a" * 254
    assert rendered("v1", "ConfigMap", config_map(name=name)) == [
        f'metadata.name: Invalid value: "{name}": must be no more than 253 characters'
    ]


def test_namespace_names_are_dns_labels() -> None:
    ns = {"metadata": {"name": "team.a"}}
    assert rendered("v1", "Namespace", ns) == [
        'metadata.name: Invalid value: "team.a": must not contain dots'
    ]
    ns = {"metadata": {"name": "Team"}}
    assert rendered("v1", "Namespace", ns) == [f'metadata.name: Invalid value: "Team": {LABEL_MSG}']


def test_service_names_are_dns1035_labels() -> None:
    svc = {
        "metadata": {"name": "1web", "namespace": "default"},
        "spec": {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "internalTrafficPolicy": "Cluster",
        },
    }
    assert rendered("v1", "Service", svc) == [
        f'metadata.name: Invalid value: "1web": {DNS1035_MSG}'
    ]


def test_rbac_names_are_path_segments() -> None:
    role = {"metadata": {"name": "system:reader", "namespace": "default"}, "rules": []}
    assert rendered("rbac.authorization.k8s.io/v1", "Role", role) == []
    role["metadata"]["name"] = "a/b"
    assert rendered("rbac.authorization.k8s.io/v1", "Role", role) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]
    role["metadata"]["name"] = ".."
    assert rendered("rbac.authorization.k8s.io/v1", "Role", role) == [
        "metadata.name: Invalid value: \"..\": may not be '..'"
    ]


def test_namespace_required_for_namespaced_kinds_and_forbidden_otherwise() -> None:
    obj = config_map()
    del obj["metadata"]["namespace"]
    assert rendered("v1", "ConfigMap", obj) == ["metadata.namespace: Required value"]
    ns = {"metadata": {"name": "team", "namespace": "default"}}
    assert rendered("v1", "Namespace", ns) == [
        "metadata.namespace: Forbidden: not allowed on this type"
    ]


def test_label_keys_and_values_are_checked() -> None:
    causes = rendered("v1", "ConfigMap", config_map(labels={"-app": "ok", "tier": "no good"}))
    assert causes == [
        f'metadata.labels: Invalid value: "-app": {QNAME_MSG}',
        (
            'metadata.labels: Invalid value: "no good": a valid label must be an empty string or '
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
            "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ),
    ]


def test_label_key_prefix_must_be_a_subdomain() -> None:
    causes = rendered("v1", "ConfigMap", config_map(labels={"Example.com/app": "x"}))
    assert causes == [
        (f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MSG}')
    ]


def test_label_value_longer_than_63_is_refused() -> None:
    value = "v" * 64
    causes = rendered("v1", "ConfigMap", config_map(labels={"app": value}))
    assert causes == [
        (f'metadata.labels: Invalid value: "{value}": must be no more than 63 characters')
    ]


def test_annotation_keys_ignore_case_and_total_size_is_limited() -> None:
    assert rendered("v1", "ConfigMap", config_map(annotations={"Example.com/Key": "v"})) == []
    big = {"a": "x" * (256 * 1024)}
    assert rendered("v1", "ConfigMap", config_map(annotations=big)) == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    ]


def test_owner_references_need_every_field_and_one_controller() -> None:
    refs = [
        {"apiVersion": "", "kind": "", "name": "", "uid": ""},
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "a",
            "uid": "1",
            "controller": True,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "b",
            "uid": "2",
            "controller": True,
        },
    ]
    causes = rendered("v1", "ConfigMap", config_map(ownerReferences=refs))
    assert causes[:4] == [
        'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences.kind: Invalid value: "": kind must not be empty',
        'metadata.ownerReferences.name: Invalid value: "": name must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty',
    ]
    assert causes[4].startswith("metadata.ownerReferences: Invalid value: [")
    assert causes[4].endswith(
        'Only one reference can have Controller set to true. Found "true" '
        "in references for ReplicaSet/a and ReplicaSet/b"
    )


def test_events_cannot_own_objects() -> None:
    ref = {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}
    causes = rendered("v1", "ConfigMap", config_map(ownerReferences=[ref]))
    assert len(causes) == 1
    assert causes[0].endswith("/v1, Kind=Event is disallowed from being an owner")


def test_finalizers_must_be_qualified_or_standard() -> None:
    ok = config_map(finalizers=["kubernetes", "example.com/cleanup", "foregroundDeletion"])
    assert rendered("v1", "ConfigMap", ok) == []
    causes = rendered(
        "v1", "ConfigMap", config_map(finalizers=["cleanup", "orphan", "foregroundDeletion"])
    )
    assert causes == [
        (
            'metadata.finalizers[0]: Invalid value: "cleanup": name is neither a standard finalizer '
            "name nor is it fully qualified"
        ),
        (
            'metadata.finalizers: Invalid value: ["cleanup","orphan","foregroundDeletion"]: '
            "finalizer orphan and foregroundDeletion cannot be both set"
        ),
    ]


def test_update_may_not_change_identity_fields() -> None:
    old = config_map(uid="1", creationTimestamp="2026-01-01T00:00:00Z", generation=2)
    new = config_map(uid="2", creationTimestamp="2026-01-01T00:00:00Z", generation=1)
    new["metadata"]["name"] = "other"
    assert rendered("v1", "ConfigMap", new, old) == [
        "metadata.generation: Invalid value: 1: must not be decremented",
        'metadata.name: Invalid value: "other": field is immutable',
        'metadata.uid: Invalid value: "2": field is immutable',
    ]


def test_no_new_finalizers_while_deleting() -> None:
    old = config_map(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["example.com/a"])
    new = config_map(
        deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["example.com/a", "example.com/b"]
    )
    assert rendered("v1", "ConfigMap", new, old) == [
        (
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being "
            'deleted, found new finalizers []string{"example.com/b"}'
        )
    ]


@pytest.mark.parametrize("obj", [None, "x", 5, [], {"metadata": 5}, {"metadata": {"labels": 3}}])
def test_validate_never_raises_on_garbage(obj: Any) -> None:
    causes = validate("v1", "ConfigMap", obj)
    assert isinstance(causes, list)
