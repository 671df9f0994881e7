"""A Procfile project under procorch up, as a foreman user runs it."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import psutil


async def test_procfile_runs_with_env_and_named_output_and_ctrl_c_leaves_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "Procfile").write_text(
        "web: echo web sees $GREETING on $PORT; exec sleep 765432\n"
        "worker: echo worker sees $GREETING $EXTRA; exec sleep 765433\n"
    )
    (tmp_path / ".env").write_text("GREETING='hello there'\n")
    (tmp_path / "more.env").write_text("EXTRA=from-more\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        "up",
        "--api-port",
        "0",
        "--ingress-port",
        "0",
        "--ingress-tls-port",
        "-1",
        "-e",
        "more.env",
        "-m",
        "web=2",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        want = {"web.1", "web.2", "worker.1"}
        while want - {line.split(" |")[0].strip() for line in lines}:
            assert time.monotonic() < deadline, lines
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            lines.append(line.decode().rstrip("\n"))
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0
    assert any(
        line.startswith("web.1 ") and line.endswith("| web sees hello there on 5000")
        for line in lines
    )
    assert any(line.endswith("worker sees hello there from-more") for line in lines)
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[-1:] in (["765432"], ["765433"])
    ]
    assert not leftovers
