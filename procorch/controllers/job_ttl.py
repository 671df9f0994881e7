"""The TTL-after-finished controller: deletes a finished Job ``ttlSecondsAfterFinished``
seconds after it finished (Kubernetes' ``ttlafterfinished`` controller).

A Job finished when it got its ``Complete`` or ``Failed`` condition (``completionTime`` or
the condition's ``lastTransitionTime``). When the time has come, the Job is read again from
the API (the TTL may have been changed meanwhile) and deleted with foreground propagation
and a uid precondition, so its pods go first (through the garbage collector) and a Job
re-created under the same name is never touched. Not yet: looked at again when it is due.

Keys are (namespace, name). Concurrency: ``settings.ttl_workers`` reconciles at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from procorch.api import errors
from procorch.api.meta import now, parse_time
from procorch.client.base import Client
from procorch.controllers import job_util as ju
from procorch.controllers.batch_settings import BatchSettings
from procorch.controllers.job_podcontrol import JOBS
from procorch.reconcile.controller import Controller, key_of
from procorch.reconcile.factory import InformerFactory

Obj = dict[str, Any]
Key = tuple[str, str]


def finish_time(job: Obj) -> datetime | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def expires_in(job: Obj, at: datetime) -> float | None:
    """Seconds until the Job may be deleted (<= 0: now), or None when it never expires."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or ju.is_deleting(job):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished.timestamp() + int(ttl) - at.timestamp()


class TTLAfterFinishedController(Controller[Key]):
    name = "ttl-after-finished"

    def __init__(
        self, client: Client, informers: InformerFactory, *, settings: BatchSettings | None = None
    ) -> None:
        super().__init__(client, informers)
        self.workers = (settings or BatchSettings.from_env()).ttl_workers

    def setup(self) -> None:
        self.jobs = self.watch(JOBS)
        self.jobs.add_handler(self._on_job)

    def _on_job(self, etype: str, job: Obj, old: Obj | None) -> None:
        if etype != "DELETED" and expires_in(job, now()) is not None:
            self.queue.add(key_of(job))

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cached = self.jobs.get(name, namespace)
        if cached is None:
            return None
        left = expires_in(cached, now())
        if left is None:
            return None
        if left > 0:
            return left
        # The cache may be stale (a TTL just raised): decide on a fresh read.
        try:
            fresh = await self.client.get(JOBS, name, namespace=namespace)
        except errors.NotFound:
            return None
        left = expires_in(fresh, now())
        if left is None:
            return None
        if left > 0:
            return left
        self.log.info("deleting finished job past its TTL", namespace=namespace, name=name)
        try:
            await self.client.delete(
                JOBS,
                name,
                namespace=namespace,
                propagation_policy="Foreground",
                uid=ju.uid(fresh),
            )
        except errors.NotFound:
            pass
        return None
