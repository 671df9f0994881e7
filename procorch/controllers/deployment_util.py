"""Pure Deployment arithmetic and bookkeeping, after Kubernetes' ``deployment/util``.

* templates: semantic equality ignoring ``pod-template-hash`` (a template sent back by
  ``kubectl rollout undo``, with ``creationTimestamp: null`` and empty maps, equals the one it
  came from) and the hash that names a Deployment's ReplicaSets;
* revisions and the annotations a Deployment copies to its new ReplicaSet;
* ``maxSurge``/``maxUnavailable`` (ints or percentages: surge rounds up, unavailable down, and
  both zero becomes unavailable 1), the new ReplicaSet's size, proportional scaling;
* conditions (Progressing, Available, ReplicaFailure) and the tests that drive them.

No I/O; objects are JSON dicts and are never mutated unless a function says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from procorch.api.meta import controller_ref, parse_time, rfc3339

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
ANNOTATIONS_TO_SKIP = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
MAX_REVISION_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

# Progressing reasons.
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
# Available reasons.
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


# -- templates -------------------------------------------------------------------------------


def _normalized(value: Any) -> Any:
    """Drop what Go's semantic equality cannot tell apart: nulls and empty maps and lists."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            n = _normalized(v)
            if n is None or n == {} or n == []:
                continue
            out[k] = n
        return out
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def template_key(template: Obj | None) -> Obj:
    """A pod template in a form where semantically equal templates are equal dicts."""
    t = _normalized(template or {})
    meta = t.get("metadata")
    if isinstance(meta, dict):
        labels = meta.get("labels")
        if isinstance(labels, dict) and HASH_LABEL in labels:
            labels = {k: v for k, v in labels.items() if k != HASH_LABEL}
            if labels:
                meta["labels"] = labels
            else:
                del meta["labels"]
        if not meta:
            del t["metadata"]
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    return template_key(a) == template_key(b)


def template_hash(template: Obj | None, collision_count: int | None = None) -> str:
    """The ``pod-template-hash``: FNV-1a (32 bit) of the template, plus the collision count,
    spelled in Kubernetes' vowel-free alphabet (``SafeEncodeString``)."""
    data = orjson.dumps(template_key(template), option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += collision_count.to_bytes(4, "little", signed=False)
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


# -- revisions and annotations ---------------------------------------------------------------


def revision(obj: Obj | None) -> int:
    value = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def max_revision(replica_sets: Sequence[Obj]) -> int:
    return max((revision(rs) for rs in replica_sets), default=0)


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(((obj.get("metadata") or {}).get("annotations")) or {})


def set_new_rs_annotations(
    d: Obj, rs: Obj, new_revision: int, *, exists: bool, max_replicas: int
) -> bool:
    """Copy the Deployment's annotations to ``rs`` (mutated) and raise its revision to
    ``new_revision`` (remembering the old one in revision-history); True if anything changed."""
    annotations = annotations_of(rs)
    changed = False
    for k, v in annotations_of(d).items():
        if k in ANNOTATIONS_TO_SKIP or annotations.get(k) == v:
            continue
        annotations[k] = v
        changed = True
    old_text = annotations.get(REVISION)
    try:
        old = int(old_text) if old_text is not None else 0
    except ValueError:
        return changed
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_text is not None:
            history = annotations.get(REVISION_HISTORY, "")
            parts = history.split(",") if history else []
            parts.append(old_text)
            while len(",".join(parts)) > MAX_REVISION_HISTORY_CHARS and len(parts) > 1:
                parts.pop(0)
            annotations[REVISION_HISTORY] = ",".join(parts)
    if not exists:
        for key, value in (
            (DESIRED_REPLICAS, str(replicas_of(d))),
            (MAX_REPLICAS, str(max_replicas)),
        ):
            if annotations.get(key) != value:
                annotations[key] = value
                changed = True
    rs.setdefault("metadata", {})["annotations"] = annotations
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """Record desired and max replicas on ``rs`` (mutated); True if they changed."""
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    annotations = annotations_of(rs)
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(
        MAX_REPLICAS
    ) != str(max_replicas)


def desired_replicas_annotation(rs: Obj) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS)


def _int_annotation(rs: Obj, key: str) -> int | None:
    try:
        value = annotations_of(rs).get(key)
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- sizes -----------------------------------------------------------------------------------


