"""The DaemonSet controller: one pod of a DaemonSet on every node that should run one.

Kubernetes' ``DaemonSetsController``, reconcile by reconcile:

* history: the DaemonSet's template is kept as a ControllerRevision ``<ds>-<hash>`` (data: a
  patch that restores the template; labels: the template's and ``controller-revision-hash``),
  numbered after the newest older one; a template that returns to an old revision renumbers
  that revision instead of making a new one; a hash collision bumps ``status.collisionCount``.
  Old revisions beyond ``revisionHistoryLimit`` that no pod runs are deleted;
* manage: a pod is created for each node that should run one and has none (the pod names
  its node in a required node affinity and the default scheduler binds it), surplus pods
  on a node are deleted, pods on nodes they may no longer stay on are deleted, and failed
  pods are deleted and replaced with a per-node back-off (1 s doubling to 15 min);
* rolling update (``updateStrategy.type: RollingUpdate``): old pods are replaced within
  ``maxUnavailable``, or with ``maxSurge`` new pods started beside old ones first
  (:func:`~.daemonset_util.rolling_update_plan`); ``OnDelete`` replaces a pod only once the
  user deletes it;
* status: desired, current, ready, available, updated and misscheduled counts, and
  ``observedGeneration`` once a reconcile acted on that generation.

Expectations (:mod:`.workloads_expectations`) keep a reconcile from acting again before the
informer has seen its own creations and deletions. Nodes' changes (new nodes, labels,
taints, readiness) reconcile every DaemonSet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from procorch.api import errors
from procorch.api.meta import controller_ref, deep_copy, now, owner_ref
from procorch.api.resources import ResourceType, must
from procorch.api.selectors import LabelSelector, label_selector_from_dict
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.controllers import daemonset_util as rules
from procorch.controllers.podcontrol import PodControl, slow_start
from procorch.controllers.workloads_expectations import Expectations
from procorch.controllers.workloads_pods import seconds_until_available
from procorch.controllers.workloads_refs import (
    CONTROLLER_INDEX,
    RefManager,
    controller_index,
)
from procorch.kit.backoff import FlowBackoff
from procorch.reconcile.controller import Controller, PermanentError, key_of
from procorch.reconcile.factory import InformerFactory
from procorch.reconcile.views import InformerView

DAEMON_SETS = must("apps/daemonsets")
REVISIONS = must("apps/controllerrevisions")
PODS = must("core/pods")
NODES = must("core/nodes")
FIELD_MANAGER = "daemonset-controller"
# At most this many pods are created or deleted by one reconcile (Kubernetes' BurstReplicas).
BURST_REPLICAS = 250
FAILED_POD_BACKOFF = (1.0, 900.0)  # seconds: first delay, cap

Obj = dict[str, Any]
Key = tuple[str, str]


class DaemonSetController(Controller[Key]):
    name = "daemonset"
    component = "daemonset-controller"
    workers = 2

    def __init__(
        self, client: Client, informers: InformerFactory, *, events: EventRecorder | None = None
    ) -> None:
        super().__init__(client, informers, events=events)
        self.expectations = Expectations()
        self.pod_control = PodControl(client, self.events, field_manager=FIELD_MANAGER)
        initial, cap = FAILED_POD_BACKOFF
        # An entry untouched for twice the cap is forgotten (flowcontrol.Backoff's GC).
        self._failed_backoff = FlowBackoff(initial=initial, cap=cap, reset=2 * cap)

    def setup(self) -> None:
        self.daemon_sets = self.watch(DAEMON_SETS)
        self.pods = self.watch(PODS)
        self.nodes = self.watch(NODES)
        self.revisions = self.watch(REVISIONS)
        self.pods.add_index(CONTROLLER_INDEX, controller_index)
        self.revisions.add_index(CONTROLLER_INDEX, controller_index)
        self.daemon_sets.add_handler(self._on_daemon_set)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.revisions.add_handler(self._on_revision)

    # -- event handlers (enqueue only) -------------------------------------------------------

    def _on_daemon_set(self, etype: str, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        if etype == "DELETED":
            self.expectations.forget(key)
        self.queue.add(key)

    def _owner(self, obj: Obj) -> Key | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        ds = self.daemon_sets.get(str(ref.get("name")), namespace)
        if ds is None or ds["metadata"].get("uid") != ref.get("uid"):
            return None
        return namespace, str(ref.get("name"))

    def _enqueue_matching(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        for ds in self.daemon_sets.list(str(meta.get("namespace") or "")):
            try:
                selector = label_selector_from_dict((ds.get("spec") or {}).get("selector"))
            except errors.BadRequest:
                continue
            if selector.matches(meta.get("labels")):
                self.queue.add(key_of(ds))

    def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        key = self._owner(pod)
        uid = str((pod.get("metadata") or {}).get("uid"))
        if etype == "DELETED" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            if key is not None:
                self.expectations.deletion_observed(key, uid)
                self.queue.add(key)
            return
        if key is None:
            if controller_ref(pod) is None:
                self._enqueue_matching(pod)
            if old is not None and (previous := self._owner(old)) is not None:
                self.queue.add(previous)
            return
        if etype == "ADDED" or old is None:
            self.expectations.creation_observed(key)
        self.queue.add(key)

    def _on_node(self, etype: str, node: Obj, old: Obj | None) -> None:
        if etype == "MODIFIED" and old is not None and not _placement_changed(old, node):
            return
        for ds in self.daemon_sets.list():
            self.queue.add(key_of(ds))

    def _on_revision(self, etype: str, revision: Obj, old: Obj | None) -> None:
        key = self._owner(revision)
        if key is not None:
            self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cached = self.daemon_sets.get(name, namespace)
        if cached is None:
            self.expectations.forget(key)
            return None
        ds = deep_copy(cached)
        if ds["metadata"].get("deletionTimestamp"):
            return None  # the garbage collector takes its pods and revisions
        raw_selector = (ds.get("spec") or {}).get("selector") or {}
        if not (raw_selector.get("matchLabels") or raw_selector.get("matchExpressions")):
            self.events.event(
                ds,
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return None
        try:
            selector = label_selector_from_dict(raw_selector)
        except errors.BadRequest as exc:
            raise PermanentError(f"invalid selector: {exc.message}") from exc
        # Read before the pods: a creation observed while claiming must not make the
        # expectations look met for a snapshot that lacks it.
        observed = self.expectations.satisfied(key)
        current, old_revisions = await self._history(ds, selector)
        pods = await self._claim(ds, selector, self.pods, PODS)
        view = rules.Snapshot.of(ds, self.nodes.list(), pods, rules.revision_hash(current))
        again: list[float] = []
        failure: errors.ApiError | None = None
        if observed:
            try:
                again += await self._manage(view)
                if rules.is_rolling(ds) and self.expectations.satisfied(key):
                    plan = rules.rolling_update_plan(view, now())
                    await self._sync_nodes(view, plan.nodes_to_create, plan.pods_to_delete)
                await self._cleanup_history(ds, old_revisions, view.by_node)
            except errors.ApiError as exc:
                failure = exc
        at = now()
        status = rules.calculate_status(view, at, observed=observed)
        if status != (ds.get("status") or {}):
            try:
                await self.client.update_status(
                    DAEMON_SETS, {**ds, "status": status}, namespace=namespace
                )
            except errors.NotFound:
                return None
        if failure is not None:
            raise failure
        again += _availability_recheck(ds, view.by_node, at)
        return min(again) if again else None

    async def _claim(
        self, ds: Obj, selector: LabelSelector, dependents: InformerView, rt: ResourceType
    ) -> list[Obj]:
        """The DaemonSet's pods or revisions: those it controls, adopting orphans its
        selector matches (after ``kubectl delete --cascade=orphan`` and a re-create) and
        releasing those it no longer matches (``ClaimPods``, ``controlledHistories``)."""
        meta = ds["metadata"]
        owned = dependents.by_index(CONTROLLER_INDEX, str(meta.get("uid")))
        orphans = dependents.by_index(CONTROLLER_INDEX, f"orphan:{meta.get('namespace') or ''}")
        refs = RefManager(
            self.client,
            owner=ds,
            owner_rt=DAEMON_SETS,
            dependent_rt=rt,
            matches=lambda obj: selector.matches((obj.get("metadata") or {}).get("labels")),
            field_manager=FIELD_MANAGER,
        )
        return await refs.claim(owned + orphans)

    # -- manage ------------------------------------------------------------------------------

    async def _manage(self, view: rules.Snapshot) -> list[float]:
        """Create and delete per :func:`~.daemonset_util.manage_plan`; the seconds after
        which a node in failed-pod back-off is due, if any."""
        ds = view.ds
        plan = rules.manage_plan(view, now())
        waits: list[float] = []
        clock = time.monotonic()
        self._failed_backoff.collect(clock)
        to_delete = list(plan.pods_to_delete)
        generation = (ds.get("status") or {}).get("observedGeneration") or 0
        for node_name, pod in plan.failed:
            # Per DaemonSet uid and generation, as Kubernetes keys it: a new template
            # (or a new DaemonSet of the same name) starts again at the first delay.
            backoff_key = (ds["metadata"].get("uid"), generation, node_name)
            left = self._failed_backoff.since_step(backoff_key, clock)
            if left > 0:
                waits.append(left)
                continue
            self._failed_backoff.step(backoff_key, clock)
            self.events.event(
                ds,
                "Warning",
                "FailedDaemonPod",
                f"Found failed daemon pod {pod['metadata'].get('namespace')}/"
                f"{pod['metadata'].get('name')} on node {node_name}, will try to kill it",
            )
            to_delete.append(pod)
        await self._sync_nodes(view, plan.nodes_to_create, to_delete)
        return waits

    async def _sync_nodes(
        self, view: rules.Snapshot, node_names: list[str], pods_to_delete: list[Obj]
    ) -> None:
        """Create a pod for each of ``node_names`` and delete ``pods_to_delete``, at most
        :data:`BURST_REPLICAS` of each, with expectations set first (``syncNodes``)."""
        node_names = node_names[:BURST_REPLICAS]
        victims = {p["metadata"]["uid"]: p for p in pods_to_delete}
        pods_to_delete = list(victims.values())[:BURST_REPLICAS]
        if not node_names and not pods_to_delete:
            return
        ds = view.ds
        key = key_of(ds)
        self.expectations.expect(
            key, len(node_names), [str(p["metadata"]["uid"]) for p in pods_to_delete]
        )
        deletions = asyncio.gather(
            *(self._delete_pod(ds, p) for p in pods_to_delete), return_exceptions=True
        )
        created, create_error = await slow_start(
            len(node_names),
            lambda i: self.pod_control.create(ds, view.pod_for(node_names[i])),
        )
        if created < len(node_names):
            self.expectations.lower_creations(key, len(node_names) - created)
        results = await deletions
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, errors.ApiError):
                raise result
        delete_errors = [r for r in results if isinstance(r, errors.ApiError)]
        if create_error is not None:
            raise create_error
        if delete_errors:
            raise delete_errors[0]

    async def _delete_pod(self, ds: Obj, pod: Obj) -> None:
        uid = str(pod["metadata"].get("uid"))
        deleted = False
        try:
            deleted = await self.pod_control.delete(ds, pod)
        finally:
            if not deleted:
                self.expectations.deletion_observed(key_of(ds), uid)

    # -- history -----------------------------------------------------------------------------

    async def _history(self, ds: Obj, selector: LabelSelector) -> tuple[Obj, list[Obj]]:
        """The current revision (created or renumbered as needed) and the old ones
        (``constructHistory``)."""
        data = rules.history_data(ds)
        current: list[Obj] = []
        old: list[Obj] = []
        for revision in await self._claim(ds, selector, self.revisions, REVISIONS):
            (current if revision.get("data") == data else old).append(revision)
        next_number = max((int(r.get("revision") or 0) for r in old), default=0) + 1
        if not current:
            return await self._snapshot(ds, data, next_number), old
        current.sort(key=lambda r: int(r.get("revision") or 0), reverse=True)
        keep, duplicates = current[0], current[1:]
        for duplicate in duplicates:
            await self._delete_revision(duplicate)
        if int(keep.get("revision") or 0) < next_number:
            keep = await self.client.update(
                REVISIONS,
                {**keep, "revision": next_number},
                namespace=str(ds["metadata"].get("namespace") or ""),
            )
        return keep, old

    async def _snapshot(self, ds: Obj, data: Obj, number: int) -> Obj:
        meta = ds["metadata"]
        namespace = str(meta.get("namespace") or "")
        collisions = (ds.get("status") or {}).get("collisionCount")
        template_hash = rules.template_hash_of(ds, collisions)
        name = f"{meta['name']}-{template_hash}"
        labels = dict((rules.template_of(ds).get("metadata") or {}).get("labels") or {})
        labels[rules.HASH_LABEL] = template_hash
        revision_meta: Obj = {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_ref(ds, controller=True, block=True)],
        }
        if meta.get("annotations"):
            revision_meta["annotations"] = dict(meta["annotations"])
        body = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": revision_meta,
            "data": data,
            "revision": number,
        }
        try:
            return await self.client.create(
                REVISIONS, body, namespace=namespace, field_manager=FIELD_MANAGER
            )
        except errors.AlreadyExists:
            existing = await self.client.get(REVISIONS, name, namespace=namespace)
            if existing.get("data") == data:
                return existing
            # Another template has this hash: count the collision so the next hash differs.
            fresh = await self.client.get(DAEMON_SETS, str(meta["name"]), namespace=namespace)
            if (fresh.get("status") or {}).get("collisionCount") != collisions:
                raise
            status = dict(fresh.get("status") or {})
            status["collisionCount"] = int(collisions or 0) + 1
            await self.client.update_status(
                DAEMON_SETS, {**fresh, "status": status}, namespace=namespace
            )
            raise

    async def _cleanup_history(
        self, ds: Obj, old: list[Obj], by_node: Mapping[str, list[Obj]]
    ) -> None:
        """Delete the oldest revisions beyond ``revisionHistoryLimit`` that no pod runs."""
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        keep = limit if isinstance(limit, int) and limit >= 0 else 10
        surplus = len(old) - keep
        if surplus <= 0:
            return
        live = {rules.pod_hash(p) for pods in by_node.values() for p in pods}
        for revision in sorted(old, key=lambda r: int(r.get("revision") or 0)):
            if surplus <= 0:
                break
            if rules.revision_hash(revision) in live:
                continue
            await self._delete_revision(revision)
            surplus -= 1

    async def _delete_revision(self, revision: Obj) -> None:
        meta = revision["metadata"]
        try:
            await self.client.delete(
                REVISIONS, str(meta["name"]), namespace=str(meta.get("namespace") or "")
            )
        except errors.NotFound:
            pass


def _placement_changed(old: Obj, new: Obj) -> bool:
    """Whether a node update can change which DaemonSets it should run."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return (
        old_meta.get("labels") != new_meta.get("labels")
        or (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints")
        or rules.node_ready_status(old) != rules.node_ready_status(new)
    )


def _availability_recheck(ds: Obj, by_node: Mapping[str, list[Obj]], at: datetime) -> list[float]:
    """When the first ready-but-not-yet-available pod becomes available, if any."""
    min_ready = rules.min_ready_seconds(ds)
    if min_ready <= 0:
        return []
    waits = [
        left
        for pods in by_node.values()
        for pod in pods
        if (left := seconds_until_available(pod, min_ready, at)) is not None
    ]
    return [min(waits) + 0.2] if waits else []
