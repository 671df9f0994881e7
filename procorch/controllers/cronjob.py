"""The CronJob controller (batch/v1): creates a CronJob's Jobs on schedule.

Kubernetes' ``cronjob_controllerv2`` reconcile by reconcile: the CronJob's ``status.active``
is reconciled with its Jobs (finished ones leave it, ``lastSuccessfulTime`` follows the
latest completion, vanished ones are dropped), finished Jobs beyond
``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted oldest first, and then,
unless the CronJob is suspended or being deleted, the most recent unmet scheduled time
(:mod:`.cronjob_schedule`) is run: skipped when it is more than ``startingDeadlineSeconds``
late (event ``MissSchedule``), skipped under ``Forbid`` while a Job is active (event
``JobAlreadyActive``), the active Jobs deleted first under ``Replace``.

No polling: every reconcile returns the time until the next scheduled instant and the work
queue's timer wakes the CronJob exactly then. Job names derive from the scheduled time, so
a run is created at most once, whatever the caches or a restart missed.

Keys are (namespace, name). Concurrency: ``settings.cronjob_workers`` reconciles at once,
never two for the same CronJob; handlers only enqueue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from procorch.api import errors
from procorch.api.meta import controller_ref, deep_copy, now, parse_time, rfc3339
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.controllers import job_util as ju
from procorch.controllers.batch_settings import BatchSettings
from procorch.controllers.cronjob_schedule import (
    TOO_MANY_MISSED,
    Schedule,
    ScheduleError,
    job_from_template,
    job_name,
    most_recent_schedule_time,
    next_run_in,
)
from procorch.reconcile.controller import Controller, key_of
from procorch.reconcile.factory import InformerFactory

CRONJOBS = must("batch/cronjobs")
JOBS = must("batch/jobs")
FIELD_MANAGER = "cronjob-controller"
CRONJOB_INDEX = "batch:cronjob-uid"

Obj = dict[str, Any]
Key = tuple[str, str]


def cronjob_index(job: Obj) -> list[str]:
    ref = controller_ref(job)
    if ref is None or ref.get("kind") != "CronJob":
        return []
    return [str(ref.get("uid") or "")]


def job_ref(job: Obj) -> Obj:
    meta = job.get("metadata") or {}
    return {
        "kind": "Job",
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "apiVersion": "batch/v1",
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def _start_order(job: Obj) -> tuple[int, float, str]:
    started = parse_time((job.get("status") or {}).get("startTime"))
    name = str((job.get("metadata") or {}).get("name") or "")
    return (0, started.timestamp(), name) if started is not None else (1, 0.0, name)


def _rfc1123z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


class CronJobController(Controller[Key]):
    name = "cronjob"
    component = "cronjob-controller"

    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        *,
        settings: BatchSettings | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        super().__init__(client, informers, events=events)
        self.workers = (settings or BatchSettings.from_env()).cronjob_workers

    def setup(self) -> None:
        self.cronjobs = self.watch(CRONJOBS)
        self.jobs = self.watch(JOBS)
        self.jobs.add_index(CRONJOB_INDEX, cronjob_index)
        self.cronjobs.add_handler(self._on_cronjob)
        self.jobs.add_handler(self._on_job)

    # -- event handlers (enqueue only) -------------------------------------------------------

    def _on_cronjob(self, etype: str, cj: Obj, old: Obj | None) -> None:
        if etype == "DELETED":
            return
        key = key_of(cj)
        spec, old_spec = cj.get("spec") or {}, (old or {}).get("spec") or {}
        if old is not None and (
            spec.get("schedule") != old_spec.get("schedule")
            or spec.get("timeZone") != old_spec.get("timeZone")
        ):
            # A new schedule takes effect from its next time, not by catching up on the past.
            try:
                self.queue.add_after(key, next_run_in(cj, now(), Schedule.of(cj)))
            except ScheduleError:
                self.events.event(
                    cj,
                    "Warning",
                    "UnParseableCronJobSchedule",
                    f"unparseable schedule for cronjob: {spec.get('schedule')}",
                )
            return
        self.queue.add(key)

    def _owner(self, job: Obj) -> Key | None:
        ref = controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return None
        namespace = str((job.get("metadata") or {}).get("namespace") or "")
        cj = self.cronjobs.get(str(ref.get("name")), namespace)
        if cj is None or ju.uid(cj) != ref.get("uid"):
            return None
        return namespace, str(ref.get("name"))

    def _on_job(self, etype: str, job: Obj, old: Obj | None) -> None:
        if old is not None and etype != "DELETED":
            previous = self._owner(old)
            if previous is not None and previous != self._owner(job):
                self.queue.add(previous)
        key = self._owner(job)
        if key is not None:
            self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cached = self.cronjobs.get(name, namespace)
        if cached is None:
            return None
        cj = deep_copy(cached)
        cj.setdefault("apiVersion", "batch/v1")
        cj.setdefault("kind", "CronJob")
        jobs = self.jobs.by_index(CRONJOB_INDEX, ju.uid(cj))
        original = deep_copy(cj.get("status") or {})
        await self._clean_history(cj, jobs)
        cj, original, requeue, error = await self._sync(cj, original, jobs)
        status = cj.setdefault("status", {})
        if not status.get("active"):
            status.pop("active", None)
        if status != original:
            try:
                await self.client.update_status(CRONJOBS, cj, namespace=namespace)
            except errors.NotFound:
                return None
        if error is not None:
            raise error
        return requeue

    async def _clean_history(self, cj: Obj, jobs: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        for kind, limit in (
            ("Complete", spec.get("successfulJobsHistoryLimit")),
            ("Failed", spec.get("failedJobsHistoryLimit")),
        ):
            if limit is None:
                continue
            finished = sorted(
                (j for j in jobs if ju.finished_type(j) == kind and not ju.is_deleting(j)),
                key=_start_order,
            )
            for job in finished[: max(0, len(finished) - int(limit))]:
                await self._delete_job(cj, job)

    async def _delete_job(self, cj: Obj, job: Obj) -> bool:
        meta = job["metadata"]
        try:
            await self.client.delete(
                JOBS,
                str(meta["name"]),
                namespace=str(meta.get("namespace") or ""),
                propagation_policy="Background",
                uid=meta.get("uid"),
            )
        except errors.NotFound:
            pass
        except errors.ApiError as exc:
            self.events.event(cj, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
            return False
        status = cj.setdefault("status", {})
        status["active"] = [a for a in status.get("active") or [] if a.get("uid") != ju.uid(job)]
        self.events.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    async def _sync(
        self, cj: Obj, original: Obj, jobs: list[Obj]
    ) -> tuple[Obj, Obj, float | None, errors.ApiError | None]:
        """``syncCronJob``: (the CronJob with its new status, the status it had, seconds until
        the next look, an error to retry on)."""
        at = now()
        cj, original = await self._reconcile_active(cj, original, jobs)
        status = cj.setdefault("status", {})
        if ju.is_deleting(cj):
            return cj, original, None, None
        spec = cj.get("spec") or {}
        try:
            schedule = Schedule.of(cj)
        except ScheduleError as exc:
            if spec.get("timeZone") is not None and "time zone" in str(exc):
                self.events.event(
                    cj,
                    "Warning",
                    "UnknownTimeZone",
                    f"invalid timeZone: {spec['timeZone']!r}: {exc}",
                )
            else:
                self.events.event(
                    cj,
                    "Warning",
                    "UnparseableSchedule",
                    f"unparseable schedule: {spec.get('schedule')!r} : {exc}",
                )
            return cj, original, None, None
        if spec.get("suspend") is True:
            return cj, original, None, None
        try:
            _, scheduled, missed = most_recent_schedule_time(cj, at, schedule, with_deadline=True)
        except ScheduleError as exc:
            self.events.event(
                cj,
                "Warning",
                "InvalidSchedule",
                f"invalid schedule: {spec.get('schedule')} : {exc}",
            )
            return cj, original, None, None
        if scheduled is not None and missed > TOO_MANY_MISSED:
            self.events.event(
                cj,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                "or check clock skew",
            )
        if scheduled is None:
            return cj, original, next_run_in(cj, at, schedule), None
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled.timestamp() + int(deadline) < at.timestamp():
            self.events.event(
                cj,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}",
            )
            return cj, original, next_run_in(cj, at, schedule), None
        name = job_name(cj, scheduled, schedule)
        active = list(status.get("active") or [])
        last = parse_time(status.get("lastScheduleTime"))
        if any(a.get("name") == name for a in active) or last == scheduled:
            return cj, original, next_run_in(cj, at, schedule), None
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.events.event(
                cj,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
            return cj, original, next_run_in(cj, at, schedule), None
        if policy == "Replace":
            for ref in active:
                try:
                    job = await self.client.get(JOBS, str(ref.get("name")), namespace=ns_of(cj))
                except errors.ApiError as exc:
                    self.events.event(cj, "Warning", "FailedGet", f"Get job: {exc.message}")
                    return cj, original, None, exc
                if not await self._delete_job(cj, job):
                    return (
                        cj,
                        original,
                        None,
                        errors.Conflict(f"could not replace job {ref.get('name')}"),
                    )
        request = job_from_template(cj, scheduled, schedule)
        try:
            created = await self.client.create(
                JOBS, request, namespace=ns_of(cj), field_manager=FIELD_MANAGER
            )
        except errors.AlreadyExists:
            # Created by an earlier pass that could not record it (a crash, a stale cache).
            try:
                created = await self.client.get(JOBS, name, namespace=ns_of(cj))
            except errors.ApiError as exc:
                return cj, original, None, exc
            ref = controller_ref(created)
            if ref is None or ref.get("uid") != ju.uid(cj):
                return cj, original, next_run_in(cj, at, schedule), None
            if any(a.get("uid") == ju.uid(created) for a in status.get("active") or []):
                return cj, original, next_run_in(cj, at, schedule), None
        except errors.ApiError as exc:
            causes = exc.details.get("causes") or []
            if not any(
                isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes
            ):
                self.events.event(
                    cj, "Warning", "FailedCreate", f"Error creating job: {exc.message}"
                )
            return cj, original, None, exc
        else:
            self.events.event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        status["active"] = [*(status.get("active") or []), job_ref(created)]
        status["lastScheduleTime"] = rfc3339(scheduled)
        return cj, original, next_run_in(cj, now(), schedule), None

    async def _reconcile_active(self, cj: Obj, original: Obj, jobs: list[Obj]) -> tuple[Obj, Obj]:
        """Finished Jobs leave ``status.active``, vanished ones too; ``lastSuccessfulTime``
        follows the latest completion. Returns the CronJob (re-read when the cache was behind
        our own last status write) and the status it had."""
        children = {ju.uid(j) for j in jobs}
        refreshed = False
        for job in jobs:
            status = cj.setdefault("status", {})
            active = status.get("active") or []
            found = any(a.get("uid") == ju.uid(job) for a in active)
            finished = ju.finished_type(job)
            if not found and finished is None:
                if not refreshed:
                    refreshed = True
                    try:
                        fresh = await self.client.get(CRONJOBS, name_of(cj), namespace=ns_of(cj))
                    except errors.NotFound:
                        fresh = None
                    if fresh is not None and any(
                        a.get("uid") == ju.uid(job)
                        for a in (fresh.get("status") or {}).get("active") or []
                    ):
                        cj, original = fresh, deep_copy(fresh.get("status") or {})
                        continue
                self.events.event(
                    cj,
                    "Warning",
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {name_of(job)}",
                )
            elif found and finished is not None:
                status["active"] = [a for a in active if a.get("uid") != ju.uid(job)]
                self.events.event(
                    cj,
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {name_of(job)}, condition: {finished}",
                )
            if finished == "Complete":
                done = parse_time((job.get("status") or {}).get("completionTime"))
                last = parse_time(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = rfc3339(done)
        status = cj.setdefault("status", {})
        kept = []
        for ref in status.get("active") or []:
            if ref.get("uid") in children:
                kept.append(ref)
                continue
            try:  # the cache may be behind: only a live read says it is gone
                await self.client.get(JOBS, str(ref.get("name")), namespace=ns_of(cj))
            except errors.NotFound:
                self.events.event(
                    cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"
                )
                continue
            kept.append(ref)
        status["active"] = kept
        return cj, original


def ns_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
