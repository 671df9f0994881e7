"""The node lifecycle controller: notices a node that stops, taints it, and evicts its pods.

As kube-controller-manager's ``NodeLifecycleController`` and its taint-based eviction do:

* **Heartbeats.** A node's agent renews its Lease in ``kube-node-lease`` and writes the
  Node's status. The controller notes, on its own clock, when either last changed (so a skewed
  node clock does not matter); a node not heard from for ``grace_period``
  (``--node-monitor-grace-period``) gets every condition ``Unknown``, reason
  ``NodeStatusUnknown``, and its pods' Ready condition goes False at once, so that they leave
  every Service's endpoints.
* **Taints by condition.** Ready ``Unknown`` brings ``node.kubernetes.io/unreachable``, Ready
  ``False`` ``node.kubernetes.io/not-ready``, each as NoSchedule (nothing new lands there)
  and NoExecute with its ``timeAdded``; Ready ``True`` takes them off again.
* **Eviction.** A pod on a node with a NoExecute taint it does not tolerate is deleted at
  once; one that tolerates it for ``tolerationSeconds`` is deleted that long after the taint
  was added (admission gives every pod 300 s for these two taints); one that tolerates it
  without a limit stays. Its controller replaces it on a node that is up.

A node that comes back posts Ready again; its agent stops the pods deleted meanwhile.

Concurrency: one worker keyed by node name; handlers only enqueue. The times noted for
heartbeats live in this controller (like kube's ``nodeHealthMap``); after a restart every
node gets a full grace period from then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from procorch.api import errors
from procorch.api.conditions import condition as _condition
from procorch.api.meta import parse_time, rfc3339
from procorch.api.resources import must
from procorch.api.taints import NO_EXECUTE, NO_SCHEDULE, NOT_READY, UNREACHABLE, tolerates
from procorch.client.base import Client
from procorch.reconcile.controller import Controller
from procorch.reconcile.factory import InformerFactory

Obj = dict[str, Any]

NODES = must("core/nodes")
LEASES = must("coordination.k8s.io/leases")
PODS = must("core/pods")
LEASE_NAMESPACE = "kube-node-lease"

NODE_STATUS_UNKNOWN = "NodeStatusUnknown"
STOPPED_POSTING = "Kubelet stopped posting node status."
_CONDITION_TAINTS = (NOT_READY, UNREACHABLE)
_NODE_INDEX = "nodelifecycle/node"


@dataclass(frozen=True)
class LifecycleSettings:
    grace_period: float = 50.0
    """Seconds without a heartbeat before a node is ``Unknown`` (kube-controller-manager
    1.32's ``--node-monitor-grace-period``)."""


@dataclass
class _Heard:
    heartbeat: tuple[str, str]  # (Lease renewTime, Ready lastHeartbeatTime) last seen
    at: float  # time.monotonic() when it last changed


class NodeLifecycleController(Controller[str]):
    name = "nodelifecycle"

    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        settings: LifecycleSettings | None = None,
    ) -> None:
        super().__init__(client, informers)
        self.settings = settings or LifecycleSettings()
        self._heard: dict[str, _Heard] = {}

    def setup(self) -> None:
        self.watch(NODES).add_handler(self._on_node)
        self.watch(LEASES).add_handler(self._on_lease)
        pods = self.watch(PODS)
        pods.add_handler(self._on_pod)
        pods.add_index(_NODE_INDEX, _node_of)

    def _on_node(self, etype: str, obj: Obj, old: Obj | None) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if etype == "DELETED":
            self._heard.pop(name, None)
        else:
            self.queue.add(name)

    def _on_lease(self, etype: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("namespace") == LEASE_NAMESPACE:
            self.queue.add(meta.get("name", ""))

    def _on_pod(self, etype: str, obj: Obj, old: Obj | None) -> None:
        # Only a pod on a node with a NoExecute taint has anything to wait for here; every
        # other pod event (a rollout writes many) would reconcile its node for nothing.
        name = (obj.get("spec") or {}).get("nodeName")
        if not name or etype == "DELETED":
            return
        node = self.informers.get(NODES).get(name)
        taints = ((node or {}).get("spec") or {}).get("taints") or []
        if any(t.get("effect") == NO_EXECUTE for t in taints):
            self.queue.add(name)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        node = self.informers.get(NODES).get(key)
        if node is None:
            return None
        silent_for = self._silence(node)
        ready = _condition(node, "Ready")
        recheck: float | None = max(0.0, self.settings.grace_period - silent_for) + 0.05
        if silent_for > self.settings.grace_period:
            recheck = None
            if ready is None or ready.get("status") != "Unknown":
                node = await self._mark_unknown(node)
                await self._mark_pods_not_ready(key)
        node = await self._taint_by_condition(node)
        evict_in = await self._evict(key, node)
        if evict_in is not None:
            recheck = evict_in if recheck is None else min(recheck, evict_in)
        return recheck

    def _silence(self, node: Obj) -> float:
        """Seconds since this controller last saw the node's heartbeat change."""
        name = node["metadata"]["name"]
        lease = self.informers.get(LEASES).get(name, LEASE_NAMESPACE)
        renewed = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
        ready = _condition(node, "Ready") or {}
        heartbeat = (renewed, str(ready.get("lastHeartbeatTime") or ""))
        now = time.monotonic()
        heard = self._heard.get(name)
        if heard is None or heard.heartbeat != heartbeat:
            self._heard[name] = _Heard(heartbeat, now)
            return 0.0
        return now - heard.at

    async def _mark_unknown(self, node: Obj) -> Obj:
        status = dict(node.get("status") or {})
        stamp = rfc3339()
        conditions = []
        for condition in status.get("conditions") or []:
            changed = dict(condition)
            if changed.get("status") != "Unknown":
                changed["lastTransitionTime"] = stamp
            changed.update(status="Unknown", reason=NODE_STATUS_UNKNOWN, message=STOPPED_POSTING)
            conditions.append(changed)
        status["conditions"] = conditions
        self.log.warning("node stopped posting status", node=node["metadata"]["name"])
        return await self.client.update_status(NODES, {**node, "status": status})

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        stamp = rfc3339()
        for pod in self.informers.get(PODS).by_index(_NODE_INDEX, node_name):
            status = dict(pod.get("status") or {})
            conditions = [dict(c) for c in status.get("conditions") or []]
            ready = next((c for c in conditions if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue
            ready.update(status="False", lastTransitionTime=stamp)
            status["conditions"] = conditions
            try:
                await self.client.update_status(
                    PODS, {**pod, "status": status}, namespace=pod["metadata"]["namespace"]
                )
            except (errors.NotFound, errors.Conflict):
                continue  # gone, or written meanwhile: the next look sees it

    async def _taint_by_condition(self, node: Obj) -> Obj:
        ready = (_condition(node, "Ready") or {}).get("status")
        wanted_key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(str(ready))
        taints = list((node.get("spec") or {}).get("taints") or [])
        kept = [
            t for t in taints if t.get("key") not in _CONDITION_TAINTS or t.get("key") == wanted_key
        ]
        if wanted_key is not None:
            present = {t.get("effect") for t in kept if t.get("key") == wanted_key}
            if NO_SCHEDULE not in present:
                kept.append({"key": wanted_key, "effect": NO_SCHEDULE})
            if NO_EXECUTE not in present:
                kept.append({"key": wanted_key, "effect": NO_EXECUTE, "timeAdded": rfc3339()})
        if kept == taints:
            return node
        spec = {**(node.get("spec") or {}), "taints": kept or None}
        if not kept:
            spec.pop("taints")
        return await self.client.update(NODES, {**node, "spec": spec})

    async def _evict(self, node_name: str, node: Obj) -> float | None:
        """Delete the pods the node's NoExecute taints evict now; the seconds until the next
        one falls due."""
        taints = [
            t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE
        ]
        if not taints:
            return None
        now = datetime.now(UTC)
        next_due: float | None = None
        for pod in self.informers.get(PODS).by_index(_NODE_INDEX, node_name):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            due = _eviction_due(pod, taints, now)
            if due is None:
                continue
            if due > 0:
                next_due = due if next_due is None else min(next_due, due)
                continue
            try:
                await self.client.delete(PODS, meta["name"], namespace=meta["namespace"])
            except errors.NotFound:
                continue
            self.log.info(
                "evicted a pod from a tainted node",
                pod=f"{meta['namespace']}/{meta['name']}",
                node=node_name,
            )
        return next_due


def _node_of(pod: Obj) -> list[str]:
    return [(pod.get("spec") or {}).get("nodeName") or ""]


def _eviction_due(pod: Obj, taints: list[Obj], now: datetime) -> float | None:
    """Seconds until ``pod`` must go for ``taints`` (0: now), or None: it may stay."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        limits = [
            t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None
        ]
        if not limits:
            continue  # tolerated for ever
        added = parse_time(taint.get("timeAdded")) or now
        left = max(0.0, (added - now).total_seconds() + max(0, min(limits)))
        due = left if due is None else min(due, left)
    return due
