"""`procorch up` as a user runs it: a real process, signals, restarts, a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from procorch.api import errors, resources
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import read

CM = resources.must("core/configmaps")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Up:
    def __init__(self, proc: asyncio.subprocess.Process, data_dir: Path) -> None:
        self.proc = proc
        self.data_dir = data_dir

    def client(self) -> HttpClient:
        return HttpClient.from_credentials(read(self.data_dir / "kubeconfig"))


@asynccontextmanager
async def procorch_up(data_dir: Path, *args: str, port: int | None = None) -> AsyncIterator[Up]:
    port = port or free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        "up",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(port),
        "--ingress-port",
        "0",
        "--ingress-tls-port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    up = Up(proc, data_dir)
    try:
        yield up
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def wait_ready(up: Up, timeout: float = 20) -> HttpClient:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if up.proc.returncode is not None:
            output = (await up.proc.stdout.read()).decode() if up.proc.stdout else ""
            raise AssertionError(f"procorch exited with {up.proc.returncode}:\n{output}")
        if (up.data_dir / "kubeconfig").exists():
            client = up.client()
            try:
                await client.list(CM, namespace="default")
                return client
            except errors.ApiError:
                await client.close()
        await asyncio.sleep(0.1)
    raise AssertionError("procorch did not become ready")


MANIFESTS = {
    "app/config.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: one}
        data: {a: "1"}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: two, namespace: team}
        """,
    "app/nested/ns.yaml": """
        apiVersion: v1
        kind: Namespace
        metadata: {name: team}
        """,
}


def write_manifests(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "app"


async def test_up_applies_files_writes_kubeconfig_and_stops_cleanly(tmp_path: Path) -> None:
    manifests = write_manifests(tmp_path, MANIFESTS)
    data = tmp_path / "data"
    async with procorch_up(data, "-f", str(manifests)) as up:
        client = await wait_ready(up)
        try:
            mode = stat.S_IMODE((data / "kubeconfig").stat().st_mode)
            assert mode == 0o600
            for _ in range(50):
                try:
                    two = await client.get(CM, "two", namespace="team")
                    break
                except errors.NotFound:
                    await asyncio.sleep(0.1)
            assert two["metadata"]["namespace"] == "team"
            assert (await client.get(CM, "one", namespace="default"))["data"] == {"a": "1"}
        finally:
            await client.close()
        up.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(up.proc.wait(), 15) == 0
    # Restart on the same data dir: everything is back.
    async with procorch_up(data) as up:
        client = await wait_ready(up)
        try:
            assert (await client.get(CM, "two", namespace="team"))["metadata"]["name"] == "two"
        finally:
            await client.close()
        up.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(up.proc.wait(), 15) == 0


async def test_an_invalid_manifest_applies_nothing_and_exits_non_zero(tmp_path: Path) -> None:
    manifests = write_manifests(
        tmp_path,
        {
            "app/good.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n",
            "app/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
        },
    )
    data = tmp_path / "data"
    async with procorch_up(data, "-f", str(manifests)) as up:
        code = await asyncio.wait_for(up.proc.wait(), 20)
        output = (await up.proc.stdout.read()).decode() if up.proc.stdout else ""
    assert code == 1
    assert "metadata.name" in output and "nothing was applied" in output
    async with procorch_up(data) as up:
        client = await wait_ready(up)
        try:
            with pytest.raises(errors.NotFound):
                await client.get(CM, "good", namespace="default")
        finally:
            await client.close()
        up.proc.send_signal(signal.SIGTERM)
        await up.proc.wait()


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with procorch_up(data) as up:
        client = await wait_ready(up)
        acked = []
        try:

            async def write(i: int) -> None:
                await client.create(
                    CM,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"c{i}", "namespace": "default"},
                    },
                )
                acked.append(f"c{i}")

            await asyncio.gather(*(write(i) for i in range(100)))
            os.kill(up.proc.pid, signal.SIGKILL)  # right after the acknowledgements
        finally:
            await client.close()
        await up.proc.wait()
    async with procorch_up(data) as up:
        client = await wait_ready(up)
        try:
            names = {
                o["metadata"]["name"] for o in (await client.list(CM, namespace="default")).items
            }
            assert set(acked) <= names and len(acked) == 100
        finally:
            await client.close()
        up.proc.send_signal(signal.SIGTERM)
        await up.proc.wait()
