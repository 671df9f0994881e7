"""The container runtime: start, watch, signal, stop, exec into and measure container runs.

A container run is a process started in its own session (so a terminal's Ctrl-C never reaches
it and its group can be signalled as one), in its own cgroups where the machine allows it, with
stdout/stderr (or a pty) pumped into a CRI log file. The supervisor learns of an exit through
its :class:`~procorch.agent.runtime.reaper.Reaper` at once (no polling), kills whatever the main
process left running (a container ends when its main process ends, as in Kubernetes), and tells
its subscribers.

Stopping escalates as Kubernetes does: SIGTERM to the process group, the grace period, then
SIGKILL to every process of the tree - found through the cgroup, or, without one, through the
``PROCORCH_CONTAINER_ID`` marker every descendant inherits in its environment - including
grandchildren that called ``setsid``.

Memory limits are enforced by the cgroup where there is one, otherwise by a watchdog that sums
the resident memory of the tree every ``watchdog_interval`` seconds; either way a kill for
exceeding the limit is reported as ``OOMKilled`` (exit code 137).

Concurrency: one event loop, no threads (so forking with a ``preexec_fn`` is safe). Every
method is a coroutine or a non-blocking call; file writes go to the page cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from procorch.agent.runtime import tree
from procorch.agent.runtime.cgroups import CgroupSystem, ContainerCgroup
from procorch.agent.runtime.child import mount_namespaces_possible
from procorch.agent.runtime.logs import LogWriter
from procorch.agent.runtime.reaper import PidfdReaper, Reaper, SubreaperReaper
from procorch.agent.runtime.spawn import SpawnPlan, spawn
from procorch.agent.runtime.spec import (
    ContainerSpec,
    ContainerState,
    ExecResult,
    ExecStdio,
    ExitStatus,
    Mount,
    StartError,
    Stats,
    UnknownContainer,
)
from procorch.kit.logging import get_logger

MOUNTS_POSSIBLE = "private mount namespaces"
"""What :meth:`Supervisor.describe` says under ``mounts`` when containers can have mounts."""

log = get_logger("runtime")

MARKER = tree.MARKER
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1024 * 1024
EXEC_OUTPUT_LIMIT = 64 * 1024

ExitListener = Callable[[str, ExitStatus], None]
OutputListener = Callable[[str, str, bytes], None]  # (container id, stream, bytes)


@dataclass
class SupervisorConfig:
    scope: str
    """Names this supervisor's cgroups and process markers; stable for one node and data dir,
    so a restarted supervisor finds what a crashed one left."""
    cgroups: bool = True
    """Use cgroups where the machine allows; False forces the marker and watchdog fallbacks."""
    subreaper: bool = False
    """Reap every child (this process owns all its children): the node supervisor process."""
    clone3: bool = False
    """Create processes with ``clone3(CLONE_INTO_CGROUP)``: born in their cgroup, no costly
    move. Only for a single-threaded process (the child runs Python without fork handlers):
    the node supervisor process sets it; in-process runtimes fork."""
    watchdog_interval: float = 0.25
    """Seconds between RSS checks of containers whose memory limit no cgroup enforces."""
    drain_timeout: float = 2.0
    """How long to keep reading a dead container's pipes for its last output."""
    hangup_grace: float = 2.0
    """Seconds an attached exec's process has after its client went away (SIGHUP) before
    SIGKILL."""


@dataclass
class _Run:
    spec: ContainerSpec
    pid: int
    started_at: float
    cgroup: ContainerCgroup | None
    log: LogWriter
    fds: dict[int, str] = field(default_factory=dict)  # read fd -> stream
    stdin_fd: int = -1
    exit: ExitStatus | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    oom: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def state(self) -> ContainerState:
        return ContainerState(
            id=self.spec.id,
            pid=self.pid,
            started_at=self.started_at,
            labels=dict(self.spec.labels),
            log_path=self.spec.log_path,
            exit=self.exit,
        )


