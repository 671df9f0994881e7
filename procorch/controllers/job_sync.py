"""One sync of one Job (Kubernetes' ``syncJob``), as a mixin of :class:`~.job.JobController`.

From the Job and its pods in the caches it decides, in order: whether the Job has failed
(a ``FailJob`` rule of its pod failure policy matched, more failures than ``backoffLimit`` or,
with ``restartPolicy: OnFailure``, as many container restarts; ``activeDeadlineSeconds``
passed) or succeeded (``completions`` reached, or for a work queue one success and nothing
left running); otherwise how many pods to delete (suspended, parallelism lowered, repeated
indexes) or create (after the failure back-off, Indexed pods getting the lowest pending
indexes). Counting and finishing are :mod:`.job_tracking`'s; acting on pods
:mod:`.job_podcontrol`'s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from procorch.api import errors
from procorch.api.meta import deep_copy, now, parse_time, rfc3339
from procorch.controllers import job_util as ju
from procorch.controllers.batch_settings import BatchSettings
from procorch.controllers.job_tracking import BackoffRecord, JobTrackingMixin, SyncContext

Obj = dict[str, Any]
Key = tuple[str, str, str]


def _status_counters(status: Obj) -> tuple[int, int]:
    return int(status.get("succeeded") or 0), int(status.get("failed") or 0)


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _suspended(job: Obj) -> bool:
    return (job.get("spec") or {}).get("suspend") is True


class JobSyncMixin(JobTrackingMixin):
    settings: BatchSettings

    async def sync_job(self, key: Key, cached: Obj, pods: list[Obj]) -> float | None:
        job = deep_copy(cached)
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        original = deep_copy(job.get("status") or {})
        status = job.setdefault("status", {})
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        at = now()
        satisfied = self.expectations.satisfied(key)
        ctx = SyncContext(
            job=job,
            pods=pods,
            active_pods=[p for p in pods if ju.is_active(p)],
            ready=sum(1 for p in pods if ju.is_active(p) and ju.is_ready(p)),
            terminating=sum(1 for p in pods if ju.is_terminating(p)),
            expected_rm=self.finalizers.expected(key),
            uncounted_succeeded=set(uncounted.get("succeeded") or []),
            uncounted_failed=set(uncounted.get("failed") or []),
        )
        new_succeeded, new_failed = self._new_finished(ctx)
        counted_s, counted_f = _status_counters(status)
        ctx.succeeded = counted_s + len(new_succeeded) + len(ctx.uncounted_succeeded)
        ctx.failed = (
            counted_f
            + sum(1 for p in new_failed if ju.match_pod_failure_policy(job, p)[1])
            + len(ctx.uncounted_failed)
        )
        if not status.get("startTime") and not _suspended(job):
            status["startTime"] = rfc3339(at)
        ctx.backoff = self._new_backoff(key, new_succeeded, new_failed, at=at)
        self._finishing(ctx, at)
        if ctx.indexed and ctx.completions is not None:
            ctx.prev_indexes = ju.parse_indexes(status.get("completedIndexes"), ctx.completions)
            ctx.indexes = ctx.prev_indexes | {
                i
                for p in pods
                if ju.phase(p) == "Succeeded"
                and ju.has_tracking_finalizer(p)
                and (i := ju.valid_index(p, ctx.completions)) is not None
            }
            ctx.succeeded = len(ctx.indexes)
        active = len(ctx.active_pods)
        manage_error: errors.ApiError | None = None
        if ctx.finished is not None:
            deleted_ready, deleted, manage_error = await self.delete_pods(
                job, ctx.active_pods, remove_finalizer=False
            )
            if deleted != active or not satisfied:
                ctx.finished = None  # pods or finalizers are still to be seen in the cache
            active -= deleted
            ctx.terminating += deleted
            ctx.ready -= deleted_ready
        else:
            managed = False
            if satisfied and not ju.is_deleting(job):
                active, manage_error = await self._manage(key, ctx, at)
                managed = True
            completions = ctx.completions
            if (completions is None and ctx.succeeded > 0 and active == 0) or (
                completions is not None and ctx.succeeded >= completions and active == 0
            ):
                ctx.finished = ju.new_condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    at=at,
                )
            elif managed:
                self._suspend_condition(job, at)
        status["active"] = active
        status["ready"] = ctx.ready
        status["terminating"] = ctx.terminating
        await self.track(key, ctx, original, at)
        if manage_error is not None:
            raise manage_error
        return min(ctx.requeue) if ctx.requeue else None

    # -- deciding ----------------------------------------------------------------------------

    def _countable(self, ctx: SyncContext, pod: Obj, uncounted: set[str]) -> bool:
        """Has the finalizer, is not counted (or being uncounted), has a valid index."""
        pod_uid = ju.uid(pod)
        if not ju.has_tracking_finalizer(pod) or pod_uid in uncounted:
            return False
        if pod_uid in ctx.expected_rm:
            return False
        completions = ctx.completions
        return not (
            ctx.indexed and (completions is None or ju.valid_index(pod, completions) is None)
        )

    def _new_finished(self, ctx: SyncContext) -> tuple[list[Obj], list[Obj]]:
        succeeded = [
            p
            for p in ctx.pods
            if self._countable(ctx, p, ctx.uncounted_succeeded) and ju.phase(p) == "Succeeded"
        ]
        failed = [
            p
            for p in ctx.pods
            if self._countable(ctx, p, ctx.uncounted_failed) and ju.is_pod_failed(p, ctx.job)
        ]
        return succeeded, failed

    def _new_backoff(
        self, key: Key, succeeded: list[Obj], failed: list[Obj], *, at: datetime
    ) -> BackoffRecord:
        """``newBackoffRecord``: failures since the last success, and the last one's time."""

        def finished(pod: Obj) -> datetime:
            # Status times have whole seconds: the pod finished in the second after its
            # stamp, and no later than now (it is seen finished for the first time). Taking
            # the latest such time never lets a retry come sooner than the back-off.
            return min(at, ju.finished_time(pod) + timedelta(seconds=1))

        old = self.backoffs.get(key) or BackoffRecord()
        record = BackoffRecord(old.failures, old.last_failure)
        if not failed:
            return BackoffRecord() if succeeded else record
        failed_times = sorted(finished(p) for p in failed)
        if not succeeded:
            return BackoffRecord(record.failures + len(failed), failed_times[-1])
        last_success = max(finished(p) for p in succeeded)
        after = [t for t in failed_times if t > last_success]
        return BackoffRecord(len(after), after[-1] if after else None)

    def _finishing(self, ctx: SyncContext, at: datetime) -> None:
        job = ctx.job
        spec = job.get("spec") or {}
        met = ju.condition(job, "SuccessCriteriaMet")
        if met is not None and met.get("status") == "True":
            ctx.finished = met
            return
        target = ju.condition(job, "FailureTarget")
        if target is not None and target.get("status") == "True":
            ctx.finished = target
            return
        for pod in ctx.pods:
            if ju.is_pod_failed(pod, job):
                message = ju.match_pod_failure_policy(job, pod)[0]
                if message is not None:
                    ctx.finished = ju.new_condition(
                        "FailureTarget", "PodFailurePolicy", message, at=at
                    )
                    return
        backoff_limit = _int(spec.get("backoffLimit"), 6)
        if ctx.failed > backoff_limit or self._past_backoff_on_failure(job, ctx.pods):
            ctx.finished = ju.new_condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                at=at,
            )
            return
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time((job.get("status") or {}).get("startTime"))
        if deadline is None or started is None or _suspended(job):
            return
        left = float(deadline) - (at - started).total_seconds()
        if left <= 0:
            ctx.finished = ju.new_condition(
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
                at=at,
            )
        else:
            ctx.requeue.append(left)

    @staticmethod
    def _past_backoff_on_failure(job: Obj, pods: list[Obj]) -> bool:
        """``restartPolicy: OnFailure``: container restarts of running pods count as failures."""
        spec = job.get("spec") or {}
        template_spec = (spec.get("template") or {}).get("spec") or {}
        if template_spec.get("restartPolicy") != "OnFailure":
            return False
        restarts = sum(ju.restart_count(p) for p in pods if ju.phase(p) in ("Running", "Pending"))
        limit = _int(spec.get("backoffLimit"), 6)
        return restarts > 0 if limit == 0 else restarts >= limit

    def _suspend_condition(self, job: Obj, at: datetime) -> None:
        conditions = job["status"].setdefault("conditions", [])
        if _suspended(job):
            if ju.ensure_condition(
                conditions, "Suspended", "True", "JobSuspended", "Job suspended", at=at
            ):
                self.events.event(job, "Normal", "Suspended", "Job suspended")
        elif ju.ensure_condition(
            conditions, "Suspended", "False", "JobResumed", "Job resumed", at=at
        ):
            self.events.event(job, "Normal", "Resumed", "Job resumed")
            # activeDeadlineSeconds counts the time a Job is continuously active.
            job["status"]["startTime"] = rfc3339(at)
        if not conditions:
            job["status"].pop("conditions", None)

    # -- managing pods -----------------------------------------------------------------------

    async def _manage(
        self, key: Key, ctx: SyncContext, at: datetime
    ) -> tuple[int, errors.ApiError | None]:
        job = ctx.job
        spec = job.get("spec") or {}
        active = len(ctx.active_pods)
        parallelism = _int(spec.get("parallelism"), 1)
        if _suspended(job):
            victims = ju.pods_for_removal(ctx.active_pods, active, completions=None)
            self.expectations.expect_deletions(key, [ju.uid(p) for p in victims])
            ready, removed, error = await self.delete_pods(job, victims, remove_finalizer=True)
            ctx.terminating += removed
            ctx.ready -= ready
            return active - removed, error
        completions = ctx.completions
        if completions is None:
            want = active if ctx.succeeded > 0 else parallelism
        else:
            want = max(0, min(completions - ctx.succeeded, parallelism))
        victims = ju.pods_for_removal(
            ctx.active_pods,
            max(0, active - want),
            completions=completions if ctx.indexed else None,
        )[: ju.MAX_POD_CREATE_DELETE]
        if victims:
            self.expectations.expect_deletions(key, [ju.uid(p) for p in victims])
            ready, removed, error = await self.delete_pods(job, victims, remove_finalizer=True)
            ctx.terminating += removed
            ctx.ready -= ready
            return active - removed, error
        terminating = ctx.terminating if ju.only_replace_failed(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active, None
        wait = ju.remaining_backoff(
            ctx.backoff.failures,
            ctx.backoff.last_failure,
            now=at,
            base=self.settings.job_backoff,
            cap=self.settings.job_backoff_max,
        )
        if wait > 0:
            ctx.requeue.append(wait)
            return active, None
        diff = min(diff, ju.MAX_POD_CREATE_DELETE)
        indexes: list[int | None] = [None] * diff
        if ctx.indexed and completions is not None:
            held = {i for p in ctx.active_pods if (i := ju.valid_index(p, completions)) is not None}
            pending = [i for i in range(completions) if i not in ctx.indexes and i not in held]
            indexes = list(pending[:diff])
        if not indexes:
            return active, None
        self.expectations.expect_creations(key, len(indexes))
        created, error = await self.create_pods(key, job, indexes)
        return active + created, error
