"""Label and field selectors parse, match, print and fail as Kubernetes' do."""

from __future__ import annotations

import pytest

from procorch.api import errors
from procorch.api.registry import of, validate_fields
from procorch.api.resources import must
from procorch.api.selectors import (
    LabelSelector,
    field_value,
    format_label_selector,
    format_labels,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    selector_from_set,
)

WEB = {"app": "web", "tier": "fe", "env": "prod"}
DB = {"app": "db", "tier": "be"}

# ------------------------------------------------------------------ label selector syntax


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("app=web,tier!=be", "app=web,tier!=be"),
        ("app==web", "app==web"),
        ("app in (web,x)", "app in (web,x)"),
        ("env notin (a, b)", "env notin (a,b)"),
        ("!k", "!k"),
        ("k", "k"),
        ("  tier != be ,  app = web ", "app=web,tier!=be"),
        ("app in (x,web)", "app in (web,x)"),
        ("example.com/role=api", "example.com/role=api"),
        ("in=notin", "in=notin"),
        ("count>3", "count>3"),
        ("", ""),
    ],
)
def test_label_selector_parses_to_canonical_sorted_form(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


def test_label_selector_terms_in_any_order_print_the_same() -> None:
    assert str(parse_label_selector("tier!=be,app=web")) == str(
        parse_label_selector("app=web,tier!=be")
    )


def test_empty_exact_value_and_empty_set_member_are_allowed() -> None:
    sel = parse_label_selector("a=,b in (x,)")
    assert sel.matches({"a": "", "b": ""})
    assert sel.matches({"a": "", "b": "x"})
    assert not sel.matches({"a": "1", "b": "x"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a=!b", "unable to parse requirement: found '!', expected: identifier"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("k>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt'"),
    ],
)
def test_label_selector_syntax_errors_are_bad_requests_with_kubernetes_messages(
    text: str, message: str
) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        parse_label_selector(text)
    assert caught.value.message.startswith(message)
    assert caught.value.status()["code"] == 400


def test_invalid_label_key_is_refused_with_the_qualified_name_rule() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        parse_label_selector("-bad=x")
    assert caught.value.message.startswith('unable to parse requirement: Invalid value: "-bad"')
    assert "name part must consist of alphanumeric characters" in caught.value.message


def test_invalid_label_value_is_refused_with_its_path() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        parse_label_selector("app=we/b")
    assert 'values[0][app]: Invalid value: "we/b": a valid label must be' in caught.value.message


def test_too_long_label_value_is_refused() -> None:
    with pytest.raises(errors.BadRequest, match="must be no more than 63 characters"):
        parse_label_selector("app=" + "x" * 64)


def test_key_with_two_slashes_is_refused() -> None:
    with pytest.raises(errors.BadRequest, match="a qualified name must consist"):
        parse_label_selector("a/b/c=x")


# ----------------------------------------------------------------- label selector matching


@pytest.mark.parametrize(
    ("text", "web", "db"),
    [
        ("app=web", True, False),
        ("app==web", True, False),
        ("app!=web", False, True),
        ("app in (web,x)", True, False),
        ("app notin (web)", False, True),
        ("env", True, False),
        ("!env", False, True),
        ("app=web,tier!=be", True, False),
        ("missing!=x", True, True),  # absent label is "not equal"
        ("missing notin (x)", True, True),
        ("missing in (x)", False, False),
        ("", True, True),
    ],
)
def test_label_selector_matches_as_kubernetes(text: str, web: bool, db: bool) -> None:
    sel = parse_label_selector(text)
    assert sel.matches(WEB) is web
    assert sel.matches(DB) is db


def test_numeric_comparisons_need_integer_labels() -> None:
    sel = parse_label_selector("count>3")
    assert sel.matches({"count": "4"})
    assert not sel.matches({"count": "3"})
    assert not sel.matches({"count": "many"})
    assert not sel.matches({})
    assert parse_label_selector("count<3").matches({"count": "-1"})


def test_label_selector_treats_missing_labels_as_empty() -> None:
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)


def test_empty_selector_is_empty_and_matches_everything() -> None:
    sel = parse_label_selector("")
    assert sel.empty
    assert sel.matches({}) and sel.matches(WEB)


def test_requires_exact_match_finds_pinned_value() -> None:
    sel = parse_label_selector("app=web,tier in (fe,be)")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") is None


# ------------------------------------------------------------ metav1.LabelSelector and sets


def test_null_label_selector_matches_nothing() -> None:
    sel = label_selector_from_dict(None)
    assert not sel.matches(WEB)
    assert not sel.matches({})
    assert not sel.empty
    assert str(sel) == ""


def test_empty_label_selector_object_matches_everything() -> None:
    sel = label_selector_from_dict({})
    assert sel.empty
    assert sel.matches(WEB) and sel.matches({})


def test_label_selector_object_combines_match_labels_and_expressions() -> None:
    sel = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "edge"]},
                {"key": "env", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
            ],
        }
    )
    assert str(sel) == "app=web,!canary,env,tier in (edge,fe),zone notin (b)"
    assert sel.matches(WEB)
    assert not sel.matches({**WEB, "canary": "1"})
    assert not sel.matches({**WEB, "tier": "be"})


def test_label_selector_object_refuses_unknown_operator() -> None:
    with pytest.raises(errors.BadRequest, match='"Near" is not a valid label selector operator'):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Near"}]})


def test_label_selector_object_refuses_in_without_values() -> None:
    with pytest.raises(errors.BadRequest, match="values set can't be empty"):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In"}]})


