"""L4 part of the proxy benchmark (issue 6): the Service proxy beside HAProxy in TCP mode.

The backend is an nginx (one worker, sendfile) on a pod-range address serving a small static
file and a 10 MiB one. Three ways to reach it are measured, runs interleaved: through the
Service's cluster IP (``procorch up``, uvloop, a selector-less Service with a hand-made
EndpointSlice), through HAProxy in ``mode tcp`` with one thread and its default settings, and
directly. Small files: requests/s and p99 latency with ``connections`` keep-alive connections.
10 MiB files: MiB/s with ``big_connections`` connections.

Load: wrk, ``duration`` seconds per run, the median run of each reported. haproxy, nginx and
wrk are installed with apt-get when missing (Debian packages ``haproxy``, ``nginx``, ``wrk``).

Use :func:`l4` from another benchmark (``await l4(...)``) or run this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_packages, free_port, procorch_server, which  # noqa: E402

BACKEND_IP = "127.1.254.20"
SMALL = b"<html><body>procorch bench: a small static response.</body></html>\n"
BIG_SIZE = 10 * 1024 * 1024
TARGETS = ("procorch", "haproxy", "direct")


@dataclass
class Run:
    requests_per_s: float
    mib_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us_per_request: float = float("nan")
    """CPU time (user + system) of the proxy process per request; nan for ``direct``."""


@dataclass
class L4Result:
    small: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    big: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TARGETS})

    @staticmethod
    def median(runs: list[Run], key: str) -> Run:
        ordered = sorted(runs, key=lambda r: getattr(r, key))
        return ordered[len(ordered) // 2]

    def rows(self) -> list[tuple[str, str, str]]:
        """(measurement, result, target) rows for the README's Performance table."""
        small = {t: self.median(self.small[t], "requests_per_s") for t in TARGETS}
        big = {t: self.median(self.big[t], "mib_per_s") for t in TARGETS}
        mine, ref, direct = small["procorch"], small["haproxy"], small["direct"]
        cpu = {
            t: statistics.median(r.cpu_us_per_request for r in self.small[t])
            for t in ("procorch", "haproxy")
        }
        ratio = mine.requests_per_s / ref.requests_per_s if ref.requests_per_s else float("nan")
        big_ratio = (
            big["procorch"].mib_per_s / big["haproxy"].mib_per_s
            if big["haproxy"].mib_per_s
            else float("nan")
        )
        return [
            (
                "Service (L4), requests/s, small HTTP responses, keep-alive",
                f"{mine.requests_per_s:,.0f} vs HAProxy tcp {ref.requests_per_s:,.0f}: "
                f"**{ratio:.2f}x** (direct {direct.requests_per_s:,.0f})",
                "≥ 0.9x HAProxy",
            ),
            (
                "Service (L4), latency",
                f"p50 {mine.p50_ms:.2f} ms, p99 {mine.p99_ms:.2f} ms (HAProxy p50 "
                f"{ref.p50_ms:.2f} ms, p99 {ref.p99_ms:.2f} ms; direct p99 {direct.p99_ms:.2f} ms)",
                "",
            ),
            (
                "Service (L4), CPU per small request (proxy process, user + system)",
                f"{cpu['procorch']:.1f} µs vs HAProxy {cpu['haproxy']:.1f} µs: "
                f"{cpu['procorch'] / cpu['haproxy']:.2f}x",
                "",
            ),
            (
                "Service (L4), 10 MiB bodies",
                f"{big['procorch'].mib_per_s:,.0f} MiB/s vs HAProxy tcp "
                f"{big['haproxy'].mib_per_s:,.0f} MiB/s: **{big_ratio:.2f}x** "
                f"(direct {big['direct'].mib_per_s:,.0f} MiB/s)",
                "≥ 1.0x HAProxy",
            ),
        ]


# -- tools ---------------------------------------------------------------------------------------


def ensure_tools() -> None:
    ensure_packages("haproxy", "nginx", "wrk")


