"""FieldsV1 encoding and apply path strings."""

from __future__ import annotations

from procorch.api.patch.fieldpath import (
    field,
    from_fields_v1,
    key_element,
    path_of,
    path_string,
    recursive_difference,
    to_fields_v1,
    value_element,
)

CONTAINER = path_of("spec", "containers") + (key_element([("name", "web")]),)


def test_fields_v1_marks_members_with_children_by_a_dot() -> None:
    paths = {
        path_of("metadata", "labels"),
        path_of("metadata", "labels", "app"),
        CONTAINER,
        CONTAINER + (field("image"),),
        path_of("metadata", "finalizers") + (value_element("a/b"),),
    }
    assert to_fields_v1(paths) == {
        "f:metadata": {
            "f:finalizers": {'v:"a/b"': {}},
            "f:labels": {".": {}, "f:app": {}},
        },
        "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}}}},
    }


def test_fields_v1_round_trips() -> None:
    doc = {
        "f:data": {".": {}, "f:a": {}},
        "f:spec": {
            "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}},
            "f:selector": {},
        },
    }
    assert to_fields_v1(from_fields_v1(doc)) == doc


def test_decoding_treats_empty_objects_as_members_and_skips_unknown_prefixes() -> None:
    decoded = from_fields_v1({"f:a": {}, "f:b": {"f:c": {}}, "x:odd": {}, "i:0": {}})
    assert decoded == {path_of("a"), path_of("b", "c"), (("i", 0),)}


def test_key_elements_are_order_independent_and_number_normalised() -> None:
    one = key_element([("protocol", "TCP"), ("containerPort", 80)])
    two = key_element([("containerPort", 80.0), ("protocol", "TCP")])
    assert one == two


def test_path_strings_match_kubernetes_conflict_fields() -> None:
    assert path_string(path_of("data", "a")) == ".data.a"
    assert path_string(CONTAINER + (field("image"),)) == '.spec.containers[name="web"].image'
    port = key_element([("containerPort", 80), ("protocol", "TCP")])
    assert path_string(path_of("ports") + (port,)) == '.ports[containerPort=80,protocol="TCP"]'
    assert path_string(path_of("finalizers") + (value_element("x"),)) == '.finalizers[="x"]'


def test_recursive_difference_removes_subtrees() -> None:
    paths = {path_of("status"), path_of("status", "x"), path_of("spec", "replicas")}
    assert recursive_difference(paths, [path_of("status")]) == {path_of("spec", "replicas")}
