"""Which nodes a pod may go to, and kube-scheduler's words for why not.

Each filter follows the kube-scheduler (v1.32) plugin of the same name, in the same order,
and a node is rejected by the first filter it fails, as the framework does:

1. NodeUnschedulable: ``spec.unschedulable`` (a cordoned node) unless the pod tolerates
   ``node.kubernetes.io/unschedulable:NoSchedule``;
2. TaintToleration: every ``NoSchedule``/``NoExecute`` taint must be tolerated. A node whose
   Ready condition is not "True" is treated as carrying the taint Kubernetes' node lifecycle
   controller would give it (``node.kubernetes.io/not-ready`` when Ready is "False",
   ``node.kubernetes.io/unreachable`` when it is "Unknown" or missing), so a NotReady node
   takes no pods except those that tolerate that taint, as in Kubernetes;
3. NodeAffinity: ``spec.nodeSelector`` and the required node affinity terms;
4. NodeResourcesFit: pod count, cpu, memory, ephemeral-storage and extended resources
   against ``status.allocatable`` minus what the pods already there request;
5. PodTopologySpread and InterPodAffinity (:mod:`.interpod`): the pod's hard spread
   constraints, its required pod affinity and anti-affinity, and the required
   anti-affinity of the pods already placed.

:func:`failure_message` renders the ``FitError`` text (``0/3 nodes are available: 1
Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.``).

Pure data: no I/O; a :class:`PodConstraints` is compiled once per attempt and is immutable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from procorch.api.nodeaffinity import (
    SelectorTerm,
    affinity_matches,
    preferred_terms,
    required_terms,
)
from procorch.api.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    UNSCHEDULABLE,
    tolerated,
    with_condition_taint,
)
from procorch.scheduler import interpod, resources
from procorch.scheduler.cache import NodeInfo, PodEntry, controller_uid
from procorch.scheduler.interpod import NodeView, PodTerms, Prefiltered, compile_pod
from procorch.scheduler.resources import Amounts

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
NO_NODES_AVAILABLE = "no nodes available to schedule pods"

TAINT_UNSCHEDULABLE = UNSCHEDULABLE

_FILTERED_EFFECTS = (NO_SCHEDULE, NO_EXECUTE)


def reason_insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


def reason_untolerated_taint(taint: Mapping[str, Any]) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key') or ''}: {taint.get('value') or ''}}}"


# -- taints and tolerations ----------------------------------------------------------------


def untolerated_taint(
    taints: Iterable[Mapping[str, Any]],
    tolerations: Sequence[Mapping[str, Any]],
    *,
    effects: Sequence[str] = _FILTERED_EFFECTS,
) -> Mapping[str, Any] | None:
    """The first taint with one of ``effects`` that no toleration tolerates, if any."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerated(tolerations, taint):
            return taint
    return None


def effective_taints(info: NodeInfo) -> list[Mapping[str, Any]]:
    """The node's taints plus the one its readiness implies (unless it already has it)."""
    return with_condition_taint(info.taints, info.ready)


# -- the pod's side --------------------------------------------------------------------------


@dataclass(frozen=True)
class PodConstraints:
    """Everything the filters and scores need from one pod, parsed once per attempt."""

    requests: Amounts
    nonzero_cpu: int
    nonzero_memory: int
    tolerations: tuple[Mapping[str, Any], ...]
    node_selector: Mapping[str, Any]
    required: tuple[SelectorTerm | None, ...] | None
    preferred: tuple[tuple[int, SelectorTerm], ...]
    owner: str
    terms: PodTerms = field(default_factory=lambda: PodTerms("", {}))
    """Inter-pod affinity and topology spread (:mod:`.interpod`)."""


def pod_constraints(pod: Mapping[str, Any]) -> PodConstraints:
    spec = pod.get("spec") or {}
    cpu, memory = resources.pod_nonzero_requests(pod)
    selector = spec.get("nodeSelector")
    return PodConstraints(
        requests=resources.pod_requests(pod),
        nonzero_cpu=cpu,
        nonzero_memory=memory,
        tolerations=tuple(t for t in spec.get("tolerations") or [] if isinstance(t, Mapping)),
        node_selector=selector if isinstance(selector, Mapping) else {},
        required=required_terms(pod),
        preferred=preferred_terms(pod),
        owner=controller_uid(pod),
        terms=compile_pod(pod),
    )