class Process:
    """A foreground server process, stopped with ``stop_signal`` then SIGKILL."""

    def __init__(self, argv: list[str], *, stop_signal: int = signal.SIGTERM) -> None:
        self.argv = argv
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def nginx_conf(directory: Path | str, listen: str, root: Path) -> str:
    """An nginx.conf for one worker with sendfile and no access log, its pid, error log and
    temp files under ``directory``, serving ``root`` on ``listen`` (``addr:port``)."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"  {kind}_temp_path {directory}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n  sendfile on;\n  keepalive_requests 1000000;\n{temp}\n"
        f"  server {{\n    listen {listen};\n    root {root};\n"
        "    keepalive_timeout 75s;\n  }\n}\n"
    )


def nginx_backend(workdir: Path, port: int) -> Process:
    directory = workdir / "nginx"
    directory.mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(nginx_conf(directory, f"{BACKEND_IP}:{port}", workdir / "www"))
    nginx = which("nginx")
    assert nginx is not None
    return Process(
        [nginx, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
        stop_signal=signal.SIGQUIT,
    )


def haproxy_tcp(workdir: Path, port: int, backend_port: int) -> Process:
    conf = workdir / "haproxy.cfg"
    conf.write_text(
        "global\n  nbthread 1\n  maxconn 4000\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
        "  timeout server 60s\n"
        f"frontend bench\n  bind 127.0.0.1:{port}\n  default_backend pods\n"
        f"backend pods\n  server pod1 {BACKEND_IP}:{backend_port}\n"
    )
    haproxy = which("haproxy")
    assert haproxy is not None
    return Process([haproxy, "-f", str(conf), "-db"], stop_signal=signal.SIGUSR1)


# -- load ----------------------------------------------------------------------------------------


def wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    threads: int,
    prefix: Sequence[str] = (),
    headers: Sequence[str] = (),
) -> Run:
    """One wrk run against ``url``; ``prefix`` runs it through another command (``nsenter
    --net=...`` to load from a network namespace); ``headers`` are sent with every request
    (``Connection: close`` makes every request a new connection)."""
    binary = which("wrk")
    assert binary is not None
    out = subprocess.run(
        [
            *prefix,
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "10s",
            "--latency",
            *(arg for header in headers for arg in ("-H", header)),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    mib = 0.0
    if transfer:
        scale = {"B": 1 / 1024 / 1024, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}
        mib = float(transfer.group(1)) * scale[transfer.group(2)]
    errors = sum(int(m) for m in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    done = re.search(r"(\d+) requests in", out)
    requests = int(done.group(1)) if done else 0
    return Run(rps, mib, _latency(out, "50%"), _latency(out, "99%"), errors, requests)


def measured(url: str, pid: int | None, **load: int | float) -> Run:
    """A wrk run, with the CPU time ``pid`` (and its threads) spent meanwhile."""
    process = psutil.Process(pid) if pid else None
    before = process.cpu_times() if process else None
    run = wrk(url, **load)  # type: ignore[arg-type]
    if process is not None and before is not None and run.requests:
        after = process.cpu_times()
        used = (after.user - before.user) + (after.system - before.system)
        run.cpu_us_per_request = used / run.requests * 1e6
    return run


def _latency(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def wait_http(url: str, size: int, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200 and len(await response.read()) == size:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer 200 with the file in time")
            await asyncio.sleep(0.1)


async def publish(server: object, backend_port: int) -> str:
    """A selector-less Service and its EndpointSlice; returns the Service's cluster IP."""
    srv = server  # _common.Server
    headers = srv.headers  # type: ignore[attr-defined]
    base = srv.url  # type: ignore[attr-defined]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bench-l4"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend_port}]},
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "bench-l4-manual",
            "labels": {"kubernetes.io/service-name": "bench-l4"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [BACKEND_IP], "conditions": {"ready": True}}],
    }
    connector = aiohttp.TCPConnector(ssl=srv.ssl)  # type: ignore[attr-defined]
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{base}/api/v1/namespaces/default/services", json=service, headers=headers
        ) as r:
            if r.status != 201:
                raise RuntimeError(f"creating the Service: {r.status} {await r.text()}")
            created = await r.json()
        async with session.post(
            f"{base}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            json=endpoint_slice,
            headers=headers,
        ) as r:
            if r.status != 201:
                raise RuntimeError(f"creating the EndpointSlice: {r.status} {await r.text()}")
    return str(created["spec"]["clusterIP"])


async def l4(
    *,
    duration: float = 10.0,
    connections: int = 50,
    big_connections: int = 4,
    runs: int = 3,
    threads: int = 2,
    warmup: float = 2.0,
) -> L4Result:
    """Run the L4 comparison; prints progress on stderr and returns every run."""
    ensure_tools()
    result = L4Result()
    backend_port, haproxy_port, ingress_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="procorch-bench-l4-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        www = workdir / "www"
        www.mkdir()
        (www / "small.html").write_bytes(SMALL)
        (www / "big.bin").write_bytes(os.urandom(1 << 20) * (BIG_SIZE >> 20))
        backend = nginx_backend(workdir, backend_port)
        reference = haproxy_tcp(workdir, haproxy_port, backend_port)
        backend.start()
        reference.start()
        try:
            async with procorch_server(
                "--ingress-port", str(ingress_port), "--ingress-tls-port", "-1"
            ) as server:
                cluster_ip = await publish(server, backend_port)
                hosts = {
                    "procorch": f"http://{cluster_ip}:80",
                    "haproxy": f"http://127.0.0.1:{haproxy_port}",
                    "direct": f"http://{BACKEND_IP}:{backend_port}",
                }
                for base in hosts.values():
                    await wait_http(f"{base}/small.html", len(SMALL))
                    await wait_http(f"{base}/big.bin", BIG_SIZE)
                    if warmup:
                        await asyncio.to_thread(
                            wrk,
                            f"{base}/small.html",
                            connections=connections,
                            duration=warmup,
                            threads=threads,
                        )
                pids = {
                    "procorch": server.proc.pid,
                    "haproxy": reference.proc.pid if reference.proc else None,
                    "direct": None,
                }
                for kind, path, conns in (
                    ("small", "/small.html", connections),
                    ("big", "/big.bin", big_connections),
                ):
                    for i in range(runs):
                        for name, base in hosts.items():
                            run = await asyncio.to_thread(
                                measured,
                                base + path,
                                pids[name],
                                connections=conns,
                                duration=duration,
                                threads=threads,
                            )
                            getattr(result, kind)[name].append(run)
                            print(
                                f"  {kind} run {i + 1}/{runs} {name:8s} "
                                f"{run.requests_per_s:10,.0f} req/s {run.mib_per_s:8,.0f} MiB/s"
                                f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                                f"  cpu {run.cpu_us_per_request:5.1f} µs/req  errors {run.errors}",
                                file=sys.stderr,
                            )
        finally:
            reference.stop()
            backend.stop()
    return result


def print_rows(rows: list[tuple[str, str, str]]) -> None:
    print("| measurement | result | target |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--big-connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()
    result = asyncio.run(
        l4(
            duration=args.duration,
            connections=args.connections,
            big_connections=args.big_connections,
            runs=args.runs,
            threads=args.threads,
        )
    )
    print_rows(result.rows())


if __name__ == "__main__":
    main()
