"""Shared fixtures: a real procorch on a free port, its clients, and real kubectl.

Also the leak guard: a test that leaves child processes behind fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from procorch.client.http import HttpClient
from procorch.client.kubeconfig import read
from procorch.launcher.up import Procorch, UpConfig

KUBECTL = shutil.which("kubectl")


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves child processes running."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = 50
    leaked: list[psutil.Process] = []
    for _ in range(deadline):
        leaked = [
            p
            for p in me.children(recursive=True)
            if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]
        if not leaked:
            break
        import time

        time.sleep(0.1)
    for proc in leaked:
        proc.kill()
    assert not leaked, f"test leaked processes: {[p.cmdline() for p in leaked]}"


@pytest.fixture
async def procorch(tmp_path: Path) -> AsyncIterator[Procorch]:
    """A bare control plane (no node): API server, store, controllers."""
    instance = Procorch(UpConfig(data_dir=tmp_path / "data", api_port=0, node=False))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def http(procorch: Procorch) -> AsyncIterator[HttpClient]:
    creds = read(procorch.kubeconfig_path)
    client = HttpClient.from_credentials(creds)
    try:
        yield client
    finally:
        await client.close()


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Kubectl:
    """Runs the real kubectl against a procorch, asynchronously (the server shares our loop)."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    async def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> KubectlResult:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None), timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        result = KubectlResult(proc.returncode or 0, out.decode(), err.decode())
        if check and not result.ok:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
                f"\n{result.stdout}"
            )
        return result

    @contextlib.asynccontextmanager
    async def port_forward(self, *args: str) -> AsyncIterator[list[int]]:
        """Run ``kubectl port-forward ARGS`` (ports as ``:REMOTE``) and yield the local ports
        it listens on, in order; stopped at the end."""
        proc = await self.start("port-forward", "--address=127.0.0.1", *args)
        try:
            ports: list[int] = []
            assert proc.stdout is not None
            while len(ports) < sum(1 for a in args if ":" in a):
                line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
                assert line, f"kubectl port-forward ended: {(await proc.stderr.read()).decode()}"
                found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
                if found:
                    ports.append(int(found.group(1)))
            yield ports
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def start(self, *args: str) -> Any:
        """Start a long-running kubectl (e.g. ``get -w``); the caller must stop it."""
        assert KUBECTL is not None
        return asyncio.create_subprocess_exec(
            KUBECTL,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )


@pytest.fixture
def kubectl(procorch: Procorch, tmp_path: Path) -> Kubectl:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed on this machine (tests that drive it skip)")
    return Kubectl(procorch.kubeconfig_path, tmp_path / "kube-cache")


@dataclass
class Raw:
    """Plain aiohttp access to the API, for checking wire-level details."""

    session: Any
    url: str
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}


@pytest.fixture
async def raw(procorch: Procorch) -> AsyncIterator[Raw]:
    import ssl

    import aiohttp

    creds = read(procorch.kubeconfig_path)
    context = ssl.create_default_context(cadata=creds.ca_data.decode())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield Raw(session, creds.server, creds.token)
