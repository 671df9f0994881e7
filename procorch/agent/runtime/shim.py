"""The node's supervisor process: owns every container process of one node.

``python -m procorch.agent.runtime.shim --socket S --scope X`` serves a
:class:`~procorch.agent.runtime.supervisor.Supervisor` on a Unix socket to the node agent, the
way containerd's shim or conmon sit between kubelet and the processes:

* it is the parent and child subreaper of every container process, so statuses are collected
  at once and daemonized grandchildren are reaped, without ever stealing the children of the
  agent's process;
* it pumps container output into the log files, so a busy (or dead) agent never blocks a
  chatty process;
* it survives an agent crash: containers keep running and logging, and the next agent adopts
  them (``list``) - never a duplicate. If no agent connects within ``--orphan-timeout``
  seconds it stops every container and exits - never an orphan. If the shim itself is killed,
  the agent notices at once and starts a new one, which kills everything the dead one left,
  found through the cgroups / markers (:meth:`Supervisor.sweep_leftovers`); then the pods'
  containers are started again.

Attached execs (``kubectl exec``) use a second socket, :func:`exec_socket_path`: one connection
per exec, whose first line arrives with the process's three descriptors (``SCM_RIGHTS``), so its
input and output go between the agent and the process directly, never through this process.
On the same socket, ``{"stdin": container}`` is answered with a descriptor of a running
container's input (``kubectl attach``).

Protocol: one JSON object per line. Requests ``{"id": n, "op": ..., "args": {...}}`` get
``{"id": n, "ok": true, "result": ...}`` or ``{"id": n, "ok": false, "error": {"type", "message"}}``;
exits are pushed as ``{"event": "exit", "container": id, "status": {...}}``. One agent at a
time: a new connection replaces the old one. Requests run concurrently (a stop can take a
grace period).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from procorch.agent.runtime.spec import ContainerSpec, ExecStdio, ExitStatus, RuntimeError_
from procorch.agent.runtime.supervisor import Supervisor, SupervisorConfig
from procorch.kit import fdwait
from procorch.kit.logging import configure, get_logger

log = get_logger("shim")

MAX_LINE = 16 * 1024 * 1024
MAX_EXEC_REQUEST = 256 * 1024


def exec_socket_path(socket_path: Path) -> Path:
    """Where the supervisor serving ``socket_path`` takes attached execs."""
    return socket_path.with_name(socket_path.name + ".exec")


OUTPUT_BUFFER_LIMIT = 4 * 1024 * 1024


class Shim:
    def __init__(
        self, *, socket_path: Path, config: SupervisorConfig, orphan_timeout: float
    ) -> None:
        self.socket_path = socket_path
        self.config = config
        self.orphan_timeout = orphan_timeout
        self.supervisor: Supervisor | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.done = asyncio.Event()
        self._orphan_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._dropped = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.supervisor = Supervisor(self.config)
        self.supervisor.sweep_leftovers()
        self.supervisor.subscribe(self._on_exit)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._shutdown_soon, f"signal {sig}")
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=MAX_LINE
        )
        os.chmod(self.socket_path, 0o600)
        exec_path = exec_socket_path(self.socket_path)
        with contextlib.suppress(FileNotFoundError):
            exec_path.unlink()
        exec_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        exec_listener.bind(str(exec_path))
        os.chmod(exec_path, 0o600)
        exec_listener.listen(64)
        exec_listener.setblocking(False)
        accepting = asyncio.create_task(self._accept_execs(exec_listener), name="shim/execs")
        self._arm_orphan_timer()
        log.info("supervisor listening", socket=str(self.socket_path), pid=os.getpid())
        try:
            await self.done.wait()
        finally:
            server.close()
            accepting.cancel()
            exec_listener.close()
            with contextlib.suppress(FileNotFoundError):
                exec_path.unlink()
            if self.writer is not None:
                self.writer.close()
            # Let the connection handler see its end before the loop goes away.
            serving = [t for t in self._connections if not t.done()]
            if serving:
                await asyncio.wait(serving, timeout=1.0)
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            await self.supervisor.close(grace=10.0)
            for task in list(self._tasks):
                task.cancel()
        log.info("supervisor stopped")
        return 0

    def _arm_orphan_timer(self) -> None:
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
        self._orphan_timer = asyncio.get_running_loop().call_later(
            self.orphan_timeout, self._shutdown_soon, "no agent connected"
        )

    def _shutdown_soon(self, why: str) -> None:
        if not self._stopping:
            self._stopping = True
            log.info("supervisor shutting down; stopping every container", reason=why)
        self.done.set()

    def _on_exit(self, container_id: str, status: ExitStatus) -> None:
        self._send({"event": "exit", "container": container_id, "status": status.to_json()})

    def _on_output(self, container_id: str, stream: str, data: bytes) -> None:
        """Stream output to the agent, unless it is not keeping up: then drop (the log
        files have everything) and say how much was dropped once it catches up."""
        writer = self.writer
        if writer is None or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() > OUTPUT_BUFFER_LIMIT:
            self._dropped += len(data)
            return
        if self._dropped:
            note = f"[procorch: {self._dropped} bytes of output not shown; see the logs]\n"
            self._send(
                {
                    "event": "output",
                    "container": container_id,
                    "stream": "stderr",
                    "data": base64.b64encode(note.encode()).decode(),
                }
            )
            self._dropped = 0
        self._send(
            {
                "event": "output",
                "container": container_id,
                "stream": stream,
                "data": base64.b64encode(data).decode(),
            }
        )

    def _send(self, message: dict[str, Any]) -> None:
        writer = self.writer
        if writer is None or writer.is_closing():
            return
        writer.write(_line(message))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._connections.add(current)
            current.add_done_callback(self._connections.discard)
        if self.writer is not None and not self.writer.is_closing():
            log.info("a new agent connected; dropping the previous connection")
            self.writer.close()
        self.writer = writer
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
            self._orphan_timer = None
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                except ValueError:
                    continue
                task = asyncio.create_task(self._handle(writer, request), name="shim/request")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if self.writer is writer:
                self.writer = None
                running = self.supervisor is not None and any(
                    s.running for s in self.supervisor.containers()
                )
                if not self.done.is_set() and not running:
                    self._shutdown_soon("the agent left and no container runs")
                elif not self.done.is_set():
                    log.info("agent disconnected", orphan_timeout=self.orphan_timeout)
                    self._arm_orphan_timer()
            writer.close()

    async def _accept_execs(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            task = asyncio.create_task(self._serve_exec(conn), name="shim/exec")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_exec(self, conn: socket.socket) -> None:
        """One attached exec: read the request and its descriptors, start the process, say
        its pid, then its exit code; the agent closing first hangs the process up."""
        sup = self.supervisor
        assert sup is not None
        fds: list[int] = []
        try:
            try:
                request = await _receive_request(conn, fds)
                if "stdin" in request:
                    await self._send_stdin(conn, str(request["stdin"]))
                    return
                if len(fds) != 3:
                    raise RuntimeError_(f"an exec needs 3 descriptors, got {len(fds)}")
                stdio = ExecStdio(
                    stdin=fds[0], stdout=fds[1], stderr=fds[2], tty=bool(request.get("tty"))
                )
                pid, exited = sup.exec_attached(
                    str(request["container"]), list(request["argv"]), stdio=stdio
                )
            except RuntimeError_ as exc:
                conn.setblocking(True)
                conn.sendall(_line({"ok": False, "error": {"type": exc.kind, "message": str(exc)}}))
                return
            finally:
                for fd in fds:
                    os.close(fd)
            reader, writer = await asyncio.open_unix_connection(sock=conn)
            writer.write(_line({"ok": True, "pid": pid}))
            gone = asyncio.ensure_future(reader.read())
            await asyncio.wait((exited, gone), return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                sup.hang_up(pid, exited)
                await exited
            else:
                writer.write(_line({"exit_code": exited.result()}))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            gone.cancel()
            writer.close()
        except (ConnectionError, ValueError, KeyError, TypeError) as exc:
            log.warning("bad exec request", error=str(exc))
        finally:
            conn.close()

    async def _send_stdin(self, conn: socket.socket, container_id: str) -> None:
        sup = self.supervisor
        assert sup is not None
        fd = sup.stdin_of(container_id)
        conn.setblocking(True)
        try:
            socket.send_fds(conn, [_line({"ok": True, "stdin": fd >= 0})], [fd] if fd >= 0 else [])
        finally:
            if fd >= 0:
                os.close(fd)

    async def _handle(self, writer: asyncio.StreamWriter, request: dict[str, Any]) -> None:
        rid = request.get("id")
        try:
            result = await self._dispatch(str(request.get("op")), request.get("args") or {})
            reply: dict[str, Any] = {"id": rid, "ok": True, "result": result}
        except RuntimeError_ as exc:
            reply = {"id": rid, "ok": False, "error": {"type": exc.kind, "message": str(exc)}}
        except TimeoutError:
            reply = {"id": rid, "ok": False, "error": {"type": "Timeout", "message": "timed out"}}
        except Exception as exc:  # noqa: BLE001 - report to the agent, keep serving
            log.exception("request failed", op=request.get("op"))
            reply = {"id": rid, "ok": False, "error": {"type": "Internal", "message": repr(exc)}}
        if not writer.is_closing():
            writer.write(_line(reply))

    async def _dispatch(self, op: str, args: dict[str, Any]) -> Any:
        sup = self.supervisor
        assert sup is not None
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "start":
            return (await sup.start(ContainerSpec.from_json(args["spec"]))).to_json()
        if op == "stop":
            status = await sup.stop(
                args["container"], grace=float(args["grace"]), sig=int(args.get("signal", 15))
            )
            return status.to_json()
        if op == "follow_output":
            sup.subscribe_output(self._on_output if args.get("enabled") else None)
            self._dropped = 0
            return None
        if op == "signal":
            sup.send_signal(args["container"], int(args["signal"]))
            return None
        if op == "exec":
            result = await sup.exec(
                args["container"], list(args["argv"]), timeout=float(args["timeout"])
            )
            return {
                "exit_code": result.exit_code,
                "output": base64.b64encode(result.output).decode(),
            }
        if op == "close_stdin":
            sup.close_stdin(args["container"])
            return None
        if op == "stats":
            return {k: v.to_json() for k, v in sup.stats(args.get("containers")).items()}
        if op == "list":
            return [s.to_json() for s in sup.containers()]
        if op == "remove":
            sup.remove(args["container"])
            return None
        if op == "describe":
            return {**sup.describe(), "supervisor": f"process {os.getpid()}"}
        if op == "shutdown":
            # Stop containers (with the grace given), then exit.
            grace = float(args.get("grace", 10.0))
            await sup.close(grace=grace)
            asyncio.get_running_loop().call_soon(self._shutdown_soon, "asked by the agent")
            return None
        raise RuntimeError_(f"unknown operation {op!r}")


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


async def _receive_request(conn: socket.socket, fds: list[int]) -> dict[str, Any]:
    """The first line of an exec connection, collecting the descriptors that come with it
    into ``fds`` (the caller closes them)."""
    data = b""
    while b"\n" not in data:
        if len(data) > MAX_EXEC_REQUEST:
            raise ValueError("exec request too long")
        await fdwait.readable(conn.fileno())
        try:
            chunk, received, _, _ = socket.recv_fds(conn, 65536, 8)
        except BlockingIOError:
            continue
        for fd in received:  # SCM_RIGHTS gives inheritable descriptors: no child may get them
            os.set_inheritable(fd, False)
        fds.extend(received)
        if not chunk:
            raise ConnectionResetError("the agent closed an exec before asking")
        data += chunk
    request = json.loads(data.split(b"\n", 1)[0])
    if not isinstance(request, dict):
        raise ValueError("exec request is not an object")
    return request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="procorch-shim")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--scope", required=True)
    parser.add_argument("--no-cgroups", action="store_true")
    parser.add_argument("--orphan-timeout", type=float, default=30.0)
    parser.add_argument("--log-format", default="console", choices=["console", "json"])
    parser.add_argument("--log-level", default=os.environ.get("PROCORCH_SHIM_LOG_LEVEL", "info"))
    opts = parser.parse_args(argv)
    configure(fmt=opts.log_format, level=opts.log_level, stream=sys.stderr)
    shim = Shim(
        socket_path=opts.socket,
        config=SupervisorConfig(
            scope=opts.scope, cgroups=not opts.no_cgroups, subreaper=True, clone3=True
        ),
        orphan_timeout=opts.orphan_timeout,
    )
    try:
        import uvloop  # noqa: F401 - not used: uvloop's child handling differs; keep asyncio
    except ImportError:
        pass
    return asyncio.run(shim.run())


if __name__ == "__main__":
    sys.exit(main())
