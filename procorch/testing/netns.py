"""Several hosts on one Linux machine, for tests and benchmarks of multi-node clusters.

:class:`HostNetwork` makes a bridge with an address of its own (where a control plane on this
machine listens) and, per host, a network namespace with its own loopback and a veth on that bridge,
with an address only there; :meth:`HostNetwork.run` starts ``python -m procorch ...`` (``procorch
agent``) on a host, in its network namespace only (the file system, /sys and cgroups stay the
machine's, as on a real host). :meth:`HostNetwork.remove` stops and removes it all: every process in
a host's namespace is killed, the namespaces and the bridge deleted. Needs root and iproute2's
``ip``; :func:`available` says whether this machine can.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

IP = shutil.which("ip")
NSENTER = shutil.which("nsenter")


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
                *_enter(host),
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

    async def agent(
        self,
        host: Host,
        *,
        server: str,
        token_file: Path,
        data_dir: Path,
        log: Path,
        extra: tuple[str, ...] = (),
    ) -> asyncio.subprocess.Process:
        """``procorch agent`` on ``host``, named after it, at its address (Ingress on a free
        port, no Ingress TLS)."""
        return await self.run(
            host,
            "agent",
            "--server",
            server,
            "--token-file",
            str(token_file),
            "--node-name",
            host.name,
            "--node-ip",
            host.address,
            "--data-dir",
            str(data_dir),
            "--ingress-port",
            "0",
            "--ingress-tls-port",
            "-1",
            *extra,
            log=log,
        )

    async def python(self, host: Host, code: str, *, timeout: float = 30.0) -> str:
        """Run ``python -c CODE`` on ``host`` (a program of the host's own, not a pod) and
        return its output; ``RuntimeError`` with the output if it fails."""
        proc = await asyncio.create_subprocess_exec(
            *_enter(host),
            sys.executable,
            "-c",
            code,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"python on {host.name} exited {proc.returncode}: {text}")
        return text

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


def _enter(host: Host) -> list[str]:
    """The command prefix that runs a program in the host's network namespace. nsenter
    changes only the network namespace; ``ip netns exec`` also remounts /sys, which hides
    the cgroup file system from the node's supervisor (it then falls back to slower process
    tracking, which is not what a real host does)."""
    if NSENTER is not None:
        return [NSENTER, f"--net=/run/netns/{host.netns}", "--"]
    assert IP is not None
    return [IP, "netns", "exec", host.netns]


def available() -> str:
    """Empty if host networks can be made here, else why not."""
    if IP is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return ""
