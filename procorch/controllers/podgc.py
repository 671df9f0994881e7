"""The pod garbage collector: pods that no node will ever finish, force-deleted.

As kube-controller-manager's PodGC does for orphans (``gcOrphaned``): a pod bound to a node that does not exist (deleted with ``kubectl delete node``, or never
  registered) is force-deleted once the node has stayed absent for a quarantine (40 s, so that
  a node being re-registered is not mistaken for a gone one), after the API confirms it is
  still absent. Before it goes the pod is marked Failed with the ``DisruptionTarget``
  condition (reason ``DeletionByPodGC``) so that a Job counts it as a failure, not a success.
(PodGC's ``gcUnscheduledTerminating`` has nothing to do here: the API deletes an unbound pod
at once, with no grace period.)

Pods evicted from a node that is unreachable stay Terminating until their node comes back
(its agent stops them) or the node is deleted (then this controller removes them), as in
Kubernetes.

Concurrency: one worker with one key; handlers only enqueue it. It runs again every
``period`` seconds while a pod is in quarantine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from procorch.api import errors
from procorch.api.conditions import replaced
from procorch.api.meta import rfc3339
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.reconcile.controller import Controller
from procorch.reconcile.factory import InformerFactory

Obj = dict[str, Any]

PODS = must("core/pods")
NODES = must("core/nodes")

DELETION_BY_POD_GC = "DeletionByPodGC"
_ALL = "all"


@dataclass(frozen=True)
class PodGCSettings:
    quarantine: float = 40.0
    """Seconds a pod's node must stay absent before the pod is deleted (Kubernetes'
    ``quarantineTime``)."""


DEFAULT_SETTINGS = PodGCSettings()


class PodGarbageCollector(Controller[str]):
    name = "podgc"

    def __init__(
        self, client: Client, informers: InformerFactory, settings: PodGCSettings | None = None
    ) -> None:
        super().__init__(client, informers)
        self.settings = settings or replace(DEFAULT_SETTINGS)
        self._absent_since: dict[str, float] = {}  # node name -> time.monotonic() first missed

    def setup(self) -> None:
        self.watch(NODES).add_handler(self._on_node)
        self.watch(PODS).add_handler(self._on_pod)

    def _on_node(self, etype: str, obj: Obj, old: Obj | None) -> None:
        if etype == "DELETED":  # only a node that goes leaves pods behind
            self.queue.add(_ALL)

    def _on_pod(self, etype: str, obj: Obj, old: Obj | None) -> None:
        if etype == "DELETED":
            return
        node = (obj.get("spec") or {}).get("nodeName")
        if node and self.informers.get(NODES).get(node) is None:
            self.queue.add(_ALL)

    async def reconcile(self, key: str) -> float | None:
        nodes = self.informers.get(NODES)
        now = time.monotonic()
        missing: set[str] = set()
        recheck: float | None = None
        for pod in self.informers.get(PODS).list():
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or nodes.get(node) is not None:
                continue
            missing.add(node)
            since = self._absent_since.setdefault(node, now)
            left = since + self.settings.quarantine - now
            if left > 0:
                recheck = left if recheck is None else min(recheck, left)
                continue
            if await self._node_exists(node):
                continue
            await self._force_delete(pod)
        for node in set(self._absent_since) - missing:
            del self._absent_since[node]
        return None if recheck is None else recheck + 0.05

    async def _node_exists(self, name: str) -> bool:
        """Asked of the API, not the cache, before deleting anything (as PodGC does)."""
        try:
            await self.client.get(NODES, name)
        except errors.NotFound:
            return False
        return True

    async def _force_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            status = dict(pod.get("status") or {})
            disruption = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": DELETION_BY_POD_GC,
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": rfc3339(),
            }
            status.update(phase="Failed", conditions=replaced(status.get("conditions"), disruption))
            try:
                await self.client.update_status(
                    PODS, {**pod, "status": status}, namespace=namespace
                )
            except (errors.NotFound, errors.Conflict):
                pass  # gone, or changed: deleted below all the same
        try:
            await self.client.delete(PODS, name, namespace=namespace, grace_period_seconds=0)
        except errors.NotFound:
            return
        self.log.info(
            "deleted a pod no node will finish",
            pod=f"{namespace}/{name}",
            node=(pod.get("spec") or {}).get("nodeName") or "",
        )
