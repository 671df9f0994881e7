"""Is a stack ready, and if not, why: the rules ``procorch up``'s progress view and
``procorch.testing``'s ``wait_ready`` share. Pure functions over objects as the API returns
them.

Ready means: every Deployment has observed its latest spec and has all its replicas updated
and available; every DaemonSet likewise has an updated, available pod on every node that
should run one (``kubectl rollout status``'s rule); every Job has completed; every other Pod
is Ready (or has run to completion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

State = Literal["pending", "starting", "ready", "failing", "done"]


@dataclass(frozen=True)
class Item:
    kind: str
    namespace: str
    name: str
    state: State
    detail: str = ""

    @property
    def ref(self) -> str:
        prefix = "" if self.namespace in ("", "default") else f"{self.namespace}/"
        return f"{self.kind}/{prefix}{self.name}"


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or []}


def deployment(d: dict[str, Any]) -> Item:
    meta, spec, status = d["metadata"], d.get("spec") or {}, d.get("status") or {}
    want = int(spec.get("replicas", 1))
    args = ("deployment", str(meta.get("namespace") or ""), str(meta["name"]))
    progressing = _conditions(d).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Item(*args, "failing", str(progressing.get("message") or "progress deadline"))
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return Item(*args, "pending", "spec update not observed yet")
    available = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    if updated < want or available < want or int(status.get("replicas") or 0) > want:
        return Item(*args, "starting", f"{available}/{want} available")
    return Item(*args, "ready", f"{available}/{want} available")


def daemon_set(ds: dict[str, Any]) -> Item:
    meta, status = ds["metadata"], ds.get("status") or {}
    args = ("daemonset", str(meta.get("namespace") or ""), str(meta["name"]))
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return Item(*args, "pending", "spec update not observed yet")
    want = int(status.get("desiredNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    detail = f"{available}/{want} nodes available"
    if updated < want or available < want:
        return Item(*args, "starting", detail)
    return Item(*args, "ready", detail)


def job(j: dict[str, Any]) -> Item:
    meta = j["metadata"]
    args = ("job", str(meta.get("namespace") or ""), str(meta["name"]))
    conditions = _conditions(j)
    failed = conditions.get("Failed") or {}
    if failed.get("status") == "True":
        return Item(*args, "failing", f"{failed.get('reason')}: {failed.get('message', '')}")
    complete = conditions.get("Complete") or {}
    if complete.get("status") == "True":
        return Item(*args, "done", "complete")
    status = j.get("status") or {}
    return Item(
        *args,
        "starting",
        f"{status.get('succeeded') or 0} succeeded, {status.get('active') or 0} running",
    )


def is_job_pod(pod: dict[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return "job-name" in labels or "batch.kubernetes.io/job-name" in labels


def pod(p: dict[str, Any]) -> Item:
    meta = p["metadata"]
    args = ("pod", str(meta.get("namespace") or ""), str(meta["name"]))
    status = p.get("status") or {}
    phase = status.get("phase")
    conditions = _conditions(p)
    if phase == "Succeeded":
        return Item(*args, "done", "completed")
    if phase == "Failed":
        return Item(*args, "failing", str(status.get("reason") or "failed"))
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in (
            "CrashLoopBackOff",
            "RunContainerError",
            "CreateContainerConfigError",
            "CreateContainerError",
            "ErrImagePull",
        ):
            message = waiting.get("message") or ""
            return Item(*args, "failing", f"{cs['name']}: {reason} {message}".strip())
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False":
        return Item(*args, "pending", str(scheduled.get("message") or "unschedulable"))
    deps = conditions.get("procorch.io/DependenciesReady") or {}
    if deps.get("status") == "False":
        return Item(*args, "pending", str(deps.get("message") or "waiting for dependencies"))
    ready = conditions.get("Ready") or {}
    if ready.get("status") == "True":
        return Item(*args, "ready", "")
    for cs in status.get("containerStatuses") or []:
        if (cs.get("state") or {}).get("running") and not cs.get("ready"):
            return Item(*args, "starting", f"{cs['name']}: running, not ready yet (probe)")
    return Item(*args, "starting", str(ready.get("message") or phase or "Pending"))


def evaluate(
    deployments: list[dict[str, Any]],
    jobs: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    daemon_sets: list[dict[str, Any]] | None = None,
) -> list[Item]:
    """Every item of the stack with its state (pods of Jobs are summarized by their Job)."""
    items = [deployment(d) for d in deployments] + [job(j) for j in jobs]
    items += [daemon_set(ds) for ds in daemon_sets or []]
    items += [
        pod(p)
        for p in pods
        if not is_job_pod(p) and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    return items


def all_ready(items: list[Item]) -> bool:
    return all(i.state in ("ready", "done") for i in items)
