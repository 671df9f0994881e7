"""Crash trials with process audits: after ``procorch up`` is SIGKILLed, steady or in the
middle of a rolling update, and restarted, the node runs exactly the pods the API says it
runs - each one process in the supervisor's tree, none orphaned, none twice - and no
container was restarted that should not have been.

Each trial kills ``procorch up`` (alone, with its process group, or with the node supervisor,
in turn) while a Deployment of 3 web pods is steady, or, every other trial, during a
``rollout restart``: after a random number (0 to 2) of its pods were replaced. After the
restart the rollout must complete, and the audit (psutil, against the API's pods) must show:

* one node supervisor, and 3 container processes, each its direct child;
* no process of any other pod (the replaced ones were stopped, even those whose grace period
  the crash interrupted) and none outside the supervisor's tree;
* restart counts: unchanged for a pod that lived through the crash (one more when the
  supervisor died too: its containers were started again), 0 for pods created since; and the
  very same processes when only procorch died while steady (they were adopted).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from reliability_harness import (
    DEPLOYMENTS,
    KILLS,
    Audit,
    audit,
    deployment,
    node_dir_cleanup,
    node_processes,
    procorch_up,
    report,
    restart_patch,
    rolled_out,
    settled_audit,
    trials,
    wait_for,
)

REPLICAS = 3


def _unexpected_restarts(before: Audit, after: Audit, *, supervisor_killed: bool) -> list[str]:
    """Containers whose restart count is not what the crash explains."""
    wrong: list[str] = []
    for key, count in after.restarts.items():
        uid = key[0]
        if key in before.restarts:
            allowed = {before.restarts[key] + (1 if supervisor_killed else 0)}
        elif uid in before.pod_uids and supervisor_killed:
            allowed = {0, 1}  # its container may have started just before the kill
        else:
            allowed = {0}
        if count not in allowed:
            wrong.append(f"{key}: restartCount {count}, expected {sorted(allowed)}")
    return wrong


async def _progressed(client: Any, replaced: int) -> bool:
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    status = d.get("status") or {}
    return (
        status.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and status.get("updatedReplicas", 0) >= replaced
    )


@pytest.mark.slow
async def test_after_a_crash_the_node_runs_exactly_the_expected_pod_processes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    rng = random.Random(11)
    count = trials(2)
    figures = dict.fromkeys(("trials", "during_rollout", "adopted", "orphans", "duplicates"), 0)
    figures["unexpected_restarts"] = 0
    before: Audit | None = None
    how = KILLS[0]
    during_rollout = False
    async with node_dir_cleanup(data):
        for incarnation in range(count + 1):
            async with procorch_up(data) as up:
                await up.wait_ready()
                client = up.client()
                try:
                    if incarnation == 0:
                        await client.create(
                            DEPLOYMENTS,
                            deployment("web", replicas=REPLICAS, web=True),
                            namespace="default",
                        )
                    await wait_for(
                        lambda c=client: rolled_out(c, "web"),
                        timeout=60,
                        what=f"the Deployment rolled out (after kill -9 of {how})",
                    )
                    after = await settled_audit(client, data, pods=REPLICAS)
                    if before is not None:
                        killed_supervisor = how == "supervisor"
                        wrong = _unexpected_restarts(
                            before, after, supervisor_killed=killed_supervisor
                        )
                        figures["unexpected_restarts"] += len(wrong)
                        assert not wrong, (
                            f"after kill -9 ({how}, rollout={during_rollout}): {wrong}"
                        )
                        if not during_rollout and not killed_supervisor:
                            assert after.found.pids == before.found.pids, (
                                f"kill -9 ({how}): the pods' processes were replaced, not "
                                f"adopted: {before.found.pids} then {after.found.pids}"
                            )
                            figures["adopted"] += len(after.found.pids)
                        figures["orphans"] += after.orphans
                        figures["duplicates"] += after.duplicates
                        figures["trials"] += 1
                        figures["during_rollout"] += during_rollout
                    if incarnation == count:
                        assert await up.stop() == 0, up.log_tail()
                        break
                    trial = incarnation
                    during_rollout = trial % 2 == 1
                    how = KILLS[(trial // 2) % len(KILLS)]
                    if during_rollout:
                        await client.patch(
                            DEPLOYMENTS,
                            "web",
                            restart_patch(),
                            namespace="default",
                            patch_type="strategic",
                        )
                        replaced = rng.randrange(0, REPLICAS)
                        await wait_for(
                            lambda c=client, r=replaced: _progressed(c, r),
                            timeout=60,
                            what=f"{replaced} pods replaced",
                            interval=0.02,
                        )
                    before = await audit(client, data)
                finally:
                    await client.close()
                await up.kill(how)
        left = node_processes(data)
        assert not left.supervisors and not left.pods, f"left after SIGTERM: {left}"
    report("crash audits", **figures)
