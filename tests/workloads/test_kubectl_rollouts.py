"""Deployments driven with real kubectl against real processes: rollout status, scale,
self-healing, rolling updates, history and undo, pause/resume/restart, a crashing version."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from procorch.controllers.deployment_util import HASH_LABEL, REVISION
from tests.agent.conftest import Cluster, ready
from tests.conftest import Kubectl
from tests.workloads.conftest import (
    DEPLOYMENTS,
    REPLICASETS,
    apply,
    deployment,
    eventually,
    get,
    pods_of,
    processes,
)

pytestmark = pytest.mark.kubectl

HTTP_READY = """
ports: [{containerPort: 8080}]
readinessProbe:
  httpGet: {path: /, port: 8080}
  periodSeconds: 1
"""


async def test_rollout_status_completes_and_processes_follow_scale(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, deployment("web", command=["sleep", "601"]))
    out = await kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in out.stdout
    assert len(processes("sleep 601")) == 3
    table = (await kubectl("get", "deploy", "web", "--no-headers")).stdout.split()
    assert table[:4] == ["web", "3/3", "3", "3"]

    await kubectl("scale", "deployment/web", "--replicas=5")
    await kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await eventually(lambda: _count(5), what="5 processes")

    await kubectl("scale", "deployment/web", "--replicas=1")
    await eventually(lambda: _count(1), what="1 process")
    await eventually(lambda: _pods(cluster, "web", 1), what="1 pod")
    rs_list = (await cluster.client.list(REPLICASETS, namespace="default")).items
    assert [r["spec"]["replicas"] for r in rs_list] == [1]


async def _count(n: int) -> bool:
    return len(processes("sleep 601")) == n


async def _pods(cluster: Cluster, app: str, n: int) -> bool:
    return len(await pods_of(cluster, app)) == n


async def test_a_deleted_pod_is_replaced(kubectl: Kubectl, cluster: Cluster) -> None:
    await apply(kubectl, cluster, deployment("heal", replicas=2, command=["sleep", "602"]))
    await kubectl("rollout", "status", "deployment/heal", "--timeout=60s")
    victim = (await pods_of(cluster, "heal"))[0]["metadata"]["name"]
    await kubectl("delete", "pod", victim)

    async def replaced() -> bool:
        pods = await pods_of(cluster, "heal")
        names = {p["metadata"]["name"] for p in pods}
        return victim not in names and len(pods) == 2 and all(ready(p) for p in pods)

    await eventually(replaced, what="a replacement pod")
    assert len(processes("sleep 602")) == 2


async def test_set_env_rolls_out_without_dropping_below_ready_then_undo_reuses_the_old_set(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    manifest = deployment(
        "roll",
        command=["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
        extra_spec="strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}",
        container_extra=HTTP_READY,
    )
    await apply(kubectl, cluster, manifest)
    await kubectl("rollout", "status", "deployment/roll", "--timeout=60s")
    first_rs = await _new_rs(cluster, "roll")

    lowest = [3]
    stop = asyncio.Event()

    async def watch_ready() -> None:
        while not stop.is_set():
            pods = await pods_of(cluster, "roll")
            lowest[0] = min(lowest[0], sum(1 for p in pods if ready(p)))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_ready())
    try:
        await kubectl("set", "env", "deployment/roll", "GREETING=hello")
        out = await kubectl("rollout", "status", "deployment/roll", "--timeout=90s", timeout=100)
        assert "successfully rolled out" in out.stdout
    finally:
        stop.set()
        await watcher
    assert lowest[0] >= 3, f"ready pods dropped to {lowest[0]} during the rollout"
    second_rs = await _new_rs(cluster, "roll")
    assert second_rs["metadata"]["name"] != first_rs["metadata"]["name"]

    history = (await kubectl("rollout", "history", "deployment/roll")).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    await kubectl("rollout", "undo", "deployment/roll")
    await kubectl("rollout", "status", "deployment/roll", "--timeout=90s", timeout=100)
    back = await _new_rs(cluster, "roll")
    assert back["metadata"]["name"] == first_rs["metadata"]["name"]
    assert back["metadata"]["annotations"][REVISION] == "3"
    d = await get(cluster, DEPLOYMENTS, "roll")
    assert d is not None and d["metadata"]["annotations"][REVISION] == "3"
    assert "env" not in d["spec"]["template"]["spec"]["containers"][0]
    history = (await kubectl("rollout", "history", "deployment/roll")).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    assert len(await _replica_sets(cluster, "roll")) == 2


async def _replica_sets(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    listed = await cluster.client.list(
        REPLICASETS, namespace="default", label_selector=f"app={app}"
    )
    return listed.items


async def _new_rs(cluster: Cluster, app: str) -> dict[str, Any]:
    d = await get(cluster, DEPLOYMENTS, app)
    assert d is not None
    revision = d["metadata"]["annotations"][REVISION]
    for rs in await _replica_sets(cluster, app):
        if rs["metadata"]["annotations"].get(REVISION) == revision:
            return rs
    raise AssertionError(f"no ReplicaSet of revision {revision}")


async def test_pause_holds_template_changes_until_resume_and_restart_replaces_pods(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, deployment("hold", replicas=2, command=["sleep", "603"]))
    await kubectl("rollout", "status", "deployment/hold", "--timeout=60s")
    await kubectl("rollout", "pause", "deployment/hold")
    again = await kubectl("rollout", "pause", "deployment/hold", check=False)
    assert again.returncode != 0 and "already paused" in again.stderr
    await kubectl("set", "env", "deployment/hold", "A=1")

    async def paused_condition() -> bool:
        d = await get(cluster, DEPLOYMENTS, "hold")
        conds = {c["type"]: c for c in (d or {}).get("status", {}).get("conditions", [])}
        return conds.get("Progressing", {}).get("reason") == "DeploymentPaused"

    await eventually(paused_condition, what="the DeploymentPaused condition")
    await asyncio.sleep(0.5)
    assert len(await _replica_sets(cluster, "hold")) == 1  # nothing rolled out while paused

    await kubectl("rollout", "resume", "deployment/hold")
    await kubectl("rollout", "status", "deployment/hold", "--timeout=60s")
    assert len(await _replica_sets(cluster, "hold")) == 2
    before = {p["metadata"]["name"] for p in await pods_of(cluster, "hold")}

    await kubectl("rollout", "restart", "deployment/hold")
    await kubectl("rollout", "status", "deployment/hold", "--timeout=60s")
    await eventually(lambda: _pods(cluster, "hold", 2), what="2 pods")
    after = {p["metadata"]["name"] for p in await pods_of(cluster, "hold")}
    assert not before & after
    newest = await _new_rs(cluster, "hold")
    template_annotations = newest["spec"]["template"]["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/restartedAt" in template_annotations
    history = (await kubectl("rollout", "history", "deployment/hold")).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2", "3"]


async def test_a_crashing_version_stalls_keeps_the_old_pods_and_fails_rollout_status(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    manifest = deployment(
        "crash", command=["sleep", "604"], extra_spec="progressDeadlineSeconds: 3"
    )
    await apply(kubectl, cluster, manifest)
    await kubectl("rollout", "status", "deployment/crash", "--timeout=60s")
    await kubectl(
        "patch",
        "deployment/crash",
        "--type=json",
        '-p=[{"op":"replace","path":"/spec/template/spec/containers/0/command",'
        '"value":["sh","-c","echo starting; exit 1"]}]',
    )
    out = await kubectl("rollout", "status", "deployment/crash", "--timeout=60s", check=False)
    assert out.returncode == 1
    assert 'deployment "crash" exceeded its progress deadline' in out.stderr
    d = await get(cluster, DEPLOYMENTS, "crash")
    assert d is not None
    progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False"
    assert progressing["reason"] == "ProgressDeadlineExceeded"
    # The old version still runs in full.
    assert len(processes("sleep 604")) == 3
    old = [p for p in await pods_of(cluster, "crash") if ready(p)]
    assert len(old) == 3
    sets = {r["metadata"]["labels"][HASH_LABEL]: r for r in await _replica_sets(cluster, "crash")}
    assert sorted(r["spec"]["replicas"] for r in sets.values()) == [1, 3]
    described = (await kubectl("describe", "deployment", "crash")).stdout
    assert "ProgressDeadlineExceeded" in described
