"""The ReplicaSet controller: keeps ``spec.replicas`` pods matching a ReplicaSet's selector.

Kubernetes' ``ReplicaSetController``, reconcile by reconcile:

* the ReplicaSet's pods are the active ones (not finished, not being deleted) it controls or
  adopts: orphans matching its selector gain a controller reference, and pods it controls
  that stop matching are released (:mod:`.workloads_refs`);
* too few: pods are created from the template (``generateName: <rs>-``, a controller
  ownerReference) in slow-start batches of 1, 2, 4, ... that stop at the first failure;
  too many: the surplus is deleted in Kubernetes' order (unscheduled, pending, not ready,
  doubled up on a node, ready most recently, most restarts, newest; :mod:`.workloads_pods`);
* expectations (:mod:`.workloads_expectations`) keep a reconcile from acting again until the
  informer has seen its last creations and deletions, so a slow watch never double-creates;
* status is always written: ``replicas``, ``fullyLabeledReplicas``, ``readyReplicas``,
  ``availableReplicas`` (ready for ``minReadySeconds``), ``observedGeneration``, and a
  ``ReplicaFailure`` condition while creating or deleting fails. A ReplicaSet whose pods are
  ready but not yet available is looked at again when the first of them becomes available.

Concurrency: ``workers`` reconciles run at once, never two for the same ReplicaSet; informer
handlers only count expectations and enqueue keys.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from procorch.api import errors
from procorch.api.meta import controller_ref, deep_copy, now, rfc3339
from procorch.api.resources import must
from procorch.api.selectors import LabelSelector, label_selector_from_dict, selector_from_set
from procorch.client.events import EventRecorder
from procorch.controllers.podcontrol import PodControl, slow_start
from procorch.controllers.workloads_expectations import Expectations
from procorch.controllers.workloads_pods import (
    is_active,
    is_available,
    is_ready,
    pod_from_template,
    pods_to_delete,
    seconds_until_available,
)
from procorch.controllers.workloads_refs import (
    CONTROLLER_INDEX,
    RefManager,
    controller_index,
)
from procorch.reconcile.controller import Controller, PermanentError, key_of

REPLICASETS = must("apps/replicasets")
PODS = must("core/pods")
FIELD_MANAGER = "replicaset-controller"
# At most this many pods are created or deleted by one reconcile (Kubernetes' burstReplicas).
BURST_REPLICAS = 500

Obj = dict[str, Any]
Key = tuple[str, str]


def replica_set_selector(rs: Obj) -> LabelSelector:
    try:
        return label_selector_from_dict((rs.get("spec") or {}).get("selector"))
    except errors.BadRequest as exc:
        raise PermanentError(f"invalid selector: {exc.message}") from exc


def calculate_status(
    rs: Obj, pods: list[Obj], failure: errors.ApiError | None, *, at: datetime
) -> Obj:
    """The ReplicaSet's status for these (claimed, active) pods."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    exact = selector_from_set(template_labels)
    min_ready = int(spec.get("minReadySeconds") or 0)
    old = rs.get("status") or {}
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(
            1 for p in pods if exact.matches((p.get("metadata") or {}).get("labels"))
        ),
        "readyReplicas": sum(1 for p in pods if is_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_available(p, min_ready, at)),
        "observedGeneration": int((rs.get("metadata") or {}).get("generation") or 0),
    }
    conditions = [dict(c) for c in old.get("conditions") or []]
    current = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if failure is not None and current is None:
        wanted = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "lastTransitionTime": rfc3339(at),
                "reason": "FailedCreate" if len(pods) < wanted else "FailedDelete",
                "message": failure.message,
            }
        )
    elif failure is None and current is not None:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    # Zero counts are left out, as Kubernetes' JSON leaves them out (omitempty).
    status = {k: v for k, v in status.items() if v or k == "replicas"}
    if conditions:
        status["conditions"] = conditions
    return status


