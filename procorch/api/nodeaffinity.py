"""Node selection terms: ``spec.nodeSelector`` and node affinity (``NodeSelectorTerm`` with
``matchExpressions`` on labels and ``matchFields`` on ``metadata.name``), compiled once and
matched against a node's name and labels, as Kubernetes' ``nodeaffinity`` helpers do.

Shared by the scheduler (which nodes a pod may go to) and the DaemonSet controller (which
nodes should run a daemon pod). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from procorch.api import errors
from procorch.api.selectors import (
    DOES_NOT_EXIST,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_IN,
    Requirement,
    new_requirement,
)

_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
    "Gt": GREATER_THAN,
    "Lt": LESS_THAN,
}
_FIELD_NAME = "metadata.name"


@dataclass(frozen=True)
class SelectorTerm:
    """A compiled ``NodeSelectorTerm``: its label requirements and ``metadata.name`` field
    requirements, all of which must hold."""

    labels: tuple[Requirement, ...]
    names: tuple[tuple[bool, frozenset[str]], ...]  # (is In, values) per matchFields entry

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if not all(r.matches(labels) for r in self.labels):
            return False
        return all((name in values) == is_in for is_in, values in self.names)


def compile_term(term: Any) -> SelectorTerm | None:
    """Compile a ``NodeSelectorTerm``; None for one that matches no node: an empty term, or
    one Kubernetes cannot parse (an unknown operator, a bad Gt value...)."""
    if not isinstance(term, Mapping):
        return None
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return None
    labels: list[Requirement] = []
    names: list[tuple[bool, frozenset[str]]] = []
    try:
        for expr in expressions:
            operator = _OPERATORS.get(str(expr.get("operator")))
            if operator is None:
                return None
            labels.append(
                new_requirement(str(expr.get("key") or ""), operator, expr.get("values") or [])
            )
        for expr in fields:
            values = [str(v) for v in expr.get("values") or []]
            operator = expr.get("operator")
            # Field selectors take exactly one value, and only In/NotIn on metadata.name.
            if expr.get("key") != _FIELD_NAME or operator not in ("In", "NotIn"):
                return None
            if len(values) != 1:
                return None
            names.append((operator == "In", frozenset(values)))
    except (errors.ApiError, AttributeError, TypeError):
        return None
    return SelectorTerm(tuple(labels), tuple(names))


def _node_affinity(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    return node_affinity if isinstance(node_affinity, Mapping) else {}


def required_terms(pod: Mapping[str, Any]) -> tuple[SelectorTerm | None, ...] | None:
    """The pod's required node affinity terms (ORed); None when it has no requirement."""
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(required, Mapping):
        return None
    return tuple(compile_term(t) for t in required.get("nodeSelectorTerms") or [])


def preferred_terms(pod: Mapping[str, Any]) -> tuple[tuple[int, SelectorTerm], ...]:
    """The pod's preferred node affinity terms with their weights (weight 0 is ignored)."""
    out = []
    for item in _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        if not isinstance(item, Mapping):
            continue
        weight = item.get("weight")
        term = compile_term(item.get("preference"))
        if isinstance(weight, int) and weight and term is not None:
            out.append((weight, term))
    return tuple(out)


def node_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """``spec.nodeSelector``: every key must be a label of the node with exactly that value."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def affinity_matches(
    node_selector: Mapping[str, Any] | None,
    terms: Sequence[SelectorTerm | None] | None,
    *,
    name: str,
    labels: Mapping[str, str],
) -> bool:
    """nodeSelector AND (no required affinity OR any required term matches)."""
    if not node_selector_matches(node_selector, labels):
        return False
    if terms is None:
        return True
    return any(t is not None and t.matches(name, labels) for t in terms)


def pod_matches_node(pod: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    """Whether the pod's nodeSelector and required node affinity admit this node."""
    selector = (pod.get("spec") or {}).get("nodeSelector")
    return affinity_matches(
        selector if isinstance(selector, Mapping) else None,
        required_terms(pod),
        name=name,
        labels=labels,
    )
