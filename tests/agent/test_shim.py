"""The node supervisor process: containers outlive an agent, are adopted, and never orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import psutil

from procorch.agent.runtime.shimclient import ShimRuntime
from procorch.agent.runtime.spec import ContainerSpec, ExitStatus


def runtime(tmp_path: Path, scope: str, *, orphan_timeout: float = 30.0) -> ShimRuntime:
    return ShimRuntime(
        socket_path=tmp_path / "supervisor.sock",
        scope=scope,
        log_path=tmp_path / "supervisor.log",
        orphan_timeout=orphan_timeout,
    )


def spec(tmp_path: Path, name: str, argv: list[str]) -> ContainerSpec:
    return ContainerSpec(
        id=name,
        argv=argv,
        env=dict(os.environ),
        log_path=str(tmp_path / "logs" / f"{name}.log"),
        labels={"container": name},
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def supervisor_pid(tmp_path: Path) -> int:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "procorch.agent.runtime.shim" in cmd and str(tmp_path / "supervisor.sock") in cmd:
            return proc.pid
    raise AssertionError("no supervisor process")


async def test_a_new_agent_adopts_the_running_containers(tmp_path: Path) -> None:
    scope = f"procorch-test-{uuid.uuid4().hex[:8]}"
    first = runtime(tmp_path, scope)
    await first.connect()
    assert not first.adopted
    state = await first.start(spec(tmp_path, "web", ["sleep", "60"]))
    # The agent goes away without stopping anything (as if it crashed).
    await first.close(stop_containers=False)
    assert alive(state.pid)

    second = runtime(tmp_path, scope)
    await second.connect()
    try:
        assert second.adopted
        listed = await second.list()
        assert [(s.id, s.pid, s.running, s.labels) for s in listed] == [
            ("web", state.pid, True, {"container": "web"})
        ]
        exits: list[tuple[str, ExitStatus]] = []
        second.on_exit(lambda cid, status: exits.append((cid, status)))
        status = await second.stop("web", grace=5)
        assert status.signal == signal.SIGTERM
        await until(lambda: exits and exits[0][0] == "web")
    finally:
        await second.close()
    assert not alive(state.pid)


async def test_with_no_agent_the_supervisor_stops_everything_and_exits(tmp_path: Path) -> None:
    scope = f"procorch-test-{uuid.uuid4().hex[:8]}"
    rt = runtime(tmp_path, scope, orphan_timeout=0.5)
    await rt.connect()
    state = await rt.start(spec(tmp_path, "lonely", ["sleep", "60"]))
    pid = supervisor_pid(tmp_path)
    await rt.close(stop_containers=False)
    await until(lambda: not alive(state.pid))
    await until(lambda: not alive(pid))
    assert not (tmp_path / "supervisor.sock").exists()
    # Reap the supervisor (our child) so it is not counted as a leak.
    proc = rt._process  # noqa: SLF001
    assert proc is not None
    await proc.wait()


async def test_a_killed_supervisor_leaves_nothing_behind_once_replaced(tmp_path: Path) -> None:
    scope = f"procorch-test-{uuid.uuid4().hex[:8]}"
    rt = runtime(tmp_path, scope)
    await rt.connect()
    lost: list[str] = []
    rt.on_lost(lost.append)
    pidfile = tmp_path / "daemon.pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 1000' & sleep 1000"
    state = await rt.start(spec(tmp_path, "tree", ["sh", "-c", script]))
    await until(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit())
    daemon = int(pidfile.read_text())
    os.kill(supervisor_pid(tmp_path), signal.SIGKILL)
    await until(lambda: bool(lost))
    proc = rt._process  # noqa: SLF001
    assert proc is not None
    await proc.wait()
    # The next supervisor (the agent starts one at once) finds and kills everything the dead
    # one left: the main process and the daemon that escaped its session.
    replacement = runtime(tmp_path, scope)
    await replacement.connect()
    try:
        await until(lambda: not alive(state.pid))
        await until(lambda: not alive(daemon))
        assert await replacement.list() == []
    finally:
        await replacement.close()
