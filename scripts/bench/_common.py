"""Shared helpers for the benchmarks: start a real procorch, time things, print tables."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
PROCORCH = ROOT / ".venv" / "bin" / "procorch"


def which(name: str) -> str | None:
    """A program on PATH, or in the sbin directories root's PATH has."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def ensure_packages(*names: str) -> None:
    """Install with apt-get the Debian packages (named as their programs) that are missing."""
    missing = [name for name in names if which(name) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing {', '.join(missing)}: install the Debian packages (as root)")
    print(f"installing {' '.join(missing)} with apt-get…", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
        timeout=600,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


class Server:
    def __init__(self, url: str, token: str, proc: subprocess.Popen[bytes], data_dir: Path):
        self.url = url
        self.token = token
        self.proc = proc
        self.data_dir = data_dir
        self.ssl: ssl.SSLContext | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


@asynccontextmanager
async def procorch_server(*extra: str) -> AsyncIterator[Server]:
    """``procorch up`` in a subprocess with a temp data dir; yields once the API is ready."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="procorch-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "PROCORCH_LOG_LEVEL": "warning"}
        proc = subprocess.Popen(
            [
                str(PROCORCH),
                "up",
                "--data-dir",
                str(data_dir),
                "--api-port",
                str(port),
                "--log-level",
                "warning",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )
        try:
            url = f"https://127.0.0.1:{port}"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        async with session.get(url + "/readyz") as r:
                            if r.status == 200 and (data_dir / "kubeconfig").exists():
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("procorch did not come up")
                    await asyncio.sleep(0.05)
            token = (data_dir / "admin-token").read_text().strip()
            server = Server(url, token, proc, data_dir)
            server.ssl = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def summary(values: list[float]) -> str:
    return (
        f"p50 {ms(percentile(values, 50))}, p99 {ms(percentile(values, 99))}, "
        f"mean {ms(statistics.fmean(values))}"
    )


def configmap(ns: str, name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
            "data": {"key": "value", "other": "x" * 200},
        }
    ).encode()