def node_views(pod: PodConstraints, nodes: Sequence[NodeInfo]) -> list[NodeView]:
    """The nodes as the inter-pod rules see them for this pod: labels, and whether its node
    affinity and its tolerations admit each (for spread constraints' node policies)."""
    return [
        NodeView(
            info.name,
            info.labels,
            eligible=affinity_matches(
                pod.node_selector, pod.required, name=info.name, labels=info.labels
            ),
            untainted=untolerated_taint(info.taints, pod.tolerations) is None,
        )
        for info in nodes
    ]


def relate_to_others(
    pod: PodConstraints,
    nodes: Sequence[NodeInfo],
    placed: Collection[PodEntry],
    anti_affinity_holders: Collection[PodEntry],
    *,
    namespace_labels: interpod.NamespaceLabels | None = None,
) -> Prefiltered | None:
    """What the inter-pod filters need for this attempt; None when no rule relates this
    pod to others (no affinity or hard spread of its own, no placed pod's anti-affinity)."""
    terms = pod.terms
    if not (terms.affinity or terms.anti_affinity or terms.hard_spread or anti_affinity_holders):
        return None
    return interpod.prefilter(
        terms,
        node_views(pod, nodes),
        placed,
        anti_affinity_holders=anti_affinity_holders,
        namespace_labels=namespace_labels or interpod.namespace_labels_by_name,
    )


# -- resources -------------------------------------------------------------------------------


def fit_reasons(
    requests: Mapping[str, int],
    *,
    allocatable: Mapping[str, int],
    requested: Mapping[str, int],
    pod_count: int,
) -> list[str]:
    """Why ``requests`` do not fit next to ``requested`` (the sum over the ``pod_count``
    pods already there); empty when they fit. One reason per short resource."""
    reasons = []
    if pod_count + 1 > allocatable.get(resources.PODS, 0):
        reasons.append(REASON_TOO_MANY_PODS)
    names = [resources.CPU, resources.MEMORY, resources.EPHEMERAL_STORAGE]
    names += sorted(n for n in requests if resources.is_scalar_resource(n))
    for name in names:
        want = requests.get(name, 0)
        if want > 0 and want > allocatable.get(name, 0) - requested.get(name, 0):
            reasons.append(reason_insufficient(name))
    return reasons


# -- all filters -----------------------------------------------------------------------------


def filter_node(
    pod: PodConstraints, info: NodeInfo, others: Prefiltered | None = None
) -> list[str]:
    """The reasons ``info`` cannot take the pod, from the first filter it fails; empty
    when the pod fits. ``others`` is :func:`relate_to_others` of this attempt."""
    if info.unschedulable and not tolerated(
        pod.tolerations, {"key": TAINT_UNSCHEDULABLE, "effect": NO_SCHEDULE}
    ):
        return [REASON_UNSCHEDULABLE]
    taint = untolerated_taint(effective_taints(info), pod.tolerations)
    if taint is not None:
        return [reason_untolerated_taint(taint)]
    if not affinity_matches(pod.node_selector, pod.required, name=info.name, labels=info.labels):
        return [REASON_NODE_AFFINITY]
    reasons = fit_reasons(
        pod.requests,
        allocatable=info.allocatable,
        requested=info.requested,
        pod_count=len(info.pods),
    )
    if reasons or others is None:
        return reasons
    reason = interpod.filter_node(pod.terms, others, info)
    return [reason] if reason is not None else []


def failure_message(num_nodes: int, node_reasons: Iterable[Sequence[str]]) -> str:
    """kube-scheduler's message for a pod no node can take: each reason with the number of
    nodes that gave it, sorted as text (count included, as Go's ``sort.Strings`` does)."""
    if num_nodes == 0:
        return NO_NODES_AVAILABLE
    counts: Counter[str] = Counter()
    for reasons in node_reasons:
        counts.update(reasons)
    message = f"0/{num_nodes} nodes are available:"
    histogram = sorted(f"{n} {reason}" for reason, n in counts.items())
    if histogram:
        message += f" {', '.join(histogram)}."
    return message
