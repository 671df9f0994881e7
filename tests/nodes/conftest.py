"""Several machines on one: each test host is a network namespace the test makes itself.

:class:`HostNetwork` makes a bridge with an address of its own (where the control plane in
the test's process listens) and, per host, a namespace with its own loopback and a veth on
that bridge, with an address only there. Everything is removed at the end, also on failure:
every process in a host namespace is killed, the namespaces and the bridge deleted. Tests
skip, saying why, where namespaces cannot be made (not root, no ``ip``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from procorch.launcher.up import Procorch, UpConfig

IP = shutil.which("ip")
GRACE = 5.0
"""The control plane's --node-monitor-grace-period here; agents renew every second."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert IP is not None
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check)


@dataclass
class Host:
    name: str
    netns: str
    address: str
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)


class HostNetwork:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.tag = tag
        self.bridge = f"pcb{tag}"
        # A /24 of 10.231.0.0/16 that no other run on this machine uses at the same time.
        self.prefix = f"10.231.{int(tag[:2], 16)}"
        self.address = f"{self.prefix}.1"
        self.hosts: list[Host] = []

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        host = Host(name, f"pc-{self.tag}-{name}", f"{self.prefix}.{index}")
        veth = f"pcv{self.tag}{index}"
        _ip("netns", "add", host.netns)
        self.hosts.append(host)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", veth, "master", self.bridge, "up")
        for args in (
            ("link", "set", "lo", "up"),
            ("addr", "add", f"{host.address}/24", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
        ):
            _ip("-n", host.netns, *args)
        return host

    async def run(self, host: Host, *args: str, log: Path) -> asyncio.subprocess.Process:
        """``python -m procorch ARGS`` on ``host``, its output in ``log``."""
        assert IP is not None
        out = open(log, "ab")  # noqa: SIM115 - the process owns it; closed below
        try:
            proc = await asyncio.create_subprocess_exec(
                IP,
                "netns",
                "exec",
                host.netns,
                sys.executable,
                "-m",
                "procorch",
                *args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            out.close()
        host.procs.append(proc)
        return proc

    def pids(self, host: Host) -> list[int]:
        """Every process in the host's namespace."""
        out = _ip("netns", "pids", host.netns, check=False).stdout
        return [int(pid) for pid in out.split()]

    def link(self, host: Host, up: bool) -> None:
        """Cut a host off the network (its processes keep running), or join it back."""
        index = self.hosts.index(host) + 2
        _ip("link", "set", f"pcv{self.tag}{index}", "up" if up else "down")

    async def stop_processes(self) -> None:
        """SIGTERM every agent (each stops its pods and says NotReady), then wait."""
        for host in self.hosts:
            for proc in host.procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in host.procs:
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

    async def remove(self) -> None:
        await self.stop_processes()
        for host in self.hosts:
            # Whatever is left in the namespace (a container, the node supervisor) goes too.
            for pid in self.pids(host):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _ip("netns", "del", host.netns, check=False)
        _ip("link", "del", self.bridge, check=False)


@pytest.fixture
async def network() -> AsyncIterator[HostNetwork]:
    if IP is None or os.geteuid() != 0:
        pytest.skip("network namespaces need root and iproute2's `ip`")
    net = HostNetwork()
    try:
        net.create()
    except subprocess.CalledProcessError as exc:
        _ip("link", "del", net.bridge, check=False)
        pytest.skip(f"cannot make a bridge here: {exc.stderr.strip()}")
    try:
        yield net
    finally:
        await net.remove()


@pytest.fixture
async def control_plane(network: HostNetwork, tmp_path: Path) -> AsyncIterator[Procorch]:
    """``procorch up --no-node`` listening on the bridge's address."""
    plane = Procorch(
        UpConfig(
            data_dir=tmp_path / "control-plane",
            api_host=network.address,
            api_port=0,
            node=False,
            remote_nodes=True,
            # Agents here renew their Lease every second (see join).
            node_monitor_grace_period=GRACE,
        )
    )
    await plane.start()
    try:
        yield plane
    finally:
        await network.stop_processes()  # while the API they report to is up
        await plane.stop()


async def join(
    network: HostNetwork,
    plane: Procorch,
    host: Host,
    tmp_path: Path,
    *,
    token: str | None = None,
    server: str | None = None,
) -> asyncio.subprocess.Process:
    """``procorch agent`` on ``host`` with the control plane's token (or ``token``)."""
    token_file = tmp_path / f"{host.name}.token"
    token_file.write_text(token or (plane.data_dir / "node-token").read_text())
    return await network.run(
        host,
        "agent",
        "--server",
        server or plane.api_url,
        "--token-file",
        str(token_file),
        "--node-name",
        host.name,
        "--node-ip",
        host.address,
        "--data-dir",
        str(tmp_path / host.name),
        "--ingress-port",
        "0",
        "--ingress-tls-port",
        "-1",
        "--node-lease-duration-seconds",
        "4",
        log=tmp_path / f"{host.name}.log",
    )
