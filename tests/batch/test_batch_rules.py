"""The pure rules under the batch controllers: schedules and their missed runs, Job names,
completion indexes, the pod failure policy, the failure back-off, and the settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procorch.api.validation.batch import cron_problem
from procorch.controllers import job_util as ju
from procorch.controllers.batch_settings import BatchSettings
from procorch.controllers.cronjob_schedule import (
    Schedule,
    ScheduleError,
    job_from_template,
    job_name,
    most_recent_schedule_time,
    next_run_in,
)


def cronjob(schedule: str, **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "tick",
            "namespace": "default",
            "uid": "u-1",
            "creationTimestamp": "2026-03-01T12:00:00Z",
        },
        "spec": {"schedule": schedule, "timeZone": "Etc/UTC", **spec},
        "status": status,
    }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/5 * * * * *", "2026-03-01T12:00:00.5", "2026-03-01T12:00:05"),  # seconds first
        ("0 30 * * * *", "2026-03-01T12:00:00", "2026-03-01T12:30:00"),
        ("*/15 * * * *", "2026-03-01T12:07:10", "2026-03-01T12:15:00"),
        ("@hourly", "2026-03-01T12:07:00", "2026-03-01T13:00:00"),
        ("@midnight", "2026-03-01T12:07:00", "2026-03-02T00:00:00"),
        ("@weekly", "2026-03-04T12:00:00", "2026-03-08T00:00:00"),
        ("@monthly", "2026-03-04T12:00:00", "2026-04-01T00:00:00"),
        ("@annually", "2026-03-04T12:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_schedules_are_read_as_kubernetes_does_plus_a_leading_seconds_field(
    schedule: str, after: str, expected: str
) -> None:
    assert cron_problem(schedule) == ""
    assert Schedule.of(cronjob(schedule)).next(at(after)) == at(expected)


def test_a_time_zone_moves_the_schedule() -> None:
    paris = Schedule.of(cronjob("0 9 * * *", timeZone="Europe/Paris"))
    assert paris.next(at("2026-07-01T00:00:00")) == at("2026-07-01T07:00:00")  # CEST
    assert paris.next(at("2026-01-01T00:00:00")) == at("2026-01-01T08:00:00")  # CET
    with pytest.raises(ScheduleError):
        Schedule.of(cronjob("* * * * *", timeZone="Mars/Olympus"))


def test_job_names_count_minutes_or_for_a_seconds_schedule_seconds() -> None:
    when = at("2026-03-01T12:00:05")
    minutes = cronjob("* * * * *")
    seconds = cronjob("*/5 * * * * *")
    assert job_name(minutes, when, Schedule.of(minutes)) == f"tick-{int(when.timestamp()) // 60}"
    assert job_name(seconds, when, Schedule.of(seconds)) == f"tick-{int(when.timestamp())}"
    # 52 characters (the longest CronJob name) plus the suffix fit the 63 of a label value.
    assert len("x" * 52 + "-" + str(int(when.timestamp()))) <= 63


def test_the_job_from_a_template_is_owned_labelled_and_stamped() -> None:
    cj = cronjob("*/5 * * * * *", timeZone="Europe/Paris")
    cj["spec"]["jobTemplate"] = {
        "metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}},
        "spec": {"backoffLimit": 2},
    }
    job = job_from_template(cj, at("2026-03-01T12:00:05"), Schedule.of(cj))
    assert job["metadata"]["labels"] == {"a": "b"}
    assert job["metadata"]["annotations"] == {
        "c": "d",
        "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-03-01T13:00:05+01:00",
    }
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["spec"] == {"backoffLimit": 2}


def test_most_recent_unmet_time_and_the_missed_count() -> None:
    cj = cronjob("* * * * *", status={"lastScheduleTime": "2026-03-01T12:00:00Z"})
    schedule = Schedule.of(cj)
    # Nothing due yet.
    assert (
        most_recent_schedule_time(cj, at("2026-03-01T12:00:30"), schedule, with_deadline=True)[1]
        is None
    )
    # Three missed: only the latest is returned.
    _, recent, missed = most_recent_schedule_time(
        cj, at("2026-03-01T12:03:10"), schedule, with_deadline=True
    )
    assert recent == at("2026-03-01T12:03:00") and 1 < missed <= 100
    # Days missed: more than 100.
    _, recent, missed = most_recent_schedule_time(
        cj, at("2026-03-03T12:03:10"), schedule, with_deadline=True
    )
    assert recent == at("2026-03-03T12:03:00") and missed > 100
    # startingDeadlineSeconds: nothing older than the deadline is considered.
    strict = cronjob(
        "0 * * * *", startingDeadlineSeconds=60, status={"lastScheduleTime": "2026-03-01T12:00:00Z"}
    )
    sched = Schedule.of(strict)
    assert (
        most_recent_schedule_time(strict, at("2026-03-01T15:30:00"), sched, with_deadline=True)[1]
        is None
    )
    assert most_recent_schedule_time(strict, at("2026-03-01T15:00:30"), sched, with_deadline=True)[
        1
    ] == at("2026-03-01T15:00:00")


def test_the_controller_sleeps_until_the_next_instant() -> None:
    cj = cronjob("*/5 * * * * *", status={"lastScheduleTime": "2026-03-01T12:00:05Z"})
    assert next_run_in(cj, at("2026-03-01T12:00:06.25"), Schedule.of(cj)) == pytest.approx(3.75)


def test_a_schedule_that_never_fires_is_an_error_not_a_hang() -> None:
    cj = cronjob("0 0 31 2 *")
    with pytest.raises(ScheduleError):
        most_recent_schedule_time(
            cj, at("2026-03-01T12:00:00"), Schedule.of(cj), with_deadline=True
        )


def test_completion_indexes_as_intervals() -> None:
    assert ju.format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert ju.format_indexes(set()) == ""
    assert ju.parse_indexes("0-2,4,6-7", 7) == {0, 1, 2, 4, 6}
    assert ju.parse_indexes("1,x,3-a", 10) == {1}


def failed_pod(code: int, container: str = "main") -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"name": container, "state": {"terminated": {"exitCode": code}}}],
        },
    }


def test_pod_failure_policy_rules_match_in_order() -> None:
    job = {
        "spec": {
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "main",
                            "operator": "NotIn",
                            "values": [3, 4],
                        },
                    },
                    {"action": "Count", "onExitCodes": {"operator": "In", "values": [4]}},
                ]
            }
        }
    }
    assert ju.match_pod_failure_policy(job, failed_pod(3)) == (None, False, "Ignore")
    assert ju.match_pod_failure_policy(job, failed_pod(4)) == (None, True, "Count")
    message, counts, action = ju.match_pod_failure_policy(job, failed_pod(9))
    assert (counts, action) == (True, "FailJob")
    assert message == (
        "Container main for pod ns/p failed with exit code 9 matching FailJob rule at index 1"
    )
    assert ju.match_pod_failure_policy(job, failed_pod(9, "side")) == (None, True, None)
    assert ju.match_pod_failure_policy({"spec": {}}, failed_pod(1)) == (None, True, None)


def test_the_failure_backoff_doubles_to_its_cap() -> None:
    last = at("2026-03-01T12:00:00")
    remaining = [
        ju.remaining_backoff(n, last, now=last, base=10, cap=360) for n in (0, 1, 2, 3, 6, 7, 20)
    ]
    assert remaining == [0, 10, 20, 40, 320, 360, 360]
    assert ju.remaining_backoff(2, last, now=last + timedelta(seconds=15), base=10, cap=360) == 5
    assert ju.remaining_backoff(2, last, now=last + timedelta(seconds=25), base=10, cap=360) == 0


def test_settings_default_to_kubernetes_and_read_the_environment() -> None:
    assert BatchSettings() == BatchSettings.from_env({})
    assert (BatchSettings().job_backoff, BatchSettings().job_backoff_max) == (10.0, 360.0)
    fast = BatchSettings.from_env({"PROCORCH_JOB_BACKOFF": "0.5", "PROCORCH_JOB_BACKOFF_MAX": "2"})
    assert (fast.job_backoff, fast.job_backoff_max) == (0.5, 2.0)
    with pytest.raises(ValueError, match="PROCORCH_JOB_BACKOFF"):
        BatchSettings.from_env({"PROCORCH_JOB_BACKOFF": "soon"})


def test_the_wake_up_timer_works_on_uvloop_which_procorch_up_runs() -> None:
    """``procorch up`` runs on uvloop, whose ``call_at`` returns a plain Handle for a time
    already past: the CronJob controller re-arms its queue's timer with such times."""
    uvloop = pytest.importorskip("uvloop")
    from procorch.reconcile.workqueue import WorkQueue

    async def main() -> list[str]:
        queue: WorkQueue[str] = WorkQueue(name="t")
        queue.add_after("late", 1e-9)  # due before the timer is armed
        await asyncio.sleep(0)
        queue.add_after("later", 0.01)
        queue.add_after("sooner", 0.005)
        got = []
        for _ in range(3):
            got.append(await asyncio.wait_for(queue.get(), 1))
        return got

    assert sorted(uvloop.run(main())) == ["late", "later", "sooner"]
