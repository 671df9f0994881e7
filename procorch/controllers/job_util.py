"""Pure helpers of the Job controller: what a pod's state means for its Job, completion
indexes, the pod failure policy, the failure back-off, conditions, and the pod a Job creates.

These follow Kubernetes' ``pkg/controller/job`` (``isPodFailed``, ``getFinishedTime``,
``matchPodFailurePolicy``, ``getRemainingTimeForFailuresCount``, the ``orderedIntervals`` of
``indexed_job_utils.go``) rule for rule. Pure functions of objects and clock values; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from procorch.api.conditions import is_ready
from procorch.api.meta import deep_copy, owner_ref, parse_time, rfc3339

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_CONTROLLER = "kubernetes.io/job-controller"
# Kubernetes caps the UIDs held in status.uncountedTerminatedPods (and so the finalizers one
# sync removes) to keep the status small and let other Jobs have their turn.
MAX_UNCOUNTED_PODS = 500
# At most this many pods are created or deleted by one sync (MaxPodCreateDeletePerSync).
MAX_POD_CREATE_DELETE = 500


# -- pods ------------------------------------------------------------------------------------


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Neither finished nor being deleted (``controller.FilterActivePods``)."""
    return not is_terminal(pod) and not is_deleting(pod)


def is_terminating(pod: Obj) -> bool:
    """Being deleted and not finished yet (``controller.CountTerminatingPods``)."""
    return is_deleting(pod) and not is_terminal(pod)


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def only_replace_failed(job: Obj) -> bool:
    """Replacements wait until a pod has failed, not merely started terminating."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """``isPodFailed``: Failed; or, unless only failed pods are replaced, being deleted before
    it succeeded (an orphan that never gets to report Failed still counts)."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return is_deleting(pod) and phase(pod) != "Succeeded"


def finished_time(pod: Obj) -> datetime:
    """When the pod finished (``getFinishedTime``): its containers' last ``finishedAt``, else
    the Ready=False transition, else deletion time less the grace period, else creation."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    latest: datetime | None = None
    for cs in statuses:
        terminated = (cs.get("state") or {}).get("terminated")
        when = parse_time((terminated or {}).get("finishedAt"))
        if when is None:
            latest = None
            break
        if latest is None or when > latest:
            latest = when
    if latest is not None:
        return latest
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            when = parse_time(cond.get("lastTransitionTime"))
            if when is not None:
                return when
    meta = pod.get("metadata") or {}
    deleted = parse_time(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
    created = parse_time(meta.get("creationTimestamp"))
    return created if created is not None else datetime.fromtimestamp(0).astimezone()


def restart_count(pod: Obj) -> int:
    status = pod.get("status") or {}
    return sum(
        int(cs.get("restartCount") or 0)
        for cs in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
    )


# -- completion indexes ----------------------------------------------------------------------


def completion_index(pod: Obj) -> int | None:
    """The pod's index from its annotation, or None when missing or not a number."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)
    if not isinstance(value, str) or not value.isdigit():
        return None
    return int(value)


def valid_index(pod: Obj, completions: int) -> int | None:
    index = completion_index(pod)
    return index if index is not None and index < completions else None


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """``"1,3-5,7"`` → {1, 3, 4, 5, 7}, dropping what is out of range or malformed."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if last else lo
        except ValueError:
            continue
        out.update(i for i in range(lo, min(hi, completions - 1) + 1) if i >= 0)
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """{1, 3, 4, 5, 7} → ``"1,3-5,7"``: runs of consecutive indexes become intervals."""
    parts: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# -- pod failure policy ----------------------------------------------------------------------


def _exit_code_matches(code: int, requirement: Obj) -> bool:
    values = [int(v) for v in requirement.get("values") or []]
    operator = requirement.get("operator")
    if operator == "In":
        return code in values
    if operator == "NotIn":
        return code not in values
    return False


def _matching_container(pod: Obj, requirement: Obj) -> Obj | None:
    status = pod.get("status") or {}
    wanted = requirement.get("containerName")
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated is None:
                continue  # still terminating: no exit code to match yet
            if wanted is not None and wanted != cs.get("name"):
                continue
            code = int(terminated.get("exitCode") or 0)
            if code != 0 and _exit_code_matches(code, requirement):
                return dict(cs)
    return None


def _matching_condition(pod: Obj, patterns: list[Obj]) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == (
                pattern.get("status") or "True"
            ):
                return dict(cond)
    return None


def match_pod_failure_policy(job: Obj, pod: Obj) -> tuple[str | None, bool, str | None]:
    """For a failed pod: (the message when a FailJob rule matched, whether the failure counts
    towards ``backoffLimit``, the action of the matching rule)."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if policy is None:
        return None, True, None
    meta = pod.get("metadata") or {}
    where = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    for i, rule in enumerate(policy.get("rules") or []):
        action = str(rule.get("action") or "")
        what = ""
        if rule.get("onExitCodes") is not None:
            cs = _matching_container(pod, rule["onExitCodes"])
            if cs is None:
                continue
            code = cs["state"]["terminated"].get("exitCode")
            what = f"Container {cs.get('name')} for pod {where} failed with exit code {code}"
        elif rule.get("onPodConditions") is not None:
            cond = _matching_condition(pod, list(rule["onPodConditions"]))
            if cond is None:
                continue
            what = f"Pod {where} has condition {cond.get('type')}"
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action == "Count":
            return None, True, action
        if action == "FailJob":
            return f"{what} matching FailJob rule at index {i}", True, action
        # FailIndex needs backoffLimitPerIndex, which procorch does not implement: count it.
        return None, True, action
    return None, True, None


