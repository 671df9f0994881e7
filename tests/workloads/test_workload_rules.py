"""The workload controllers' arithmetic and ordering, checked against Kubernetes' own cases:
fenceposts and their rounding, template equality after ``rollout undo``, revisions, the
order in which a ReplicaSet deletes pods, expectations, and the progress deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procorch.api.meta import rfc3339
from procorch.controllers import deployment_util as du
from procorch.controllers.workloads_expectations import Expectations
from procorch.controllers.workloads_pods import is_available, pod_from_template, pods_to_delete

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def dep(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": 1, "uid": "d-uid", "annotations": {}},
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
            **spec,
        },
        "status": {},
    }


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable down
        (3, "25%", "25%", (1, 0)),
        (4, 1, 0, (1, 0)),
        (2, "0%", "1%", (0, 1)),  # both resolving to zero: one may be unavailable
        (1, 0, 0, (0, 1)),
        (5, "50%", 2, (3, 2)),
    ],
)
def test_fenceposts_round_like_kubernetes(
    replicas: int, surge: Any, unavailable: Any, expected: tuple[int, int]
) -> None:
    d = dep(replicas, surge, unavailable)
    assert (du.max_surge(d), du.max_unavailable(d)) == expected


def test_recreate_has_no_surge_and_no_unavailability_budget() -> None:
    d = dep(3)
    d["spec"]["strategy"] = {"type": "Recreate"}
    assert du.max_surge(d) == 0 and du.max_unavailable(d) == 0
    assert du.new_rs_replicas(d, [], {"spec": {"replicas": 0}}) == 3


def template(**env: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "command": ["sleep", "600"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": {},
                }
            ]
        },
    }


def test_a_template_sent_back_by_rollout_undo_equals_the_original() -> None:
    original = template()
    in_rs = template()
    in_rs["metadata"]["labels"]["pod-template-hash"] = "abc"
    # What kubectl rollout undo sends: the RS template without the hash label, with
    # creationTimestamp null and empty maps as Go serializes them.
    undone = template()
    undone["metadata"]["creationTimestamp"] = None
    undone["metadata"]["annotations"] = {}
    undone["spec"]["containers"][0]["resources"] = {}
    undone["spec"]["volumes"] = []
    assert du.equal_ignore_hash(in_rs, undone)
    assert du.equal_ignore_hash(original, undone)
    assert du.template_hash(original) == du.template_hash(undone) == du.template_hash(in_rs)
    assert not du.equal_ignore_hash(original, template(FOO="bar"))
    assert du.template_hash(original) != du.template_hash(template(FOO="bar"))
    assert du.template_hash(original, 1) != du.template_hash(original)
    assert set(du.template_hash(original)) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_reusing_an_old_replica_set_raises_its_revision_and_keeps_the_history() -> None:
    d = dep(3)
    d["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "undo",
        du.REVISION: "2",
        du.LAST_APPLIED: "{}",
    }
    rs = {"metadata": {"annotations": {du.REVISION: "1"}}}
    assert du.set_new_rs_annotations(d, rs, 3, exists=True, max_replicas=4)
    annotations = rs["metadata"]["annotations"]
    assert annotations[du.REVISION] == "3"
    assert annotations[du.REVISION_HISTORY] == "1"
    assert annotations["kubernetes.io/change-cause"] == "undo"
    assert du.LAST_APPLIED not in annotations
    # A newer revision is never lowered.
    assert not du.set_new_rs_annotations(d, rs, 2, exists=True, max_replicas=4)
    fresh: dict[str, Any] = {"metadata": {}}
    du.set_new_rs_annotations(d, fresh, 1, exists=False, max_replicas=4)
    assert fresh["metadata"]["annotations"][du.DESIRED_REPLICAS] == "3"
    assert fresh["metadata"]["annotations"][du.MAX_REPLICAS] == "4"


def rs(
    name: str, replicas: int, max_replicas: int | None = None, created: int = 0
) -> dict[str, Any]:
    annotations = {} if max_replicas is None else {du.MAX_REPLICAS: str(max_replicas)}
    return {
        "metadata": {
            "name": name,
            "annotations": annotations,
            "creationTimestamp": rfc3339(NOW + timedelta(seconds=created)),
        },
        "spec": {"replicas": replicas},
        "status": {},
    }


def test_proportional_scaling_shares_a_scale_up_by_size() -> None:
    # Kubernetes' example: 10 replicas mid-rollout (maxSurge 3): 8 old + 5 new = 13; scaled to
    # 15 (maxSurge 4 -> 19 allowed): the 6 extra go 8:5 -> 4 + 2 (leftover to the largest).
    d = dep(15, 3, 2)
    old, new = rs("old", 8, 13), rs("new", 5, 13, created=10)
    to_add = 15 + 3 - 13
    shares = [du.proportion(r, d, to_add, 0) for r in (old, new)]
    assert shares == [3, 2]  # round(8*18/13)-8, round(5*18/13)-5
    assert du.proportion(rs("idle", 0), d, to_add, 0) == 0


def test_new_replica_set_grows_within_the_surge() -> None:
    d = dep(10, 3, 2)
    new = rs("new", 0)
    assert du.new_rs_replicas(d, [rs("old", 10), new], new) == 3
    new["spec"]["replicas"] = 3
    assert du.new_rs_replicas(d, [rs("old", 10), new], new) == 3  # at the cap: no growth
    assert du.new_rs_replicas(d, [rs("old", 7), new], new) == 6


def test_a_rollout_times_out_only_after_its_deadline_without_progress() -> None:
    d = dep(3, progressDeadlineSeconds=5)
    status: dict[str, Any] = {}
    du.set_condition(
        status, du.new_condition("Progressing", "True", du.REPLICA_SET_UPDATED, "m", NOW)
    )
    assert not du.timed_out(d, status, NOW + timedelta(seconds=5))
    assert du.timed_out(d, status, NOW + timedelta(seconds=6))
    du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, "m", NOW))
    assert not du.timed_out(d, status, NOW + timedelta(hours=1))
    d["spec"]["progressDeadlineSeconds"] = du.MAX_INT32
    assert not du.has_progress_deadline(d)


def test_conditions_keep_their_transition_time_while_the_status_holds() -> None:
    status: dict[str, Any] = {}
    du.set_condition(status, du.new_condition("Available", "True", "A", "m", NOW))
    later = NOW + timedelta(minutes=1)
    du.set_condition(status, du.new_condition("Available", "True", "B", "m", later))
    cond = du.get_condition(status, "Available")
    assert cond is not None
    assert cond["reason"] == "B" and cond["lastTransitionTime"] == rfc3339(NOW)
    du.set_condition(status, du.new_condition("Available", "False", "C", "m", later))
    assert du.get_condition(status, "Available")["lastTransitionTime"] == rfc3339(later)  # type: ignore[index]


def pod(
    name: str,
    *,
    node: str = "n1",
    phase: str = "Running",
    ready_for: float | None = 60.0,
    age: float = 600.0,
    restarts: int = 0,
    cost: int | None = None,
) -> dict[str, Any]:
    conditions = []
    if ready_for is not None:
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": rfc3339(NOW - timedelta(seconds=ready_for)),
            }
        )
    annotations = {} if cost is None else {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": rfc3339(NOW - timedelta(seconds=age)),
            "annotations": annotations,
        },
        "spec": {"nodeName": node},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": "main", "restartCount": restarts}],
        },
    }


def test_scale_down_picks_unscheduled_then_pending_then_unready_then_newest() -> None:
    pods = [
        pod("old-ready", age=3600, ready_for=3000),
        pod("new-ready", age=5, ready_for=2),
        pod("unready", ready_for=None),
        pod("pending", phase="Pending", ready_for=None),
        pod("unscheduled", node="", phase="Pending", ready_for=None),
    ]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, pods, 4, now=NOW)]
    assert order == ["unscheduled", "pending", "unready", "new-ready"]


def test_scale_down_honours_deletion_cost_and_restarts() -> None:
    pods = [
        pod("cheap", cost=-10),
        pod("crashy", restarts=5),
        pod("steady"),
    ]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, pods, 3, now=NOW)]
    assert order == ["cheap", "crashy", "steady"]


def test_availability_waits_for_min_ready_seconds() -> None:
    p = pod("p", ready_for=3)
    assert is_available(p, 0, NOW)
    assert is_available(p, 2, NOW)
    assert not is_available(p, 5, NOW)
    assert not is_available(pod("q", ready_for=None), 0, NOW)


def test_pods_from_a_template_are_named_after_and_owned_by_their_replica_set() -> None:
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid"},
    }
    made = pod_from_template(template(), owner)
    assert made["metadata"]["generateName"] == "web-abc-"
    assert made["metadata"]["labels"] == {"app": "web"}
    ref = made["metadata"]["ownerReferences"][0]
    assert ref["uid"] == "rs-uid" and ref["controller"] and ref["blockOwnerDeletion"]


def test_expectations_hold_until_the_informer_has_seen_every_write() -> None:
    clock = [0.0]
    exp = Expectations(ttl=300, clock=lambda: clock[0])
    key = ("default", "web")
    assert exp.satisfied(key)
    exp.expect_creations(key, 2)
    assert not exp.satisfied(key)
    exp.creation_observed(key)
    assert not exp.satisfied(key)
    exp.creation_observed(key)
    assert exp.satisfied(key)
    exp.expect_deletions(key, ["a", "b"])
    exp.deletion_observed(key, "a")
    exp.deletion_observed(key, "a")  # the deletionTimestamp and the DELETED event count once
    assert not exp.satisfied(key)
    clock[0] = 301  # a lost event cannot wedge the controller
    assert exp.satisfied(key)
