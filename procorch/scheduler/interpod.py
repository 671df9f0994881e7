"""Placing a pod relative to other pods: inter-pod affinity and anti-affinity, and topology
spread constraints, as kube-scheduler's InterPodAffinity and PodTopologySpread plugins do.

A *domain* is a value of a node label, the term's or constraint's ``topologyKey``
(``kubernetes.io/hostname``: each node; ``topology.kubernetes.io/zone``: each zone). A pod's
terms are compiled once per attempt (:func:`compile_pod`); what they need from the other
pods is computed once per attempt over the whole cluster (:func:`prefilter`, the plugins'
PreFilter), then each node is checked in constant time (:func:`filter_node`):

* required affinity: every term has a matching pod in the node's domain (the first pod of
  a group that matches its own terms may go anywhere, as in Kubernetes);
* required anti-affinity: no term has a matching pod in the node's domain; and no pod
  already running has a required anti-affinity term that matches this pod in that domain;
* ``whenUnsatisfiable: DoNotSchedule`` spread constraints: placing the pod in the node's
  domain keeps ``count - min(count over domains) <= maxSkew``, counting matching pods of
  the pod's namespace on the nodes the pod could go to (``nodeAffinityPolicy: Honor``,
  ``nodeTaintsPolicy: Ignore`` by default), with ``minDomains`` and ``matchLabelKeys``.

Scores (:func:`affinity_scores`, :func:`spread_penalty`) rank the feasible nodes: preferred
affinity terms (the pod's and, symmetrically, those of pods already placed) add or subtract
their weight per matching pod in the domain; ``ScheduleAnyway`` constraints prefer the
domains with fewest matching pods.

``namespaceSelector`` is matched against the namespaces' labels (the caller passes them; by
default only ``kubernetes.io/metadata.name``, which every namespace has). Pure data: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from procorch.api import errors
from procorch.api.selectors import (
    IN,
    NOT_IN,
    LabelSelector,
    Requirement,
    label_selector_from_dict,
    new_requirement,
)

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
REASON_SPREAD = "node(s) didn't match pod topology spread constraints"
REASON_SPREAD_LABEL = REASON_SPREAD + " (missing required label)"

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

Labels = Mapping[str, str]
NamespaceLabels = Callable[[str], Labels]


def namespace_labels_by_name(namespace: str) -> Labels:
    return {NAMESPACE_NAME_LABEL: namespace}


def _selector(value: Any) -> LabelSelector | None:
    """A compiled label selector; None for a missing one (which matches nothing) or one
    that does not compile."""
    if not isinstance(value, Mapping):
        return None
    try:
        return label_selector_from_dict(value)
    except errors.BadRequest:
        return None


@dataclass(frozen=True)
class AffinityTerm:
    """A compiled ``PodAffinityTerm`` of a pod in ``owner_namespace``."""

    selector: LabelSelector | None
    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None
    topology_key: str
    weight: int = 0

    def selects_namespace(self, namespace: str, namespace_labels: NamespaceLabels) -> bool:
        if namespace in self.namespaces:
            return True
        if self.namespace_selector is not None:
            return self.namespace_selector.matches(namespace_labels(namespace))
        return False

    def matches(self, namespace: str, labels: Labels, namespace_labels: NamespaceLabels) -> bool:
        return (
            self.selector is not None
            and self.selects_namespace(namespace, namespace_labels)
            and self.selector.matches(labels)
        )


def _term(raw: Any, owner_namespace: str, owner_labels: Labels, weight: int = 0) -> AffinityTerm:
    raw = raw if isinstance(raw, Mapping) else {}
    selector = _selector(raw.get("labelSelector"))
    # matchLabelKeys / mismatchLabelKeys: the pod's own values join the selector.
    extra: list[Requirement] = []
    try:
        for key in raw.get("matchLabelKeys") or []:
            if key in owner_labels:
                extra.append(new_requirement(key, IN, [owner_labels[key]]))
        for key in raw.get("mismatchLabelKeys") or []:
            if key in owner_labels:
                extra.append(new_requirement(key, NOT_IN, [owner_labels[key]]))
    except errors.ApiError:
        extra = []
    if selector is not None and extra:
        selector = LabelSelector((*selector.requirements, *extra))
    namespaces = frozenset(str(n) for n in raw.get("namespaces") or [])
    namespace_selector = _selector(raw.get("namespaceSelector"))
    if not namespaces and namespace_selector is None:
        namespaces = frozenset({owner_namespace})
    return AffinityTerm(
        selector=selector,
        namespaces=namespaces,
        namespace_selector=namespace_selector,
        topology_key=str(raw.get("topologyKey") or ""),
        weight=weight,
    )


def _weighted(items: Any, namespace: str, labels: Labels) -> tuple[AffinityTerm, ...]:
    out = []
    for item in items or []:
        if not isinstance(item, Mapping):
            continue
        weight = item.get("weight")
        if isinstance(weight, int) and weight:
            out.append(_term(item.get("podAffinityTerm"), namespace, labels, weight))
    return tuple(out)


@dataclass(frozen=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool
    selector: LabelSelector | None
    min_domains: int
    honor_node_affinity: bool
    honor_taints: bool


@dataclass(frozen=True)
class PodTerms:
    """Everything about a pod that places it relative to other pods."""

    namespace: str
    labels: Labels
    affinity: tuple[AffinityTerm, ...] = ()
    anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[AffinityTerm, ...] = ()
    spread: tuple[SpreadConstraint, ...] = ()

    @property
    def has_affinity(self) -> bool:
        return bool(
            self.affinity
            or self.anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )

    @property
    def hard_spread(self) -> tuple[SpreadConstraint, ...]:
        return tuple(c for c in self.spread if c.hard)

    @property
    def soft_spread(self) -> tuple[SpreadConstraint, ...]:
        return tuple(c for c in self.spread if not c.hard)


def compile_pod(pod: Mapping[str, Any]) -> PodTerms:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "")
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    raw_affinity = spec.get("affinity")
    affinity: Mapping[str, Any] = raw_affinity if isinstance(raw_affinity, Mapping) else {}
    pod_affinity = affinity.get("podAffinity") or {}
    pod_anti = affinity.get("podAntiAffinity") or {}
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    return PodTerms(
        namespace=namespace,
        labels=labels,
        affinity=tuple(_term(t, namespace, labels) for t in pod_affinity.get(required) or []),
        anti_affinity=tuple(_term(t, namespace, labels) for t in pod_anti.get(required) or []),
        preferred_affinity=_weighted(pod_affinity.get(preferred), namespace, labels),
        preferred_anti_affinity=_weighted(pod_anti.get(preferred), namespace, labels),
        spread=tuple(_spread(c, labels) for c in spec.get("topologySpreadConstraints") or []),
    )


def _spread(raw: Any, labels: Labels) -> SpreadConstraint:
    raw = raw if isinstance(raw, Mapping) else {}
    selector = _selector(raw.get("labelSelector"))
    keys = [k for k in raw.get("matchLabelKeys") or [] if k in labels]
    if selector is not None and keys:
        selector = LabelSelector(
            (*selector.requirements, *(new_requirement(k, IN, [labels[k]]) for k in keys))
        )
    min_domains = raw.get("minDomains")
    return SpreadConstraint(
        max_skew=int(raw.get("maxSkew") or 1),
        topology_key=str(raw.get("topologyKey") or ""),
        hard=raw.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule",
        selector=selector,
        min_domains=min_domains if isinstance(min_domains, int) and min_domains > 0 else 1,
        honor_node_affinity=raw.get("nodeAffinityPolicy", "Honor") == "Honor",
        honor_taints=raw.get("nodeTaintsPolicy", "Ignore") == "Honor",
    )


# -- the cluster as these rules see it ----------------------------------------------------------


class PlacedPod(Protocol):
    """A pod counted on a node, as these rules need it (the scheduler cache's entries)."""

    @property
    def node(self) -> str: ...
    @property
    def terms(self) -> PodTerms: ...
    @property
    def terminating(self) -> bool: ...


class NodeLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Labels: ...


@dataclass(frozen=True)
class NodeView:
    name: str
    labels: Labels
    eligible: bool = True
    """Whether the incoming pod's nodeSelector and required node affinity admit the node."""
    untainted: bool = True
    """Whether the incoming pod tolerates the node's NoSchedule/NoExecute taints."""


@dataclass
class Prefiltered:
    """What the filter needs, computed once per attempt."""

    affinity_domains: list[set[str]] = field(default_factory=list)
    affinity_anywhere: bool = False
    anti_domains: list[set[str]] = field(default_factory=list)
    forbidden: dict[str, set[str]] = field(default_factory=dict)
    """Per topology key, the domains placed pods' anti-affinity closes to this pod."""
    spread_counts: list[Counter[str]] = field(default_factory=list)
    spread_min: list[int] = field(default_factory=list)
    self_match: list[int] = field(default_factory=list)


def _domain(labels: Labels, key: str) -> str | None:
    value = labels.get(key)
    return None if value is None else str(value)


def _spread_counts(
    constraint: SpreadConstraint,
    namespace: str,
    placed: Iterable[PlacedPod],
    labels_of: Mapping[str, Labels],
    allowed: set[str] | None = None,
) -> Counter[str]:
    """Per domain of the constraint's key, the placed pods of ``namespace`` it selects
    (pods being deleted do not count), on ``allowed`` nodes only when given."""
    counts: Counter[str] = Counter()
    if constraint.selector is None:
        return counts
    for other in placed:
        if other.terminating or other.terms.namespace != namespace:
            continue
        if allowed is not None and other.node not in allowed:
            continue
        domain = _domain(labels_of.get(other.node) or {}, constraint.topology_key)
        if domain is not None and constraint.selector.matches(other.terms.labels):
            counts[domain] += 1
    return counts


def _counted_nodes(
    constraint: SpreadConstraint,
    constraints: Sequence[SpreadConstraint],
    nodes: Sequence[NodeView],
) -> set[str]:
    """The nodes whose pods count for ``constraint``: those with every constraint's
    topology key, that pass the pod's node affinity (``nodeAffinityPolicy: Honor``) and
    taints (``nodeTaintsPolicy: Honor``)."""
    return {
        n.name
        for n in nodes
        if all(_domain(n.labels, k.topology_key) is not None for k in constraints)
        and (n.eligible or not constraint.honor_node_affinity)
        and (n.untainted or not constraint.honor_taints)
    }


def prefilter(
    pod: PodTerms,
    nodes: Sequence[NodeView],
    placed: Collection[PlacedPod],
    *,
    anti_affinity_holders: Iterable[PlacedPod] = (),
    namespace_labels: NamespaceLabels = namespace_labels_by_name,
) -> Prefiltered:
    """Domains with pods matching each required term, domains forbidden by placed pods'
    anti-affinity, and the spread counts; ``placed`` is every pod counted on a node,
    ``anti_affinity_holders`` those among them with required anti-affinity terms."""
    labels_of = {n.name: n.labels for n in nodes}
    state = Prefiltered(
        affinity_domains=[set() for _ in pod.affinity],
        anti_domains=[set() for _ in pod.anti_affinity],
    )
    hard = pod.hard_spread
    spread_nodes = [_counted_nodes(c, hard, nodes) for c in hard]
    state.spread_counts = [
        _spread_counts(c, pod.namespace, placed, labels_of, spread_nodes[i])
        for i, c in enumerate(hard)
    ]
    any_affinity_match = False
    for other in placed if pod.affinity or pod.anti_affinity else ():
        node_labels = labels_of.get(other.node)
        if node_labels is None:
            continue
        for i, term in enumerate(pod.affinity):
            if term.matches(other.terms.namespace, other.terms.labels, namespace_labels):
                any_affinity_match = True
                domain = _domain(node_labels, term.topology_key)
                if domain is not None:
                    state.affinity_domains[i].add(domain)
        for i, term in enumerate(pod.anti_affinity):
            if term.matches(other.terms.namespace, other.terms.labels, namespace_labels):
                domain = _domain(node_labels, term.topology_key)
                if domain is not None:
                    state.anti_domains[i].add(domain)
    # The first pod of a group whose affinity terms select itself may go anywhere.
    state.affinity_anywhere = (
        bool(pod.affinity)
        and not any_affinity_match
        and all(t.matches(pod.namespace, pod.labels, namespace_labels) for t in pod.affinity)
    )
    for holder in anti_affinity_holders:
        node_labels = labels_of.get(holder.node)
        if node_labels is None:
            continue
        for term in holder.terms.anti_affinity:
            if term.matches(pod.namespace, pod.labels, namespace_labels):
                domain = _domain(node_labels, term.topology_key)
                if domain is not None:
                    state.forbidden.setdefault(term.topology_key, set()).add(domain)
    for i, constraint in enumerate(hard):
        domains = {labels_of[name][constraint.topology_key] for name in spread_nodes[i]}
        counts = state.spread_counts[i]
        if len(domains) < constraint.min_domains:
            state.spread_min.append(0)
        else:
            state.spread_min.append(min((counts.get(d, 0) for d in domains), default=0))
        matches_self = constraint.selector is not None and constraint.selector.matches(pod.labels)
        state.self_match.append(1 if matches_self else 0)
    return state


def filter_node(pod: PodTerms, state: Prefiltered, node: NodeLike) -> str | None:
    """Why ``node`` cannot take the pod because of other pods, or None."""
    for i, constraint in enumerate(pod.hard_spread):
        domain = _domain(node.labels, constraint.topology_key)
        if domain is None:
            return REASON_SPREAD_LABEL
        skew = state.spread_counts[i].get(domain, 0) + state.self_match[i] - state.spread_min[i]
        if skew > constraint.max_skew:
            return REASON_SPREAD
    if not state.affinity_anywhere:
        for i, term in enumerate(pod.affinity):
            domain = _domain(node.labels, term.topology_key)
            if domain is None or domain not in state.affinity_domains[i]:
                return REASON_AFFINITY
    for i, term in enumerate(pod.anti_affinity):
        domain = _domain(node.labels, term.topology_key)
        if domain is not None and domain in state.anti_domains[i]:
            return REASON_ANTI_AFFINITY
    for key, domains in state.forbidden.items():
        if node.labels.get(key) in domains:
            return REASON_EXISTING_ANTI_AFFINITY
    return None


# -- scores ------------------------------------------------------------------------------------


def affinity_scores(
    pod: PodTerms,
    nodes: Sequence[NodeLike],
    placed: Iterable[PlacedPod],
    *,
    labels_of: Mapping[str, Labels] | None = None,
    preference_holders: Iterable[PlacedPod] = (),
    namespace_labels: NamespaceLabels = namespace_labels_by_name,
) -> dict[str, int]:
    """0-100 per node of ``nodes`` (the feasible ones): the weights of the pod's preferred
    (anti-)affinity terms per matching pod in the node's domain, and symmetrically those of
    placed pods' preferred terms (and required affinity, weight 1) that match this pod,
    normalized over ``nodes``. ``labels_of`` gives every node's labels (a pod on a node
    that cannot take this one still marks its domain); by default those of ``nodes``."""
    raw: Counter[str] = Counter()
    by_domain: dict[str, Counter[str]] = {}  # topology key -> domain -> credit
    all_labels = labels_of if labels_of is not None else {n.name: n.labels for n in nodes}

    def credit(key: str, node_name: str, amount: int) -> None:
        domain = _domain(all_labels.get(node_name) or {}, key)
        if domain is not None:
            by_domain.setdefault(key, Counter())[domain] += amount

    if pod.preferred_affinity or pod.preferred_anti_affinity:
        for other in placed:
            for term in pod.preferred_affinity:
                if term.matches(other.terms.namespace, other.terms.labels, namespace_labels):
                    credit(term.topology_key, other.node, term.weight)
            for term in pod.preferred_anti_affinity:
                if term.matches(other.terms.namespace, other.terms.labels, namespace_labels):
                    credit(term.topology_key, other.node, -term.weight)
    for holder in preference_holders:
        for term in holder.terms.preferred_affinity:
            if term.matches(pod.namespace, pod.labels, namespace_labels):
                credit(term.topology_key, holder.node, term.weight)
        for term in holder.terms.preferred_anti_affinity:
            if term.matches(pod.namespace, pod.labels, namespace_labels):
                credit(term.topology_key, holder.node, -term.weight)
        for term in holder.terms.affinity:
            if term.matches(pod.namespace, pod.labels, namespace_labels):
                credit(term.topology_key, holder.node, 1)
    if not by_domain:
        return {n.name: 0 for n in nodes}
    for n in nodes:
        raw[n.name] = sum(
            credits.get(n.labels[key], 0) for key, credits in by_domain.items() if key in n.labels
        )
    low, high = min(raw[n.name] for n in nodes), max(raw[n.name] for n in nodes)
    if high == low:
        return {n.name: 0 for n in nodes}
    return {n.name: (raw[n.name] - low) * 100 // (high - low) for n in nodes}


def spread_penalty(
    pod: PodTerms,
    nodes: Sequence[NodeLike],
    placed: Collection[PlacedPod],
    *,
    every_node: Sequence[NodeView] | None = None,
) -> dict[str, int]:
    """Per node of ``nodes`` (the feasible ones), the matching pods already in its domains
    under the pod's ScheduleAnyway constraints (fewer is better), counted on the nodes of
    ``every_node`` that each constraint's policies include (by default ``nodes``); a node
    without a constraint's label is worst."""
    soft = pod.soft_spread
    if not soft:
        return {n.name: 0 for n in nodes}
    views = every_node if every_node is not None else [NodeView(n.name, n.labels) for n in nodes]
    labels_of = {n.name: n.labels for n in views}
    counts = [
        _spread_counts(c, pod.namespace, placed, labels_of, _counted_nodes(c, soft, views))
        for c in soft
    ]
    worst = sum(sum(c.values()) for c in counts) + 1
    out = {}
    for n in nodes:
        total = 0
        for i, constraint in enumerate(soft):
            domain = _domain(n.labels, constraint.topology_key)
            total += worst if domain is None else counts[i].get(domain, 0)
        out[n.name] = total
    return out
