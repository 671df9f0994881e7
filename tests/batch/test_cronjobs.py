"""CronJob scheduling on a bare control plane (no node: the Jobs it creates stay active, which
makes concurrency deterministic), plus a restart of procorch on the same data dir."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from procorch.api.meta import rfc3339
from procorch.client.base import Client
from procorch.launcher.up import Procorch, UpConfig
from tests.batch.conftest import (
    CRONJOBS,
    JOBS,
    cronjob_yaml,
    events_for,
    wait_event,
    wait_for,
)
from tests.conftest import Raw

SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


async def jobs_of(client: Client, cronjob: str) -> list[dict[str, Any]]:
    listed = await client.list(JOBS, namespace="default")
    return sorted(
        (j for j in listed.items if j["metadata"]["name"].startswith(f"{cronjob}-")),
        key=lambda j: j["metadata"]["name"],
    )


async def at_least(client: Client, cronjob: str, n: int, *, timeout: float = 15.0) -> list[Any]:
    async def check() -> list[dict[str, Any]] | None:
        jobs = await jobs_of(client, cronjob)
        return jobs if len(jobs) >= n else None

    return await wait_for(check, timeout=timeout, what=f"{n} jobs of {cronjob}")


def scheduled_at(job: dict[str, Any]) -> int:
    return int(job["metadata"]["name"].rsplit("-", 1)[1])


async def test_a_seconds_schedule_runs_once_per_instant_named_after_it(procorch: Procorch) -> None:
    client = procorch.admin
    created_at: dict[str, float] = {}

    async def watch() -> None:
        async for event in client.watch(JOBS, namespace="default"):
            if event.type == "ADDED":
                created_at[event.object["metadata"]["name"]] = time.time()

    watcher = asyncio.create_task(watch())
    try:
        cj = cronjob_yaml("tick", "*/2 * * * * *")
        cj["spec"]["jobTemplate"]["metadata"] = {"labels": {"team": "a"}, "annotations": {"x": "y"}}
        await client.create(CRONJOBS, cj, namespace="default")
        jobs = await at_least(client, "tick", 2, timeout=10)

        async def watched() -> bool:
            # A list can see a Job before the watcher has taken its ADDED event.
            return all(job["metadata"]["name"] in created_at for job in jobs[:2])

        await wait_for(watched, timeout=5, what="the watcher saw both Jobs")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    first, second = jobs[:2]
    assert scheduled_at(second) - scheduled_at(first) == 2
    assert scheduled_at(first) % 2 == 0
    for job in (first, second):
        name = job["metadata"]["name"]
        when = scheduled_at(job)
        assert job["metadata"]["annotations"][SCHEDULED] == rfc3339(
            datetime.fromtimestamp(when, UTC)
        )
        assert job["metadata"]["annotations"]["x"] == "y"
        assert job["metadata"]["labels"]["team"] == "a"
        ref = job["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "tick", True)
        # Created on time: the controller sleeps until the instant (the benchmark measures it).
        assert 0 <= created_at[name] - when < 0.5
    second_at = rfc3339(datetime.fromtimestamp(scheduled_at(second), UTC))

    async def recorded() -> dict[str, Any] | None:
        # The status write follows the Job's creation.
        status = (await client.get(CRONJOBS, "tick", namespace="default"))["status"]
        return status if status.get("lastScheduleTime", "") >= second_at else None

    status = await wait_for(recorded, what="lastScheduleTime recorded")
    assert {a["name"] for a in status["active"]} >= {
        first["metadata"]["name"],
        second["metadata"]["name"],
    }

    async def two_creates() -> bool:
        reasons = [e["reason"] for e in await events_for(client, "tick")]
        return reasons.count("SuccessfulCreate") >= 2

    await wait_for(two_creates, what="two SuccessfulCreate events")


async def test_forbid_starts_nothing_while_a_job_is_active(procorch: Procorch) -> None:
    client = procorch.admin
    await client.create(
        CRONJOBS,
        cronjob_yaml("solo", "* * * * * *", concurrencyPolicy="Forbid"),
        namespace="default",
    )
    await at_least(client, "solo", 1)
    event = await wait_event(client, "solo", "JobAlreadyActive")
    assert event["message"] == (
        "Not starting job because prior execution is running and concurrency policy is Forbid"
    )
    assert len(await jobs_of(client, "solo")) == 1


async def test_replace_deletes_the_active_job_for_the_next(procorch: Procorch) -> None:
    client = procorch.admin
    await client.create(
        CRONJOBS,
        cronjob_yaml("swap", "* * * * * *", concurrencyPolicy="Replace"),
        namespace="default",
    )
    first = (await at_least(client, "swap", 1))[0]["metadata"]["name"]

    async def replaced() -> list[dict[str, Any]] | None:
        jobs = await jobs_of(client, "swap")
        names = [j["metadata"]["name"] for j in jobs]
        return jobs if first not in names and names else None

    await wait_for(replaced, what="first job replaced")
    deleted = await wait_event(client, "swap", "SuccessfulDelete")
    assert deleted["message"] == f"Deleted job {first}"

    async def one_active() -> list[Any] | None:
        cj = await client.get(CRONJOBS, "swap", namespace="default")
        active = cj["status"].get("active") or []
        return active if len(active) == 1 and active[0]["name"] != first else None

    await wait_for(one_active, what="exactly one active job")


async def test_suspend_holds_runs_until_resumed(procorch: Procorch) -> None:
    client = procorch.admin
    await client.create(
        CRONJOBS, cronjob_yaml("nap", "* * * * * *", suspend=True), namespace="default"
    )
    await asyncio.sleep(1.5)
    assert await jobs_of(client, "nap") == []
    resumed = time.time()
    await client.patch(CRONJOBS, "nap", {"spec": {"suspend": False}}, namespace="default")
    job = (await at_least(client, "nap", 1, timeout=5))[0]
    # Runs missed while suspended are not caught up beyond the most recent one.
    assert scheduled_at(job) >= int(resumed) - 1


async def _set_last_schedule(client: Client, name: str, when: datetime) -> None:
    cj = await client.get(CRONJOBS, name, namespace="default")
    cj["status"] = {"lastScheduleTime": rfc3339(when)}
    await client.update_status(CRONJOBS, cj, namespace="default")


async def test_too_many_missed_runs_start_only_the_latest_with_a_warning(
    procorch: Procorch,
) -> None:
    client = procorch.admin
    await client.create(
        CRONJOBS, cronjob_yaml("late", "* * * * * *", suspend=True), namespace="default"
    )
    await _set_last_schedule(client, "late", datetime.now(UTC) - timedelta(hours=1))
    resumed = time.time()
    await client.patch(CRONJOBS, "late", {"spec": {"suspend": False}}, namespace="default")
    event = await wait_event(client, "late", "TooManyMissedTimes")
    assert event["type"] == "Warning"
    assert event["message"] == (
        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check "
        "clock skew"
    )
    first = (await at_least(client, "late", 1))[0]
    assert scheduled_at(first) >= int(resumed) - 1, "the latest missed run, not the oldest"


async def test_starting_deadline_skips_a_run_missed_for_too_long(procorch: Procorch) -> None:
    client = procorch.admin
    # Daily, at the second 10 minutes ago (UTC); last run the day before: today's is missed.
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    schedule = f"{due.second} {due.minute} {due.hour} * * *"
    for name, deadline in (("patient", None), ("strict", 60)):
        extra = {} if deadline is None else {"startingDeadlineSeconds": deadline}
        await client.create(
            CRONJOBS,
            cronjob_yaml(name, schedule, suspend=True, timeZone="Etc/UTC", **extra),
            namespace="default",
        )
        await _set_last_schedule(client, name, due - timedelta(days=1))
        await client.patch(CRONJOBS, name, {"spec": {"suspend": False}}, namespace="default")
    late = (await at_least(client, "patient", 1))[0]
    assert late["metadata"]["name"] == f"patient-{int(due.timestamp())}"
    await asyncio.sleep(0.5)
    assert await jobs_of(client, "strict") == []


async def test_a_job_created_before_a_lost_status_write_is_not_created_again(
    procorch: Procorch,
) -> None:
    client = procorch.admin
    # A five-field schedule due a minute ago: Kubernetes' naming, minutes since the epoch.
    due = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    cj = await client.create(
        CRONJOBS,
        cronjob_yaml("once", f"{due.minute} {due.hour} * * *", suspend=True, timeZone="Etc/UTC"),
        namespace="default",
    )
    await _set_last_schedule(client, "once", due - timedelta(days=1))
    # As if procorch had created the Job and crashed before recording it in the status.
    name = f"once-{int(due.timestamp()) // 60}"
    job = cronjob_yaml("x", "* * * * *")["spec"]["jobTemplate"]
    job.update(apiVersion="batch/v1", kind="Job")
    job["metadata"] = {
        "name": name,
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": "once",
                "uid": cj["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    await client.create(JOBS, job, namespace="default")
    await client.patch(CRONJOBS, "once", {"spec": {"suspend": False}}, namespace="default")

    async def recorded() -> dict[str, Any] | None:
        current = await client.get(CRONJOBS, "once", namespace="default")
        status = current.get("status") or {}
        return status if status.get("lastScheduleTime") == rfc3339(due) else None

    status = await wait_for(recorded, what="the run recorded")
    assert [a["name"] for a in status["active"]] == [name]
    assert [j["metadata"]["name"] for j in await jobs_of(client, "once")] == [name]
    reasons = [e["reason"] for e in await events_for(client, "once")]
    assert "SuccessfulCreate" not in reasons


async def test_a_restart_runs_the_latest_missed_instant_once(tmp_path: Path) -> None:
    config = UpConfig(data_dir=tmp_path / "data", api_port=0, node=False)
    first = Procorch(config)
    await first.start()
    try:
        await first.admin.create(
            CRONJOBS, cronjob_yaml("steady", "*/2 * * * * *"), namespace="default"
        )
        before = await at_least(first.admin, "steady", 1, timeout=10)
    finally:
        await first.stop()
    await asyncio.sleep(4.2)  # at least two instants pass while procorch is down
    second = Procorch(config)
    restarting = time.time()
    await second.start()
    try:
        after = await at_least(second.admin, "steady", len(before) + 2, timeout=10)
    finally:
        await second.stop()
    times = [scheduled_at(j) for j in after]
    assert len(times) == len(set(times)), "one Job per instant"
    last_before = max(scheduled_at(j) for j in before)
    since = sorted(t for t in times if t > last_before)
    # Of the instants missed while down, only the latest ran (at start-up), then the schedule.
    assert since[0] >= restarting - 2
    assert since[0] - last_before >= 4, "the earlier missed instants were skipped"
    assert all(b - a == 2 for a, b in zip(since, since[1:], strict=False))


async def test_an_invalid_schedule_or_time_zone_is_refused_naming_the_field(raw: Raw) -> None:
    url = f"{raw.url}/apis/batch/v1/namespaces/default/cronjobs"
    for field, cj in (
        ("spec.schedule", cronjob_yaml("bad", "61 * * * *")),
        ("spec.schedule", cronjob_yaml("bad", "every minute")),
        ("spec.timeZone", cronjob_yaml("bad", "* * * * *", timeZone="Mars/Olympus")),
    ):
        async with raw.session.post(url, json=cj, headers=raw.headers()) as response:
            body = await response.json()
        assert response.status == 422, body
        assert body["reason"] == "Invalid"
        assert [c["field"] for c in body["details"]["causes"]] == [field]
