"""Scaling a Deployment without a rollout, and trimming its revision history.

Kubernetes' ``DeploymentController.scale`` and ``cleanupDeployment`` (``sync.go``): when
``spec.replicas`` changes while a rollout is under way (or paused), the new and old ReplicaSets
grow or shrink in proportion to their sizes, within ``replicas + maxSurge``, the largest taking
the rounding leftover; and old ReplicaSets beyond ``revisionHistoryLimit`` that have scaled to
zero are deleted, oldest revision first.

Functions of the running :class:`~procorch.controllers.deployment.DeploymentController`
reconcile and its working copies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.controllers import deployment_util as du

if TYPE_CHECKING:
    from procorch.controllers.deployment import DeploymentController

REPLICASETS = must("apps/replicasets")

Obj = dict[str, Any]


async def scale(ctl: DeploymentController, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
    """Scaling without a rollout: one active ReplicaSet takes it all; several share it in
    proportion to their sizes (``DeploymentController.scale``)."""
    wanted = du.replicas_of(d)
    only = du.find_active_or_latest(new_rs, old_rss)
    if only is not None:
        if du.replicas_of(only) != wanted:
            await ctl.scale_replica_set(only, wanted, d)
        return
    if du.is_saturated(d, new_rs):
        for old in du.active(old_rss):
            await ctl.scale_replica_set(old, 0, d)
        return
    if not du.is_rolling(d):
        return
    all_rss = du.active([*old_rss, new_rs])
    allowed = wanted + du.max_surge(d) if wanted > 0 else 0
    to_add = allowed - du.total_replicas(all_rss)
    operation = ""
    if to_add > 0:
        # Larger first; among equals the newer first.
        all_rss.sort(key=du.created_key, reverse=True)
        all_rss.sort(key=du.replicas_of, reverse=True)
        operation = "up"
    elif to_add < 0:
        # Larger first; among equals the older first.
        all_rss.sort(key=du.created_key)
        all_rss.sort(key=du.replicas_of, reverse=True)
        operation = "down"
    added = 0
    sizes: list[int] = []
    for rs in all_rss:
        share = du.proportion(rs, d, to_add, added) if to_add else 0
        sizes.append(du.replicas_of(rs) + share)
        added += share
    for i, rs in enumerate(all_rss):
        size = sizes[i]
        if i == 0 and to_add:
            size = max(0, size + to_add - added)
        await ctl.scale_replica_set(rs, size, d, operation)


async def cleanup(ctl: DeploymentController, old_rss: list[Obj], d: Obj) -> None:
    """Delete the oldest idle ReplicaSets beyond ``revisionHistoryLimit``."""
    if not du.has_revision_history_limit(d):
        return
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    surplus = len(alive) - int(d["spec"]["revisionHistoryLimit"])
    if surplus <= 0:
        return
    alive.sort(key=lambda rs: (du.revision(rs), du.created_key(rs)))
    for rs in alive[:surplus]:
        meta = rs["metadata"]
        if (
            du.status_int(rs, "replicas") != 0
            or du.replicas_of(rs) != 0
            or int(meta.get("generation") or 0) > du.status_int(rs, "observedGeneration")
        ):
            continue
        try:
            await ctl.client.delete(
                REPLICASETS, meta["name"], namespace=meta["namespace"], uid=meta.get("uid")
            )
        except errors.NotFound:
            continue