class ReplicaSetController(Controller[Key]):
    name = "replicaset"
    component = "replicaset-controller"
    workers = 4

    def __init__(self, client: Any, informers: Any, *, events: EventRecorder | None = None) -> None:
        super().__init__(client, informers, events=events)
        self.expectations = Expectations()
        self.pod_control = PodControl(client, self.events, field_manager=FIELD_MANAGER)

    def setup(self) -> None:
        self.replica_sets = self.watch(REPLICASETS)
        self.pods = self.watch(PODS)
        self.replica_sets.add_index(CONTROLLER_INDEX, controller_index)
        self.pods.add_index(CONTROLLER_INDEX, controller_index)
        self.replica_sets.add_handler(self._on_replica_set)
        self.pods.add_handler(self._on_pod)

    # -- event handlers (enqueue only) -------------------------------------------------------

    def _on_replica_set(self, etype: str, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        if etype == "DELETED":
            self.expectations.forget(key)
        self.queue.add(key)

    def _owner(self, pod: Obj, ref: Obj | None = None) -> Key | None:
        ref = ref if ref is not None else controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        rs = self.replica_sets.get(str(ref.get("name")), namespace)
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return namespace, str(ref.get("name"))

    def _matching(self, pod: Obj) -> list[Key]:
        meta = pod.get("metadata") or {}
        out = []
        for rs in self.replica_sets.list(str(meta.get("namespace") or "")):
            try:
                if replica_set_selector(rs).matches(meta.get("labels")):
                    out.append(key_of(rs))
            except PermanentError:
                continue
        return out

    def _pod_gone(self, pod: Obj) -> None:
        key = self._owner(pod)
        if key is not None:
            self.expectations.deletion_observed(key, str(pod["metadata"].get("uid")))
            self.queue.add(key)

    def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        meta = pod.get("metadata") or {}
        if etype == "DELETED":
            self._pod_gone(pod)
            return
        if meta.get("deletionTimestamp"):
            # Being deleted counts as deleted: the ReplicaSet may replace it now.
            self._pod_gone(pod)
            if old is not None and (old.get("metadata") or {}).get("labels") != meta.get("labels"):
                self._pod_gone(old)
            return
        ref = controller_ref(pod)
        if etype == "ADDED" or old is None:
            if ref is not None:
                key = self._owner(pod, ref)
                if key is not None:
                    self.expectations.creation_observed(key)
                    self.queue.add(key)
                return
            for key in self._matching(pod):
                self.queue.add(key)
            return
        old_ref = controller_ref(old)
        labels_changed = (old.get("metadata") or {}).get("labels") != meta.get("labels")
        ref_changed = (old_ref or {}).get("uid") != (ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            previous = self._owner(old, old_ref)
            if previous is not None:
                self.queue.add(previous)
        if ref is not None:
            key = self._owner(pod, ref)
            if key is not None:
                self.queue.add(key)
            return
        if labels_changed or ref_changed:
            for key in self._matching(pod):
                self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------------

    def _candidates(self, rs: Obj) -> list[Obj]:
        meta = rs["metadata"]
        owned = self.pods.by_index(CONTROLLER_INDEX, str(meta.get("uid")))
        orphans = self.pods.by_index(CONTROLLER_INDEX, f"orphan:{meta.get('namespace') or ''}")
        return owned + orphans

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cached = self.replica_sets.get(name, namespace)
        if cached is None:
            self.expectations.forget(key)
            return None
        rs = deep_copy(cached)
        needs_sync = self.expectations.satisfied(key)
        selector = replica_set_selector(rs)
        active = [p for p in self._candidates(rs) if is_active(p)]
        refs = RefManager(
            self.client,
            owner=rs,
            owner_rt=REPLICASETS,
            dependent_rt=PODS,
            matches=lambda p: selector.matches((p.get("metadata") or {}).get("labels")),
            field_manager=FIELD_MANAGER,
        )
        pods = await refs.claim(active)
        failure: errors.ApiError | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self._manage_replicas(rs, pods)
            except errors.ApiError as exc:
                failure = exc
        at = now()
        status = calculate_status(rs, pods, failure, at=at)
        if status != (rs.get("status") or {}):
            try:
                await self.client.update_status(
                    REPLICASETS, {**rs, "status": status}, namespace=namespace
                )
            except errors.NotFound:
                return None
        if failure is not None:
            raise failure
        return self._recheck_after(rs, pods, status, at)

    @staticmethod
    def _recheck_after(rs: Obj, pods: list[Obj], status: Obj, at: datetime) -> float | None:
        """When the first ready-but-not-available pod becomes available, if any."""
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready <= 0 or status.get("readyReplicas", 0) == status.get("availableReplicas", 0):
            return None
        waits = [
            left
            for p in pods
            if is_ready(p) and (left := seconds_until_available(p, min_ready, at)) is not None
        ]
        # Ready times have second precision: look a little after the earliest one is due.
        return (min(waits) if waits else float(min_ready)) + 0.2

    async def _manage_replicas(self, rs: Obj, pods: list[Obj]) -> None:
        spec = rs.get("spec") or {}
        wanted = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        diff = len(pods) - wanted
        key = key_of(rs)
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            created, error = await slow_start(count, lambda _: self._create_pod(rs))
            if count - created > 0:
                self.expectations.lower_creations(key, count - created)
            if error is not None:
                raise error
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = pods_to_delete(pods, self._related_pods(rs), count, now=now())
            self.expectations.expect_deletions(key, [str(p["metadata"]["uid"]) for p in victims])
            results = await asyncio.gather(
                *(self._delete_pod(rs, p) for p in victims), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            for failure in failures:
                if not isinstance(failure, errors.ApiError):
                    raise failure
            if failures:
                raise failures[0]

    async def _create_pod(self, rs: Obj) -> None:
        template = (rs.get("spec") or {}).get("template") or {}
        await self.pod_control.create(rs, pod_from_template(template, rs))

    async def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        uid = str(pod["metadata"].get("uid"))
        deleted = False
        try:
            deleted = await self.pod_control.delete(rs, pod)
        finally:
            if not deleted:
                # The informer will never see this deletion: stop expecting it.
                self.expectations.deletion_observed(key_of(rs), uid)

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Active pods of every ReplicaSet with the same controller (a Deployment's other
        ReplicaSets), for spreading deletions over nodes."""
        ref = controller_ref(rs)
        if ref is None:
            return self.pods.by_index(CONTROLLER_INDEX, str(rs["metadata"].get("uid")))
        siblings = self.replica_sets.by_index(CONTROLLER_INDEX, str(ref.get("uid")))
        related: list[Obj] = []
        for sibling in siblings:
            related += self.pods.by_index(CONTROLLER_INDEX, str(sibling["metadata"].get("uid")))
        return related
