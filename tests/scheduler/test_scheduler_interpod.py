"""Pods placed relative to other pods, against a real API server and scheduler: required
and preferred pod (anti-)affinity by topologyKey, the anti-affinity of pods already placed,
and topology spread constraints, with kube-scheduler's messages when nothing fits."""

from __future__ import annotations

from collections import Counter
from typing import Any

from scheduler_harness import NS, PODS, Harness

from procorch.api.resources import must

NAMESPACES = must("core/namespaces")

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def term(app: str, key: str) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}


async def nodes(harness: Harness, zones: dict[str, str | None]) -> None:
    for name, zone in zones.items():
        labels = {HOST: name}
        if zone is not None:
            labels[ZONE] = zone
        await harness.node(name, labels=labels)


async def test_required_anti_affinity_puts_one_replica_per_node_and_the_rest_wait(
    harness: Harness,
) -> None:
    await nodes(harness, {"n1": "a", "n2": "b", "n3": "b"})
    apart = {
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", HOST)]}
    }
    for i in range(3):
        await harness.pod(f"web-{i}", labels={"app": "web"}, affinity=apart)
    assert sorted([await harness.bound(f"web-{i}") for i in range(3)]) == ["n1", "n2", "n3"]
    await harness.pod("web-3", labels={"app": "web"}, affinity=apart)
    cond = await harness.unschedulable("web-3")
    assert cond["message"] == (
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    )
    # Anti-affinity by zone: one per zone, so nothing at all fits beside two zones' pods.
    await harness.pod(
        "zonal",
        labels={"app": "web"},
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term("web", ZONE)]
            }
        },
    )
    cond = await harness.unschedulable("zonal")
    assert "3 node(s) didn't match pod anti-affinity rules" in cond["message"]
    # A replica gone frees its node for the waiting one at once.
    freed = (await harness.get("web-0"))["spec"]["nodeName"]
    await harness.client.delete(PODS, "web-0", namespace=NS, grace_period_seconds=0)
    assert await harness.bound("web-3") == freed


async def test_required_affinity_waits_for_the_pods_it_needs_and_follows_them_into_their_zone(
    harness: Harness,
) -> None:
    await nodes(harness, {"n1": "a", "n2": "b", "n3": "b"})
    near_db = {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", ZONE)]}
    }
    await harness.pod("cache", labels={"app": "cache"}, affinity=near_db)
    cond = await harness.unschedulable("cache")
    assert cond["message"] == "0/3 nodes are available: 3 node(s) didn't match pod affinity rules."
    # The db lands in zone b; the waiting cache is tried again and joins it there.
    await harness.pod("db", labels={"app": "db"}, nodeSelector={ZONE: "b"})
    assert await harness.bound("db") in ("n2", "n3")
    assert await harness.bound("cache") in ("n2", "n3")
    # The first pod of a group whose affinity selects itself may go anywhere.
    together = {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("team", HOST)]}
    }
    await harness.pod("team-0", labels={"app": "team"}, affinity=together)
    first = await harness.bound("team-0")
    for i in (1, 2):
        await harness.pod(f"team-{i}", labels={"app": "team"}, affinity=together)
        assert await harness.bound(f"team-{i}") == first


async def test_a_placed_pods_anti_affinity_keeps_others_off_its_node(harness: Harness) -> None:
    await nodes(harness, {"n1": "a", "n2": "a"})
    await harness.pod(
        "loner",
        nodeSelector={HOST: "n1"},
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term("noisy", HOST)]
            }
        },
    )
    assert await harness.bound("loner") == "n1"
    await harness.pod("noisy-here", labels={"app": "noisy"}, nodeSelector={HOST: "n1"})
    cond = await harness.unschedulable("noisy-here")
    assert cond["message"] == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) didn't satisfy existing pods anti-affinity rules."
    )
    await harness.pod("noisy", labels={"app": "noisy"})
    assert await harness.bound("noisy") == "n2"


async def test_hard_topology_spread_keeps_zones_within_max_skew(harness: Harness) -> None:
    # Zone a has one node, zone b two, and n4 has no zone label at all.
    await nodes(harness, {"n1": "a", "n2": "b", "n3": "b", "n4": None})
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": ZONE,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "spread"}},
        }
    ]
    names = [f"spread-{i}" for i in range(6)]
    for name in names:
        await harness.pod(name, labels={"app": "spread"}, topologySpreadConstraints=spread)
    placed = [await harness.bound(name) for name in names]
    zones = Counter("a" if node == "n1" else "b" for node in placed)
    assert zones == {"a": 3, "b": 3}, placed
    assert "n4" not in placed
    # minDomains 3 with two zones: the minimum counts as 0, so no zone takes more than 1.
    strict = [{**spread[0], "minDomains": 3, "labelSelector": {"matchLabels": {"app": "strict"}}}]
    await harness.pod("strict-0", labels={"app": "strict"}, topologySpreadConstraints=strict)
    await harness.pod("strict-1", labels={"app": "strict"}, topologySpreadConstraints=strict)
    await harness.bound("strict-0")
    await harness.bound("strict-1")
    await harness.pod("strict-2", labels={"app": "strict"}, topologySpreadConstraints=strict)
    cond = await harness.unschedulable("strict-2")
    assert cond["message"] == (
        "0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints "
        "(missing required label), 3 node(s) didn't match pod topology spread constraints."
    )


async def test_preferred_affinity_outweighs_free_room(harness: Harness) -> None:
    await nodes(harness, {"n1": "a", "n2": "a", "n3": "a"})
    await harness.pod("leader", labels={"app": "leader"}, requests={"cpu": "1"})
    home = await harness.bound("leader")
    follow = {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term("leader", HOST)}
            ]
        }
    }
    for i in range(3):
        await harness.pod(f"follower-{i}", affinity=follow, requests={"cpu": "500m"})
        assert await harness.bound(f"follower-{i}") == home


async def test_a_namespace_selector_matches_namespaces_by_their_labels(harness: Harness) -> None:
    await nodes(harness, {"n1": "a", "n2": "b"})
    await harness.client.create(
        NAMESPACES,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"team": "a"}},
        },
    )
    db = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "db", "labels": {"app": "db"}},
        "spec": {
            "nodeSelector": {HOST: "n2"},
            "containers": [{"name": "main", "command": ["sleep", "1000"]}],
        },
    }
    await harness.client.create(PODS, db, namespace="team-a")
    by_team = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {**term("db", ZONE), "namespaceSelector": {"matchLabels": {"team": "a"}}}
            ]
        }
    }
    await harness.pod("api", labels={"app": "api"}, affinity=by_team)
    assert await harness.bound("api") == "n2"
