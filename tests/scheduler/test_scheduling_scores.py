"""Choosing among feasible nodes: affinity preferences, spreading, least allocated."""

from __future__ import annotations

import random
from typing import Any

from procorch.scheduler.cache import NodeInfo, PodEntry, SchedulerCache
from procorch.scheduler.filters import pod_constraints
from procorch.scheduler.scoring import least_allocated, least_allocated_score, select_node

GI = 1024**3


def info(name: str, *, labels: dict[str, str] | None = None, taints: Any = None) -> NodeInfo:
    out = NodeInfo(name)
    out.set_node(
        {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or []},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    return out


def pod(owner: str = "", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": "u"}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "rs",
                "uid": owner,
                "controller": True,
            }
        ]
    spec.setdefault("containers", [{"name": "c", "command": ["true"]}])
    return {"metadata": meta, "spec": spec}


def entry(uid: str, node: str, *, owner: str = "", cpu: int = 100, memory: int = 0) -> PodEntry:
    return PodEntry(uid, "default", uid, node, {"cpu": cpu}, cpu, memory, owner)


def test_least_allocated_prefers_free_capacity() -> None:
    assert least_allocated(0, 4000) == 100
    assert least_allocated(1000, 4000) == 75
    assert least_allocated(5000, 4000) == 0
    assert least_allocated(1, 0) == 0


def test_emptier_node_wins() -> None:
    busy, idle = info("busy"), info("idle")
    busy.add_pod(entry("a", "busy", cpu=2000, memory=4 * GI))
    constraints = pod_constraints(pod())
    assert least_allocated_score(constraints, idle) > least_allocated_score(constraints, busy)
    assert select_node(constraints, [busy, idle], random.Random(0)) is idle


def test_fewer_pods_of_the_same_owner_wins_over_free_capacity() -> None:
    crowded, other = info("crowded"), info("other")
    crowded.add_pod(entry("a", "crowded", owner="rs-1"))
    # "other" is busier but has none of this owner's pods.
    other.add_pod(entry("b", "other", cpu=3000, memory=6 * GI))
    assert select_node(pod_constraints(pod("rs-1")), [crowded, other], random.Random(0)) is other
    # A pod of another owner goes by free capacity.
    assert select_node(pod_constraints(pod("rs-2")), [crowded, other], random.Random(0)) is crowded


def preferring(*weighted: tuple[int, str, str], owner: str = "") -> dict[str, Any]:
    terms = [
        {
            "weight": weight,
            "preference": {"matchExpressions": [{"key": k, "operator": "In", "values": [v]}]},
        }
        for weight, k, v in weighted
    ]
    return pod(
        owner,
        affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": terms}},
    )


def test_preferred_node_affinity_weights_add_to_the_score() -> None:
    ssd, fast = info("ssd", labels={"disk": "ssd"}), info("fast", labels={"cpu": "fast"})
    both = info("both", labels={"disk": "ssd", "cpu": "fast"})
    both.add_pod(entry("x", "both", cpu=3500))  # the fullest node
    p = pod_constraints(preferring((60, "disk", "ssd"), (80, "cpu", "fast")))
    rng = random.Random(0)
    # 140 for both preferences outweighs the load; of the others, the heavier one wins.
    assert select_node(p, [ssd, fast, both], rng) is both
    assert select_node(p, [ssd, fast], rng) is fast


def test_a_light_preference_breaks_ties_but_does_not_outweigh_load() -> None:
    preferred, other = info("preferred", labels={"disk": "ssd"}), info("other")
    p = pod_constraints(preferring((1, "disk", "ssd")))
    rng = random.Random(0)
    assert all(select_node(p, [preferred, other], rng) is preferred for _ in range(20))
    preferred.add_pod(entry("x", "preferred", cpu=2000))
    assert select_node(p, [preferred, other], rng) is other


def test_spreading_comes_before_preferred_affinity() -> None:
    preferred, other = info("preferred", labels={"disk": "ssd"}), info("other")
    preferred.add_pod(entry("x", "preferred", owner="rs-1"))
    p = pod_constraints(preferring((100, "disk", "ssd"), owner="rs-1"))
    assert select_node(p, [preferred, other], random.Random(0)) is other


def test_untolerated_prefer_no_schedule_taint_is_avoided() -> None:
    soft = info("soft", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    plain = info("plain")
    plain.add_pod(entry("a", "plain", cpu=3000))
    assert select_node(pod_constraints(pod()), [soft, plain], random.Random(0)) is plain
    tolerant = pod(tolerations=[{"key": "k", "operator": "Exists"}])
    assert select_node(pod_constraints(tolerant), [soft, plain], random.Random(0)) is soft


def test_ties_are_broken_at_random() -> None:
    nodes = [info("a"), info("b"), info("c")]
    rng = random.Random(1)
    chosen = {select_node(pod_constraints(pod()), nodes, rng).name for _ in range(60)}
    assert chosen == {"a", "b", "c"}


def test_cache_counts_assumed_pods_and_forgets_them() -> None:
    cache = SchedulerCache()
    cache.set_node({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1"}}})
    p = pod(containers=[{"name": "c", "resources": {"requests": {"cpu": "500m"}}}])
    cache.assume(p, "n1")
    n1 = cache.node("n1")
    assert n1 is not None and n1.requested == {"cpu": 500} and cache.is_assumed("u")
    # The informer shows the binding: confirmed, counted once.
    bound = {**p, "spec": {**p["spec"], "nodeName": "n1"}}
    assert cache.set_pod(bound) is False
    assert not cache.is_assumed("u") and n1.requested == {"cpu": 500} and len(n1.pods) == 1
    assert cache.forget("u") is False  # confirmed pods are not forgotten
    # Finishing frees the resources.
    done = {**bound, "status": {"phase": "Succeeded"}}
    assert cache.set_pod(done) is True
    assert n1.requested == {} and not n1.pods


def test_node_update_is_relevant_only_when_a_scheduling_fact_changes() -> None:
    cache = SchedulerCache()
    base: dict[str, Any] = {
        "metadata": {"name": "n1", "labels": {"a": "1"}},
        "status": {
            "allocatable": {"cpu": "1"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}],
        },
    }
    assert cache.set_node(base) is True
    heartbeat = {
        **base,
        "status": {
            **base["status"],
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"}],
        },
    }
    assert cache.set_node(heartbeat) is False
    relabelled = {**base, "metadata": {"name": "n1", "labels": {"a": "2"}}}
    assert cache.set_node(relabelled) is True
