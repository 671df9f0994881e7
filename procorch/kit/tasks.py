"""Owned, named, supervised asyncio tasks.

:class:`TaskSet` is how every long-lived task in procorch is started: it names the task, keeps
a reference (so it is never garbage-collected mid-flight), logs and records an unexpected exit,
and stops its tasks in reverse start order. Cancellation is never swallowed: ``stop`` cancels,
waits, and re-raises a ``CancelledError`` aimed at the caller itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from procorch.kit.logging import get_logger

log = get_logger("kit.tasks")


class TaskSet:
    """A group of named tasks owned by one component.

    ``on_crash`` is called with the task name and exception when a task ends with an error
    (or returns when it was meant to run forever, with ``None``); the launcher uses it to
    escalate (stop procorch with an error) rather than limp on with a dead loop.
    """

    def __init__(
        self, owner: str, *, on_crash: Callable[[str, BaseException | None], None] | None = None
    ) -> None:
        self.owner = owner
        self._tasks: list[asyncio.Task[Any]] = []
        self._on_crash = on_crash
        self._stopping = False

    def start(
        self, name: str, coro: Coroutine[Any, Any, Any], *, forever: bool = True
    ) -> asyncio.Task[Any]:
        """Start ``coro`` as a task named ``<owner>/<name>``.

        ``forever`` marks a loop that should only end when cancelled; ending early is a crash.
        """
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.owner}/{name}")
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._done(t, forever=forever))
        return task

    def _done(self, task: asyncio.Task[Any], *, forever: bool) -> None:
        if not forever and not task.cancelled() and task.exception() is None:
            self._forget(task)
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is None and not forever:
            return
        if exc is not None:
            log.error("task crashed", task=task.get_name(), error=repr(exc), exc_info=exc)
        else:
            log.error("task exited unexpectedly", task=task.get_name())
        if self._on_crash is not None:
            self._on_crash(task.get_name(), exc)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        try:
            self._tasks.remove(task)
        except ValueError:
            pass

    def __len__(self) -> int:
        return sum(1 for t in self._tasks if not t.done())

    async def stop(self, *, timeout: float | None = None) -> None:
        """Cancel every task, newest first, and wait for each to finish."""
        self._stopping = True
        for task in reversed(self._tasks):
            if task.done():
                continue
            task.cancel()
            await wait_cancelled(task, timeout=timeout)
        self._tasks.clear()


async def wait_cancelled(task: asyncio.Task[Any], *, timeout: float | None = None) -> None:
    """Wait for a cancelled task to finish without swallowing our own cancellation."""
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(_settle(task))
    except TimeoutError:
        log.warning("task did not stop in time", task=task.get_name(), timeout=timeout)
    except asyncio.CancelledError:
        # We ourselves are being cancelled: make sure the child is, then propagate.
        task.cancel()
        raise


async def _settle(task: asyncio.Task[Any]) -> None:
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    except Exception as exc:  # noqa: BLE001 - already reported by the done callback
        log.debug("stopped task had failed", task=task.get_name(), error=repr(exc))


async def call_soon_guarded(name: str, fn: Callable[[], Awaitable[Any]]) -> None:
    """Run ``fn`` and log (not raise) its failure: for best-effort cleanup steps."""
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - cleanup must go on
        log.warning("cleanup step failed", step=name, error=repr(exc))
