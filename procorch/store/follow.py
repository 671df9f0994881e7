"""Following one resource of the store for as long as a task runs.

:func:`follow` applies every change of a resource after a revision, and when the watch can
no longer go on (its history was overtaken: ``Gone``; or the store closed it), asks the
caller to read the store afresh and goes on from the revision that reading saw. The API
server's own controllers (CRDs, RBAC, Secret-based tokens) are written on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

from procorch.api import errors
from procorch.store.base import Event, Store, WatchClosed

RESYNC_PAUSE = 0.01
"""Between a resync and the next watch, so that a store closing watches at once cannot spin."""


async def follow(
    store: Store,
    resource: str,
    since: int,
    *,
    on_event: Callable[[Event], Awaitable[None]],
    resync: Callable[[], Awaitable[int]],
) -> NoReturn:
    """Call ``on_event`` for every change of ``resource`` after revision ``since``, forever;
    ``resync`` reads what the store holds now and returns the revision it read at."""
    revision = since
    while True:
        try:
            watch = store.watch(resource, since=revision)
        except errors.Gone:
            revision = await resync()
            continue
        try:
            async for event in watch:
                revision = event.revision
                await on_event(event)
        except WatchClosed:
            pass
        finally:
            watch.close()
        revision = await resync()
        await asyncio.sleep(RESYNC_PAUSE)
