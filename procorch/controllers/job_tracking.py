"""Counting a Job's finished pods exactly, and finishing the Job (Kubernetes'
``trackJobStatusAndRemoveFinalizers``). A mixin of :class:`~.job.JobController`.

Every pod carries the ``batch.kubernetes.io/job-tracking`` finalizer until it is counted: a
finished pod's uid is first recorded in ``status.uncountedTerminatedPods`` (one status
write, compare-and-swap on the Job's resourceVersion), then its finalizer is removed, then
the uid moves into ``succeeded``/``failed`` (a second write). A crash or a lost race between
any two steps repeats nothing and loses nothing, and a pod deleted before it was counted is
still there, with its finalizer, to be counted. Indexed Jobs count succeeded indexes
(``completedIndexes``) rather than pods.

A finishing Job first gets the interim ``FailureTarget`` or ``SuccessCriteriaMet``
condition; ``Failed``/``Complete`` (and ``completionTime``) follow once no pod is left
terminating and every finished pod is counted, as in Kubernetes 1.32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from procorch.api.meta import deep_copy
from procorch.controllers import job_util as ju
from procorch.controllers.job_podcontrol import JOBS, JobPodControl

Obj = dict[str, Any]
Key = tuple[str, str, str]


@dataclass
class BackoffRecord:
    """Failures since the last success and when the last one happened (``backoffRecord``)."""

    failures: int = 0
    last_failure: datetime | None = None


@dataclass
class SyncContext:
    job: Obj
    pods: list[Obj]
    active_pods: list[Obj]
    ready: int
    terminating: int
    expected_rm: frozenset[str]
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    succeeded: int = 0
    failed: int = 0
    finished: Obj | None = None  # the condition the Job is finishing with
    backoff: BackoffRecord = field(default_factory=BackoffRecord)
    prev_indexes: set[int] = field(default_factory=set)
    indexes: set[int] = field(default_factory=set)
    requeue: list[float] = field(default_factory=list)

    @property
    def indexed(self) -> bool:
        return (self.job.get("spec") or {}).get("completionMode") == "Indexed"

    @property
    def completions(self) -> int | None:
        value = (self.job.get("spec") or {}).get("completions")
        return None if value is None else int(value)


def _clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
    """Move uncounted uids whose pods no longer have the finalizer into the counters."""
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    changed = False
    for key in ("succeeded", "failed"):
        uids = list(uncounted.get(key) or [])
        kept = [u for u in uids if u in with_finalizer]
        if len(kept) != len(uids):
            status[key] = int(status.get(key) or 0) + len(uids) - len(kept)
            changed = True
        if kept:
            uncounted[key] = kept
        else:
            uncounted.pop(key, None)
    return changed


def _compact(status: Obj) -> Obj:
    """Kubernetes leaves zero counters and empty strings out of the JSON (omitempty)."""
    for key in ("active", "succeeded", "failed"):
        if not status.get(key):
            status.pop(key, None)
    if not status.get("completedIndexes"):
        status.pop("completedIndexes", None)
    return status


class JobTrackingMixin(JobPodControl):
    backoffs: dict[Key, BackoffRecord]

    async def track(self, key: Key, ctx: SyncContext, original: Obj, at: datetime) -> None:
        """``trackJobStatusAndRemoveFinalizers``: record, un-finalize, count, finish."""
        job = ctx.job
        status = job["status"]
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        with_finalizer = {
            ju.uid(p)
            for p in ctx.pods
            if ju.has_tracking_finalizer(p) and ju.uid(p) not in ctx.expected_rm
        }
        _clean_uncounted(status, with_finalizer)
        to_remove: list[Obj] = []
        new_indexes: set[int] = set()
        capped = False
        failing = ctx.finished is not None and ctx.finished.get("type") != "SuccessCriteriaMet"
        pods = (
            sorted(ctx.pods, key=lambda p: ju.completion_index(p) or 0) if ctx.indexed else ctx.pods
        )
        for pod in pods:
            pod_uid = ju.uid(pod)
            if not ju.has_tracking_finalizer(pod) or pod_uid in ctx.expected_rm:
                continue
            failed = ju.is_pod_failed(pod, job)
            if not (
                ju.is_deleting(job)
                or ctx.finished is not None
                or ju.phase(pod) == "Succeeded"
                or failed
            ):
                continue
            to_remove.append(pod)
            completions = ctx.completions
            index = ju.valid_index(pod, completions) if completions is not None else None
            if ju.phase(pod) == "Succeeded" and pod_uid not in ctx.uncounted_failed:
                if ctx.indexed:
                    if index is not None and index not in ctx.prev_indexes:
                        new_indexes.add(index)
                elif pod_uid not in ctx.uncounted_succeeded:
                    uncounted.setdefault("succeeded", []).append(pod_uid)
            elif (failed or failing) and pod_uid not in ctx.uncounted_failed:
                # When the Job is failing, whatever has not finished counts as failed.
                counts = ju.match_pod_failure_policy(job, pod)[1]
                if counts and (not ctx.indexed or index is not None):
                    uncounted.setdefault("failed", []).append(pod_uid)
            pending = (
                len(new_indexes)
                + len(uncounted.get("succeeded") or [])
                + len(uncounted.get("failed") or [])
            )
            if pending >= ju.MAX_UNCOUNTED_PODS:
                capped = True
                break
        if ctx.indexed:
            indexes = ctx.prev_indexes | new_indexes
            status["completedIndexes"] = ju.format_indexes(indexes)
            status["succeeded"] = len(indexes)
        finished = ctx.finished
        conditions = status.setdefault("conditions", [])
        if finished is not None and finished.get("type") == "FailureTarget":
            if ju.condition(job, "FailureTarget") is None:
                conditions.append(finished)
            finished = ju.new_condition(
                "Failed",
                str(finished.get("reason") or ""),
                str(finished.get("message") or ""),
                at=at,
            )
        elif finished is not None and finished.get("type") == "SuccessCriteriaMet":
            if ju.condition(job, "SuccessCriteriaMet") is None:
                conditions.append(finished)
            finished = ju.new_condition(
                "Complete",
                str(finished.get("reason") or ""),
                str(finished.get("message") or ""),
                at=at,
            )
        if not conditions:
            status.pop("conditions", None)
        # 1. Record what is about to be counted, before any finalizer goes.
        job = await self._write(job, original)
        self.backoffs[key] = ctx.backoff
        stored = _compact(deep_copy(job["status"]))
        # 2. Let the finished pods go.
        removed, remove_error = await self.remove_finalizers(key, to_remove)
        with_finalizer -= removed
        # 3. Count them, and finish the Job once nothing is left uncounted or terminating.
        status = job["status"]
        status.setdefault("uncountedTerminatedPods", {})
        _clean_uncounted(status, with_finalizer)
        uncounted = status["uncountedTerminatedPods"]
        done = (
            finished is not None
            and not capped
            and not uncounted.get("succeeded")
            and not uncounted.get("failed")
            and ctx.terminating == 0
        )
        if done and finished is not None:
            ju.ensure_condition(
                status.setdefault("conditions", []),
                str(finished["type"]),
                "True",
                str(finished.get("reason") or ""),
                str(finished.get("message") or ""),
                at=at,
            )
            if finished["type"] == "Complete":
                status["completionTime"] = finished["lastTransitionTime"]
        job = await self._write(job, stored)
        if done and finished is not None:
            self._record_finished(job, finished)
        if remove_error is not None:
            raise remove_error

    async def _write(self, job: Obj, stored: Obj) -> Obj:
        """Write the status unless it equals ``stored``; the Job as it is stored after."""
        if _compact(job["status"]) == stored:
            return job
        return await self.client.update_status(
            JOBS, job, namespace=str(job["metadata"].get("namespace") or "")
        )

    def _record_finished(self, job: Obj, finished: Obj) -> None:
        spec, status = job.get("spec") or {}, job.get("status") or {}
        if finished["type"] == "Complete":
            completions = spec.get("completions")
            if completions is not None and int(status.get("succeeded") or 0) > int(completions):
                self.events.event(
                    job,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            self.events.event(job, "Normal", "Completed", "Job completed")
        else:
            self.events.event(
                job,
                "Warning",
                str(finished.get("reason") or "Failed"),
                str(finished.get("message") or ""),
            )