# -- back-off between failed pods ------------------------------------------------------------


def remaining_backoff(
    failures: int, last_failure: datetime | None, *, now: datetime, base: float, cap: float
) -> float:
    """Seconds until a replacement may be created (``getRemainingTimeForFailuresCount``):
    ``base`` doubled per failure after the first, capped, counted from the last failure."""
    if failures <= 0 or last_failure is None:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = (now - last_failure).total_seconds()
    return 0.0 if delay < elapsed else delay - elapsed


# -- conditions ------------------------------------------------------------------------------


def condition(job: Obj, ctype: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def condition_true(job: Obj, ctype: str) -> bool:
    cond = condition(job, ctype)
    return cond is not None and cond.get("status") == "True"


def finished_type(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has finished, else None (``IsJobFinished``)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def new_condition(ctype: str, reason: str = "", message: str = "", *, at: datetime) -> Obj:
    stamp = rfc3339(at)
    cond: Obj = {
        "type": ctype,
        "status": "True",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def ensure_condition(
    conditions: list[Obj], ctype: str, status: str, reason: str, message: str, *, at: datetime
) -> bool:
    """``ensureJobConditionStatus``: set the condition (in place); a False condition is never
    added where there was none. True when the list changed."""
    for cond in conditions:
        if cond.get("type") == ctype:
            if (cond.get("status"), cond.get("reason"), cond.get("message")) == (
                status,
                reason,
                message,
            ):
                return False
            cond.clear()
            cond.update(new_condition(ctype, reason, message, at=at), status=status)
            return True
    if status == "False":
        return False
    conditions.append(new_condition(ctype, reason, message, at=at))
    return True


# -- the pods a Job creates ------------------------------------------------------------------


def pod_template(job: Obj, *, indexed: bool) -> Obj:
    """The Job's pod template as its pods get it: the tracking finalizer and, for Indexed
    Jobs, ``JOB_COMPLETION_INDEX`` in every container's env (from the index annotation)."""
    template = deep_copy((job.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    finalizers = list(meta.get("finalizers") or [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    meta["finalizers"] = finalizers
    if indexed:
        spec = template.setdefault("spec", {})
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                env = list(container.get("env") or [])
                if any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                    continue
                env.append(
                    {
                        "name": COMPLETION_INDEX_ENV,
                        "valueFrom": {
                            "fieldRef": {
                                "apiVersion": "v1",
                                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']",
                            }
                        },
                    }
                )
                container["env"] = env
    return template


def pod_for(job: Obj, template: Obj, index: int | None) -> Obj:
    """The pod to create from ``template`` (``GetPodFromTemplate`` plus the index)."""
    job_meta = job.get("metadata") or {}
    name = str(job_meta.get("name") or "")
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "generateName": f"{name}-" if index is None else f"{name}-{index}-",
        "namespace": job_meta.get("namespace", ""),
        "ownerReferences": [owner_ref({"apiVersion": "batch/v1", "kind": "Job", **job})],
        "finalizers": list(tmeta.get("finalizers") or []),
    }
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    spec = deep_copy(template.get("spec") or {})
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        spec["hostname"] = f"{name}-{index}"
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def pods_for_removal(pods: list[Obj], count: int, *, completions: int | None) -> list[Obj]:
    """Which active pods to delete (``activePodsForRemoval``): for Indexed Jobs first those
    with a missing, out-of-range or repeated index; then the least advanced (unscheduled,
    pending, not ready, newest first)."""
    remove: list[Obj] = []
    keep: list[Obj] = list(pods)
    if completions is not None:
        keep = []
        seen: set[int] = set()
        for pod in sorted(pods, key=lambda p: (completion_index(p) or 0, not is_ready(p))):
            index = valid_index(pod, completions)
            if index is None or index in seen:
                remove.append(pod)
            else:
                seen.add(index)
                keep.append(pod)
    if len(remove) < count:
        keep.sort(key=_removal_rank)
        remove += keep[: count - len(remove)]
    return remove


def _removal_rank(pod: Obj) -> tuple[int, int, int, float]:
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase(pod), 1),
        1 if is_ready(pod) else 0,
        -(created.timestamp() if created else 0.0),
    )
