"""Inter-pod affinity and topology spread as pure functions: the namespaces a term covers,
matchLabelKeys, nodeAffinityPolicy, and the normalized affinity score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procorch.scheduler import interpod
from procorch.scheduler.interpod import NodeView, PodTerms, compile_pod

ZONE = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class Placed:
    node: str
    terms: PodTerms
    terminating: bool = False


def pod(namespace: str = "default", labels: dict[str, str] | None = None, **spec: Any) -> PodTerms:
    return compile_pod({"metadata": {"namespace": namespace, "labels": labels or {}}, "spec": spec})


@dataclass
class World:
    nodes: list[NodeView] = field(default_factory=list)
    placed: list[Placed] = field(default_factory=list)

    def node(self, name: str, zone: str | None, *, eligible: bool = True) -> None:
        labels = {"kubernetes.io/hostname": name}
        if zone is not None:
            labels[ZONE] = zone
        self.nodes.append(NodeView(name, labels, eligible=eligible))

    def verdicts(self, terms: PodTerms) -> dict[str, str | None]:
        state = interpod.prefilter(
            terms,
            self.nodes,
            self.placed,
            anti_affinity_holders=[p for p in self.placed if p.terms.anti_affinity],
        )
        return {n.name: interpod.filter_node(terms, state, n) for n in self.nodes}


def anti(app: str, key: str = ZONE, **extra: Any) -> dict[str, Any]:
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key, **extra}
            ]
        }
    }


def test_a_term_covers_its_own_namespace_unless_it_names_others() -> None:
    world = World()
    world.node("n1", "a")
    world.node("n2", "b")
    world.placed.append(Placed("n1", pod("other", {"app": "db"})))
    same_namespace_only = pod(affinity=anti("db"))
    assert world.verdicts(same_namespace_only) == {"n1": None, "n2": None}
    named = pod(affinity=anti("db", namespaces=["other"]))
    assert world.verdicts(named) == {"n1": interpod.REASON_ANTI_AFFINITY, "n2": None}
    everywhere = pod(affinity=anti("db", namespaceSelector={}))
    assert world.verdicts(everywhere)["n1"] == interpod.REASON_ANTI_AFFINITY
    by_name = pod(
        affinity=anti(
            "db", namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "other"}}
        )
    )
    assert world.verdicts(by_name)["n1"] == interpod.REASON_ANTI_AFFINITY


def test_match_label_keys_narrow_a_spread_to_the_pods_own_revision() -> None:
    world = World()
    world.node("n1", "a")
    world.node("n2", "b")
    # Two old-revision pods in zone a; the new revision counts only its own.
    for _ in range(2):
        world.placed.append(Placed("n1", pod(labels={"app": "web", "rev": "1"})))
    constraint = {
        "maxSkew": 1,
        "topologyKey": ZONE,
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    plain = pod(labels={"app": "web", "rev": "2"}, topologySpreadConstraints=[constraint])
    assert world.verdicts(plain) == {"n1": interpod.REASON_SPREAD, "n2": None}
    keyed = pod(
        labels={"app": "web", "rev": "2"},
        topologySpreadConstraints=[{**constraint, "matchLabelKeys": ["rev"]}],
    )
    assert world.verdicts(keyed) == {"n1": None, "n2": None}


def test_spread_counts_only_domains_the_pod_could_go_to_unless_told_otherwise() -> None:
    world = World()
    world.node("n1", "a")
    world.node("n2", "b", eligible=False)  # the pod's nodeSelector excludes it
    world.placed.append(Placed("n1", pod(labels={"app": "web"})))
    constraint = {
        "maxSkew": 1,
        "topologyKey": ZONE,
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    honor = pod(labels={"app": "web"}, topologySpreadConstraints=[constraint])
    # Zone b does not count (Honor): zone a alone has min 1, so a second pod fits there.
    assert world.verdicts(honor)["n1"] is None
    ignore = pod(
        labels={"app": "web"},
        topologySpreadConstraints=[{**constraint, "nodeAffinityPolicy": "Ignore"}],
    )
    assert world.verdicts(ignore)["n1"] == interpod.REASON_SPREAD


def near_db(*, weight: int) -> PodTerms:
    """A pod that prefers the zone of pods labelled app=db."""
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ZONE}
    preferred = [{"weight": weight, "podAffinityTerm": term}]
    return pod(
        affinity={"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}
    )


def test_affinity_scores_are_normalized_over_the_nodes() -> None:
    world = World()
    for name, zone in (("n1", "a"), ("n2", "b"), ("n3", "c")):
        world.node(name, zone)
    world.placed += [Placed("n1", pod(labels={"app": "db"})) for _ in range(2)]
    world.placed.append(Placed("n2", pod(labels={"app": "db"})))
    prefers = near_db(weight=10)
    scores = interpod.affinity_scores(prefers, world.nodes, world.placed)
    assert scores == {"n1": 100, "n2": 50, "n3": 0}


def test_pods_on_a_node_that_cannot_take_the_pod_still_mark_their_domain() -> None:
    world = World()
    for name, zone in (("full", "a"), ("n1", "a"), ("n2", "b")):
        world.node(name, zone)
    world.placed.append(Placed("full", pod(labels={"app": "db"})))
    prefers = near_db(weight=50)
    feasible = [n for n in world.nodes if n.name != "full"]
    labels_of = {n.name: n.labels for n in world.nodes}
    scores = interpod.affinity_scores(prefers, feasible, world.placed, labels_of=labels_of)
    assert scores == {"n1": 100, "n2": 0}


def test_soft_spread_counts_only_the_nodes_its_policies_include() -> None:
    world = World()
    world.node("n1", "a")
    world.node("n2", "b", eligible=False)  # the pod's nodeSelector excludes it
    world.node("n3", "b")
    world.placed += [Placed("n2", pod(labels={"app": "web"})) for _ in range(3)]
    constraint = {
        "maxSkew": 1,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    feasible = [n for n in world.nodes if n.name != "n2"]
    honor = pod(labels={"app": "web"}, topologySpreadConstraints=[constraint])
    assert interpod.spread_penalty(honor, feasible, world.placed, every_node=world.nodes) == {
        "n1": 0,
        "n3": 0,
    }
    ignore = pod(
        labels={"app": "web"},
        topologySpreadConstraints=[{**constraint, "nodeAffinityPolicy": "Ignore"}],
    )
    assert interpod.spread_penalty(ignore, feasible, world.placed, every_node=world.nodes) == {
        "n1": 0,
        "n3": 3,
    }
