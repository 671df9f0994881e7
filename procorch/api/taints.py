"""Taints and tolerations: whether a toleration tolerates a taint, and the taints Kubernetes
puts on nodes by condition. Shared by the scheduler, the node lifecycle and DaemonSet
controllers and admission. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

DEFAULT_TOLERATION_SECONDS = 300
"""What the DefaultTolerationSeconds admission plugin gives a pod for the not-ready and
unreachable NoExecute taints (``--default-not-ready-toleration-seconds`` and
``--default-unreachable-toleration-seconds``)."""


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether one toleration tolerates one taint (``Toleration.ToleratesTaint``): an empty
    effect matches every effect, an empty key (only valid with ``Exists``) every key."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def condition_taint(ready: str) -> dict[str, str] | None:
    """The NoSchedule taint Kubernetes puts on a node whose Ready status is ``ready``
    (TaintNodesByCondition): ``not-ready`` for "False", ``unreachable`` for "Unknown" or a
    missing condition; None for a ready node."""
    if ready == "True":
        return None
    return {"key": NOT_READY if ready == "False" else UNREACHABLE, "effect": NO_SCHEDULE}


def with_condition_taint(
    taints: Iterable[Mapping[str, Any]], ready: str
) -> list[Mapping[str, Any]]:
    """A node's taints plus the one its readiness implies, unless it already has it."""
    out = list(taints)
    implied = condition_taint(ready)
    if implied is None or any(
        t.get("key") == implied["key"] and t.get("effect") == NO_SCHEDULE for t in out
    ):
        return out
    return [*out, implied]


def with_default_tolerations(tolerations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``tolerations`` plus the DefaultTolerationSeconds plugin's two, each added only when
    no toleration already covers its NoExecute taint."""
    out = list(tolerations)
    for key in (NOT_READY, UNREACHABLE):
        if not tolerated(tolerations, {"key": key, "effect": NO_EXECUTE}):
            out.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": NO_EXECUTE,
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    return out
