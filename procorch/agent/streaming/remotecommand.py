"""``kubectl exec`` and ``attach`` on the node: a process in a container, or a running
container, its streams over a WebSocket.

Kubernetes' remote command protocol over WebSocket (``v5.channel.k8s.io`` and the versions
before it, as kubelet's streaming server speaks it): every binary message starts with a channel
byte - 0 stdin, 1 stdout, 2 stderr, 3 error (the final ``Status``), 4 terminal resize (JSON
``{"Width", "Height"}``) - and, in v5, 255 closes the stream named by the next byte (stdin's
end of file). The ``base64.channel.k8s.io`` variant carries the channel as an ASCII digit and
the data base64-encoded in text messages.

The session: the process gets pipes (or a pty's terminal side when ``tty``) made here, and is
started in the container by the runtime (:meth:`Runtime.exec_attached`), so its input and output
go between this process and it directly. When it exits, the output is drained, its exit is
written on the error channel as kubelet writes it (``Success``, or ``NonZeroExitCode`` with the
code), and the WebSocket is closed. A client that goes away hangs the process up.

Concurrency: one task per output stream and one reading the WebSocket, on the agent's loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import json
import os
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from procorch.agent.runtime.api import AttachedProcess
from procorch.agent.runtime.spec import ExecStdio, RuntimeError_
from procorch.kit import fdwait
from procorch.kit.logging import get_logger

log = get_logger("agent.exec")

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
BASE64_PROTOCOLS = ("v4.base64.channel.k8s.io", "base64.channel.k8s.io")
PROTOCOLS = (V5, V4, "channel.k8s.io", *BASE64_PROTOCOLS)
"""Offered by the server in its order of preference; the client's order decides (RFC 6455)."""
READ_SIZE = 64 * 1024
DRAIN_TIMEOUT = 1.0
"""How long to keep reading output after the process exited (a background child may hold it)."""
COMMAND_NOT_FOUND, NOT_EXECUTABLE = 127, 126
MAX_RESIZE_BUFFER = 4096

Starter = Callable[[ExecStdio], Awaitable[AttachedProcess]]


@dataclass(frozen=True)
class StreamOptions:
    """What the client asked for (``stdin``, ``stdout``, ``stderr``, ``tty`` query flags)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamOptions:
        def flag(name: str) -> bool:
            # As Kubernetes converts a query: absent is false, and only 0 and false are.
            value = query.get(name)
            return value is not None and str(value).lower() not in ("0", "false")

        tty = flag("tty")
        # With a terminal, stderr is the terminal's output: kubelet ignores the flag.
        return cls(
            stdin=flag("stdin"), stdout=flag("stdout"), stderr=flag("stderr") and not tty, tty=tty
        )


def exit_status(code: int, argv: list[str]) -> dict[str, object]:
    """The error channel's last word, as kubelet writes it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(argv)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def start_failure_code(message: str) -> int:
    """The exit code a shell gives a command it cannot run: 127 not found, 126 otherwise."""
    return (
        COMMAND_NOT_FOUND
        if "not found" in message or "no such file" in message
        else (NOT_EXECUTABLE)
    )


class Channels:
    """The framing of one WebSocket: a channel byte then the data (binary messages out; text
    messages in too, as the Python client sends them), or the base64 variants (a digit, then
    base64, in text messages)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.ws_protocol or ""
        self.base64 = self.protocol in BASE64_PROTOCOLS
        self.status_json = self.protocol in (V5, V4)
        """v4 and later end with a Status on the error channel; before, failures as text."""
        self.closes = self.protocol == V5
        """v5's channel 255 closes a stream (stdin's end of file)."""

    async def send(self, channel: int, data: bytes) -> None:
        if self.base64:
            await self.ws.send_str(str(channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes((channel,)) + data)

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        if not message:
            return None
        if isinstance(message, bytes):
            return message[0], message[1:]
        if self.base64:
            try:
                return int(message[0]), base64.b64decode(message[1:])
            except ValueError:
                return None
        return ord(message[0]), message[1:].encode()

    async def finish(self, code: int, status: dict[str, object]) -> None:
        """The error channel's last word: the Status (v4, v5), or on failure its message."""
        if self.status_json:
            await self.send(ERROR, orjson.dumps(status))
        elif code != 0:
            await self.send(ERROR, str(status.get("message", "")).encode())


