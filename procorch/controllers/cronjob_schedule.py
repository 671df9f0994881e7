"""When a CronJob runs and what its Jobs look like: pure functions of the CronJob and a clock.

The rules are Kubernetes' (``pkg/controller/cronjob/utils.go``) with croniter reading the
schedule (:func:`procorch.api.validation.batch.cron_iter`):

* The schedule is read in ``spec.timeZone``, else in procorch's local time zone (as
  kube-controller-manager reads it in its own), after a ``TZ=``/``CRON_TZ=`` prefix if an old
  object still has one.
* :func:`most_recent_schedule_time` finds the latest scheduled time that has passed and not
  been run: after ``lastScheduleTime`` (or the CronJob's creation), and no earlier than
  ``startingDeadlineSeconds`` ago; it also says whether more than 100 were missed.
* A Job is named after its scheduled time, so that it can never be created twice, even by a
  procorch that restarted without having seen its own status write: ``<cronjob>-<minutes
  since the epoch>`` as in Kubernetes, or, for schedules with a seconds field,
  ``<cronjob>-<seconds since the epoch>`` (a CronJob name has at most 52 characters, so both
  fit Kubernetes' 63-character limit for the ``job-name`` label).
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from procorch.api.meta import deep_copy, owner_ref, parse_time
from procorch.api.validation.batch import cron_iter, has_seconds

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100


class ScheduleError(ValueError):
    """The schedule or time zone cannot be used (the object predates validation, or a
    schedule that parses never fires, such as February 31st)."""


@lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """procorch's own time zone: ``$TZ``, else ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC


class Schedule:
    """A CronJob's schedule in its time zone."""

    def __init__(self, expression: str, zone: tzinfo) -> None:
        self.expression = expression
        self.zone = zone
        try:
            cron_iter(expression, datetime.now(zone))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScheduleError(str(exc)) from exc

    @classmethod
    def of(cls, cj: Obj) -> Schedule:
        spec = cj.get("spec") or {}
        expression = str(spec.get("schedule") or "").strip()
        zone_name = spec.get("timeZone")
        if expression.startswith(("TZ=", "CRON_TZ=")):
            prefix, _, expression = expression.partition(" ")
            zone_name = prefix.split("=", 1)[1]
            expression = expression.strip()
        zone: tzinfo = local_zone()
        if zone_name is not None:
            try:
                zone = zoneinfo.ZoneInfo(str(zone_name))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
                raise ScheduleError(f"unknown time zone {zone_name}") from exc
        return cls(expression, zone)

    @property
    def seconds(self) -> bool:
        return has_seconds(self.expression)

    def next(self, after: datetime) -> datetime:
        """The first scheduled time strictly after ``after``, in UTC."""
        try:
            found = cron_iter(self.expression, after.astimezone(self.zone)).get_next(datetime)
        except (ValueError, KeyError, TypeError) as exc:  # croniter's CroniterBadDateError
            raise ScheduleError(str(exc)) from exc
        return found.astimezone(UTC)


def _creation(cj: Obj) -> datetime:
    meta = cj.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return created if created is not None else datetime.now(UTC)


def most_recent_schedule_time(
    cj: Obj, at: datetime, schedule: Schedule, *, with_deadline: bool
) -> tuple[datetime, datetime | None, int]:
    """(the earliest time considered, the most recent unmet scheduled time or None, how many
    were missed: 0, a few, or more than :data:`TOO_MANY_MISSED`)."""
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or _creation(cj)
    deadline = spec.get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        cutoff = at - timedelta(seconds=int(deadline))
        if cutoff > earliest:
            earliest = cutoff
    t1 = schedule.next(earliest)
    if at < t1:
        return earliest, None, 0
    t2 = schedule.next(t1)
    if at < t2:
        return earliest, t1, 1
    interval = round((t2 - t1).total_seconds())
    if interval < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    missed = int((at - t1).total_seconds()) // interval + 1
    # Jump close to now (irregular schedules are walked from one interval earlier).
    probe = t1 + timedelta(seconds=(missed - 2) * interval)
    recent: datetime | None = None
    t = schedule.next(max(probe, earliest))
    while t <= at:
        recent = t
        t = schedule.next(t)
    return earliest, recent, missed


def next_run_in(cj: Obj, at: datetime, schedule: Schedule) -> float:
    """Seconds until the next scheduled time (``nextScheduleTimeDuration`` without the 100 ms
    padding: procorch's clock is the one the schedule is read with)."""
    try:
        earliest, recent, missed = most_recent_schedule_time(cj, at, schedule, with_deadline=False)
    except ScheduleError:
        recent, missed, earliest = at, 0, at
    base = recent if recent is not None else (earliest if missed == 0 else at)
    return max(0.0, (schedule.next(base) - at).total_seconds())


def job_name(cj: Obj, scheduled: datetime, schedule: Schedule) -> str:
    stamp = int(scheduled.timestamp())
    suffix = stamp if schedule.seconds else stamp // 60
    return f"{(cj.get('metadata') or {}).get('name')}-{suffix}"


def job_from_template(cj: Obj, scheduled: datetime, schedule: Schedule) -> Obj:
    """The Job to run for ``scheduled`` (``getJobFromTemplate2``)."""
    meta = cj.get("metadata") or {}
    template = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = (
        scheduled.astimezone(schedule.zone).isoformat().replace("+00:00", "Z")
    )
    job_meta: Obj = {
        "name": job_name(cj, scheduled, schedule),
        "namespace": meta.get("namespace", ""),
        "annotations": annotations,
        "ownerReferences": [owner_ref({"apiVersion": "batch/v1", "kind": "CronJob", **cj})],
    }
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_meta,
        "spec": deep_copy(template.get("spec") or {}),
    }
