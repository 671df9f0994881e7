"""Zero-copy forwarding of one direction of a connection with ``os.splice`` (Linux).

A :class:`SplicePump` moves bytes from one socket to another through a kernel pipe: socket →
pipe → socket, never through Python buffers. It works on duplicates of the two sockets' file
descriptors, watched with ``loop.add_reader``/``add_writer``, while the asyncio transport that
owns the source socket is paused (it no longer reads) and the one that owns the destination
socket has nothing buffered (so the byte order is kept). Flow control is the pipe: when the
destination cannot take more, the pump stops reading the source until it can. ``on_read`` is
told the size of each read from the source (the connection's ACK bookkeeping, see
:mod:`procorch.proxy.acks`).

:data:`AVAILABLE` says whether the platform has it; elsewhere connections stay on the asyncio
Protocol path, which is correct everywhere, only slower for bulk transfers.

Concurrency: callbacks on the event loop; :meth:`SplicePump.close` must be called (it removes
the watchers and closes the duplicates, without which the sockets would stay open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

AVAILABLE = hasattr(os, "splice") and fcntl is not None
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_SET_PIPE_SIZE = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_GET_PIPE_SIZE = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_BATCHES = 4  # splices per readable callback before yielding to other connections


class SplicePump:
    __slots__ = (
        "_loop",
        "_src",
        "_dst",
        "_pipe_r",
        "_pipe_w",
        "_chunk",
        "_pending",
        "_reading",
        "_writing",
        "_eof",
        "_closed",
        "_on_bytes",
        "_on_eof",
        "_on_error",
        "_on_read",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        src_fd: int,
        dst_fd: int,
        pipe_size: int,
        on_bytes: Callable[[int], None],
        on_eof: Callable[[], None],
        on_error: Callable[[OSError], None],
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._loop = loop
        self._src = -1
        self._dst = -1
        self._pipe_r = self._pipe_w = -1
        self._closed = False
        try:
            self._src = os.dup(src_fd)
            self._dst = os.dup(dst_fd)
            self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._pipe_w, _SET_PIPE_SIZE, pipe_size)
            self._chunk = int(fcntl.fcntl(self._pipe_w, _GET_PIPE_SIZE))
        except BaseException:
            self.close()
            raise
        self._pending = 0  # bytes in the pipe
        self._reading = self._writing = False
        self._eof = False
        self._on_bytes = on_bytes
        self._on_eof = on_eof
        self._on_error = on_error
        self._on_read = on_read

    def start(self) -> None:
        self._reading = True
        self._loop.add_reader(self._src, self._readable)

    def _readable(self) -> None:
        for _ in range(_BATCHES):
            try:
                moved = os.splice(self._src, self._pipe_w, self._chunk, flags=_FLAGS)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(exc)
                return
            if moved == 0:
                self._eof = True
                self._stop_reading()
                if not self._pending:
                    self._finish()
                return
            self._pending += moved
            if self._on_read is not None:
                self._on_read(moved)
            if not self._drain():
                return

    def _drain(self) -> bool:
        """Empty the pipe into the destination; False when it would block (then wait until
        it is writable, without reading more)."""
        while self._pending:
            try:
                moved = os.splice(self._pipe_r, self._dst, self._pending, flags=_FLAGS)
            except BlockingIOError:
                self._stop_reading()
                if not self._writing and not self._closed:
                    self._writing = True
                    self._loop.add_writer(self._dst, self._writable)
                return False
            except OSError as exc:
                self._fail(exc)
                return False
            self._pending -= moved
            self._on_bytes(moved)
        return True

    def _writable(self) -> None:
        if not self._drain():
            return
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._dst)
        if self._eof:
            self._finish()
        elif not self._reading and not self._closed:
            self._reading = True
            self._loop.add_reader(self._src, self._readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._src)

    def _finish(self) -> None:
        self._stop_reading()
        self._on_eof()

    def _fail(self, exc: OSError) -> None:
        self._stop_reading()
        self._on_error(exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_reading", False):
            self._reading = False
            self._loop.remove_reader(self._src)
        if getattr(self, "_writing", False):
            self._writing = False
            self._loop.remove_writer(self._dst)
        for fd in (self._src, self._dst, self._pipe_r, self._pipe_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._src = self._dst = self._pipe_r = self._pipe_w = -1
