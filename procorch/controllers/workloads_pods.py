"""Pod helpers shared by the workload controllers: readiness and availability, the pod a
template makes, and the order in which a ReplicaSet chooses pods to delete.

These are Kubernetes' ``podutil.IsPodReady``/``IsPodAvailable``, ``controller.FilterActivePods``,
``GetPodFromTemplate`` and ``ActivePodsWithRanks`` (with the LogarithmicScaleDown ordering that
is on by default since 1.22). Pure functions of the objects and a clock value; no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from procorch.api.conditions import condition as pod_condition
from procorch.api.conditions import is_ready
from procorch.api.meta import deep_copy, owner_ref, parse_time

Obj = dict[str, Any]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def ready_since(pod: Obj) -> datetime | None:
    """When the pod last became Ready (``None`` when it is not ready)."""
    cond = pod_condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (``IsPodAvailable``)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since.timestamp() + min_ready_seconds < now.timestamp()


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """For a ready pod that is not yet available: how long until it is."""
    since = ready_since(pod)
    if since is None or min_ready_seconds <= 0:
        return None
    left = since.timestamp() + min_ready_seconds - now.timestamp()
    return left if left >= 0 else None


def is_active(pod: Obj) -> bool:
    """Neither finished nor being deleted (``FilterActivePods``)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get(
        "deletionTimestamp"
    )


def pod_from_template(template: Obj, owner: Obj) -> Obj:
    """The pod ``owner`` (a ReplicaSet) creates from ``template`` (``GetPodFromTemplate``)."""
    tmeta = template.get("metadata") or {}
    owner_meta = owner.get("metadata") or {}
    meta: Obj = {
        "generateName": f"{owner_meta.get('name', '')}-",
        "namespace": owner_meta.get("namespace", ""),
        "ownerReferences": [owner_ref(owner, controller=True, block=True)],
    }
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            meta[key] = dict(tmeta[key])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": deep_copy(template.get("spec") or {}),
    }


# -- the order of deletion -------------------------------------------------------------------


def _deletion_cost(pod: Obj) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _max_restarts(pod: Obj) -> int:
    status = pod.get("status") or {}
    counts = [
        int(cs.get("restartCount") or 0)
        for cs in (status.get("containerStatuses") or [])
        + (status.get("initContainerStatuses") or [])
    ]
    return max(counts, default=0)


def _log_rank(when: datetime | None, now: datetime) -> int:
    """The power-of-two bucket of how long ago ``when`` was (nanoseconds), as
    ``logarithmicRankDiff`` computes it; -1 for "not yet"."""
    if when is None:
        return -1
    elapsed_ns = (now - when).total_seconds() * 1e9
    return int(math.log2(elapsed_ns)) if elapsed_ns > 0 else -1


def rank_by_node(pods: Iterable[Obj], related: Iterable[Obj]) -> dict[str, int]:
    """Pod uid -> how many related active pods share its node (``getPodsRankedByRelatedPods
    OnSameNode``): doubled-up pods go first."""
    per_node: dict[str, int] = {}
    for pod in related:
        if not is_active(pod):
            continue
        node = (pod.get("spec") or {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1
    ranks = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        ranks[str(pod["metadata"].get("uid"))] = per_node.get(node, 0)
    return ranks


def _compare(a: Obj, b: Obj, *, ranks: dict[str, int], now: datetime) -> int:
    """Negative when ``a`` should be deleted before ``b`` (``ActivePodsWithRanks.Less``)."""
    ua, ub = str(a["metadata"].get("uid")), str(b["metadata"].get("uid"))
    # 1. Unassigned before assigned.
    na, nb = (
        bool((a.get("spec") or {}).get("nodeName")),
        bool((b.get("spec") or {}).get("nodeName")),
    )
    if na != nb:
        return -1 if not na else 1
    # 2. Pending before Unknown before Running.
    pa = _PHASE_ORDER.get(str((a.get("status") or {}).get("phase")), 0)
    pb = _PHASE_ORDER.get(str((b.get("status") or {}).get("phase")), 0)
    if pa != pb:
        return -1 if pa < pb else 1
    # 3. Not ready before ready.
    ra, rb = is_ready(a), is_ready(b)
    if ra != rb:
        return -1 if not ra else 1
    # 4. Lower pod-deletion-cost first.
    ca, cb = _deletion_cost(a), _deletion_cost(b)
    if ca != cb:
        return -1 if ca < cb else 1
    # 5. Doubled up on a node before alone.
    ka, kb = ranks.get(ua, 0), ranks.get(ub, 0)
    if ka != kb:
        return -1 if ka > kb else 1
    # 6. Ready more recently first (logarithmic buckets; a tie is broken by uid).
    if ra and rb:
        ta, tb = ready_since(a), ready_since(b)
        if ta != tb:
            diff = _log_rank(ta, now) - _log_rank(tb, now)
            if diff == 0:
                return -1 if ua < ub else (1 if ua > ub else 0)
            return -1 if diff < 0 else 1
    # 7. More restarts first.
    xa, xb = _max_restarts(a), _max_restarts(b)
    if xa != xb:
        return -1 if xa > xb else 1
    # 8. Newer first (logarithmic buckets; a tie is broken by uid).
    sa = parse_time((a.get("metadata") or {}).get("creationTimestamp"))
    sb = parse_time((b.get("metadata") or {}).get("creationTimestamp"))
    if sa != sb:
        if sa is None or sb is None:
            return -1 if sa is None else 1
        diff = _log_rank(sa, now) - _log_rank(sb, now)
        if diff == 0:
            return -1 if ua < ub else (1 if ua > ub else 0)
        return -1 if diff < 0 else 1
    return 0


def pods_to_delete(pods: list[Obj], related: list[Obj], count: int, *, now: datetime) -> list[Obj]:
    """The ``count`` pods a ReplicaSet deletes first when it has too many."""
    if count >= len(pods):
        return list(pods)
    ranks = rank_by_node(pods, related)

    def compare(a: Obj, b: Obj) -> int:
        return _compare(a, b, ranks=ranks, now=now)

    ordered = sorted(pods, key=functools.cmp_to_key(compare))
    return ordered[:count]
