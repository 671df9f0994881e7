"""How the Job controller acts on pods: creates them in slow-start batches, deletes them, and
removes the ``batch.kubernetes.io/job-tracking`` finalizer (Kubernetes' ``podControl`` calls
in ``job_controller.go``), recording the events Kubernetes records. A mixin of
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

    async def create_pods(
        self, key: Key, job: Obj, indexes: list[int | None]
    ) -> tuple[int, errors.ApiError | None]:
        """Slow start: batches of 1, 2, 4, ... that stop after a batch with a failure."""
        template = ju.pod_template(job, indexed=indexes[0] is not None)
        namespace = str(job["metadata"].get("namespace") or "")
        created = 0
        batch = 1
        todo = list(indexes)
        while todo:
            chunk, todo = todo[:batch], todo[batch:]
            results = await asyncio.gather(
                *(self._create_pod(job, template, namespace, i) for i in chunk),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            for failure in failures:
                if not isinstance(failure, errors.ApiError):
                    raise failure
            created += len(chunk) - len(failures)
            if failures:
                # Neither the failed creations nor the skipped ones will ever be observed.
                self.expectations.creation_observed(key, len(failures) + len(todo))
                first = failures[0]
                assert isinstance(first, errors.ApiError)
                return created, first
            batch *= 2
        return created, None

    async def _create_pod(self, job: Obj, template: Obj, namespace: str, index: int | None) -> None:
        pod = ju.pod_for(job, template, index)
        try:
            made = await self.client.create(
                PODS, pod, namespace=namespace, field_manager=FIELD_MANAGER
            )
        except errors.ApiError as exc:
            causes = exc.details.get("causes") or []
            if any(
                isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes
            ):
                return  # every later create fails the same way; the namespace is going
            self.events.event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.events.event(
            job, "Normal", "SuccessfulCreate", f"Created pod: {made['metadata']['name']}"
        )

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
                await self.client.delete(
                    PODS, str(meta["name"]), namespace=namespace, uid=meta.get("uid")
                )
            except errors.NotFound:
                return
            except errors.ApiError as exc:
                self.expectations.deletion_observed(
                    ("job", namespace, str(job["metadata"]["name"])), ju.uid(pod)
                )
                self.events.event(job, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
                raise
            self.events.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

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
