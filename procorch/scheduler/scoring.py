"""Choosing among the nodes that can take a pod.

Nodes are ranked by a key compared in order, highest first:

1. ``PreferNoSchedule`` taints: fewer the pod does not tolerate is better (kube-scheduler's
   TaintToleration score, its most heavily weighted one): such a node is used only when
   spreading and room cannot be had elsewhere;
2. spreading: for a pod with ``topologySpreadConstraints``, fewer matching pods in the
   node's domains under its ``ScheduleAnyway`` constraints; for any other pod, fewer pods
   of the same controller (the pod's controlling ownerReference) on the node, so replicas
   land on different nodes (kube-scheduler's default topology spread over hostnames);
3. the score: least allocated, 0-100, the share of CPU and memory left free after placing
   the pod (kube-scheduler's ``LeastAllocated``, with its 100m/200Mi stand-ins for
   containers that request nothing), *plus* the weights (1-100 each) of the pod's
   ``preferredDuringSchedulingIgnoredDuringExecution`` node affinity terms the node
   matches, so a heavy preference outweighs load and a light one breaks near-ties, *plus*
   twice the inter-pod affinity score (0-100 over the feasible nodes; kube-scheduler
   weighs InterPodAffinity 2 to NodeResourcesFit's 1);

and what is still tied is broken at random, as kube-scheduler's ``selectHost`` does.

Pure data: no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from procorch.api.taints import PREFER_NO_SCHEDULE, tolerated
from procorch.scheduler import interpod
from procorch.scheduler.cache import NodeInfo, PodEntry
from procorch.scheduler.filters import PodConstraints, node_views
from procorch.scheduler.resources import CPU, MEMORY

MAX_NODE_SCORE = 100


def least_allocated(requested: int, allocatable: int) -> int:
    """0-100: the share of ``allocatable`` still free once ``requested`` is taken."""
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


def least_allocated_score(pod: PodConstraints, info: NodeInfo) -> int:
    """CPU and memory equally weighted, as kube-scheduler's default NodeResourcesFit score."""
    cpu = least_allocated(info.nonzero_cpu + pod.nonzero_cpu, info.allocatable.get(CPU, 0))
    memory = least_allocated(
        info.nonzero_memory + pod.nonzero_memory, info.allocatable.get(MEMORY, 0)
    )
    return (cpu + memory) // 2


def preferred_affinity_score(pod: PodConstraints, info: NodeInfo) -> int:
    return sum(w for w, term in pod.preferred if term.matches(info.name, info.labels))


def untolerated_prefer_no_schedule(pod: PodConstraints, info: NodeInfo) -> int:
    # Only tolerations that cover PreferNoSchedule count (an empty effect covers all).
    relevant = [t for t in pod.tolerations if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]
    return sum(
        1
        for taint in info.taints
        if taint.get("effect") == PREFER_NO_SCHEDULE and not tolerated(relevant, taint)
    )


def same_owner_pods(pod: PodConstraints, info: NodeInfo) -> int:
    return info.owners.get(pod.owner, 0) if pod.owner else 0


def score(pod: PodConstraints, info: NodeInfo) -> int:
    """Least allocated (0-100) plus the weights of the preferred affinity terms matched."""
    return least_allocated_score(pod, info) + preferred_affinity_score(pod, info)


@dataclass(frozen=True)
class Relative:
    """Per node, the scores that depend on other pods (computed once per attempt)."""

    affinity: dict[str, int]
    spread: dict[str, int] | None
    """The ScheduleAnyway penalty, for a pod with spread constraints; None otherwise."""


def relative_scores(
    pod: PodConstraints,
    feasible: Sequence[NodeInfo],
    nodes: Sequence[NodeInfo],
    placed: Collection[PodEntry],
    preference_holders: Collection[PodEntry],
    *,
    namespace_labels: interpod.NamespaceLabels | None = None,
) -> Relative | None:
    """None when no rule relates the pod's placement to other pods'. ``nodes`` are all the
    nodes: pods on those that cannot take this pod still count in their domains."""
    terms = pod.terms
    prefers = bool(terms.preferred_affinity or terms.preferred_anti_affinity)
    if not (prefers or terms.spread or preference_holders):
        return None
    labels_of = {n.name: n.labels for n in nodes}
    affinity = (
        interpod.affinity_scores(
            terms,
            feasible,
            placed if prefers else (),
            labels_of=labels_of,
            preference_holders=preference_holders,
            namespace_labels=namespace_labels or interpod.namespace_labels_by_name,
        )
        if prefers or preference_holders
        else {}
    )
    spread: dict[str, int] | None = None
    if terms.soft_spread:
        spread = interpod.spread_penalty(terms, feasible, placed, every_node=node_views(pod, nodes))
    elif terms.spread:
        spread = {}  # hard constraints only: no spreading score, and no default spreading
    return Relative(affinity, spread)


def rank(
    pod: PodConstraints, info: NodeInfo, relative: Relative | None = None
) -> tuple[int, int, int]:
    """The node's ranking key for ``pod``: higher is better."""
    if relative is not None and relative.spread is not None:
        spread = relative.spread.get(info.name, 0)
    else:
        spread = same_owner_pods(pod, info)
    affinity = relative.affinity.get(info.name, 0) if relative is not None else 0
    return (
        -untolerated_prefer_no_schedule(pod, info),
        -spread,
        score(pod, info) + 2 * affinity,
    )


def select_node(
    pod: PodConstraints,
    feasible: Sequence[NodeInfo],
    rng: random.Random,
    relative: Relative | None = None,
) -> NodeInfo:
    """The best of ``feasible`` (which must not be empty), ties broken by ``rng``."""
    if len(feasible) == 1:
        return feasible[0]
    best: list[NodeInfo] = []
    best_key: tuple[int, int, int] | None = None
    for info in feasible:
        key = rank(pod, info, relative)
        if best_key is None or key > best_key:
            best, best_key = [info], key
        elif key == best_key:
            best.append(info)
    return best[0] if len(best) == 1 else rng.choice(best)
