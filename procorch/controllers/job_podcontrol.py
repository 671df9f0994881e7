"""How the Job controller acts on pods: creates them in slow-start batches, deletes them
(through :class:`~.podcontrol.PodControl`, which records the events Kubernetes records), and
removes the ``batch.kubernetes.io/job-tracking`` finalizer (Kubernetes' ``podControl`` calls
in ``job_controller.go``). A mixin of
:class:`~.job.JobController`; every method is safe to run concurrently for different pods.
"""

from __future__ import annotations

import asyncio
from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.controllers import job_util as ju
from procorch.controllers.batch_expectations import Expectations, FinalizerExpectations
from procorch.controllers.podcontrol import PodControl, slow_start

JOBS = must("batch/jobs")
PODS = must("core/pods")
FIELD_MANAGER = "job-controller"

Obj = dict[str, Any]
Key = tuple[str, str, str]


class JobPodControl:
    client: Client
    expectations: Expectations
    finalizers: FinalizerExpectations
    events: EventRecorder
    pod_control: PodControl

    async def create_pods(
        self, key: Key, job: Obj, indexes: list[int | None]
    ) -> tuple[int, errors.ApiError | None]:
        """Slow start: batches of 1, 2, 4, ... that stop after a batch with a failure."""
        template = ju.pod_template(job, indexed=indexes[0] is not None)
        created, error = await slow_start(
            len(indexes),
            lambda i: self._create_pod(job, template, indexes[i]),
        )
        if error is not None:
            # Neither the failed creations nor the skipped ones will ever be observed.
            self.expectations.creation_observed(key, len(indexes) - created)
        return created, error

    async def _create_pod(self, job: Obj, template: Obj, index: int | None) -> None:
        await self.pod_control.create(job, ju.pod_for(job, template, index))

    async def delete_pods(
        self, job: Obj, pods: list[Obj], *, remove_finalizer: bool
    ) -> tuple[int, int, errors.ApiError | None]:
        """Delete ``pods`` (first dropping the finalizer when they must not count as failed):
        (ready ones deleted, deleted, the first error)."""

        async def one(pod: Obj) -> None:
            meta = pod["metadata"]
            namespace = str(meta.get("namespace") or "")
            try:
                if remove_finalizer and ju.has_tracking_finalizer(pod):
                    await self.remove_finalizer(pod)
                await self.pod_control.delete(job, pod)
            except errors.NotFound:
                return
            except errors.ApiError:
                self.expectations.deletion_observed(
                    ("job", namespace, str(job["metadata"]["name"])), ju.uid(pod)
                )
                raise

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        ready = deleted = 0
        error: errors.ApiError | None = None
        for pod, result in zip(pods, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, errors.ApiError):
                    raise result
                error = error or result
                continue
            deleted += 1
            ready += 1 if ju.is_ready(pod) else 0
        return ready, deleted, error

    async def remove_finalizer(self, pod: Obj) -> None:
        meta = pod["metadata"]
        await self.client.patch(
            PODS,
            str(meta["name"]),
            {
                "metadata": {
                    "uid": meta.get("uid"),
                    "$deleteFromPrimitiveList/finalizers": [ju.TRACKING_FINALIZER],
                }
            },
            namespace=str(meta.get("namespace") or ""),
            patch_type="strategic",
            field_manager=FIELD_MANAGER,
        )

    # -- counting and finishing --------------------------------------------------------------

    async def remove_finalizers(
        self, key: Key, pods: list[Obj]
    ) -> tuple[set[str], errors.ApiError | None]:
        if not pods:
            return set(), None
        uids = [ju.uid(p) for p in pods]
        self.finalizers.expect_removed(key, uids)
        results = await asyncio.gather(
            *(self.remove_finalizer(p) for p in pods), return_exceptions=True
        )
        removed: set[str] = set()
        error: errors.ApiError | None = None
        for pod_uid, result in zip(uids, results, strict=True):
            if isinstance(result, BaseException):
                self.finalizers.removal_observed(key, pod_uid)  # no update will come
                if isinstance(result, errors.NotFound):
                    removed.add(pod_uid)
                    continue
                if not isinstance(result, errors.ApiError):
                    raise result
                error = error or result
                continue
            removed.add(pod_uid)
        return removed, error
