"""The informer factory: one shared informer per resource type, started on first use.

Concurrency: single event loop; each informer's list+watch is a task of the factory's
:class:`~procorch.kit.tasks.TaskSet`, stopped with it.
"""

from __future__ import annotations

import asyncio

from procorch.api.resources import ResourceType
from procorch.client.base import Client
from procorch.kit.tasks import TaskSet
from procorch.reconcile.informer import Informer


class InformerFactory:
    """One shared informer per resource type, started on first use."""

    def __init__(self, client: Client, tasks: TaskSet) -> None:
        self.client = client
        self._tasks = tasks
        self._informers: dict[str, Informer] = {}

    def get(self, rt: ResourceType) -> Informer:
        informer = self._informers.get(rt.key)
        if informer is None:
            informer = Informer(self.client, rt)
            self._informers[rt.key] = informer
            self._tasks.start(f"informer:{rt.key}", informer.run())
        return informer

    async def wait_synced(self, informers: list[Informer] | None = None) -> None:
        targets = informers if informers is not None else list(self._informers.values())
        await asyncio.gather(*(i.synced.wait() for i in targets))
