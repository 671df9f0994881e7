"""``status.conditions`` (pods, nodes and the rest): one condition by type, whether an
object is Ready, and a list with one condition replaced. Pure functions."""

from __future__ import annotations

from typing import Any


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """A copy of ``obj``'s condition of type ``kind``, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return dict(cond)
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    """Its Ready condition is "True" (a pod that serves, a node that runs pods)."""
    cond = condition(obj, "Ready")
    return cond is not None and cond.get("status") == "True"


def replaced(conditions: Any, new: dict[str, Any]) -> list[dict[str, Any]]:
    """``conditions`` (a status's list, or None) with ``new`` in place of any of its type."""
    kept = [c for c in conditions or [] if isinstance(c, dict) and c.get("type") != new["type"]]
    return [*kept, new]
