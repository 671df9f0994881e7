"""The container runtime against real processes: exits, signals, trees, limits, mounts, exec.

Runs the in-process :class:`Supervisor` (the same code the node supervisor process serves), in
both tracking modes where the machine allows cgroups: the cgroup path and the environment
marker fallback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from procorch.agent.runtime.logs import read_log
from procorch.agent.runtime.spec import ContainerSpec, ExecStdio, Mount, StartError
from procorch.agent.runtime.supervisor import Supervisor, SupervisorConfig

PY = sys.executable


@pytest.fixture(params=["cgroups", "marker"])
async def supervisor(request: pytest.FixtureRequest) -> AsyncIterator[Supervisor]:
    sup = Supervisor(
        SupervisorConfig(
            scope=f"procorch-test-{uuid.uuid4().hex[:8]}",
            cgroups=request.param == "cgroups",
            hangup_grace=0.3,
        )
    )
    if request.param == "cgroups" and sup.cgroups.tracking is None:
        await sup.close()
        pytest.skip("no writable cgroup hierarchy on this machine")
    try:
        yield sup
    finally:
        await sup.close(grace=1.0)


def spec(tmp_path: Path, name: str, argv: list[str], **kw: object) -> ContainerSpec:
    return ContainerSpec(
        id=name,
        argv=argv,
        env=dict(os.environ),
        log_path=str(tmp_path / "logs" / name / "0.log"),
        **kw,  # type: ignore[arg-type]
    )


async def output(path: str, **kw: object) -> str:
    chunks = [c async for c in read_log(Path(path), **kw)]  # type: ignore[arg-type]
    return b"".join(chunks).decode()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_exit_code_and_both_streams_reach_the_log(supervisor, tmp_path) -> None:
    code = "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(3)"
    s = spec(tmp_path, "exits", [PY, "-c", code])
    await supervisor.start(s)
    status = await supervisor.wait("exits")
    assert (status.exit_code, status.reason, status.signal) == (3, "Error", None)
    await asyncio.sleep(0.05)
    text = await output(s.log_path)
    assert "to stdout\n" in text and "to stderr\n" in text
    raw = Path(s.log_path).read_text().splitlines()
    assert any(" stdout F to stdout" in line for line in raw)
    assert any(" stderr F to stderr" in line for line in raw)


async def test_clean_exit_is_completed(supervisor, tmp_path) -> None:
    await supervisor.start(spec(tmp_path, "ok", ["true"]))
    status = await supervisor.wait("ok")
    assert (status.exit_code, status.reason) == (0, "Completed")


async def test_stop_sends_sigterm_to_the_process_group(supervisor, tmp_path) -> None:
    code = (
        "import signal,sys,time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    s = spec(tmp_path, "term", [PY, "-c", code])
    await supervisor.start(s)
    await until(lambda: "ready" in Path(s.log_path).read_text())
    started = time.monotonic()
    status = await supervisor.stop("term", grace=10)
    assert time.monotonic() - started < 2
    assert status.exit_code == 0
    await asyncio.sleep(0.05)
    assert "got TERM" in await output(s.log_path)


async def test_a_process_ignoring_sigterm_is_killed_after_its_grace(supervisor, tmp_path) -> None:
    code = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('x', flush=True)\ntime.sleep(60)"
    s = spec(tmp_path, "stubborn", [PY, "-c", code])
    state = await supervisor.start(s)
    await until(lambda: Path(s.log_path).exists() and "x" in Path(s.log_path).read_text())
    started = time.monotonic()
    status = await supervisor.stop("stubborn", grace=0.5)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 3, elapsed
    assert (status.exit_code, status.signal) == (137, 9)
    assert not alive(state.pid)


async def test_a_stop_cancelled_during_its_grace_period_still_kills_and_reaps_the_tree(
    supervisor, tmp_path
) -> None:
    # A process that ignores SIGTERM and leaves a grandchild in a session of its own.
    code = (
        "import signal,subprocess,time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)"
    )
    s = spec(tmp_path, "cancelled", [PY, "-c", code])
    state = await supervisor.start(s)
    await until(lambda: Path(s.log_path).exists() and Path(s.log_path).read_text().strip())
    grandchild = int(Path(s.log_path).read_text().split()[-1])
    stop = asyncio.create_task(supervisor.stop("cancelled", grace=60))
    await asyncio.sleep(0.3)  # SIGTERM sent and ignored: the stop waits out its grace
    assert alive(state.pid)
    stop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stop
    # Once the cancelled stop has returned, the container is dead and reaped, tree and all.
    assert not alive(state.pid)
    assert (await supervisor.wait("cancelled")).signal == 9
    await until(lambda: not alive(grandchild))


async def test_setsid_grandchild_dies_with_its_container(supervisor, tmp_path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 1000' & sleep 1000"
    await supervisor.start(spec(tmp_path, "tree", ["sh", "-c", script]))
    await until(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit())
    grandchild = int(pidfile.read_text())
    assert psutil.Process(grandchild).ppid() != os.getpid()
    assert os.getsid(grandchild) == grandchild  # it escaped the container's session
    await supervisor.stop("tree", grace=5)
    await until(lambda: not alive(grandchild))


async def test_when_the_main_process_exits_nothing_it_started_survives(
    supervisor, tmp_path
) -> None:
    pidfile = tmp_path / "daemon.pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 1000' & sleep 0.3; exit 0"
    await supervisor.start(spec(tmp_path, "leaver", ["sh", "-c", script]))
    await supervisor.wait("leaver")
    await until(lambda: pidfile.exists())
    await until(lambda: not alive(int(pidfile.read_text())))


async def test_memory_hog_is_oomkilled(supervisor, tmp_path) -> None:
    code = "import time\nx=[]\nwhile True:\n    x.append(bytearray(8*1024*1024)); time.sleep(0.005)"
    s = spec(tmp_path, "hog", [PY, "-c", code], memory_limit=96 * 1024 * 1024)
    await supervisor.start(s)
    async with asyncio.timeout(20):
        status = await supervisor.wait("hog")
    assert status.reason == "OOMKilled"
    assert status.exit_code == 137


async def test_command_not_found_is_a_clear_start_error(supervisor, tmp_path) -> None:
    with pytest.raises(
        StartError, match='exec: "no-such-command-xyz": executable file not found in \\$PATH'
    ):
        await supervisor.start(spec(tmp_path, "missing", ["no-such-command-xyz"]))
    assert supervisor.containers() == []


async def test_missing_working_directory_is_a_clear_start_error(supervisor, tmp_path) -> None:
    with pytest.raises(StartError, match='chdir to working directory "/no/such/dir" failed'):
        await supervisor.start(spec(tmp_path, "nodir", ["true"], cwd="/no/such/dir"))


async def test_working_directory_and_environment_are_the_specs(supervisor, tmp_path) -> None:
    s = ContainerSpec(
        id="env",
        argv=["sh", "-c", 'pwd; echo "$GREETING"'],
        env={"PATH": os.environ["PATH"], "GREETING": "hello there"},
        log_path=str(tmp_path / "env.log"),
        cwd=str(tmp_path),
    )
    await supervisor.start(s)
    await supervisor.wait("env")
    await asyncio.sleep(0.05)
    assert await output(s.log_path) == f"{tmp_path}\nhello there\n"


async def test_tty_container_runs_under_a_terminal(supervisor, tmp_path) -> None:
    s = spec(
        tmp_path,
        "tty",
        [PY, "-c", "import sys; print(sys.stdout.isatty(), sys.stdin.isatty())"],
        tty=True,
    )
    await supervisor.start(s)
    await supervisor.wait("tty")
    await asyncio.sleep(0.1)
    assert "True True" in await output(s.log_path)


async def test_stdin_kept_open_blocks_instead_of_eof(supervisor, tmp_path) -> None:
    code = "import sys\nprint('read', repr(sys.stdin.read(1)), flush=True)"
    with_stdin = spec(tmp_path, "stdin", [PY, "-c", code], stdin=True)
    await supervisor.start(with_stdin)
    await asyncio.sleep(0.5)
    assert supervisor.state("stdin").running  # still waiting for input
    without = spec(tmp_path, "nostdin", [PY, "-c", code])
    await supervisor.start(without)
    await supervisor.wait("nostdin")
    await asyncio.sleep(0.05)
    assert "read ''" in await output(without.log_path)


async def test_volume_is_mounted_read_only_at_its_mount_path(supervisor, tmp_path) -> None:
    if not supervisor.mounts_possible():
        pytest.skip("this machine does not allow private mount namespaces")
    source = tmp_path / "data"
    source.mkdir()
    (source / "config.txt").write_text("from the volume")
    target = tmp_path / "mnt"
    target.mkdir()
    script = f"cat {target}/config.txt; echo; touch {target}/new 2>/dev/null && echo writable || echo read-only"
    s = spec(
        tmp_path, "mount", ["sh", "-c", script], mounts=[Mount(str(source), str(target), True)]
    )
    await supervisor.start(s)
    await supervisor.wait("mount")
    await asyncio.sleep(0.05)
    assert await output(s.log_path) == "from the volume\nread-only\n"
    assert list(target.iterdir()) == []  # the host never saw the mount


async def test_exec_runs_in_the_containers_environment(supervisor, tmp_path) -> None:
    s = spec(tmp_path, "target", ["sleep", "60"], cwd=str(tmp_path))
    s = ContainerSpec(**{**s.__dict__, "env": {**s.env, "SECRET_WORD": "swordfish"}})
    await supervisor.start(s)
    result = await supervisor.exec(
        "target", ["sh", "-c", "pwd; echo $SECRET_WORD; exit 4"], timeout=5
    )
    assert result.exit_code == 4
    assert result.output.decode() == f"{tmp_path}\nswordfish\n"
    with pytest.raises(TimeoutError):
        await supervisor.exec("target", ["sleep", "30"], timeout=0.3)


async def test_an_attached_exec_uses_the_callers_descriptors_and_a_hang_up_ends_it(
    supervisor, tmp_path
) -> None:
    await supervisor.start(spec(tmp_path, "box", ["sleep", "60"], cwd=str(tmp_path)))
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    pid, exited = supervisor.exec_attached(
        "box",
        ["sh", "-c", "read line; echo got $line in $PWD; echo oops >&2; exit 7"],
        stdio=ExecStdio(stdin=in_r, stdout=out_w, stderr=out_w),
    )
    os.close(in_r)
    os.close(out_w)
    os.write(in_w, b"hello\n")
    os.close(in_w)
    assert await exited == 7
    with os.fdopen(out_r, "rb") as out:
        assert out.read() == f"got hello in {tmp_path}\noops\n".encode()
    quiet = ExecStdio(stdin=os.open(os.devnull, os.O_RDONLY), stdout=1, stderr=2)
    # The process is the container's: it dies when the container is stopped.
    _, exited = supervisor.exec_attached("box", ["sleep", "60"], stdio=quiet)
    await supervisor.stop("box", grace=1.0)
    assert await asyncio.wait_for(exited, 5) == 137
    # A client that goes away hangs its process up: SIGHUP ends a plain process at once, and
    # one that ignores it is killed after the grace.
    await supervisor.start(spec(tmp_path, "box2", ["sleep", "60"]))
    quick_pid, quick = supervisor.exec_attached("box2", ["sleep", "60"], stdio=quiet)
    ready_r, ready_w = os.pipe()
    stubborn_pid, stubborn = supervisor.exec_attached(
        "box2",
        ["sh", "-c", "trap '' HUP; echo ready; exec sleep 60"],
        stdio=ExecStdio(stdin=quiet.stdin, stdout=ready_w, stderr=2),
    )
    os.close(quiet.stdin)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        assert ready.readline() == b"ready\n"
    began = time.monotonic()
    supervisor.hang_up(quick_pid, quick)
    supervisor.hang_up(stubborn_pid, stubborn)
    assert await asyncio.wait_for(quick, 1) == 128 + signal.SIGHUP
    assert await asyncio.wait_for(stubborn, 5) == 137
    assert time.monotonic() - began >= supervisor.config.hangup_grace * 0.9


async def test_stats_measure_the_whole_tree(supervisor, tmp_path) -> None:
    code = (
        "x = bytearray(64*1024*1024)\nimport time\nwhile True: sum(range(10000)); time.sleep(0.001)"
    )
    await supervisor.start(spec(tmp_path, "busy", ["sh", "-c", f"{PY} -c '{code}' & wait"]))
    await asyncio.sleep(1.0)
    stats = supervisor.stats(["busy"])["busy"]
    assert stats.memory_bytes > 60 * 1024 * 1024
    assert stats.cpu_usage_ns > 0
    assert stats.processes >= 2


async def test_a_chatty_process_is_never_blocked_and_logs_rotate(supervisor, tmp_path) -> None:
    code = "import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(300000): sys.stdout.write(line)\n"
    s = spec(tmp_path, "chatty", [PY, "-c", code], log_max_bytes=2 * 1024 * 1024, log_max_files=3)
    await supervisor.start(s)
    async with asyncio.timeout(30):
        status = await supervisor.wait("chatty")
    assert status.exit_code == 0
    await asyncio.sleep(0.2)
    files = sorted(p.name for p in Path(s.log_path).parent.iterdir())
    assert len(files) == 3, files
    assert all(p.stat().st_size <= 2 * 1024 * 1024 + 200 for p in Path(s.log_path).parent.iterdir())