def test_selector_from_set_requires_every_pair_and_empty_set_matches_everything() -> None:
    sel = selector_from_set({"tier": "fe", "app": "web"})
    assert str(sel) == "app=web,tier=fe"
    assert sel.matches(WEB)
    assert not sel.matches(DB)
    assert selector_from_set({}).empty
    assert selector_from_set(None).matches(DB)


def test_format_helpers_print_none_for_empty() -> None:
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({"matchLabels": {"app": "web"}}) == "app=web"
    assert format_label_selector({"matchLabels": {"-x": "1"}}) == "<error>"


def test_label_selector_values_are_immutable_and_hashable() -> None:
    sel = parse_label_selector("app=web")
    assert sel == parse_label_selector("app = web")
    assert hash(sel) == hash(LabelSelector(sel.requirements))


# --------------------------------------------------------------------------- field selectors

POD = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIPs": [{"ip": "127.1.0.5"}]},
}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("metadata.name=web", "metadata.name=web"),
        ("metadata.name==web", "metadata.name=web"),
        ("status.phase!=Failed,metadata.name=web", "metadata.name=web,status.phase!=Failed"),
        ("spec.nodeName=", "spec.nodeName="),
        (r"a=x\,y", r"a=x\,y"),
        (r"a=x\=y\\z", r"a=x\=y\\z"),
        ("", ""),
    ],
)
def test_field_selector_parses_and_prints_escaped(text: str, canonical: str) -> None:
    assert str(parse_field_selector(text)) == canonical


def test_field_selector_unescapes_values() -> None:
    sel = parse_field_selector(r"a=x\,y\=z\\w")
    assert sel.requirements[0].value == "x,y=z\\w"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        (r"a=x\y", r"invalid field selector: invalid escape sequence: \y"),
        ("a=x=y", "invalid field selector: unescaped character in value: ="),
        ("a=x\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_field_selector_syntax_errors_are_bad_requests(text: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        parse_field_selector(text)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name=web-2", False),
        ("metadata.namespace=default,spec.nodeName=node-a", True),
        ("status.phase!=Failed,status.phase!=Succeeded", True),
        ("status.phase!=Running", False),
        ("status.podIP=127.1.0.5", True),
        ("spec.schedulerName=", True),  # a missing string field is ""
        ("spec.hostNetwork=false", True),  # a missing bool is "false"
        ("spec.hostNetwork=true", False),
        ("", True),
    ],
)
def test_field_selector_matches_pods(text: str, expected: bool) -> None:
    assert parse_field_selector(text).matches(POD) is expected


def test_field_values_render_booleans_and_numbers_as_strings() -> None:
    node = {"spec": {"unschedulable": True}}
    assert field_value(node, "spec.unschedulable") == "true"
    assert field_value({}, "spec.unschedulable") == "false"
    assert field_value({"status": {"succeeded": 2}}, "status.successful") == "2"
    assert field_value({"status": {"replicas": 3}}, "status.replicas") == "3"
    assert field_value({}, "status.replicas") == "0"


def test_event_source_field_falls_back_to_reporting_component() -> None:
    event = {"source": {}, "reportingComponent": "kubelet", "type": "Warning"}
    assert parse_field_selector("source=kubelet,type=Warning").matches(event)
    assert field_value({"source": {"component": "scheduler"}}, "source") == "scheduler"


def test_exact_value_indexes_by_pinned_field() -> None:
    sel = parse_field_selector("metadata.name=web,status.phase!=Failed")
    assert sel.exact_value("metadata.name") == "web"
    assert sel.exact_value("status.phase") is None
    assert parse_field_selector("").exact_value("metadata.name") is None


def test_describe_event_query_is_supported_for_events() -> None:
    # kubectl describe sends these, in random order, with an empty namespace for nodes.
    sel = parse_field_selector(
        "involvedObject.uid=u1,involvedObject.name=web,involvedObject.namespace=,"
        "involvedObject.kind=Node"
    )
    validated = validate_fields(must("core/events"), sel)
    event = {"involvedObject": {"kind": "Node", "name": "web", "uid": "u1"}}
    assert validated.matches(event)
    assert not validated.matches({**event, "involvedObject": {"kind": "Node", "name": "db"}})


def test_unsupported_field_is_refused_with_kubernetes_message() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        validate_fields(must("core/pods"), parse_field_selector("spec.foo=bar"))
    assert caught.value.message == "field label not supported: spec.foo"


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("core/pods", "status.nominatedNodeName"),
        ("core/secrets", "type"),
        ("core/nodes", "spec.unschedulable"),
        ("core/namespaces", "status.phase"),
        ("batch/jobs", "status.successful"),
        ("apps/replicasets", "status.replicas"),
        ("apps/deployments", "metadata.namespace"),
        ("rbac.authorization.k8s.io/clusterroles", "metadata.name"),
    ],
)
def test_supported_fields_follow_kubernetes_conversion_funcs(key: str, field: str) -> None:
    assert field in of(must(key)).fields.names
    validate_fields(must(key), parse_field_selector(f"{field}=x"))


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("core/secrets", "status.phase"),
        ("apps/deployments", "status.replicas"),
        ("core/nodes", "metadata.namespace"),  # Node has its own, narrower list
        ("core/configmaps", "data.x"),
    ],
)
def test_fields_outside_a_kinds_list_are_refused(key: str, field: str) -> None:
    with pytest.raises(errors.BadRequest, match=f"field label not supported: {field}"):
        validate_fields(must(key), parse_field_selector(f"{field}=x"))


def test_old_spec_host_field_is_rewritten_to_node_name() -> None:
    sel = validate_fields(must("core/pods"), parse_field_selector("spec.host=node-a"))
    assert str(sel) == "spec.nodeName=node-a"
    assert sel.matches(POD)
