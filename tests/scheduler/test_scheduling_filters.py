"""The filters and resource arithmetic of the scheduler, as pure functions over dicts."""

from __future__ import annotations

from typing import Any

import pytest

from procorch.api.nodeaffinity import affinity_matches, compile_term, required_terms
from procorch.api.taints import tolerates
from procorch.scheduler.cache import NodeInfo, PodEntry
from procorch.scheduler.filters import (
    NO_NODES_AVAILABLE,
    failure_message,
    filter_node,
    fit_reasons,
    pod_constraints,
    untolerated_taint,
)
from procorch.scheduler.resources import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    pod_nonzero_requests,
    pod_requests,
)

GI = 1024**3
MI = 1024**2


def container(name: str = "c", **requests: str) -> dict[str, Any]:
    ctr: dict[str, Any] = {"name": name, "command": ["sleep", "1000"]}
    if requests:
        ctr["resources"] = {"requests": {k.replace("_", "-"): v for k, v in requests.items()}}
    return ctr


def pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [container()])
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u-p"}, "spec": spec}


def node(
    name: str = "n1",
    *,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    unschedulable: bool = False,
    ready: str = "True",
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
) -> NodeInfo:
    info = NodeInfo(name)
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    info.set_node(
        {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                "conditions": [{"type": "Ready", "status": ready}],
            },
        }
    )
    return info


# -- tolerations -----------------------------------------------------------------------------

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, True),  # Equal default
        ({"key": "dedicated", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}, False),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "operator": "Exists"}, True),  # empty effect: every effect
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),  # empty key with Exists: every taint
        ({"key": "other", "operator": "Exists"}, False),
        ({"key": "dedicated", "operator": "Bogus", "value": "gpu"}, False),
    ],
)
def test_toleration_matches_taint_by_key_operator_value_and_effect(
    toleration: dict[str, Any], expected: bool
) -> None:
    assert tolerates(toleration, TAINT) is expected


def test_prefer_no_schedule_taints_do_not_filter() -> None:
    taints = [{"key": "soft", "effect": "PreferNoSchedule"}, TAINT]
    assert untolerated_taint(taints, []) == TAINT
    assert untolerated_taint(taints[:1], []) is None


def test_untolerated_taint_message_names_key_and_value() -> None:
    info = node(taints=[TAINT])
    assert filter_node(pod_constraints(pod()), info) == [
        "node(s) had untolerated taint {dedicated: gpu}"
    ]
    tolerant = pod(tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert filter_node(pod_constraints(tolerant), info) == []


def test_not_ready_node_rejects_pods_with_the_not_ready_taint() -> None:
    assert filter_node(pod_constraints(pod()), node(ready="False")) == [
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    ]
    assert filter_node(pod_constraints(pod()), node(ready="Unknown")) == [
        "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
    ]


def test_default_not_ready_no_execute_toleration_does_not_admit_to_a_not_ready_node() -> None:
    # Admission gives every pod this toleration; it covers NoExecute only.
    defaulted = pod(
        tolerations=[
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ]
    )
    assert filter_node(pod_constraints(defaulted), node(ready="False")) != []


def test_pod_tolerating_everything_may_go_to_a_not_ready_node() -> None:
    anything = pod(tolerations=[{"operator": "Exists"}])
    assert filter_node(pod_constraints(anything), node(ready="False")) == []


def test_unschedulable_node_rejects_unless_the_pod_tolerates_it() -> None:
    cordoned = node(unschedulable=True)
    assert filter_node(pod_constraints(pod()), cordoned) == ["node(s) were unschedulable"]
    tolerant = pod(
        tolerations=[
            {
                "key": "node.kubernetes.io/unschedulable",
                "operator": "Exists",
                "effect": "NoSchedule",
            }
        ]
    )
    assert filter_node(pod_constraints(tolerant), cordoned) == []


# -- node selector and affinity --------------------------------------------------------------


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


LABELS = {"disk": "ssd", "cores": "8", "zone": "a"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (expr("disk", "In", "ssd", "nvme"), True),
        (expr("disk", "In", "hdd"), False),
        (expr("missing", "In", "x"), False),
        (expr("disk", "NotIn", "hdd"), True),
        (expr("disk", "NotIn", "ssd"), False),
        (expr("missing", "NotIn", "x"), True),
        (expr("disk", "Exists"), True),
        (expr("missing", "Exists"), False),
        (expr("missing", "DoesNotExist"), True),
        (expr("disk", "DoesNotExist"), False),
        (expr("cores", "Gt", "4"), True),
        (expr("cores", "Gt", "8"), False),
        (expr("cores", "Lt", "16"), True),
        (expr("cores", "Lt", "8"), False),
        (expr("disk", "Gt", "4"), False),  # label not an integer
        (expr("cores", "Gt", "four"), False),  # unparsable term: matches nothing
        (expr("disk", "Bogus", "ssd"), False),
    ],
)
def test_node_affinity_operators(expression: dict[str, Any], expected: bool) -> None:
    term = compile_term({"matchExpressions": [expression]})
    assert (term is not None and term.matches("n1", LABELS)) is expected


