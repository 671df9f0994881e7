"""Jobs run as real processes: completions and parallelism, failures and the back-off, the
deadline, Indexed mode, the pod failure policy, suspend, TTL, and exact counting through the
tracking finalizer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psutil

from tests.agent.conftest import Cluster
from tests.batch.conftest import (
    JOBS,
    PODS,
    condition,
    events_for,
    get_job,
    job_pods,
    job_yaml,
    wait_event,
    wait_for,
    wait_job,
)


def intervals(log: Path) -> list[tuple[float, float]]:
    """(start, end) of every run that wrote ``start T`` and ``end T`` lines with its pid."""
    starts: dict[str, float] = {}
    spans = []
    for line in log.read_text().splitlines():
        what, pid, stamp = line.split()
        if what == "start":
            starts[pid] = float(stamp)
        else:
            spans.append((starts.pop(pid), float(stamp)))
    return spans


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def timed(log: Path, body: str) -> str:
    """A shell command that logs its start and end (with its pid) around ``body``."""
    return (
        f"echo start $$$$ $(date +%s.%N) >> {log}; {body}; rc=$?; "
        f"echo end $$$$ $(date +%s.%N) >> {log}; exit $rc"
    )


async def test_completions_3_parallelism_2_never_runs_more_than_2(cluster: Cluster) -> None:
    log = cluster.tmp_path / "runs.log"
    log.touch()
    job = job_yaml("par", timed(log, "sleep 0.6"), completions=3, parallelism=2)
    await cluster.client.create(JOBS, job, namespace="default")
    seen_active: list[int] = []

    async def watch_active() -> None:
        while True:
            current = await get_job(cluster.client, "par")
            seen_active.append(int(current["status"].get("active") or 0))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_active())
    try:
        done = await wait_job(cluster.client, "par", "Complete")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    spans = intervals(log)
    assert len(spans) == 3
    assert max_overlap(spans) == 2
    assert max(seen_active) == 2
    status = done["status"]
    assert status["succeeded"] == 3 and "failed" not in status and "active" not in status
    assert status["startTime"] and status["completionTime"]
    assert status["ready"] == 0 and status["terminating"] == 0
    assert status["uncountedTerminatedPods"] == {}
    assert condition(done, "SuccessCriteriaMet")["reason"] == "CompletionsReached"
    pods = await job_pods(cluster.client, "par")
    assert len(pods) == 3
    uid = done["metadata"]["uid"]
    for pod in pods:
        meta = pod["metadata"]
        assert meta["generateName"] == "par-"
        assert meta["labels"]["job-name"] == meta["labels"]["batch.kubernetes.io/job-name"] == "par"
        assert meta["labels"]["controller-uid"] == uid
        assert meta["labels"]["batch.kubernetes.io/controller-uid"] == uid
        assert meta["ownerReferences"][0]["uid"] == uid
        assert meta["ownerReferences"][0]["controller"] is True
        assert not meta.get("finalizers"), "counted pods keep no tracking finalizer"
        assert pod["status"]["phase"] == "Succeeded"
    await wait_event(cluster.client, "par", "Completed")
    reasons = [e["reason"] for e in await events_for(cluster.client, "par")]
    assert reasons.count("SuccessfulCreate") == 3


async def test_backoff_limit_1_fails_after_two_pods_with_a_backoff_between(
    cluster: Cluster,
) -> None:
    log = cluster.tmp_path / "runs.log"
    log.touch()
    job = job_yaml("flaky", timed(log, "false"), backoffLimit=1)
    await cluster.client.create(JOBS, job, namespace="default")
    failed = await wait_job(cluster.client, "flaky", "Failed")
    cond = condition(failed, "Failed")
    assert cond["reason"] == "BackoffLimitExceeded"
    assert cond["message"] == "Job has reached the specified backoff limit"
    assert condition(failed, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 2
    assert "completionTime" not in failed["status"]
    assert len(await job_pods(cluster.client, "flaky")) == 2
    (_, first_end), (second_start, _) = sorted(intervals(log))
    # PROCORCH_JOB_BACKOFF=0.2 s here (10 s by default), counted from the first failure.
    assert second_start - first_end >= 0.15
    # Events are written in the background, after the status that they report.
    await wait_event(cluster.client, "flaky", "BackoffLimitExceeded")


async def test_active_deadline_kills_running_pods_and_fails_the_job(cluster: Cluster) -> None:
    job = job_yaml("slow", "sleep 60", activeDeadlineSeconds=2, parallelism=2, completions=2)
    await cluster.client.create(JOBS, job, namespace="default")

    async def both_running() -> list[str]:
        pods = await job_pods(cluster.client, "slow")
        names = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
        return names if len(names) == 2 else []

    names = set(await wait_for(both_running, what="pods running"))
    sleepers: dict[psutil.Process, str] = {}
    for proc in psutil.process_iter(["cmdline"]):
        if "sleep 60" in " ".join(proc.info["cmdline"] or []):
            try:
                pod = proc.environ().get("POD_NAME", "")
            except psutil.Error:
                continue
            if pod in names:
                sleepers[proc] = pod
    assert set(sleepers.values()) == names
    started = time.monotonic()
    failed = await wait_job(cluster.client, "slow", "Failed", timeout=20)
    assert time.monotonic() - started < 10
    cond = condition(failed, "Failed")
    assert cond["reason"] == "DeadlineExceeded"
    assert cond["message"] == "Job was active longer than specified deadline"
    assert failed["status"]["failed"] == 2
    assert not failed["status"].get("active")
    for proc in sleepers:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE


async def test_indexed_job_gives_each_pod_its_index(cluster: Cluster) -> None:
    out = cluster.tmp_path / "indexes"
    out.mkdir()
    job = job_yaml(
        "idx",
        f'echo "$JOB_COMPLETION_INDEX $(hostname)" > {out}/$JOB_COMPLETION_INDEX',
        completionMode="Indexed",
        completions=3,
        parallelism=3,
    )
    await cluster.client.create(JOBS, job, namespace="default")
    done = await wait_job(cluster.client, "idx", "Complete")
    assert done["status"]["completedIndexes"] == "0-2"
    assert done["status"]["succeeded"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2"]
    for index in range(3):
        assert (out / str(index)).read_text().split()[0] == str(index)
    pods = await job_pods(cluster.client, "idx")
    by_index = {}
    for pod in pods:
        meta = pod["metadata"]
        index = meta["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert meta["generateName"] == f"idx-{index}-"
        assert pod["spec"]["hostname"] == f"idx-{index}"
        env = pod["spec"]["containers"][0]["env"]
        assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1",
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
        }}} in env  # fmt: skip
        by_index[index] = pod
    assert sorted(by_index) == ["0", "1", "2"]


async def test_pod_failure_policy_ignore_count_and_fail_job(cluster: Cluster) -> None:
    marker = cluster.tmp_path / "ran-once"
    rules = [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [3, 42]}},
    ]
    # First run exits 3 (ignored: not counted against backoffLimit 0), the second succeeds.
    await cluster.client.create(
        JOBS,
        job_yaml(
            "ignored",
            f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 3",
            backoffLimit=0,
            podFailurePolicy={"rules": rules},
        ),
        namespace="default",
    )
    done = await wait_job(cluster.client, "ignored", "Complete")
    assert done["status"]["succeeded"] == 1 and not done["status"].get("failed")
    assert len(await job_pods(cluster.client, "ignored")) == 2
    # Exit 42 fails the Job at once, whatever the backoffLimit.
    await cluster.client.create(
        JOBS,
        job_yaml("fatal", "exit 42", backoffLimit=5, podFailurePolicy={"rules": rules}),
        namespace="default",
    )
    failed = await wait_job(cluster.client, "fatal", "Failed")
    cond = condition(failed, "Failed")
    assert cond["reason"] == "PodFailurePolicy"
    pod = (await job_pods(cluster.client, "fatal"))[0]
    assert cond["message"] == (
        f"Container main for pod default/{pod['metadata']['name']} failed with exit code 42 "
        "matching FailJob rule at index 0"
    )
    assert failed["status"]["failed"] == 1
    # Exit 7 is counted: backoffLimit 0 fails the Job on the first one.
    await cluster.client.create(
        JOBS,
        job_yaml("counted", "exit 7", backoffLimit=0, podFailurePolicy={"rules": rules}),
        namespace="default",
    )
    counted = await wait_job(cluster.client, "counted", "Failed")
    assert condition(counted, "Failed")["reason"] == "BackoffLimitExceeded"


async def test_on_failure_restarts_in_place_and_counts_restarts(cluster: Cluster) -> None:
    marker = cluster.tmp_path / "failed-once"
    await cluster.client.create(
        JOBS,
        job_yaml(
            "again",
            f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 1",
            restartPolicy="OnFailure",
            backoffLimit=2,
        ),
        namespace="default",
    )
    done = await wait_job(cluster.client, "again", "Complete")
    pods = await job_pods(cluster.client, "again")
    assert len(pods) == 1, "OnFailure restarts the container, not the pod"
    assert pods[0]["status"]["containerStatuses"][0]["restartCount"] == 1
    assert done["status"]["succeeded"] == 1 and not done["status"].get("failed")
    # Always failing: restarts count towards backoffLimit.
    await cluster.client.create(
        JOBS,
        job_yaml("never", "exit 1", restartPolicy="OnFailure", backoffLimit=1),
        namespace="default",
    )
    failed = await wait_job(cluster.client, "never", "Failed")
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    # Its one pod was restarted in place, then deleted with the Job's failure.
    reasons = [e["reason"] for e in await events_for(cluster.client, "never")]
    assert reasons.count("SuccessfulCreate") == 1
    assert failed["status"]["failed"] == 1


async def test_suspend_deletes_pods_uncounted_and_resume_runs_them(cluster: Cluster) -> None:
    await cluster.client.create(
        JOBS,
        job_yaml("later", "sleep 60", suspend=True, parallelism=2, completions=2),
        namespace="default",
    )

    async def suspended() -> dict[str, Any] | None:
        job = await get_job(cluster.client, "later")
        return job if condition(job, "Suspended") else None

    job = await wait_for(suspended, what="Suspended condition")
    assert condition(job, "Suspended")["reason"] == "JobSuspended"
    assert "startTime" not in job["status"]
    assert await job_pods(cluster.client, "later") == []
    await cluster.client.patch(JOBS, "later", {"spec": {"suspend": False}}, namespace="default")

    async def two_running() -> bool:
        pods = await job_pods(cluster.client, "later")
        return sum(p["status"].get("phase") == "Running" for p in pods) == 2

    await wait_for(two_running, what="2 pods running")
    job = await get_job(cluster.client, "later")
    resumed = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert resumed["status"] == "False" and resumed["reason"] == "JobResumed"
    assert job["status"]["startTime"]
    # Suspending again stops the pods without counting them as failures.
    await cluster.client.patch(JOBS, "later", {"spec": {"suspend": True}}, namespace="default")

    async def no_pods() -> bool:
        return await job_pods(cluster.client, "later") == []

    await wait_for(no_pods, what="pods gone")
    job = await get_job(cluster.client, "later")
    assert not job["status"].get("failed") and not job["status"].get("active")
    assert condition(job, "Suspended")


async def test_ttl_after_finished_deletes_the_job_and_its_pods(cluster: Cluster) -> None:
    await cluster.client.create(
        JOBS, job_yaml("brief", "true", ttlSecondsAfterFinished=1), namespace="default"
    )
    await wait_job(cluster.client, "brief", "Complete")

    async def gone() -> bool:
        jobs = await cluster.client.list(JOBS, namespace="default")
        pods = await job_pods(cluster.client, "brief")
        return not jobs.items and not pods

    await wait_for(gone, timeout=15, what="job and pods deleted")


async def test_a_deleted_running_pod_counts_as_failed_and_is_replaced(cluster: Cluster) -> None:
    await cluster.client.create(
        JOBS, job_yaml("victim", "sleep 60", backoffLimit=3), namespace="default"
    )

    async def running() -> dict[str, Any] | None:
        pods = await job_pods(cluster.client, "victim")
        return next((p for p in pods if p["status"].get("phase") == "Running"), None)

    first = await wait_for(running, what="a running pod")
    await cluster.client.delete(PODS, first["metadata"]["name"], namespace="default")

    async def replaced() -> dict[str, Any] | None:
        job = await get_job(cluster.client, "victim")
        pods = await job_pods(cluster.client, "victim")
        others = [p for p in pods if p["metadata"]["uid"] != first["metadata"]["uid"]]
        return job if job["status"].get("failed") == 1 and others else None

    job = await wait_for(replaced, what="failure counted and pod replaced")
    assert not condition(job, "Failed")

    async def first_gone() -> bool:
        pods = await job_pods(cluster.client, "victim")
        return all(p["metadata"]["uid"] != first["metadata"]["uid"] for p in pods)

    await wait_for(first_gone, what="deleted pod gone (finalizer removed)")


async def test_deleting_a_job_deletes_its_pods_without_leaving_finalizers(cluster: Cluster) -> None:
    await cluster.client.create(
        JOBS, job_yaml("doomed", "sleep 60", parallelism=2, completions=4), namespace="default"
    )

    async def two() -> bool:
        pods = await job_pods(cluster.client, "doomed")
        return sum(p["status"].get("phase") == "Running" for p in pods) == 2

    await wait_for(two, what="2 pods running")
    await cluster.client.delete(
        JOBS, "doomed", namespace="default", propagation_policy="Background"
    )

    async def none_left() -> bool:
        return await job_pods(cluster.client, "doomed") == []

    await wait_for(none_left, timeout=15, what="pods deleted")


async def test_a_work_queue_job_completes_after_one_success(cluster: Cluster) -> None:
    marker = cluster.tmp_path / "first"
    # parallelism 2 without completions: one pod succeeds, the other finishes too.
    await cluster.client.create(
        JOBS,
        job_yaml(
            "queue", f"mkdir {marker} 2>/dev/null && exit 0; sleep 0.5; exit 0", parallelism=2
        ),
        namespace="default",
    )
    done = await wait_job(cluster.client, "queue", "Complete")
    assert done["status"]["succeeded"] == 2
    assert "completions" not in done["spec"]


async def test_lowering_parallelism_deletes_pods_without_counting_them(cluster: Cluster) -> None:
    await cluster.client.create(
        JOBS, job_yaml("wide", "sleep 60", parallelism=3, completions=3), namespace="default"
    )

    async def running(n: int) -> bool:
        pods = await job_pods(cluster.client, "wide")
        return sum(p["status"].get("phase") == "Running" for p in pods) == n

    await wait_for(lambda: running(3), what="3 running")
    await cluster.client.patch(JOBS, "wide", {"spec": {"parallelism": 1}}, namespace="default")

    async def one_left() -> dict[str, Any] | None:
        job = await get_job(cluster.client, "wide")
        pods = await job_pods(cluster.client, "wide")
        return job if len(pods) == 1 and job["status"].get("active") == 1 else None

    job = await wait_for(one_left, what="scaled to 1")
    assert not job["status"].get("failed")
