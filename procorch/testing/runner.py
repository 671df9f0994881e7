"""The thread a test's procorch runs on: its own thread, its own event loop.

A test's code may block (``urllib``, ``requests``, ``subprocess.run``, ``time.sleep``) while
its procorch must go on answering: the API server, controllers, node agent and proxies all
run on :class:`ClusterThread`'s loop (uvloop when installed, as ``procorch up`` uses), never on
the test's. Nothing in :class:`~procorch.launcher.up.Procorch` needs the main thread: signal
handling belongs to ``procorch up`` (:func:`~procorch.launcher.up.run_up`), the node's
containers are children of its supervisor process, and the agent learns that the supervisor
exited through the loop's subprocess support, which works on any thread.

Concurrency contract:

* :meth:`ClusterThread.start`, :meth:`~ClusterThread.stop`, :meth:`~ClusterThread.join` and
  :meth:`~ClusterThread.submit` are called from other threads (the test's); each returns a
  :class:`concurrent.futures.Future` or blocks, so an async caller wraps them with
  :func:`asyncio.wrap_future` and a plain caller waits on ``result()``.
* :attr:`~ClusterThread.procorch` belongs to the cluster's loop: read its attributes, but run
  its coroutines with :meth:`~ClusterThread.submit`.
* Once asked, the thread stops procorch on its own (pods within their grace periods, then
  everything else), whatever becomes of the caller that asked; a stop asked during the
  start cancels the start and stops what it had started. An exit hook stops the clusters
  their callers abandoned (an interrupted test run), so no pod outlives the interpreter.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import shutil
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from procorch.launcher.up import Procorch, UpConfig

T = TypeVar("T")

EXIT_STOP_TIMEOUT = 60.0
"""How long the interpreter's exit waits for abandoned clusters to stop."""

_running: set[ClusterThread] = set()
_running_lock = threading.Lock()
_exit_hook_registered = False


def _stop_abandoned() -> None:
    with _running_lock:
        abandoned = list(_running)
    for runner in abandoned:
        runner.stop()
    for runner in abandoned:
        runner.join(EXIT_STOP_TIMEOUT)


def _track(runner: ClusterThread) -> None:
    global _exit_hook_registered
    with _running_lock:
        _running.add(runner)
        if _exit_hook_registered:
            return
        _exit_hook_registered = True
    # Before the interpreter joins its threads and shuts down concurrent.futures' executors
    # (the store commits through one), as concurrent.futures itself registers; a plain
    # atexit hook would run after that, when the store can no longer write.
    register = getattr(threading, "_register_atexit", atexit.register)
    register(_stop_abandoned)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when installed (as ``procorch up`` runs), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class ClusterThread:
    """One :class:`Procorch` (started, the manifests applied) on a thread of its own."""

    def __init__(
        self,
        config: UpConfig,
        *,
        manifests: Sequence[Path] = (),
        remove_when_stopped: Path | None = None,
        name: str = "procorch-testing",
    ) -> None:
        self._config = config
        self._manifests = list(manifests)
        self._remove = remove_when_stopped
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # Daemon, so that a cluster that cannot stop cannot keep the interpreter from
        # exiting either; the exit hook (_stop_abandoned) gives it EXIT_STOP_TIMEOUT.
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Running from the start, so that a waiter giving up (a cancelled asyncio.wrap_future)
        # cannot cancel them: only this thread settles them.
        self._started.set_running_or_notify_cancel()
        self._finished.set_running_or_notify_cancel()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._stop_event: asyncio.Event | None = None
        self._starting = False
        self.procorch: Procorch | None = None

    # -- from the caller's thread -------------------------------------------------------------

    def start(self) -> concurrent.futures.Future[None]:
        """Start the thread; the future is done once procorch is up and the manifests are
        applied, or failed with what failed (the thread then stops on its own)."""
        _track(self)
        self._thread.start()
        return self._started

    def stop(self) -> concurrent.futures.Future[None]:
        """Ask the cluster to stop (idempotent); the future is done when the thread has
        stopped everything, and failed if stopping failed."""
        with self._lock:
            self._stop_requested = True
            loop = self._loop
        if loop is not None:
            # The loop is gone once the thread has finished: nothing left to ask.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_stop_request)
        if not self._thread.is_alive() and not self._thread.ident:
            # Never started: nothing runs.
            self._finish(None)
        return self._finished

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after :meth:`stop`)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the cluster's loop (e.g. one of ``procorch.admin``'s)."""
        loop = self._loop
        problem = ""
        if loop is None or self._finished.done():
            problem = "this procorch is not running"
        elif threading.current_thread() is self._thread:
            # Waiting here for the loop this thread runs would never end.
            problem = "a blocking call from the cluster's own thread"
        if problem:
            coro.close()
            raise RuntimeError(problem)
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(coro, loop)

    # -- on the cluster's thread --------------------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the stop
            error = exc
        finally:
            with self._lock:
                self._loop = None
            with _running_lock:
                _running.discard(self)
            if self._remove is not None:
                shutil.rmtree(self._remove, ignore_errors=True)
            if not self._started.done():
                self._started.set_exception(
                    error or RuntimeError("procorch stopped before it was up")
                )
                error = None  # reported as the start's failure
            self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        with self._lock:
            if self._finished.done():
                return
            if error is None:
                self._finished.set_result(None)
            else:
                self._finished.set_exception(error)

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        self._main = asyncio.current_task()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            if self._stop_requested:
                return
        procorch = self.procorch = Procorch(self._config)
        try:
            self._starting = True
            try:
                await procorch.start()
                if self._manifests:
                    await procorch.apply_files(self._manifests)
            except Exception as exc:
                # A failed start is the caller's error (bad manifests: ApplyError).
                self._started.set_exception(exc)
                return
            finally:
                self._starting = False
            self._started.set_result(None)
            await self._stop_event.wait()
        except asyncio.CancelledError:
            # Our own stop request during the start (see _on_stop_request): stop what was
            # started, and end the thread normally.
            if not self._stop_event.is_set():
                raise
        finally:
            # Nothing cancels this: the thread and its loop are ours.
            await procorch.stop()

    def _on_stop_request(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        if self._starting and self._main is not None:
            self._main.cancel()
