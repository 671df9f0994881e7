"""procorch up -d, procorch status, procorch down: a background procorch as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil


def procorch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procorch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_detached_procorch_runs_reports_and_stops(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: sleeper}
            spec:
              containers:
              - {name: main, command: ["sleep", "987654"]}
            """
        )
    )
    up = procorch(
        "up",
        "-d",
        "--data-dir",
        "d",
        "--api-port",
        "0",
        "--ingress-port",
        "0",
        "--ingress-tls-port",
        "0",
        "-f",
        "pod.yaml",
        cwd=tmp_path,
    )
    assert up.returncode == 0, up.stderr
    assert "procorch is up in the background" in up.stdout
    try:
        again = procorch("up", "-d", "--data-dir", "d", "--api-port", "0", cwd=tmp_path)
        assert again.returncode == 1 and "already running" in again.stderr
        status = procorch("status", "--data-dir", "d", cwd=tmp_path)
        assert status.returncode == 0
        assert "procorch is running" in status.stdout
        assert "default    sleeper" in status.stdout
    finally:
        down = procorch("down", "--data-dir", "d", cwd=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert procorch("status", "--data-dir", "d", cwd=tmp_path).returncode == 3
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if "987654" in (p.info["cmdline"] or [])
    ]
