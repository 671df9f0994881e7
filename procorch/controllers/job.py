"""The Job controller (batch/v1): runs a Job's pods to completion, counting every one.

Kubernetes' job controller: pods are created from the template with the Job as their
controller (labels ``job-name``, ``controller-uid`` and their ``batch.kubernetes.io/``
forms come from the template the API server generated), the
``batch.kubernetes.io/job-tracking`` finalizer, and for Indexed Jobs their index (annotation,
label, hostname, ``JOB_COMPLETION_INDEX``). What one sync decides is in :mod:`.job_sync`;
this module holds the plumbing: informer handlers, adoption of orphans matching a Job's
selector, and the orphan path that frees pods whose Job is gone or finished from the
tracking finalizer (so that deleting a Job never leaves pods stuck in Terminating).

Keys are ``("job", namespace, name)`` or ``("pod", namespace, name)`` (an orphan pod that
still has the finalizer). Concurrency: ``settings.job_workers`` reconciles at once, never two
for the same key; handlers only count expectations and enqueue.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.meta import controller_ref, owner_ref
from procorch.api.selectors import label_selector_from_dict
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.controllers import job_util as ju
from procorch.controllers.batch_expectations import Expectations, FinalizerExpectations
from procorch.controllers.batch_settings import BatchSettings
from procorch.controllers.job_podcontrol import FIELD_MANAGER, JOBS, PODS
from procorch.controllers.job_sync import JobSyncMixin
from procorch.controllers.job_tracking import BackoffRecord
from procorch.controllers.podcontrol import PodControl
from procorch.reconcile.controller import Controller, PermanentError
from procorch.reconcile.factory import InformerFactory

Obj = dict[str, Any]
Key = tuple[str, str, str]

# Index names are shared by every user of the pod informer: keep ours apart.
JOB_INDEX = "batch:job-uid"


def job_index(pod: Obj) -> list[str]:
    """The uid of the Job controlling the pod, or ``orphan:<namespace>``."""
    ref = controller_ref(pod)
    if ref is None:
        return [f"orphan:{(pod.get('metadata') or {}).get('namespace') or ''}"]
    if ref.get("kind") == "Job":
        return [str(ref.get("uid") or "")]
    return []


class JobController(JobSyncMixin, Controller[Key]):
    name = "job"
    component = "job-controller"

    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        *,
        settings: BatchSettings | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        super().__init__(client, informers, events=events)
        self.settings = settings or BatchSettings.from_env()
        self.workers = self.settings.job_workers
        self.expectations = Expectations()
        self.finalizers = FinalizerExpectations()
        self.pod_control = PodControl(client, self.events, field_manager=FIELD_MANAGER)
        self.backoffs: dict[Key, BackoffRecord] = {}

    def setup(self) -> None:
        self.jobs = self.watch(JOBS)
        self.pods = self.watch(PODS)
        self.pods.add_index(JOB_INDEX, job_index)
        self.jobs.add_handler(self._on_job)
        self.pods.add_handler(self._on_pod)

    # -- event handlers (enqueue only) -------------------------------------------------------

    def _on_job(self, etype: str, job: Obj, old: Obj | None) -> None:
        meta = job.get("metadata") or {}
        key: Key = ("job", str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if etype == "DELETED":
            self.expectations.forget(key)
            self.finalizers.forget(key)
            self.backoffs.pop(key, None)
            # Its pods are orphans now: free them of the finalizer.
            for pod in self.pods.by_index(JOB_INDEX, str(meta.get("uid") or "")):
                self._enqueue_orphan(pod)
            return
        self.queue.add(key)

    def _owner(self, pod: Obj) -> Key | None:
        """The key of the (cached) Job controlling ``pod``."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job":
            return None
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        job = self.jobs.get(str(ref.get("name")), namespace)
        if job is None or ju.uid(job) != ref.get("uid"):
            return None
        return "job", namespace, str(ref.get("name"))

    def _enqueue_orphan(self, pod: Obj) -> None:
        if ju.has_tracking_finalizer(pod):
            meta = pod["metadata"]
            self.queue.add(("pod", str(meta.get("namespace") or ""), str(meta["name"])))

    def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        pod_uid = ju.uid(pod)
        key = self._owner(pod)
        if old is not None and etype != "DELETED":
            previous = self._owner(old)
            if previous is not None and previous != key:
                self.queue.add(previous)
        if key is None:
            if controller_ref(pod) is None and etype != "DELETED" and not ju.is_deleting(pod):
                self._enqueue_matching(pod)  # a Job may adopt it
            if etype != "DELETED":
                self._enqueue_orphan(pod)
            return
        if etype == "DELETED":
            self.expectations.deletion_observed(key, pod_uid)
            self.finalizers.removal_observed(key, pod_uid)
        elif old is None or etype == "ADDED":
            if ju.is_deleting(pod):
                self.expectations.deletion_observed(key, pod_uid)
            else:
                self.expectations.creation_observed(key)
        else:
            if ju.is_deleting(pod) and not ju.is_deleting(old):
                self.expectations.deletion_observed(key, pod_uid)
            if ju.has_tracking_finalizer(old) and not ju.has_tracking_finalizer(pod):
                self.finalizers.removal_observed(key, pod_uid)
        self.queue.add(key)

    def _enqueue_matching(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        for job in self.jobs.list(namespace):
            try:
                selector = label_selector_from_dict((job.get("spec") or {}).get("selector"))
            except errors.BadRequest:
                continue
            if not selector.empty and selector.matches(meta.get("labels")):
                self.queue.add(("job", namespace, str(job["metadata"]["name"])))

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        kind, namespace, name = key
        if kind == "pod":
            await self._sync_orphan(namespace, name)
            return None
        cached = self.jobs.get(name, namespace)
        if cached is None:
            self.expectations.forget(key)
            self.finalizers.forget(key)
            self.backoffs.pop(key, None)
            return None
        managed_by = (cached.get("spec") or {}).get("managedBy")
        if managed_by is not None and managed_by != ju.JOB_CONTROLLER:
            return None  # another controller owns this Job
        pods = self.pods.by_index(JOB_INDEX, ju.uid(cached))
        if ju.finished_type(cached) is not None:
            self.backoffs.pop(key, None)
            # Anything still holding the finalizer is not counted any more: let it go.
            for pod in pods:
                self._enqueue_orphan(pod)
            return None
        mode = (cached.get("spec") or {}).get("completionMode")
        if mode not in (None, "NonIndexed", "Indexed"):
            self.events.event(
                cached,
                "Warning",
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            )
            return None
        pods = pods + await self._adopt(cached)
        return await self.sync_job(key, cached, pods)

    async def _adopt(self, job: Obj) -> list[Obj]:
        """Orphans matching the Job's selector become its pods (with the tracking finalizer),
        unless the Job is being deleted (checked with a live read, as Kubernetes does)."""
        meta = job["metadata"]
        namespace = str(meta.get("namespace") or "")
        try:
            selector = label_selector_from_dict((job.get("spec") or {}).get("selector"))
        except errors.BadRequest as exc:
            raise PermanentError(f"invalid selector: {exc.message}") from exc
        if selector.empty:
            return []
        orphans = [
            p
            for p in self.pods.by_index(JOB_INDEX, f"orphan:{namespace}")
            if not ju.is_deleting(p) and selector.matches((p.get("metadata") or {}).get("labels"))
        ]
        if not orphans:
            return []
        fresh = await self.client.get(JOBS, str(meta["name"]), namespace=namespace)
        if ju.uid(fresh) != ju.uid(job) or ju.is_deleting(fresh):
            return []
        adopted = []
        for pod in orphans:
            pmeta = pod["metadata"]
            finalizers = list(pmeta.get("finalizers") or [])
            if ju.TRACKING_FINALIZER not in finalizers:
                finalizers.append(ju.TRACKING_FINALIZER)
            patch = {
                "metadata": {
                    "resourceVersion": pmeta.get("resourceVersion"),
                    "ownerReferences": [
                        *(pmeta.get("ownerReferences") or []),
                        owner_ref({"apiVersion": "batch/v1", "kind": "Job", **job}),
                    ],
                    "finalizers": finalizers,
                }
            }
            try:
                adopted.append(
                    await self.client.patch(
                        PODS,
                        str(pmeta["name"]),
                        patch,
                        namespace=namespace,
                        patch_type="merge",
                        field_manager=FIELD_MANAGER,
                    )
                )
            except (errors.NotFound, errors.Conflict):
                continue  # gone or changed: the next sync looks again
        return adopted

    async def _sync_orphan(self, namespace: str, name: str) -> None:
        """``syncOrphanPod``: drop the tracking finalizer of a pod no running Job counts."""
        pod = self.pods.get(name, namespace)
        if pod is None or not ju.has_tracking_finalizer(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return  # not a Job's pod: not our finalizer to manage
            job = self.jobs.get(str(ref.get("name")), namespace)
            if job is None or ju.uid(job) != ref.get("uid"):
                try:  # the cache may be behind: confirm before letting the pod go
                    live = await self.client.get(JOBS, str(ref.get("name")), namespace=namespace)
                except errors.NotFound:
                    live = None
                job = live if live is not None and ju.uid(live) == ref.get("uid") else None
            if job is not None:
                managed_by = (job.get("spec") or {}).get("managedBy")
                if managed_by is not None and managed_by != ju.JOB_CONTROLLER:
                    return
                if ju.finished_type(job) is None:
                    return  # its Job is running and will count it
        try:
            await self.remove_finalizer(pod)
        except errors.NotFound:
            pass
