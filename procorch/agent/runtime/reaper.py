"""Learning that a child exited, and collecting its status, without a thread per child.

Two strategies, one interface (:meth:`Reaper.watch`):

* :class:`PidfdReaper` - a ``pidfd`` per child, watched by the event loop; only the children
  it was asked to watch are ever waited for, so it coexists with other code in the same
  process that spawns and waits for its own children (tests, programs embedding procorch).
* :class:`SubreaperReaper` - for the node supervisor process, which owns every child it has:
  it is a *child subreaper*, so orphaned grandchildren (daemons that double-forked out of a
  container) are re-parented to it, and on ``SIGCHLD`` it reaps every exited child, handing
  the statuses of watched ones to their callbacks and discarding the rest.

Either way the callback runs on the event loop with the raw wait status.
Measured here (shared/perf-notes.md): Python 3.11's default child watcher starts one thread per
child (1,001 threads for 1,000 children); these use none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

from procorch.agent.runtime.child import set_child_subreaper
from procorch.kit.logging import get_logger

log = get_logger("runtime.reaper")

ExitCallback = Callable[[int, int], None]  # (pid, wait status)


class Reaper:
    def watch(self, pid: int, callback: ExitCallback) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PidfdReaper(Reaper):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._fds: dict[int, int] = {}  # pid -> pidfd

    def watch(self, pid: int, callback: ExitCallback) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Already gone (and a zombie, since nobody waited): collect it now.
            self.loop.call_soon(self._collect, pid, -1, callback)
            return
        self._fds[pid] = fd
        self.loop.add_reader(fd, self._collect, pid, fd, callback)

    def _collect(self, pid: int, fd: int, callback: ExitCallback) -> None:
        if fd >= 0:
            self.loop.remove_reader(fd)
            os.close(fd)
            self._fds.pop(pid, None)
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            got, status = pid, 255 << 8  # someone else reaped it; the status is lost
        if got == 0:
            # Readable but not yet waitable cannot happen for a pidfd; be safe anyway.
            self.loop.call_later(0.01, self._collect, pid, -1, callback)
            return
        callback(pid, status)

    def close(self) -> None:
        for fd in self._fds.values():
            self.loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


class SubreaperReaper(Reaper):
    """Only for a process whose every child is spawned by the supervisor (the node shim)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.subreaper = set_child_subreaper()
        self._callbacks: dict[int, ExitCallback] = {}
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        self.orphans_reaped = 0

    def watch(self, pid: int, callback: ExitCallback) -> None:
        # Called synchronously right after the spawn: SIGCHLD is only handled when control
        # returns to the loop, so the child cannot have been reaped before this line.
        self._callbacks[pid] = callback
        self.loop.call_soon(self._reap)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            callback = self._callbacks.pop(pid, None)
            if callback is not None:
                callback(pid, status)
            else:
                # An orphan re-parented to us: a daemon that escaped its container.
                self.orphans_reaped += 1

    def close(self) -> None:
        self.loop.remove_signal_handler(signal.SIGCHLD)