def _cgroup_name(container_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", container_id)


class Supervisor:
    def __init__(self, config: SupervisorConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.cgroups = CgroupSystem.detect(config.scope, enabled=config.cgroups)
        self.reaper: Reaper = (
            SubreaperReaper(self.loop) if config.subreaper else PidfdReaper(self.loop)
        )
        self._mounts_possible: bool | None = None
        self._runs: dict[str, _Run] = {}
        self._listeners: list[ExitListener] = []
        self._output: OutputListener | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        # Mount points this supervisor created on the host, and the runs that use each.
        self._target_users: dict[str, set[str]] = {}
        self._created: list[Path] = []
        log.info("container runtime ready", scope=config.scope, **self.cgroups.describe())

    # -- queries -----------------------------------------------------------------------------

    def subscribe_output(self, listener: OutputListener | None) -> None:
        """Also hand every chunk of container output to ``listener`` (as it is read, before
        it is in the log file); None stops it. For ``procorch up``'s live output."""
        self._output = listener

    def subscribe(self, listener: ExitListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def containers(self) -> list[ContainerState]:
        return [run.state() for run in self._runs.values()]

    def state(self, container_id: str) -> ContainerState:
        return self._get(container_id).state()

    def describe(self) -> dict[str, str]:
        return {
            **self.cgroups.describe(),
            "mounts": MOUNTS_POSSIBLE if self.mounts_possible() else "not possible (no privilege)",
        }

    def mounts_possible(self) -> bool:
        if self._mounts_possible is None:
            self._mounts_possible = mount_namespaces_possible()
        return self._mounts_possible

    def _get(self, container_id: str) -> _Run:
        run = self._runs.get(container_id)
        if run is None:
            raise UnknownContainer(f"no container {container_id!r}")
        return run

    # -- start -------------------------------------------------------------------------------

    async def start(self, spec: ContainerSpec) -> ContainerState:
        began = time.perf_counter()
        if self._closed:
            raise StartError("the node's container runtime is shutting down")
        existing = self._runs.get(spec.id)
        if existing is not None:
            if existing.exit is None:
                raise StartError(f"container {spec.id} is already running")
            self._forget(existing)
        if (spec.mounts or spec.hostname) and not self.mounts_possible():
            raise StartError(
                "volume mounts need a private mount namespace, which this machine does not "
                f"allow procorch to create (not root, no user namespaces); cannot mount "
                f"{', '.join(m.target for m in spec.mounts)}"
            )
        self._prepare_targets(spec)
        cgroup = None
        if self.cgroups.tracking is not None:
            try:
                cgroup = self.cgroups.create(
                    _cgroup_name(spec.id),
                    memory_limit=spec.memory_limit,
                    cpu_millis=spec.cpu_limit_millis,
                )
            except OSError as exc:
                log.warning("could not create cgroup; using fallbacks", error=str(exc))
        writer = LogWriter(
            spec.log_path, max_bytes=spec.log_max_bytes, max_files=spec.log_max_files
        )
        try:
            run = self._spawn(spec, cgroup, writer)
        except BaseException:
            writer.close()
            if cgroup is not None:
                cgroup.remove()
            raise
        self._runs[spec.id] = run
        if spec.memory_limit is not None and not (cgroup and cgroup.memory_enforced):
            self._ensure_watchdog()
        log.debug(
            "container started",
            container=spec.id,
            pid=run.pid,
            ms=round((time.perf_counter() - began) * 1000, 2),
        )
        return run.state()

    def _prepare_targets(self, spec: ContainerSpec) -> None:
        """Make sure every mount point exists: a missing one is created on the host (a
        directory, or an empty file for a file), kept while any run uses it, and removed with
        the directories made for it once none does."""
        done: list[Mount] = []
        try:
            for m in spec.mounts:
                target = Path(m.target)
                if not target.is_absolute():
                    raise StartError(f"mount path {m.target!r} must be absolute")
                self._target_users.setdefault(m.target, set()).add(spec.id)
                done.append(m)
                if target.exists() or target.is_symlink():
                    continue
                missing = []
                parent = target.parent
                while not parent.exists():
                    missing.append(parent)
                    parent = parent.parent
                for path in reversed(missing):
                    path.mkdir()
                    self._created.append(path)
                if Path(m.source).is_dir():
                    target.mkdir()
                else:
                    target.touch()
                self._created.append(target)
        except OSError as exc:
            self._release_targets(spec)
            raise StartError(
                f"cannot create mount point {exc.filename or ''}: {exc.strerror or exc}"
            ) from exc
        except StartError:
            self._release_targets(spec)
            raise

    def _release_targets(self, spec: ContainerSpec) -> None:
        for m in spec.mounts:
            users = self._target_users.get(m.target)
            if users is None:
                continue
            users.discard(spec.id)
            if users:
                continue
            del self._target_users[m.target]
        in_use = [Path(t) for t in self._target_users]
        for path in sorted(self._created, key=lambda p: len(p.parts), reverse=True):
            if any(u == path or path in u.parents for u in in_use):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue  # not empty (someone else's files): leave it
            self._created.remove(path)

    def _spawn(
        self, spec: ContainerSpec, cgroup: ContainerCgroup | None, writer: LogWriter
    ) -> _Run:
        env = {**spec.env, MARKER: f"{self.config.scope}/{spec.id}"}
        parent_fds: list[int] = []
        child_fds: list[int] = []
        fds: dict[int, str] = {}
        stdin_fd = -1
        try:
            if spec.tty:
                master, slave = os.openpty()
                os.set_blocking(master, False)
                parent_fds.append(master)
                child_fds.append(slave)
                stdin: int = slave
                stdout: int = slave
                stderr: int = slave
                fds[master] = "stdout"
                if spec.stdin:
                    stdin_fd = os.dup(master)
                    parent_fds.append(stdin_fd)
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                for fd in (out_r, err_r):
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
                # The child's ends must block: a process does not expect EAGAIN on stdout.
                os.set_blocking(out_w, True)
                os.set_blocking(err_w, True)
                parent_fds += [out_r, err_r]
                child_fds += [out_w, err_w]
                fds[out_r] = "stdout"
                fds[err_r] = "stderr"
                stdout, stderr = out_w, err_w
                if spec.stdin:
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    child_fds.append(in_r)
                    parent_fds.append(in_w)
                    stdin, stdin_fd = in_r, in_w
                else:
                    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                    child_fds.append(stdin)
            pid = self._start_process(
                spec,
                spec.argv,
                env=env,
                cgroup=cgroup,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                tty=spec.tty,
            )
        except BaseException:
            for fd in parent_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            for fd in child_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        run = _Run(
            spec=spec,
            pid=pid,
            started_at=time.time(),
            cgroup=cgroup,
            log=writer,
            fds=fds,
            stdin_fd=stdin_fd,
        )
        for fd in fds:
            self.loop.add_reader(fd, self._pump, run, fd)
        self.reaper.watch(pid, lambda _pid, status: self._exited(run, status))
        return run

    def _start_process(
        self,
        spec: ContainerSpec,
        argv: list[str],
        *,
        env: dict[str, str],
        cgroup: ContainerCgroup | None,
        stdin: int,
        stdout: int,
        stderr: int,
        tty: bool = False,
    ) -> int:
        """Fork and exec ``argv`` in the container's session, cgroups and mounts."""
        born_in, join = (None, []) if cgroup is None else cgroup.placement()
        plan = SpawnPlan(
            argv=argv,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=spec.cwd,
            tty=tty,
            mounts=spec.mounts,
            hostname=spec.hostname,
            masked=spec.masked,
            uid=spec.run_as_user,
            gid=spec.run_as_group,
            cgroup_dir=born_in,
            join=join,
        )
        return spawn(plan, use_clone3=self.config.clone3)

    # -- output ------------------------------------------------------------------------------

    def _pump(self, run: _Run, fd: int) -> None:
        try:
            data = os.read(fd, 256 * 1024)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO on a pty master once the last slave holder is gone: that is EOF.
            if exc.errno != errno.EIO:
                log.debug("log pipe read failed", container=run.spec.id, error=str(exc))
            data = b""
        stream = run.fds.get(fd, "stdout")
        if data:
            run.log.feed(stream, data)
            if self._output is not None:
                try:
                    self._output(run.spec.id, stream, data)
                except Exception:  # noqa: BLE001 - a viewer must never break logging
                    log.exception("output listener failed")
            return
        self._close_fd(run, fd)

    def _close_fd(self, run: _Run, fd: int) -> None:
        stream = run.fds.pop(fd, None)
        if stream is None:
            return
        self.loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
        run.log.flush_stream(stream)
        if not run.fds:
            run.drained.set()

    # -- exit --------------------------------------------------------------------------------

    def _exited(self, run: _Run, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        sig = -code if code < 0 else None
        exit_code = 128 + sig if sig is not None else code
        oom = run.oom or (run.cgroup is not None and run.cgroup.oom_kills() > 0)
        # A container ends with its main process: nothing it started may outlive it.
        self._kill_tree(run)
        if run.spec.mounts:
            # Its mount namespace dies with its last process; let go of the mount points a
            # moment later.
            self.loop.call_later(0.05, self._release_targets, run.spec)
        if oom:
            reason = "OOMKilled"
            exit_code = 137 if sig is not None or exit_code == 0 else exit_code
        else:
            reason = "Completed" if exit_code == 0 else "Error"
        run.exit = ExitStatus(
            exit_code=exit_code,
            reason=reason,  # type: ignore[arg-type]
            finished_at=time.time(),
            signal=sig,
            message=f"memory limit of {run.spec.memory_limit} bytes exceeded" if oom else "",
        )
        if run.stdin_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(run.stdin_fd)
            run.stdin_fd = -1
        run.exited.set()
        self.loop.call_later(self.config.drain_timeout, self._finish_drain, run)
        log.debug(
            "container exited",
            container=run.spec.id,
            exit_code=exit_code,
            reason=reason,
        )
        for listener in list(self._listeners):
            try:
                listener(run.spec.id, run.exit)
            except Exception:
                log.exception("exit listener failed", container=run.spec.id)

    def _finish_drain(self, run: _Run) -> None:
        for fd in list(run.fds):
            # Read what is buffered, then stop: a process that kept the pipe is dead now.
            with contextlib.suppress(OSError):
                while True:
                    data = os.read(fd, 256 * 1024)
                    if not data:
                        break
                    run.log.feed(run.fds[fd], data)
            self._close_fd(run, fd)
        run.log.close()

    def _kill_tree(self, run: _Run) -> None:
        if run.cgroup is not None and self.cgroups.tracking is not None:
            run.cgroup.kill()
            return
        for pid in tree.find(self.config.scope, run.spec.id, root=run.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    # -- signals and stopping ----------------------------------------------------------------

    def send_signal(self, container_id: str, sig: int) -> None:
        """Send ``sig`` to the container's process group (its main process and the children
        that did not leave the group)."""
        run = self._get(container_id)
        if run.exit is not None:
            return
        try:
            os.killpg(run.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.pid, sig)

    async def stop(
        self, container_id: str, *, grace: float, sig: int = signal.SIGTERM
    ) -> ExitStatus:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL the whole tree; the exit status.

        Cancelled during the grace period, it still kills the tree and waits for the exit
        (shielded, as Trio's ``_run_process`` does) before the cancellation goes on: a stop
        that is given up on must never leave the container running."""
        run = self._get(container_id)
        if run.exit is None and grace > 0:
            self.send_signal(container_id, sig)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace):
                        await run.exited.wait()
            except asyncio.CancelledError:
                await self._kill_and_reap(run, why="stop cancelled during its grace period")
                raise
            if run.exit is None:
                log.warning(
                    "container did not exit within its grace period; killing",
                    container=container_id,
                    grace=grace,
                )
        if run.exit is None:
            await self._kill_and_reap(run)
        assert run.exit is not None
        return run.exit

    async def _kill_and_reap(self, run: _Run, *, why: str = "") -> None:
        """SIGKILL the container's whole tree and wait until its main process is reaped,
        shielded from cancellation (a second cancel is held until then too)."""
        if why:
            log.warning("killing container", container=run.spec.id, reason=why)
        self._kill_tree(run)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        reaped = asyncio.ensure_future(run.exited.wait())
        cancelled = False
        while not reaped.done():
            try:
                await asyncio.shield(reaped)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def wait(self, container_id: str) -> ExitStatus:
        run = self._get(container_id)
        await run.exited.wait()
        assert run.exit is not None
        return run.exit

    def remove(self, container_id: str) -> None:
        """Forget an exited container run (its log file stays)."""
        run = self._runs.get(container_id)
        if run is None:
            return
        if run.exit is None:
            raise StartError(f"container {container_id} is still running; stop it first")
        self._forget(run)

    def _forget(self, run: _Run) -> None:
        self._finish_drain(run)
        if run.cgroup is not None:
            run.cgroup.remove()
        self._runs.pop(run.spec.id, None)

    # -- exec --------------------------------------------------------------------------------

    def exec_attached(
        self, container_id: str, argv: list[str], *, stdio: ExecStdio
    ) -> tuple[int, asyncio.Future[int]]:
        """Start ``argv`` as a process of the running container ``container_id`` on the
        descriptors given (``kubectl exec``; exec probes and hooks through :meth:`exec`): the
        container's environment, working directory, user, mounts, hostname and cgroup, so it
        dies with the container. The caller keeps its ends and may close the ones given as
        soon as this returns. Returns the pid (a process group of its own) and a future of its
        exit code (128 + the signal that killed it)."""
        run = self._get(container_id)
        if run.exit is not None:
            raise StartError(f"container {container_id} is not running")
        spec = run.spec
        pid = self._start_process(
            spec,
            argv,
            env={**spec.env, MARKER: f"{self.config.scope}/{spec.id}"},
            cgroup=run.cgroup,
            stdin=stdio.stdin,
            stdout=stdio.stdout,
            stderr=stdio.stderr,
            tty=stdio.tty,
        )
        done: asyncio.Future[int] = self.loop.create_future()

        def on_exit(_pid: int, status: int) -> None:
            if not done.done():
                code = os.waitstatus_to_exitcode(status)
                done.set_result(128 - code if code < 0 else code)

        self.reaper.watch(pid, on_exit)
        return pid, done

    def stdin_of(self, container_id: str) -> int:
        """A new descriptor of the running container's input (its pipe's writing end, or its
        terminal for a tty: resizable), for ``kubectl attach``; the caller closes it. -1 when
        the container has no stdin."""
        run = self._get(container_id)
        if run.exit is not None or run.stdin_fd < 0:
            return -1
        return os.dup(run.stdin_fd)

    def close_stdin(self, container_id: str) -> None:
        """End the container's input (``stdinOnce``: its first attach ended it)."""
        run = self._get(container_id)
        if run.stdin_fd >= 0 and not run.spec.tty:
            with contextlib.suppress(OSError):
                os.close(run.stdin_fd)
            run.stdin_fd = -1

    def hang_up(self, pid: int, exited: asyncio.Future[int]) -> None:
        """The client of an attached exec went away: SIGHUP its process group (a terminal's
        hang-up), and SIGKILL it if it is still there ``hangup_grace`` seconds later, so
        an abandoned ``kubectl exec`` never leaves a process behind."""
        if exited.done():
            return
        for sig in (signal.SIGHUP, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

        def kill() -> None:
            if not exited.done():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

        timer = self.loop.call_later(self.config.hangup_grace, kill)
        exited.add_done_callback(lambda _: timer.cancel())

    async def exec(self, container_id: str, argv: list[str], *, timeout: float) -> ExecResult:
        """Run ``argv`` in the container's environment, directory, mounts and cgroup (for exec
        probes and hooks). Raises TimeoutError after ``timeout`` (the process is killed)."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid, done = self.exec_attached(
                container_id, argv, stdio=ExecStdio(stdin=devnull, stdout=out_w, stderr=out_w)
            )
        except (StartError, UnknownContainer):
            os.close(out_r)
            raise
        finally:
            for fd in (out_w, devnull):
                with contextlib.suppress(OSError):
                    os.close(fd)
        output = bytearray()
        reader_done = self.loop.create_future()
        os.set_blocking(out_r, False)

        def read() -> None:
            try:
                data = os.read(out_r, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                if len(output) < EXEC_OUTPUT_LIMIT:
                    output.extend(data[: EXEC_OUTPUT_LIMIT - len(output)])
                return
            self.loop.remove_reader(out_r)
            if not reader_done.done():
                reader_done.set_result(None)

        self.loop.add_reader(out_r, read)
        try:
            async with asyncio.timeout(timeout):
                code = await asyncio.shield(done)
                # Output may still be held open by a background child: don't wait long.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await asyncio.shield(reader_done)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            raise
        finally:
            if not reader_done.done():
                self.loop.remove_reader(out_r)
            with contextlib.suppress(OSError):
                os.close(out_r)
        return ExecResult(exit_code=code, output=bytes(output))

    # -- measurements ------------------------------------------------------------------------

    def stats(self, container_ids: list[str] | None = None) -> dict[str, Stats]:
        now = time.time()
        out: dict[str, Stats] = {}
        for cid in container_ids if container_ids is not None else list(self._runs):
            run = self._runs.get(cid)
            if run is None or run.exit is not None:
                continue
            out[cid] = self._stats(run, now)
        return out

    def _stats(self, run: _Run, now: float) -> Stats:
        pids = self._pids(run)
        cpu = run.cgroup.cpu_usage_ns() if run.cgroup else None
        memory = run.cgroup.memory_bytes() if run.cgroup else None
        if cpu is None:
            rss, cpu = tree.usage(pids)
            memory = memory if memory is not None else rss
        elif memory is None:
            memory = tree.rss(pids)
        return Stats(cpu_usage_ns=cpu, memory_bytes=memory, processes=len(pids), timestamp=now)

    def _pids(self, run: _Run) -> list[int]:
        if run.cgroup is not None and self.cgroups.tracking is not None:
            return run.cgroup.pids()
        return tree.find(self.config.scope, run.spec.id, root=run.pid)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = self.loop.create_task(self._watch_memory(), name="runtime/watchdog")

    async def _watch_memory(self) -> None:
        """Enforce memory limits that no cgroup enforces, by summing the tree's RSS."""
        while True:
            limited = [
                run
                for run in self._runs.values()
                if run.exit is None
                and run.spec.memory_limit is not None
                and not (run.cgroup and run.cgroup.memory_enforced)
            ]
            if not limited:
                return
            for run in limited:
                rss = tree.rss(self._pids(run))
                assert run.spec.memory_limit is not None
                if rss > run.spec.memory_limit and run.exit is None:
                    log.warning(
                        "container exceeded its memory limit; killing",
                        container=run.spec.id,
                        rss=rss,
                        limit=run.spec.memory_limit,
                    )
                    run.oom = True
                    self._kill_tree(run)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(run.pid, signal.SIGKILL)
            await asyncio.sleep(self.config.watchdog_interval)

    # -- leftovers and shutdown --------------------------------------------------------------

    def sweep_leftovers(self) -> int:
        """Kill processes a previous supervisor of this scope left behind (it crashed);
        returns how many were killed."""
        killed = 0
        known = {_cgroup_name(cid) for cid in self._runs}
        for name in self.cgroups.leftovers():
            if name in known:
                continue
            group = self.cgroups.open(name)
            if group is None:
                continue
            pids = group.pids()
            killed += len(pids)
            group.kill()
            group.remove()
        for pid in tree.find_scope(self.config.scope):
            if any(pid == run.pid for run in self._runs.values()):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        if killed:
            log.warning("killed processes left behind by a previous run", count=killed)
        return killed

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop every running container (SIGTERM, ``grace``, SIGKILL) and release everything."""
        self._closed = True
        running = [cid for cid, run in self._runs.items() if run.exit is None]
        if running:
            await asyncio.gather(
                *(self.stop(cid, grace=grace) for cid in running), return_exceptions=True
            )
        for run in list(self._runs.values()):
            self._forget(run)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        self.reaper.close()
        self.cgroups.remove_scope()


def _read_nonblocking(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 8192)
    except OSError:
        return b""


def _exec_error(spec: ContainerSpec, exc: OSError, *, argv: list[str] | None = None) -> str:
    cmd = (argv or spec.argv)[0] if (argv or spec.argv) else ""
    if isinstance(exc, FileNotFoundError):
        if spec.cwd and exc.filename == spec.cwd:
            return f'chdir to working directory "{spec.cwd}" failed: no such file or directory'
        if "/" not in cmd:
            return f'exec: "{cmd}": executable file not found in $PATH'
        return f'exec: "{cmd}": stat {cmd}: no such file or directory'
    if isinstance(exc, PermissionError):
        return f'exec: "{cmd}": permission denied'
    return f"exec {shlex.join(argv or spec.argv)}: {exc.strerror or exc}"
