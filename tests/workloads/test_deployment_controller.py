"""Deployment behaviours through the API, with real pods: Recreate, proportional scaling of a
paused rollout, history limits, minReadySeconds, change-cause, graceful cascading deletion."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import yaml

from procorch.api.resources import by_kind
from procorch.controllers.deployment_util import HASH_LABEL, REVISION
from tests.agent.conftest import Cluster
from tests.workloads.conftest import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    deployment,
    eventually,
    get,
    pods_of,
    processes,
    rolled_out,
)


async def create(cluster: Cluster, manifest: str) -> None:
    for doc in yaml.safe_load_all(manifest):
        rt = by_kind(doc["apiVersion"], doc["kind"])
        assert rt is not None
        await cluster.client.create(rt, doc, namespace="default")


async def patch(cluster: Cluster, name: str, body: dict[str, Any]) -> None:
    await cluster.client.patch(DEPLOYMENTS, name, body, namespace="default", patch_type="strategic")


def set_command(*command: str) -> dict[str, Any]:
    return {
        "spec": {"template": {"spec": {"containers": [{"name": "main", "command": list(command)}]}}}
    }


async def replica_sets(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    listed = await cluster.client.list(
        REPLICASETS, namespace="default", label_selector=f"app={app}"
    )
    return sorted(listed.items, key=lambda r: int(r["metadata"]["annotations"].get(REVISION, 0)))


async def test_recreate_stops_every_old_process_before_starting_new_ones(cluster: Cluster) -> None:
    await create(
        cluster,
        deployment("rec", command=["sleep", "631"], extra_spec="strategy: {type: Recreate}"),
    )
    await eventually(lambda: rolled_out(cluster, "rec"), what="first rollout")
    overlap = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            if processes("sleep 631") and processes("sleep 632"):
                overlap.append(True)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        await patch(cluster, "rec", set_command("sleep", "632"))
        await eventually(lambda: rolled_out(cluster, "rec"), what="recreated")
    finally:
        stop.set()
        await watcher
    assert not overlap, "old and new processes ran at the same time"
    assert len(processes("sleep 632")) == 3 and not processes("sleep 631")


async def test_scaling_a_paused_rollout_shares_replicas_in_proportion(cluster: Cluster) -> None:
    never_ready = """
    readinessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
    """
    await create(cluster, deployment("prop", replicas=4, command=["sleep", "633"]))
    await eventually(lambda: rolled_out(cluster, "prop"), what="first rollout")
    # A new version that never becomes ready: the rollout stops at old 3 + new 2.
    await patch(
        cluster,
        "prop",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "command": ["sleep", "634"],
                                **yaml.safe_load(textwrap.dedent(never_ready)),
                            }
                        ]
                    }
                }
            }
        },
    )

    async def sizes(expected: list[int]) -> bool:
        return [r["spec"]["replicas"] for r in await replica_sets(cluster, "prop")] == expected

    await eventually(lambda: sizes([3, 2]), what="old 3 + new 2")
    await patch(cluster, "prop", {"spec": {"paused": True}})
    await cluster.client.patch(
        DEPLOYMENTS, "prop", {"spec": {"replicas": 8}}, namespace="default", subresource="scale"
    )
    # 8 replicas + maxSurge 2 = 10, shared 3:2 as the ReplicaSets' sizes were.
    await eventually(lambda: sizes([6, 4]), what="old 6 + new 4")
    d = await get(cluster, DEPLOYMENTS, "prop")
    assert d is not None
    assert all(
        r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "8"
        for r in await replica_sets(cluster, "prop")
    )


async def test_old_replica_sets_beyond_the_history_limit_are_deleted(cluster: Cluster) -> None:
    await create(
        cluster,
        deployment(
            "hist", replicas=1, command=["sleep", "635"], extra_spec="revisionHistoryLimit: 1"
        ),
    )
    for n in range(3):
        await eventually(lambda: rolled_out(cluster, "hist"), what=f"rollout {n}")
        await patch(cluster, "hist", set_command("sleep", f"{636 + n}"))
    await eventually(lambda: rolled_out(cluster, "hist"), what="last rollout")

    async def two_left() -> list[dict[str, Any]]:
        sets = await replica_sets(cluster, "hist")
        return sets if len(sets) == 2 else []

    sets = await eventually(two_left, what="history trimmed to 1 old ReplicaSet")
    assert [r["metadata"]["annotations"][REVISION] for r in sets] == ["3", "4"]


async def test_min_ready_seconds_holds_availability_back(cluster: Cluster) -> None:
    await create(
        cluster,
        deployment("slow", replicas=2, command=["sleep", "640"], extra_spec="minReadySeconds: 2"),
    )

    async def all_ready() -> dict[str, Any] | None:
        d = await get(cluster, DEPLOYMENTS, "slow")
        status = (d or {}).get("status") or {}
        return status if status.get("readyReplicas") == 2 else None

    status = await all_ready() or await eventually(all_ready, what="ready pods")
    assert status.get("availableReplicas", 0) < 2
    loop = asyncio.get_running_loop()
    started = loop.time()
    await eventually(lambda: rolled_out(cluster, "slow"), what="available after 2 s")
    assert loop.time() - started > 0.5


async def test_change_cause_is_copied_to_the_new_replica_set(cluster: Cluster) -> None:
    await create(cluster, deployment("why", replicas=1, command=["sleep", "641"]))
    await eventually(lambda: rolled_out(cluster, "why"), what="first rollout")
    await patch(
        cluster,
        "why",
        {
            "metadata": {"annotations": {"kubernetes.io/change-cause": "sleep longer"}},
            **set_command("sleep", "642"),
        },
    )
    await eventually(lambda: rolled_out(cluster, "why"), what="second rollout")
    newest = (await replica_sets(cluster, "why"))[-1]
    assert newest["metadata"]["annotations"]["kubernetes.io/change-cause"] == "sleep longer"
    assert newest["metadata"]["name"] == f"why-{newest['metadata']['labels'][HASH_LABEL]}"
    assert (
        newest["spec"]["selector"]["matchLabels"][HASH_LABEL]
        == (newest["metadata"]["labels"][HASH_LABEL])
    )


async def test_pods_of_a_deleted_deployment_get_sigterm_and_their_grace(cluster: Cluster) -> None:
    marks = cluster.tmp_path / "bye"
    marks.mkdir()
    script = f'trap "touch {marks}/$POD_NAME; exit 0" TERM; while true; do sleep 0.1; done'
    await create(cluster, deployment("polite", replicas=2, command=["sh", "-c", script]))
    await eventually(lambda: rolled_out(cluster, "polite"), what="rollout")
    names = {p["metadata"]["name"] for p in await pods_of(cluster, "polite")}
    await cluster.client.delete(DEPLOYMENTS, "polite", namespace="default")

    async def all_gone() -> bool:
        left = (await cluster.client.list(PODS, namespace="default")).items
        return not left and not processes("while true; do sleep 0.1")

    await eventually(all_gone, what="pods and processes gone")
    assert {p.name for p in marks.iterdir()} == names  # each one handled its SIGTERM