def replicas_of(obj: Obj | None) -> int:
    value = ((obj or {}).get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == (
        "RollingUpdate"
    )


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    """``GetValueFromIntOrPercent``: an int, or ``"N%"`` of ``total`` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    surge = int_or_percent(max_surge if max_surge is not None else 0, desired, round_up=True)
    unavailable = int_or_percent(
        max_unavailable if max_unavailable is not None else 0, desired, round_up=False
    )
    if surge == 0 and unavailable == 0:
        # Both rounding to zero would stall the rollout: allow one unavailable.
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    rolling = _rolling(d)
    return resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas_of(d)
    )[0]


def max_unavailable(d: Obj) -> int:
    replicas = replicas_of(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    rolling = _rolling(d)
    unavailable = resolve_fenceposts(
        rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas
    )[1]
    return min(unavailable, replicas)


def total_replicas(replica_sets: Sequence[Obj | None]) -> int:
    return sum(replicas_of(rs) for rs in replica_sets if rs is not None)


def total_status(replica_sets: Sequence[Obj | None], field: str) -> int:
    return sum(status_int(rs, field) for rs in replica_sets if rs is not None)


def new_rs_replicas(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (``NewRSNewReplicas``)."""
    wanted = replicas_of(d)
    if not is_rolling(d):
        return wanted
    surge = int_or_percent(_rolling(d).get("maxSurge"), wanted, round_up=True)
    current = total_replicas(all_rss)
    most = wanted + surge
    if current >= most:
        return replicas_of(new_rs)
    return replicas_of(new_rs) + min(most - current, wanted - replicas_of(new_rs))


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    wanted = replicas_of(d)
    return (
        replicas_of(rs) == wanted
        and desired_replicas_annotation(rs) == wanted
        and status_int(rs, "availableReplicas") == wanted
    )


def active(replica_sets: Sequence[Obj | None]) -> list[Obj]:
    return [rs for rs in replica_sets if rs is not None and replicas_of(rs) > 0]


def created_key(rs: Obj) -> tuple[str, str]:
    meta = rs.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=created_key, reverse=True)
    current = active([*olds, new_rs])
    if not current:
        return new_rs if new_rs is not None else olds[0]
    if len(current) == 1:
        return current[0]
    return None


def proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """How much of a scaling event ``rs`` takes (``GetProportion``)."""
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: Obj, d: Obj) -> int:
    if replicas_of(d) == 0:
        return -replicas_of(rs)
    deployment_replicas = replicas_of(d) + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_int(d, "replicas")
    if annotated == 0:
        return 0
    size = replicas_of(rs) * deployment_replicas / annotated
    # Go's RoundToInt32 rounds half away from zero.
    rounded = math.floor(size + 0.5) if size >= 0 else -math.floor(-size + 0.5)
    return int(rounded) - replicas_of(rs)


# -- conditions ------------------------------------------------------------------------------


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def new_condition(ctype: str, status: str, reason: str, message: str, at: datetime) -> Obj:
    stamp = rfc3339(at)
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, cond: Obj) -> None:
    """Add or replace ``cond`` in ``status`` (mutated); an unchanged status and reason is left
    as it is, and ``lastTransitionTime`` moves only when the status flips."""
    current = get_condition(status, cond["type"])
    if (
        current is not None
        and current.get("status") == cond["status"]
        and current.get("reason") == cond["reason"]
    ):
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, ctype: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != ctype]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("revisionHistoryLimit")
    return value is not None and int(value) != MAX_INT32


def complete(d: Obj, status: Obj) -> bool:
    wanted = replicas_of(d)
    return (
        int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
        and int(status.get("availableReplicas") or 0) == wanted
        and int(status.get("observedGeneration") or 0)
        >= int((d.get("metadata") or {}).get("generation") or 0)
    )


def progressing(d: Obj, new_status: Obj) -> bool:
    old = d.get("status") or {}

    def n(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    old_old = n(old, "replicas") - n(old, "updatedReplicas")
    new_old = n(new_status, "replicas") - n(new_status, "updatedReplicas")
    return (
        n(new_status, "updatedReplicas") > n(old, "updatedReplicas")
        or new_old < old_old
        or n(new_status, "readyReplicas") > n(old, "readyReplicas")
        or n(new_status, "availableReplicas") > n(old, "availableReplicas")
    )


def timed_out(d: Obj, new_status: Obj, at: datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(new_status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    return since.timestamp() + deadline < at.timestamp()


def controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


# -- status ----------------------------------------------------------------------------------


def calculate_status(
    all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj, at: datetime
) -> Obj:
    """The Deployment's status from its ReplicaSets (conditions other than Available kept)."""
    available = total_status(all_rss, "availableReplicas")
    unavailable = max(0, total_replicas(all_rss) - available)
    old = d.get("status") or {}
    counts: Obj = {
        "observedGeneration": int((d.get("metadata") or {}).get("generation") or 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": status_int(new_rs, "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    # Zero counts are left out, as Kubernetes' JSON leaves them out (omitempty).
    status: Obj = {k: v for k, v in counts.items() if v}
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas_of(d) - max_unavailable(d):
        cond = new_condition(
            "Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.", at
        )
    else:
        cond = new_condition(
            "Available",
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            at,
        )
    set_condition(status, cond)
    return status
