"""Rolling out a Deployment: the RollingUpdate and Recreate strategies, and progress.

Kubernetes' ``rolling.go``, ``recreate.go`` and ``progress.go``:

* **RollingUpdate** grows the new ReplicaSet while the total stays within ``replicas +
  maxSurge``, then shrinks old ones while the available pods stay at least ``replicas -
  maxUnavailable`` (old ReplicaSets' unavailable pods go first, then the oldest ReplicaSets).
  One step per reconcile; the next comes when a ReplicaSet's status changes.
* **Recreate** scales every old ReplicaSet to zero, waits until none of their pods is left
  running, then creates (or scales up) the new one.
* **Progress**: the Progressing condition says ``NewReplicaSetCreated``/``FoundNewReplicaSet``,
  ``ReplicaSetUpdated`` (its ``lastUpdateTime`` moves whenever pods are updated, become ready
  or available, or old ones go), ``NewReplicaSetAvailable`` once complete, and
  ``ProgressDeadlineExceeded`` (status False) when nothing moved for
  ``progressDeadlineSeconds``. A stalled rollout is looked at again when its deadline falls due.

The functions take the :class:`~procorch.controllers.deployment.DeploymentController` whose
reconcile is running (for its client, caches and writes) and the working copies it made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from procorch.api.meta import now, parse_time
from procorch.controllers import deployment_scale
from procorch.controllers import deployment_util as du

if TYPE_CHECKING:
    from procorch.controllers.deployment import DeploymentController

Obj = dict[str, Any]


async def rolling(ctl: DeploymentController, d: Obj, rs_list: list[Obj]) -> float | None:
    new_rs, old_rss = await ctl.get_all_replica_sets(d, rs_list, create=True)
    assert new_rs is not None
    all_rss: list[Obj | None] = [*old_rss, new_rs]
    if await _reconcile_new(ctl, all_rss, new_rs, d):
        return await sync_rollout_status(ctl, all_rss, new_rs, d)
    if await _reconcile_old(ctl, all_rss, du.active(old_rss), new_rs, d):
        return await sync_rollout_status(ctl, all_rss, new_rs, d)
    if du.complete(d, d["status"]):
        await deployment_scale.cleanup(ctl, old_rss, d)
    return await sync_rollout_status(ctl, all_rss, new_rs, d)


async def _reconcile_new(
    ctl: DeploymentController, all_rss: list[Obj | None], new_rs: Obj, d: Obj
) -> bool:
    wanted, size = du.replicas_of(d), du.replicas_of(new_rs)
    if size == wanted:
        return False
    if size > wanted:
        return await ctl.scale_replica_set(new_rs, wanted, d, "down")
    return await ctl.scale_replica_set(new_rs, du.new_rs_replicas(d, all_rss, new_rs), d)


async def _reconcile_old(
    ctl: DeploymentController,
    all_rss: list[Obj | None],
    old_rss: list[Obj],
    new_rs: Obj,
    d: Obj,
) -> bool:
    if du.total_replicas(list(old_rss)) == 0:
        return False
    min_available = du.replicas_of(d) - du.max_unavailable(d)
    new_unavailable = du.replicas_of(new_rs) - du.status_int(new_rs, "availableReplicas")
    max_scaled_down = du.total_replicas(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    # Unhealthy old pods first: they cost no availability.
    cleaned = await _cleanup_unhealthy(ctl, old_rss, d, max_scaled_down)
    scaled = await _scale_down_old(ctl, [*old_rss, new_rs], old_rss, d)
    return cleaned + scaled > 0


async def _cleanup_unhealthy(
    ctl: DeploymentController, old_rss: list[Obj], d: Obj, most: int
) -> int:
    total = 0
    for rs in sorted(old_rss, key=du.created_key):
        if total >= most:
            break
        size, available = du.replicas_of(rs), du.status_int(rs, "availableReplicas")
        if size == 0 or size == available:
            continue
        count = min(most - total, size - available)
        await ctl.scale_replica_set(rs, size - count, d)
        total += count
    return total


async def _scale_down_old(
    ctl: DeploymentController, all_rss: list[Obj | None], old_rss: list[Obj], d: Obj
) -> int:
    min_available = du.replicas_of(d) - du.max_unavailable(d)
    available = du.total_status(all_rss, "availableReplicas")
    if available <= min_available:
        return 0
    target = available - min_available
    total = 0
    for rs in sorted(old_rss, key=du.created_key):
        if total >= target:
            break
        size = du.replicas_of(rs)
        if size == 0:
            continue
        count = min(size, target - total)
        await ctl.scale_replica_set(rs, size - count, d)
        total += count
    return total


async def recreate(
    ctl: DeploymentController, d: Obj, rs_list: list[Obj], pod_map: dict[str, list[Obj]]
) -> float | None:
    new_rs, old_rss = await ctl.get_all_replica_sets(d, rs_list, create=False)
    all_rss: list[Obj | None] = [*old_rss, new_rs]
    scaled_down = False
    for rs in du.active(old_rss):
        scaled_down = await ctl.scale_replica_set(rs, 0, d) or scaled_down
    if scaled_down or _old_pods_running(new_rs, old_rss, pod_map):
        return await sync_rollout_status(ctl, all_rss, new_rs, d)
    if new_rs is None:
        new_rs, old_rss = await ctl.get_all_replica_sets(d, rs_list, create=True)
        all_rss = [*old_rss, new_rs]
    assert new_rs is not None
    await ctl.scale_replica_set(new_rs, du.replicas_of(d), d)
    if du.complete(d, d["status"]):
        await deployment_scale.cleanup(ctl, old_rss, d)
    return await sync_rollout_status(ctl, all_rss, new_rs, d)


def _old_pods_running(
    new_rs: Obj | None, old_rss: list[Obj], pod_map: dict[str, list[Obj]]
) -> bool:
    if du.total_status(list(old_rss), "replicas") > 0:
        return True
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    for rs_uid, pods in pod_map.items():
        if rs_uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


# -- progress --------------------------------------------------------------------------------


def _replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[Obj]:
    def failures(rs: Obj | None) -> list[Obj]:
        out = []
        for c in ((rs or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure":
                out.append(
                    {
                        "type": "ReplicaFailure",
                        "status": c.get("status"),
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"),
                        "reason": c.get("reason"),
                        "message": c.get("message"),
                    }
                )
        return out

    found = failures(new_rs)
    if found:
        return found
    for rs in all_rss:
        found += failures(rs)
    return found


async def sync_rollout_status(
    ctl: DeploymentController, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj
) -> float | None:
    at = now()
    status = du.calculate_status(all_rss, new_rs, d, at)
    if not du.has_progress_deadline(d):
        du.remove_condition(status, "Progressing")
    current = du.get_condition(d["status"], "Progressing")
    finished = (
        int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
        and current is not None
        and current.get("reason") == du.NEW_RS_AVAILABLE
    )
    subject = (
        f'ReplicaSet "{new_rs["metadata"]["name"]}"'
        if new_rs is not None
        else f'Deployment "{d["metadata"]["name"]}"'
    )
    if du.has_progress_deadline(d) and not finished:
        if du.complete(d, status):
            du.set_condition(
                status,
                du.new_condition(
                    "Progressing",
                    "True",
                    du.NEW_RS_AVAILABLE,
                    f"{subject} has successfully progressed.",
                    at,
                ),
            )
        elif du.progressing(d, status):
            cond = du.new_condition(
                "Progressing", "True", du.REPLICA_SET_UPDATED, f"{subject} is progressing.", at
            )
            # Progress moves lastUpdateTime even when the reason stays the same.
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                du.remove_condition(status, "Progressing")
            du.set_condition(status, cond)
        elif du.timed_out(d, status, at):
            du.set_condition(
                status,
                du.new_condition(
                    "Progressing",
                    "False",
                    du.TIMED_OUT,
                    f"{subject} has timed out progressing.",
                    at,
                ),
            )
    failures = _replica_failures(all_rss, new_rs)
    if failures:
        du.set_condition(status, failures[0])
    else:
        du.remove_condition(status, "ReplicaFailure")
    if status == d["status"]:
        return _stuck_recheck(d, status)
    await ctl.write_status(d, status)
    return None


def _stuck_recheck(d: Obj, status: Obj) -> float | None:
    """Seconds until a rollout that shows no progress reaches its deadline (then it is marked
    ProgressDeadlineExceeded), or None."""
    current = du.get_condition(d["status"], "Progressing")
    if not du.has_progress_deadline(d) or current is None:
        return None
    if du.complete(d, status) or current.get("reason") == du.TIMED_OUT:
        return None
    since = parse_time(current.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = int(d["spec"]["progressDeadlineSeconds"])
    left = since.timestamp() + deadline - now().timestamp()
    return 1.0 if left < 1.0 else left + 1.0