def test_match_fields_select_by_node_name() -> None:
    term = compile_term({"matchFields": [expr("metadata.name", "In", "n1")]})
    assert term is not None
    assert term.matches("n1", {}) and not term.matches("n2", {})
    not_in = compile_term({"matchFields": [expr("metadata.name", "NotIn", "n1")]})
    assert not_in is not None and not not_in.matches("n1", {}) and not_in.matches("n2", {})
    assert compile_term({"matchFields": [expr("metadata.uid", "In", "x")]}) is None


def test_empty_selector_term_matches_no_node() -> None:
    assert compile_term({}) is None
    assert compile_term({"matchExpressions": []}) is None


def test_required_terms_are_ored_and_expressions_anded() -> None:
    p = pod(
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [expr("disk", "In", "ssd"), expr("zone", "In", "b")]},
                        {"matchExpressions": [expr("cores", "Gt", "4")]},
                    ]
                }
            }
        }
    )
    terms = required_terms(p)
    assert affinity_matches({}, terms, name="n1", labels=LABELS)  # second term
    assert not affinity_matches({}, terms, name="n1", labels={"disk": "ssd", "zone": "a"})
    assert affinity_matches({}, terms, name="n1", labels={"disk": "ssd", "zone": "b"})


def test_node_selector_needs_every_label() -> None:
    assert affinity_matches({"disk": "ssd"}, None, name="n1", labels=LABELS)
    assert not affinity_matches({"disk": "ssd", "gpu": "yes"}, None, name="n1", labels=LABELS)
    mismatch = pod(nodeSelector={"disk": "hdd"})
    assert filter_node(pod_constraints(mismatch), node(labels=LABELS)) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]


# -- resources -------------------------------------------------------------------------------


def test_pod_request_is_sum_of_containers_or_largest_init_container_plus_overhead() -> None:
    p = pod(
        containers=[container("a", cpu="500m", memory="1Gi"), container("b", cpu="250m")],
        initContainers=[container("i1", cpu="2", memory="512Mi"), container("i2", memory="3Gi")],
        overhead={"cpu": "100m", "memory": "64Mi"},
    )
    assert pod_requests(p) == {"cpu": 2100, "memory": 3 * GI + 64 * MI}


def test_sidecar_init_containers_add_to_the_app_containers() -> None:
    p = pod(
        containers=[container("app", cpu="1", memory="1Gi")],
        initContainers=[
            {**container("sidecar", cpu="500m", memory="256Mi"), "restartPolicy": "Always"},
            container("setup", cpu="2"),
        ],
    )
    # app + sidecar = 1500m; setup runs next to the sidecar = 2500m.
    assert pod_requests(p) == {"cpu": 2500, "memory": GI + 256 * MI}


def test_nonzero_requests_stand_in_for_containers_without_requests() -> None:
    p = pod(containers=[container("a"), container("b", cpu="1")])
    assert pod_nonzero_requests(p) == (
        DEFAULT_MILLI_CPU_REQUEST + 1000,
        2 * DEFAULT_MEMORY_REQUEST,
    )


def test_fit_reports_each_short_resource() -> None:
    reasons = fit_reasons(
        {"cpu": 3000, "memory": 6 * GI, "example.com/gpu": 1},
        allocatable={"cpu": 4000, "memory": 8 * GI, "pods": 2},
        requested={"cpu": 2000, "memory": 4 * GI},
        pod_count=2,
    )
    assert reasons == [
        "Too many pods",
        "Insufficient cpu",
        "Insufficient memory",
        "Insufficient example.com/gpu",
    ]


def test_fit_counts_pods_already_on_the_node() -> None:
    info = node(memory="8Gi")
    info.add_pod(PodEntry("u1", "default", "a", "n1", {"memory": 6 * GI}, 100, 6 * GI, ""))
    big = pod(containers=[container(memory="4Gi")])
    assert filter_node(pod_constraints(big), info) == ["Insufficient memory"]
    small = pod(containers=[container(memory="2Gi")])
    assert filter_node(pod_constraints(small), info) == []


def test_pods_without_requests_fit_until_the_pod_count_is_reached() -> None:
    info = node(pods="1")
    assert filter_node(pod_constraints(pod()), info) == []
    info.add_pod(PodEntry("u1", "default", "a", "n1", {}, 100, 200 * MI, ""))
    assert filter_node(pod_constraints(pod()), info) == ["Too many pods"]


# -- messages --------------------------------------------------------------------------------


def test_failure_message_counts_and_sorts_reasons() -> None:
    message = failure_message(
        3,
        [
            ["node(s) didn't match Pod's node affinity/selector"],
            ["Insufficient cpu"],
            ["node(s) didn't match Pod's node affinity/selector"],
        ],
    )
    assert message == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )


def test_failure_message_sorts_the_count_as_text_like_kube_scheduler() -> None:
    message = failure_message(12, [["Insufficient memory"]] * 10 + [["Too many pods"]] * 2)
    assert message == "0/12 nodes are available: 10 Insufficient memory, 2 Too many pods."


def test_failure_message_for_one_node_with_two_short_resources() -> None:
    message = failure_message(1, [["Insufficient cpu", "Insufficient memory"]])
    assert message == "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."


def test_failure_message_without_nodes() -> None:
    assert failure_message(0, []) == NO_NODES_AVAILABLE == "no nodes available to schedule pods"
