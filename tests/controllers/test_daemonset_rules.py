"""The DaemonSet controller's rules as pure functions: which nodes run a daemon pod, the pod
for a node, what a rolling update deletes and creates, the status; and the API's defaults
and validation of DaemonSets and ControllerRevisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procorch.api.registry import apply_defaults, validate
from procorch.api.types.apps import TEMPLATE_GENERATION_ANNOTATION
from procorch.controllers import daemonset_util as rules

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LONG_AGO = (AT - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ds(**spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 3},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "main", "command": ["sleep", "1"]}]},
            },
            **spec,
        },
    }
    apply_defaults("apps/v1", "DaemonSet", obj)
    return obj


def node(name: str, *, ready: str = "True", taints: Any = (), **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": list(taints)},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(
    name: str, node_name: str, hash_: str, *, ready: bool = True, phase: str = "Running"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"app": "agent", rules.HASH_LABEL: hash_},
            "creationTimestamp": LONG_AGO,
        },
        "spec": {"nodeName": node_name},
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": LONG_AGO,
                }
            ],
        },
    }


def snapshot(
    d: dict[str, Any], nodes: list[dict[str, Any]], pods: list[dict[str, Any]], current: str
) -> rules.Snapshot:
    return rules.Snapshot.of(d, nodes, pods, current)


def test_which_nodes_run_a_daemon_pod() -> None:
    plain = ds()
    assert rules.should_run(node("n1"), plain) == rules.Placement(True, True)
    # Cordoned and pressured nodes run daemon pods (the daemon tolerations).
    cordoned = node(
        "n1", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    )
    assert rules.should_run(cordoned, plain) == rules.Placement(True, True)
    # A NoSchedule taint it does not tolerate: no new pod, but one already there stays.
    tainted = node("n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert rules.should_run(tainted, plain) == rules.Placement(False, True)
    # NoExecute: the pod goes.
    evicting = node("n1", taints=[{"key": "dedicated", "effect": "NoExecute"}])
    assert rules.should_run(evicting, plain) == rules.Placement(False, False)
    tolerant = ds()
    tolerant["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "dedicated", "operator": "Exists"}
    ]
    assert rules.should_run(evicting, tolerant) == rules.Placement(True, True)
    # A NotReady or unreachable node: no new pod; the one there stays.
    assert rules.should_run(node("n1", ready="False"), plain) == rules.Placement(False, True)
    assert rules.should_run(node("n1", ready="Unknown"), plain) == rules.Placement(False, True)
    # nodeSelector and required node affinity.
    edge = ds()
    edge["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    assert rules.should_run(node("n1", role="edge"), edge).run
    assert rules.should_run(node("n1"), edge) == rules.Placement(False, False)
    named = ds()
    named["spec"]["template"]["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}
                        ]
                    }
                ]
            }
        }
    }
    assert rules.should_run(node("n1"), named).run
    assert not rules.should_run(node("n2"), named).run


def test_the_pod_for_a_node_names_it_in_its_affinity_and_tolerates_node_problems() -> None:
    d = ds()
    d["metadata"]["annotations"] = {TEMPLATE_GENERATION_ANNOTATION: "4"}
    template = rules.with_daemon_tolerations(rules.template_of(d))
    p = rules.pod_for_node(d, template, "abc123", "n7")
    assert p["metadata"]["generateName"] == "agent-"
    assert p["metadata"]["labels"] == {
        "app": "agent",
        rules.HASH_LABEL: "abc123",
        rules.TEMPLATE_GENERATION_LABEL: "4",
    }
    assert p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert p["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ] == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}
        ]
    }
    assert rules.target_node(p) == "n7"
    keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    # No tolerationSeconds: a daemon pod is never evicted from an unreachable node.
    assert all("tolerationSeconds" not in t for t in p["spec"]["tolerations"])
    # The template itself is untouched.
    assert "tolerations" not in rules.template_of(d)["spec"]


def test_history_data_restores_the_template_as_kubectl_rollout_undo_sends_it() -> None:
    d = ds()
    data = rules.history_data(d)
    assert data == {"spec": {"template": {**rules.template_of(d), "$patch": "replace"}}}


def test_manage_creates_where_missing_and_deletes_surplus_failed_and_unwanted_pods() -> None:
    d = ds()
    nodes = [
        node("n1"),
        node("n2"),
        node("n3"),
        node("n4", taints=[{"key": "x", "effect": "NoExecute"}]),
    ]
    older = pod("a", "n2", "h1")
    newer = pod("b", "n2", "h1")
    newer["metadata"]["creationTimestamp"] = AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    failed = pod("c", "n3", "h1", phase="Failed")
    unwanted = pod("d", "n4", "h1")
    plan = rules.manage_plan(snapshot(d, nodes, [older, newer, failed, unwanted], "h1"), AT)
    assert plan.nodes_to_create == ["n1"]
    assert [p["metadata"]["name"] for p in plan.pods_to_delete] == ["b", "d"]
    assert [(n, p["metadata"]["name"]) for n, p in plan.failed] == [("n3", "c")]


def test_manage_keeps_what_may_stay_and_drops_pending_pods_of_nodes_that_are_gone() -> None:
    d = ds()
    # A NoSchedule taint the pod does not tolerate: no new pod there, but a failed one is
    # still replaced and a surplus one still pruned (the pods there may stay).
    tainted = node("n1", taints=[{"key": "dedicated", "effect": "NoSchedule"}])
    failed = pod("f", "n1", "h1", phase="Failed")
    first, second = pod("a", "n1", "h1"), pod("b", "n1", "h1")
    second["metadata"]["creationTimestamp"] = AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = rules.manage_plan(snapshot(d, [tainted], [failed, first, second], "h1"), AT)
    assert [(n, p["metadata"]["name"]) for n, p in plan.failed] == [("n1", "f")]
    assert [p["metadata"]["name"] for p in plan.pods_to_delete] == ["b"]
    assert plan.nodes_to_create == []
    # A pod created for a node that was deleted before it was bound goes.
    orphan = pod("o", "gone", "h1", ready=False, phase="Pending")
    orphan["spec"] = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["gone"]}
                            ]
                        }
                    ]
                }
            }
        }
    }
    bound_elsewhere = pod("x", "also-gone", "h1")  # bound: pod GC's business, not ours
    plan = rules.manage_plan(snapshot(d, [node("n2")], [orphan, bound_elsewhere], "h1"), AT)
    assert [p["metadata"]["name"] for p in plan.pods_to_delete] == ["o"]
    assert plan.nodes_to_create == ["n2"]


def three_nodes_with(*pods: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [node("n1"), node("n2"), node("n3")], list(pods)


def test_a_rolling_update_without_surge_stays_within_max_unavailable() -> None:
    d = ds()  # maxUnavailable 1, maxSurge 0
    nodes, pods = three_nodes_with(
        pod("a", "n1", "old"), pod("b", "n2", "old"), pod("c", "n3", "old")
    )
    plan = rules.rolling_update_plan(snapshot(d, nodes, pods, "new"), AT)
    assert len(plan.pods_to_delete) == 1 and plan.nodes_to_create == []
    # A new pod not yet ready counts against the budget: nothing more is deleted.
    nodes, pods = three_nodes_with(
        pod("a", "n1", "new", ready=False), pod("b", "n2", "old"), pod("c", "n3", "old")
    )
    plan = rules.rolling_update_plan(snapshot(d, nodes, pods, "new"), AT)
    assert plan.pods_to_delete == []
    # An old pod that is unavailable anyway is always replaced.
    nodes, pods = three_nodes_with(
        pod("a", "n1", "new", ready=False),
        pod("b", "n2", "old", ready=False),
        pod("c", "n3", "old"),
    )
    plan = rules.rolling_update_plan(snapshot(d, nodes, pods, "new"), AT)
    assert [p["metadata"]["name"] for p in plan.pods_to_delete] == ["b"]
    # 50% of 3 nodes rounds up to 2.
    wide = ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}})
    nodes, pods = three_nodes_with(
        pod("a", "n1", "old"), pod("b", "n2", "old"), pod("c", "n3", "old")
    )
    plan = rules.rolling_update_plan(snapshot(wide, nodes, pods, "new"), AT)
    assert len(plan.pods_to_delete) == 2


def test_a_rolling_update_with_surge_starts_new_pods_beside_old_ones_first() -> None:
    d = ds(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
    )
    nodes, pods = three_nodes_with(
        pod("a", "n1", "old"), pod("b", "n2", "old"), pod("c", "n3", "old")
    )
    plan = rules.rolling_update_plan(snapshot(d, nodes, pods, "new"), AT)
    assert plan.pods_to_delete == [] and plan.nodes_to_create == ["n1"]
    # The new pod on n1 is available: its old pod goes, and the next node surges.
    nodes, pods = three_nodes_with(
        pod("a", "n1", "old"), pod("a2", "n1", "new"), pod("b", "n2", "old"), pod("c", "n3", "old")
    )
    plan = rules.rolling_update_plan(snapshot(d, nodes, pods, "new"), AT)
    assert [p["metadata"]["name"] for p in plan.pods_to_delete] == ["a"]
    assert plan.nodes_to_create == ["n2"]
    # A node that cannot take a new pod (a NoSchedule taint) is not surged onto: its
    # available old pod stays, an unavailable one goes.
    tainted = [{"key": "dedicated", "effect": "NoSchedule"}]
    nodes = [node("n1", taints=tainted), node("n2", taints=tainted)]
    pods = [pod("a", "n1", "old"), pod("b", "n2", "old", ready=False)]
    plan = rules.rolling_update_plan(snapshot(d, nodes, pods, "new"), AT)
    assert plan.nodes_to_create == []
    assert [p["metadata"]["name"] for p in plan.pods_to_delete] == ["b"]
    # With surge, manage keeps an old ready pod beside a new one until that is available
    # (ready for minReadySeconds, here 600 s: it has been ready for 300).
    slow = ds(
        minReadySeconds=600,
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
    )
    nodes, pods = three_nodes_with(pod("a", "n1", "old"), pod("a2", "n1", "new"))
    assert rules.manage_plan(snapshot(slow, nodes, pods, "new"), AT).pods_to_delete == []
    assert [
        p["metadata"]["name"]
        for p in rules.manage_plan(snapshot(d, nodes, pods, "new"), AT).pods_to_delete
    ] == ["a"]
    # With surge, manage keeps an old ready pod beside a new one that is not ready yet.
    nodes, pods = three_nodes_with(
        pod("a", "n1", "old"), pod("a2", "n1", "new", ready=False), pod("b", "n2", "old")
    )
    assert rules.manage_plan(snapshot(d, nodes, pods, "new"), AT).pods_to_delete == []


def test_status_counts_nodes_from_their_oldest_pod() -> None:
    d = ds(minReadySeconds=600)
    nodes = [
        node("n1"),
        node("n2"),
        node("n3"),
        node("n4", taints=[{"key": "x", "effect": "NoSchedule"}]),
    ]
    view = snapshot(
        d,
        nodes,
        [pod("a", "n1", "new"), pod("b", "n2", "old", ready=False), pod("d", "n4", "old")],
        "new",
    )
    status = rules.calculate_status(view, AT, observed=True)
    # Ready five minutes ago is not yet available with minReadySeconds 600.
    assert status == {
        "currentNumberScheduled": 2,
        "numberMisscheduled": 1,
        "desiredNumberScheduled": 3,
        "numberReady": 1,
        "observedGeneration": 3,
        "updatedNumberScheduled": 1,
        "numberUnavailable": 3,
    }
    unobserved = rules.calculate_status(view, AT, observed=False)
    assert "observedGeneration" not in unobserved


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate("apps/v1", obj["kind"], obj, old=old)]


def test_defaults_and_validation_as_kubernetes_words_them() -> None:
    d = ds()
    assert d["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert d["spec"]["revisionHistoryLimit"] == 10
    assert causes(d) == []
    both = ds(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1},
        }
    )
    assert causes(both) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: "
        "may not be set when maxUnavailable is non-zero"
    ]
    neither = ds(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"},
        }
    )
    assert causes(neither) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: "
        "cannot be 0 when maxSurge is 0"
    ]
    unknown = ds(updateStrategy={"type": "Sometimes"})
    assert causes(unknown)[0].startswith("spec.updateStrategy: Unsupported value")
    assert causes(ds(updateStrategy={"type": "OnDelete"})) == []
    never = ds()
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert causes(never) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]
    moved = ds()
    moved["spec"]["selector"] = {"matchLabels": {"app": "agent", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert causes(moved, old=ds()) == [
        'spec.selector: Invalid value: {"matchLabels":{"app":"agent","tier":"x"}}: field is immutable'
    ]


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ({"data": {"a": 1}, "revision": 2}, []),
        ({"revision": 2}, ["data: Required value: data is mandatory"]),
        (
            {"data": {}, "revision": -1},
            ["revision: Invalid value: -1: must be greater than or equal to 0"],
        ),
    ],
)
def test_controller_revisions_need_data_and_a_revision(
    revision: dict[str, Any], expected: list[str]
) -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "agent-1", "namespace": "default"},
        **revision,
    }
    assert causes(obj) == expected


def test_a_controller_revisions_data_is_immutable() -> None:
    old = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "agent-1", "namespace": "default"},
        "data": {"a": 1},
        "revision": 1,
    }
    assert causes({**old, "revision": 5}, old=old) == []
    assert causes({**old, "data": {"a": 2}}, old=old) == [
        'data: Invalid value: {"a":2}: field is immutable'
    ]