class _Session:
    """A client's streams to a process: its output out, its input, terminal size and end of
    input in."""

    def __init__(self, ws: web.WebSocketResponse, options: StreamOptions) -> None:
        self.channels = Channels(ws)
        self.ws = ws
        self.options = options
        self.loop = asyncio.get_running_loop()
        self._ours: list[int] = []  # descriptors this side keeps
        self._outputs: list[tuple[int, int]] = []  # (read end, channel)
        self._stdin: int = -1
        self._terminal: int = -1
        self._stdin_closed = False
        self._resize_buffer = b""

    async def _first_frame(self) -> None:
        """kubelet's first message: an empty one on the lowest channel it writes."""
        opts = self.options
        await self.channels.send(STDOUT if opts.stdout else STDERR if opts.stderr else ERROR, b"")

    async def _guarded(self, session: Awaitable[None], failure: str) -> None:
        """Run a session; whatever ends it, release its descriptors and close the WebSocket
        (code 1000). An unexpected failure is said as kubelet's InternalError first."""
        try:
            await session
        except ConnectionError as exc:
            log.debug("stream ended early", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - say it failed, never a silent success
            log.warning("stream failed", error=repr(exc))
            await self._internal_error(f"{failure}: {exc}")
        finally:
            self._release()
            await self.ws.close()

    async def _internal_error(self, message: str) -> None:
        """The error channel's Failure for what went wrong on this side (kubelet's
        InternalError), so the client never mistakes it for success."""
        status = {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.channels.send(ERROR, orjson.dumps(status))

    def _release(self) -> None:
        for fd in self._ours:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._ours.clear()

    async def _pump(self, fd: int, channel: int) -> None:
        """Copy one output to its channel until end of file (EIO on a pty whose last
        terminal holder is gone)."""
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                await fdwait.readable(fd)
                continue
            except OSError as exc:
                if exc.errno != errno.EIO:
                    log.debug("exec output read failed", error=str(exc))
                return
            if not data:
                return
            await self.channels.send(channel, data)

    async def _inbound(self) -> None:
        """Read the client's messages until it closes: stdin, resizes, v5's close."""
        async for message in self.ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            frame = self.channels.decode(message.data)
            if frame is None:
                continue
            channel, data = frame
            if channel == STDIN and data:
                await self._write_stdin(data)
            elif channel == RESIZE:
                self._resize(data)
            elif channel == CLOSE and self.channels.closes and data[:1] == bytes((STDIN,)):
                await self._stdin_ended()

    async def _stdin_ended(self) -> None:
        """The client's input ended (v5's close of stdin)."""
        self._close_stdin()

    async def _write_stdin(self, data: bytes) -> None:
        fd = self._stdin
        if fd < 0 or self._stdin_closed:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                await fdwait.writable(fd)
                continue
            except OSError:  # the process closed its stdin: what it does not read is dropped
                self._close_stdin()
                return
            view = view[written:]

    def _close_stdin(self) -> None:
        if self._stdin_closed or self._stdin < 0:
            return
        self._stdin_closed = True
        if self._stdin == self._terminal:
            # A terminal has no half-close: end of file is ^D at the start of a line.
            with contextlib.suppress(OSError):
                os.write(self._terminal, b"\x04")
            return
        with contextlib.suppress(OSError):
            os.close(self._stdin)
        self._ours.remove(self._stdin)

    def _resize(self, data: bytes) -> None:
        """Channel 4 is a stream of JSON objects ``{"Width", "Height"}``: one may span
        messages, or several share one. A size of zero is skipped, as containerd does."""
        if self._terminal < 0:
            return
        self._resize_buffer = (self._resize_buffer + data)[-MAX_RESIZE_BUFFER:]
        text = self._resize_buffer.decode(errors="replace")
        decoder = json.JSONDecoder()
        at = 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            try:
                size, at = decoder.raw_decode(text, at)
            except ValueError:
                break
            self._apply_size(size)
        self._resize_buffer = text[at:].encode()

    def _apply_size(self, size: object) -> None:
        if not isinstance(size, dict):
            return
        try:
            width, height = int(size.get("Width") or 0), int(size.get("Height") or 0)
        except (TypeError, ValueError):
            return
        if 0 < width < 65536 and 0 < height < 65536:
            with contextlib.suppress(OSError):
                fcntl.ioctl(
                    self._terminal, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0)
                )


class ExecSession(_Session):
    """One exec's process and streams, from start to the final status."""

    def __init__(self, ws: web.WebSocketResponse, options: StreamOptions, argv: list[str]):
        super().__init__(ws, options)
        self.argv = argv

    def _stdio(self) -> tuple[ExecStdio, list[int]]:
        """Make the process's descriptors; returns them and the ones to close once started.
        On failure (no descriptors left) closes what it made."""
        opts = self.options
        theirs: list[int] = []
        try:
            if opts.tty:
                master, slave = os.openpty()
                theirs.append(slave)
                self._ours.append(master)
                os.set_blocking(master, False)
                self._terminal = master
                self._outputs.append((master, STDOUT))
                if opts.stdin:
                    self._stdin = master
                return ExecStdio(stdin=slave, stdout=slave, stderr=slave, tty=True), theirs
            if opts.stdin:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                theirs.append(in_r)
                self._ours.append(in_w)
                os.set_blocking(in_w, False)
                self._stdin = in_w
            else:
                theirs.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            for wanted, channel in ((opts.stdout, STDOUT), (opts.stderr, STDERR)):
                if wanted:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    theirs.append(w)
                    self._ours.append(r)
                    os.set_blocking(r, False)
                    self._outputs.append((r, channel))
                else:
                    theirs.append(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
            return ExecStdio(stdin=theirs[0], stdout=theirs[1], stderr=theirs[2]), theirs
        except BaseException:
            for fd in theirs:
                os.close(fd)
            raise

    async def run(self, start: Starter) -> None:
        """Start the process, stream until it ends (or the client leaves), say how it ended,
        and close the WebSocket (code 1000, waiting for the client's close)."""
        await self._guarded(self._run(start), "error executing command in container")

    async def _run(self, start: Starter) -> None:
        await self._first_frame()
        stdio, theirs = self._stdio()
        try:
            process = await start(stdio)
        except RuntimeError_ as exc:
            await self._refused(str(exc))
            return
        finally:
            for fd in theirs:
                os.close(fd)
        await self._stream(process)

    async def _stream(self, process: AttachedProcess) -> None:
        readers = [
            asyncio.create_task(self._pump(fd, channel), name="exec/output")
            for fd, channel in self._outputs
        ]
        inbound = asyncio.create_task(self._inbound(), name="exec/input")
        exited = asyncio.ensure_future(process.wait())
        tasks = (*readers, inbound, exited)
        try:
            await asyncio.wait((exited, inbound), return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                # The client went away first: hang the process up; nobody hears its end.
                process.hang_up()
                return
            if readers:
                await asyncio.wait(readers, timeout=DRAIN_TIMEOUT)
            code = exited.result()
            await self.channels.finish(code, exit_status(code, self.argv))
        except BaseException:
            process.hang_up()
            raise
        finally:
            await _cancelled(tasks)

    async def _refused(self, message: str) -> None:
        """The process could not start: say why on its output (so the user reads it), and
        end as a shell would (127 for a command not found)."""
        if self.options.tty:
            await self.channels.send(STDOUT, f"{message}\r\n".encode())
        elif self.options.stderr:
            await self.channels.send(STDERR, f"{message}\n".encode())
        code = start_failure_code(message)
        status = exit_status(code, self.argv)
        status["message"] = f"{status['message']}: {message}"
        await self.channels.finish(code, status)


Follow = Callable[[str], AsyncIterator[bytes]]
"""A running container's output on one stream (stdout, stderr) from now on, until it ends."""


class AttachSession(_Session):
    """``kubectl attach``: a running container's output as it is written (from its log), and
    its input. The client's end of input detaches it, or with ``stdinOnce`` (and no terminal)
    ends the container's input, as containerd does; a client that leaves leaves the
    container running."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        options: StreamOptions,
        *,
        stdin: int,
        stdin_once: bool,
        follow: Follow,
        close_stdin: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(ws, options)
        if stdin >= 0:
            os.set_blocking(stdin, False)
            self._stdin = stdin
            self._ours.append(stdin)
            if options.tty:
                self._terminal = stdin
        self.stdin_once = stdin_once
        self.follow = follow
        self.close_container_stdin = close_stdin
        self._detached = asyncio.Event()

    async def _stdin_ended(self) -> None:
        if self.stdin_once and not self.options.tty:
            self._close_stdin()
            await self.close_container_stdin()
        else:
            self._detached.set()

    async def run(self) -> None:
        """Stream until the container ends, the client detaches or leaves; then ``Success``
        (attach never reports an exit code) and close."""
        await self._guarded(self._run(), "error attaching to container")

    async def _run(self) -> None:
        await self._first_frame()
        wanted = [("stdout", STDOUT)] if self.options.stdout or self.options.tty else []
        if self.options.stderr:
            wanted.append(("stderr", STDERR))
        outputs = asyncio.gather(*(self._copy(stream, ch) for stream, ch in wanted))
        inbound = asyncio.create_task(self._inbound(), name="attach/input")
        detached = asyncio.create_task(self._detached.wait(), name="attach/detach")
        try:
            await asyncio.wait((outputs, inbound, detached), return_when=asyncio.FIRST_COMPLETED)
            if not inbound.done():
                await self.channels.finish(0, exit_status(0, []))
        finally:
            await _cancelled((outputs, inbound, detached))

    async def _copy(self, stream: str, channel: int) -> None:
        async for chunk in self.follow(stream):
            await self.channels.send(channel, chunk)


async def _cancelled(tasks: tuple[asyncio.Future[Any], ...]) -> None:
    """Cancel ``tasks`` and wait until they are over, so none still watches a descriptor
    when it is closed (its number may be someone else's a moment later)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
