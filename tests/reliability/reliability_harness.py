"""The reliability run's shared pieces: `procorch up` as a real process (optionally under a
low open-files limit), trial counts, and a slow client.

The run is bounded so that ``./scripts/test`` stays fast: each test runs
:func:`trials` trials (a few by default), and ``PROCORCH_RELIABILITY_TRIALS=N`` (or
``scripts/bench/reliability``) runs more.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from procorch.api import errors, resources
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import Credentials, read

CM = resources.must("core/configmaps")


def trials(default: int) -> int:
    """How many trials a test runs: ``PROCORCH_RELIABILITY_TRIALS`` or ``default``."""
    return int(os.environ.get("PROCORCH_RELIABILITY_TRIALS", default))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class UpProcess:
    proc: asyncio.subprocess.Process
    data_dir: Path
    api_port: int
    ingress_port: int

    @property
    def credentials(self) -> Credentials:
        return read(self.data_dir / "kubeconfig")

    def client(self) -> HttpClient:
        return HttpClient.from_credentials(self.credentials)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.credentials.ca_data.decode())

    async def wait_ready(self, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"procorch exited with {self.proc.returncode}")
            if (self.data_dir / "kubeconfig").exists():
                client = self.client()
                try:
                    await client.list(CM, namespace="default")
                    return
                except (errors.ApiError, OSError):
                    pass
                finally:
                    await client.close()
            await asyncio.sleep(0.1)
        raise AssertionError("procorch did not become ready")


def _limit_open_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@asynccontextmanager
async def procorch_up(
    data_dir: Path, *args: str, open_files: int | None = None
) -> AsyncIterator[UpProcess]:
    """``procorch up`` in a process of its own (its output in ``data_dir/../up.log``);
    ``open_files`` sets its soft and hard RLIMIT_NOFILE."""
    api_port, ingress_port = free_port(), free_port()
    log = (data_dir.parent / "up.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        "up",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        "--ingress-port",
        str(ingress_port),
        "--ingress-tls-port",
        "-1",
        "--no-logs",
        *args,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=(lambda: _limit_open_files(open_files)) if open_files else None,
    )
    up = UpProcess(proc, data_dir, api_port, ingress_port)
    try:
        yield up
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def raise_own_open_files(at_least: int) -> bool:
    """Raise this process's soft RLIMIT_NOFILE; False when the hard limit is below
    ``at_least`` (the attack needs that many sockets of its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < at_least:
        return False
    if soft < at_least:
        resource.setrlimit(resource.RLIMIT_NOFILE, (at_least, hard))
    return True
