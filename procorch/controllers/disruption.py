"""The disruption controller: the status of each PodDisruptionBudget (policy/v1).

As Kubernetes' ``DisruptionController`` does, for every budget it counts

* ``expectedPods``: the pods it covers, or, when the budget is a percentage or a
  ``maxUnavailable``, the replicas their controllers want (a Deployment's, else a
  ReplicaSet's): a budget must not shrink because its pods are already gone;
* ``desiredHealthy``: ``minAvailable`` (a percentage of ``expectedPods`` rounded up), or
  ``expectedPods - maxUnavailable`` (a percentage rounded up);
* ``currentHealthy``: its pods that are Ready and not being deleted, less those an eviction
  took in the last two minutes (``disruptedPods``: evicted, not yet seen gone);
* ``disruptionsAllowed = max(0, currentHealthy - desiredHealthy)``,

with the ``DisruptionAllowed`` condition. The eviction subresource reads these numbers and
takes one from ``disruptionsAllowed`` for every pod it evicts. A budget whose pods have no
controller to count (with a percentage or ``maxUnavailable``) allows no disruption, with
reason ``SyncFailed``, as Kubernetes' fail-safe does.

Concurrency: one worker; handlers only enqueue budget keys (``namespace/name``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from procorch.api import errors
from procorch.api.conditions import is_ready
from procorch.api.meta import controller_ref, parse_time, rfc3339
from procorch.api.resources import must
from procorch.api.selectors import label_selector_from_dict
from procorch.reconcile.controller import Controller, PermanentError

Obj = dict[str, Any]

PDBS = must("policy/poddisruptionbudgets")
PODS = must("core/pods")
REPLICA_SETS = must("apps/replicasets")
DEPLOYMENTS = must("apps/deployments")

DISRUPTION_TIMEOUT = timedelta(minutes=2)
"""How long an evicted pod counts as disrupted before the controller sees it deleted
(Kubernetes' ``DeletionTimeout``)."""

SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"


def scaled(value: int | str, total: int) -> int:
    """An IntOrString budget against ``total`` (a percentage rounds up)."""
    if isinstance(value, str):
        return math.ceil(int(value.rstrip("%")) * total / 100)
    return int(value)


def pods_of(pdb: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods of ``pdb``'s namespace that its selector picks (policy/v1: an empty selector
    picks every pod, a missing one none)."""
    selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
    return [p for p in pods if selector.matches((p.get("metadata") or {}).get("labels"))]


class DisruptionController(Controller[str]):
    name = "disruption"

    def setup(self) -> None:
        self.watch(PDBS).add_handler(self._on_pdb)
        self.watch(PODS).add_handler(self._on_pod)
        self.watch(REPLICA_SETS).add_handler(self._on_scale_source)
        self.watch(DEPLOYMENTS).add_handler(self._on_scale_source)

    # -- handlers ----------------------------------------------------------------------------

    def _on_pdb(self, etype: str, obj: Obj, old: Obj | None) -> None:
        if etype != "DELETED":
            meta = obj.get("metadata") or {}
            self.queue.add(f"{meta.get('namespace', '')}/{meta.get('name', '')}")

    def _on_pod(self, etype: str, obj: Obj, old: Obj | None) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        touched = [obj] if old is None else [obj, old]
        for pdb in self.informers.get(PDBS).list(namespace):
            if pods_of(pdb, touched):
                self.queue.add(f"{namespace}/{pdb['metadata']['name']}")

    def _on_scale_source(self, etype: str, obj: Obj, old: Obj | None) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        for pdb in self.informers.get(PDBS).list(namespace):
            self.queue.add(f"{namespace}/{pdb['metadata']['name']}")

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        pdb = self.informers.get(PDBS).get(name, namespace)
        if pdb is None:
            return None
        now = datetime.now(UTC)
        try:
            status, recheck = self._status(pdb, now)
        except PermanentError as exc:
            status, recheck = _failed(pdb, str(exc)), None
        current = pdb.get("status") or {}
        wanted = {k: v for k, v in {**current, **status}.items() if v is not None}
        if wanted != current:
            try:
                await self.client.update_status(
                    PDBS, {**pdb, "status": wanted}, namespace=namespace
                )
            except errors.NotFound:
                return None
        return recheck

    def _status(self, pdb: Obj, now: datetime) -> tuple[Obj, float | None]:
        """The budget's status as it should be, and when to look again (a disrupted pod's
        entry expiring)."""
        spec = pdb.get("spec") or {}
        namespace = pdb["metadata"].get("namespace", "")
        try:
            pods = pods_of(pdb, self.informers.get(PODS).list(namespace))
        except errors.BadRequest as exc:
            raise PermanentError(f"invalid selector: {exc.message}") from exc
        min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
        if max_unavailable is not None:
            expected = self._expected_scale(pods, namespace)
            desired = max(0, expected - scaled(max_unavailable, expected))
        elif isinstance(min_available, str):
            expected = self._expected_scale(pods, namespace)
            desired = scaled(min_available, expected)
        else:
            expected = len(pods)
            desired = int(min_available or 0)
        disrupted, recheck = _disrupted(pdb, pods, now)
        healthy = sum(
            1
            for p in pods
            if is_ready(p)
            and not p["metadata"].get("deletionTimestamp")
            and p["metadata"].get("name") not in disrupted
        )
        allowed = max(0, healthy - desired) if expected > 0 else 0
        status: Obj = {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptedPods": disrupted or None,
            "conditions": _conditions(
                pdb,
                SUFFICIENT_PODS if allowed > 0 else INSUFFICIENT_PODS,
                "",
                allowed > 0,
            ),
        }
        return status, recheck

    def _expected_scale(self, pods: list[Obj], namespace: str) -> int:
        """The replicas wanted by the controllers of ``pods``, each counted once."""
        wanted: dict[str, int] = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                raise PermanentError(
                    f"found no controller ref for pod {pod['metadata'].get('name')!r}"
                )
            if ref.get("kind") != "ReplicaSet":
                raise PermanentError(
                    f"found no controllers for pod {pod['metadata'].get('name')!r} "
                    f"(a {ref.get('kind')} has no scale a budget can count)"
                )
            rs = self.informers.get(REPLICA_SETS).get(ref.get("name", ""), namespace)
            if rs is None:
                continue  # gone: its pods are going too
            owner = controller_ref(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                deployment = self.informers.get(DEPLOYMENTS).get(owner.get("name", ""), namespace)
                if deployment is not None:
                    uid = deployment["metadata"].get("uid", "")
                    wanted[uid] = _replicas(deployment)
                    continue
            wanted[rs["metadata"].get("uid", "")] = _replicas(rs)
        return sum(wanted.values())


def _replicas(obj: Obj) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _disrupted(pdb: Obj, pods: list[Obj], now: datetime) -> tuple[dict[str, str], float | None]:
    """``status.disruptedPods`` kept for pods that still exist, are not being deleted and were
    evicted less than DISRUPTION_TIMEOUT ago; and the seconds until the next entry expires."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    live = {p["metadata"].get("name") for p in pods if not p["metadata"].get("deletionTimestamp")}
    kept: dict[str, str] = {}
    recheck: float | None = None
    for name, when in recorded.items():
        at = parse_time(when)
        if name not in live or at is None:
            continue
        left = (at + DISRUPTION_TIMEOUT - now).total_seconds()
        if left <= 0:
            continue
        kept[name] = when
        recheck = left if recheck is None else min(recheck, left)
    return kept, recheck


def _conditions(pdb: Obj, reason: str, message: str, allowed: bool) -> list[Obj]:
    status = "True" if allowed else "False"
    for existing in (pdb.get("status") or {}).get("conditions") or []:
        if (
            existing.get("type") == "DisruptionAllowed"
            and existing.get("status") == status
            and existing.get("reason") == reason
            and existing.get("message") == message
        ):
            return [existing]
    return [
        {
            "type": "DisruptionAllowed",
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "lastTransitionTime": rfc3339(),
        }
    ]


def _failed(pdb: Obj, message: str) -> Obj:
    """Kubernetes' fail-safe: no disruption while the budget cannot be computed."""
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "disruptionsAllowed": 0,
        "conditions": _conditions(pdb, SYNC_FAILED, message, False),
    }
