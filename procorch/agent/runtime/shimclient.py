"""The agent's side of the node supervisor process (:mod:`procorch.agent.runtime.shim`).

:meth:`ShimRuntime.connect` connects to the supervisor of this node if one is running (an
earlier agent crashed: its containers are still there to adopt), or starts a new one in its own
session (a terminal's Ctrl-C reaches the agent, which then stops the containers in order).
Requests are multiplexed over one Unix socket, each with an id; exit notifications arrive on the
same stream and go to the ``on_exit`` listeners.

If the supervisor process dies, pending requests fail with :class:`RuntimeError_`, and the
``on_lost`` listeners are told: every container of it is gone, and the agent reconnects (which
starts a new supervisor) and restarts what should run.

Concurrency: one reader task per connection; any number of concurrent requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from procorch.agent.runtime.api import AttachedProcess, Runtime
from procorch.agent.runtime.shim import MAX_LINE, exec_socket_path
from procorch.agent.runtime.spec import (
    ERRORS,
    ContainerSpec,
    ContainerState,
    ExecResult,
    ExecStdio,
    ExitStatus,
    RuntimeError_,
    Stats,
)
from procorch.kit import fdwait
from procorch.kit.logging import get_logger

log = get_logger("runtime.client")


class ShimRuntime(Runtime):
    def __init__(
        self,
        *,
        socket_path: Path,
        scope: str,
        log_path: Path,
        cgroups: bool = True,
        orphan_timeout: float = 30.0,
        start_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.scope = scope
        self.log_path = log_path
        self.cgroups = cgroups
        self.orphan_timeout = orphan_timeout
        self.start_timeout = start_timeout
        self.adopted = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._process: asyncio.subprocess.Process | None = None
        self._closing = False
        self._follow = False

    # -- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the running supervisor, or start one. Sets :attr:`adopted` when an
        existing supervisor (with possibly running containers) was found."""
        self._closing = False
        if await self._try_connect():
            self.adopted = True
            log.info("connected to the running node supervisor", socket=str(self.socket_path))
            if self._follow:
                await self._call("follow_output", enabled=True)
            return
        self.adopted = False
        await self._spawn()
        async with asyncio.timeout(self.start_timeout):
            while not await self._try_connect():
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError_(
                        f"the node supervisor exited at start ({self._process.returncode}); "
                        f"see {self.log_path}"
                    )
                await asyncio.sleep(0.02)
        if self._follow:
            await self._call("follow_output", enabled=True)

    async def _try_connect(self) -> bool:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=MAX_LINE
            )
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        self._reader, self._writer = reader, writer
        self._reader_task = asyncio.create_task(self._read(reader), name="runtime/shim-reader")
        return True

    async def _spawn(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "procorch.agent.runtime.shim",
            "--socket",
            str(self.socket_path),
            "--scope",
            self.scope,
            "--orphan-timeout",
            str(self.orphan_timeout),
        ]
        if not self.cgroups:
            args.append("--no-cgroups")
        with open(self.log_path, "ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        log.info("started the node supervisor", pid=self._process.pid, log=str(self.log_path))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "event" in message:
                    if message["event"] == "output":
                        self._emit_output(
                            message["container"],
                            message["stream"],
                            base64.b64decode(message["data"]),
                        )
                    elif message["event"] == "exit":
                        self._emit_exit(
                            message["container"], ExitStatus.from_json(message["status"])
                        )
                    continue
                future = self._pending.pop(int(message.get("id") or 0), None)
                if future is None or future.done():
                    continue
                if message.get("ok"):
                    future.set_result(message.get("result"))
                else:
                    err = message.get("error") or {}
                    if err.get("type") == "Timeout":
                        future.set_exception(TimeoutError(err.get("message")))
                    else:
                        cls = ERRORS.get(str(err.get("type")), RuntimeError_)
                        future.set_exception(cls(str(err.get("message"))))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            lost = RuntimeError_("the connection to the node supervisor was lost")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(lost)
            self._pending.clear()
            self._writer = None
            if not self._closing:
                log.error("lost the node supervisor", socket=str(self.socket_path))
                self._emit_lost("the node supervisor process went away")

    async def _call(self, op: str, **args: Any) -> Any:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise RuntimeError_("not connected to the node supervisor")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        writer.write(
            json.dumps({"id": rid, "op": op, "args": args}, separators=(",", ":")).encode() + b"\n"
        )
        try:
            return await future
        finally:
            self._pending.pop(rid, None)

    # -- the Runtime interface ---------------------------------------------------------------

    async def start(self, spec: ContainerSpec) -> ContainerState:
        return ContainerState.from_json(await self._call("start", spec=spec.to_json()))

    async def stop(
        self, container_id: str, *, grace: float, sig: int = signal.SIGTERM
    ) -> ExitStatus:
        result = await self._call("stop", container=container_id, grace=grace, signal=int(sig))
        return ExitStatus.from_json(result)

    async def follow_output(self, enabled: bool) -> None:
        self._follow = enabled
        await self._call("follow_output", enabled=enabled)

    async def send_signal(self, container_id: str, sig: int) -> None:
        await self._call("signal", container=container_id, signal=int(sig))

    async def exec(self, container_id: str, argv: list[str], *, timeout: float) -> ExecResult:
        result = await self._call("exec", container=container_id, argv=argv, timeout=timeout)
        return ExecResult(
            exit_code=int(result["exit_code"]), output=base64.b64decode(result["output"])
        )

    async def _exec_socket(self, request: dict[str, Any], fds: list[int]) -> socket.socket:
        """A new connection to the supervisor's exec socket, ``request`` sent on it with
        ``fds``."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, str(exec_socket_path(self.socket_path)))
            except OSError as exc:
                raise RuntimeError_(f"cannot reach the node supervisor: {exc}") from exc
            # A fresh local socket has room for one small message: this never blocks.
            socket.send_fds(
                sock, [json.dumps(request, separators=(",", ":")).encode() + b"\n"], fds
            )
        except BaseException:
            sock.close()
            raise
        return sock

    async def exec_attached(
        self, container_id: str, argv: list[str], *, stdio: ExecStdio
    ) -> AttachedProcess:
        request = {"container": container_id, "argv": argv, "tty": stdio.tty}
        sock = await self._exec_socket(request, [stdio.stdin, stdio.stdout, stdio.stderr])
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            reply = json.loads(await reader.readline() or b"{}")
            if not reply.get("ok"):
                err = reply.get("error") or {}
                cls = ERRORS.get(str(err.get("type")), RuntimeError_)
                raise cls(str(err.get("message") or "the node supervisor closed the exec"))
            return _ShimProcess(int(reply["pid"]), reader, writer)
        except BaseException:
            writer.close()  # the supervisor hangs up a process it started for nobody
            raise

    async def stdin_of(self, container_id: str) -> int:
        sock = await self._exec_socket({"stdin": container_id}, [])
        try:
            await fdwait.readable(sock.fileno())
            _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
        finally:
            sock.close()
        for fd in fds:
            os.set_inheritable(fd, False)
        return fds[0] if fds else -1

    async def close_stdin(self, container_id: str) -> None:
        await self._call("close_stdin", container=container_id)

    async def stats(self, container_ids: list[str] | None = None) -> dict[str, Stats]:
        result = await self._call("stats", containers=container_ids)
        return {k: Stats.from_json(v) for k, v in result.items()}

    async def list(self) -> list[ContainerState]:
        return [ContainerState.from_json(s) for s in await self._call("list")]

    async def remove(self, container_id: str) -> None:
        await self._call("remove", container=container_id)

    async def describe(self) -> dict[str, str]:
        return dict(await self._call("describe"))

    async def close(self, *, grace: float = 10.0, stop_containers: bool = True) -> None:
        self._closing = True
        if stop_containers and self._writer is not None:
            with contextlib.suppress(RuntimeError_, ConnectionError):
                await self._call("shutdown", grace=grace)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._process is not None and stop_containers:
            try:
                async with asyncio.timeout(grace + 5):
                    await self._process.wait()
            except TimeoutError:
                log.warning("node supervisor did not exit; killing it", pid=self._process.pid)
                self._process.kill()
                await self._process.wait()


class _ShimProcess(AttachedProcess):
    """An attached exec in the supervisor process: its connection says the exit code, and
    closing it hangs the process up."""

    def __init__(
        self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.pid = pid
        self._reader = reader
        self._writer = writer
        self._code: int | None = None

    async def wait(self) -> int:
        if self._code is None:
            line = await self._reader.readline()
            self._writer.close()
            if not line:
                raise RuntimeError_("the node supervisor went away during an exec")
            self._code = int(json.loads(line)["exit_code"])
        return self._code

    def hang_up(self) -> None:
        self._writer.close()
