"""Jobs and CronJobs as a user drives them, with the real kubectl and real processes:
``apply``, ``wait --for=condition=complete``, ``get jobs``, ``logs job/x``, ``create job
--from=cronjob/x``, a seconds CronJob that prunes its history, Forbid and Replace."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.agent.conftest import Cluster
from tests.batch.conftest import (
    CRONJOBS,
    JOBS,
    cronjob_yaml,
    dedent,
    dump,
    events_for,
    get_job,
    job_pods,
    wait_event,
    wait_for,
)
from tests.batch.test_jobs import intervals, max_overlap, timed
from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl


async def apply(kubectl: Kubectl, cluster: Cluster, manifest: str) -> None:
    path = cluster.tmp_path / "manifest.yaml"
    path.write_text(manifest)
    await kubectl("apply", "-f", str(path))


async def test_kubectl_runs_a_job_to_completion(kubectl: Kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        dedent(
            """
            apiVersion: batch/v1
            kind: Job
            metadata: {name: hello}
            spec:
              completions: 3
              parallelism: 2
              template:
                spec:
                  restartPolicy: Never
                  containers:
                  - name: main
                    command: ["sh", "-c", "echo hello from $POD_NAME"]
            """
        ),
    )
    waited = await kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=30s")
    assert waited.stdout.strip() == "job.batch/hello condition met"
    table = (await kubectl("get", "jobs")).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    name, status, completions, duration, _ = table[1].split()
    assert (name, status, completions) == ("hello", "Complete", "3/3")
    assert duration.endswith("s")
    logs = await kubectl("logs", "job/hello")
    assert logs.stdout.startswith("hello from hello-")
    pods = await kubectl("get", "pods", "-l", "job-name=hello", "-o", "json")
    assert len(json.loads(pods.stdout)["items"]) == 3


async def test_kubectl_sees_a_failed_job(kubectl: Kubectl, cluster: Cluster) -> None:
    await apply(
        kubectl,
        cluster,
        dump(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "broken"},
                "spec": {
                    "backoffLimit": 1,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "command": ["sh", "-c", "exit 2"]}],
                        }
                    },
                },
            }
        ),
    )
    waited = await kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=30s")
    assert "condition met" in waited.stdout
    row = (await kubectl("get", "job", "broken", "--no-headers")).stdout.split()
    assert row[1:3] == ["Failed", "0/1"]
    described = (await kubectl("describe", "job", "broken")).stdout
    assert "BackoffLimitExceeded" in described


async def test_kubectl_seconds_cronjob_prunes_history_suspends_and_runs_now(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    cj = cronjob_yaml("tick", "* * * * * *", "echo tick", successfulJobsHistoryLimit=2)
    await apply(kubectl, cluster, dump(cj))

    async def pruned() -> bool:
        events = await events_for(cluster.client, "tick")
        return sum(e["reason"] == "SuccessfulDelete" for e in events) >= 2

    await wait_for(pruned, timeout=20, what="two jobs pruned")
    jobs = json.loads((await kubectl("get", "jobs", "-o", "json")).stdout)["items"]
    complete = [
        j for j in jobs if any(c["type"] == "Complete" for c in j["status"].get("conditions") or [])
    ]
    assert len(complete) <= 2
    row = (await kubectl("get", "cronjob", "tick", "--no-headers")).stdout.split()
    # NAME, SCHEDULE (six words here), TIMEZONE, SUSPEND, ACTIVE, LAST SCHEDULE, AGE
    assert row[:9] == ["tick", "*", "*", "*", "*", "*", "*", "<none>", "False"]
    await kubectl("patch", "cronjob", "tick", "-p", '{"spec":{"suspend":true}}')
    await asyncio.sleep(0.3)
    before = {
        j["metadata"]["name"] for j in (await cluster.client.list(JOBS, namespace="default")).items
    }
    await asyncio.sleep(2.2)
    after = {
        j["metadata"]["name"] for j in (await cluster.client.list(JOBS, namespace="default")).items
    }
    assert not {n for n in after - before if n.startswith("tick-")}, (
        "a suspended CronJob runs nothing"
    )
    created = await kubectl("create", "job", "now", "--from=cronjob/tick")
    assert created.stdout.strip() == "job.batch/now created"
    await kubectl("wait", "--for=condition=complete", "job/now", "--timeout=30s")
    assert (await kubectl("logs", "job/now")).stdout == "tick\n"
    job = await get_job(cluster.client, "now")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["name"] == "tick"


async def test_forbid_never_overlaps_runs(cluster: Cluster) -> None:
    log = cluster.tmp_path / "runs.log"
    log.touch()
    cj = cronjob_yaml("solo", "* * * * * *", timed(log, "sleep 1.5"), concurrencyPolicy="Forbid")
    await cluster.client.create(CRONJOBS, cj, namespace="default")

    async def three_runs() -> bool:
        return len(intervals(log)) >= 3

    await wait_for(three_runs, timeout=20, what="three runs")
    assert max_overlap(intervals(log)) == 1
    await wait_event(cluster.client, "solo", "JobAlreadyActive")


async def test_replace_stops_the_running_job(cluster: Cluster) -> None:
    log = cluster.tmp_path / "runs.log"
    log.touch()
    cj = cronjob_yaml("swap", "*/2 * * * * *", timed(log, "sleep 60"), concurrencyPolicy="Replace")
    cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    await cluster.client.create(CRONJOBS, cj, namespace="default")

    async def started(n: int) -> bool:
        return log.read_text().count("start") >= n

    await wait_for(lambda: started(2), timeout=15, what="a second run")
    start = time.monotonic()

    async def first_gone() -> Any:
        cron = await cluster.client.get(CRONJOBS, "swap", namespace="default")
        active = cron["status"].get("active") or []
        jobs = [
            j
            for j in (await cluster.client.list(JOBS, namespace="default")).items
            if j["metadata"]["name"].startswith("swap-")
        ]
        return len(active) == 1 and len(jobs) == 1

    await wait_for(first_gone, what="only the new run left")
    assert time.monotonic() - start < 10
    name = (await cluster.client.get(CRONJOBS, "swap", namespace="default"))["status"]["active"][0][
        "name"
    ]
    pods = await job_pods(cluster.client, name)
    assert len(pods) == 1
