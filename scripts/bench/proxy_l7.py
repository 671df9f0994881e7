"""L7 part of the proxy benchmark (issue 6): the Ingress router beside nginx as a reverse proxy.

Both proxies route by path to the same backend, an nginx (one worker) serving a small static
file on a pod-range address; both keep upstream connections alive and add the same
``X-Forwarded-*`` headers. The reference nginx runs one worker process, as the router is one
event loop. procorch runs as ``procorch up`` (uvloop, its local node idle), with a selector-less
Service, a hand-made EndpointSlice and an Ingress with three paths (``/api`` Prefix,
``/bench`` Prefix, ``/exact`` Exact); requests go to ``/bench/index.html``.

Load: wrk, ``connections`` keep-alive connections, ``duration`` seconds per run, runs
interleaved (procorch, nginx, procorch, …); the median run of each is reported, with its p99.
nginx and wrk are installed with apt-get when missing (Debian packages ``nginx``, ``wrk``).

Use :func:`l7` from another benchmark (``await l7(...)``) or run this file.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_packages, free_port, procorch_server, which  # noqa: E402

BACKEND_IP = "127.1.254.10"
BODY = b"<html><body>procorch bench: a small static response.</body></html>\n"


@dataclass
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class L7Result:
    procorch: list[Run]
    nginx: list[Run]

    @staticmethod
    def median(runs: list[Run]) -> Run:
        ordered = sorted(runs, key=lambda r: r.requests_per_s)
        return ordered[len(ordered) // 2]

    def paired_ratio(self) -> float:
        """Median over the run pairs (procorch then nginx, back to back) of procorch/nginx:
        robust to the machine's load drifting between pairs."""
        ratios = [
            a.requests_per_s / b.requests_per_s
            for a, b in zip(self.procorch, self.nginx)
            if b.requests_per_s
        ]
        return statistics.median(ratios) if ratios else float("nan")

    def rows(self) -> list[tuple[str, str, str]]:
        """(measurement, result, target) rows for the README's Performance table."""
        mine, ref = self.median(self.procorch), self.median(self.nginx)
        ratio = mine.requests_per_s / ref.requests_per_s if ref.requests_per_s else float("nan")
        p99_ratio = mine.p99_ms / ref.p99_ms if ref.p99_ms else float("nan")
        return [
            (
                "Ingress (L7), requests/s, path routing, keep-alive both sides",
                f"**{self.paired_ratio():.2f}x nginx** (median of {len(self.procorch)} paired "
                f"runs); medians {mine.requests_per_s:,.0f} vs {ref.requests_per_s:,.0f} "
                f"req/s ({ratio:.2f}x)",
                "≥ 0.8x nginx",
            ),
            (
                "Ingress (L7), latency",
                f"p50 {mine.p50_ms:.2f} ms, p99 {mine.p99_ms:.2f} ms "
                f"(nginx p50 {ref.p50_ms:.2f} ms, p99 {ref.p99_ms:.2f} ms: {p99_ratio:.2f}x)",
                "",
            ),
        ]


def ensure_tools() -> None:
    ensure_packages("nginx", "wrk")


class Nginx:
    """One nginx master in the foreground with its own prefix; stopped with SIGQUIT/SIGKILL."""

    def __init__(self, workdir: Path, name: str, http_block: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"  {kind}_temp_path {self.dir}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{\n  access_log off;\n{temp}\n  keepalive_requests 1000000;\n"
            f"{http_block}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        nginx = which("nginx")
        assert nginx is not None
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.dir), "-c", str(self.conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


async def wait_http(url: str, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200 and await response.read() == BODY:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer 200 with the file in time")
            await asyncio.sleep(0.1)


def wrk(url: str, *, connections: int, duration: float, threads: int) -> Run:
    binary = which("wrk")
    assert binary is not None
    out = subprocess.run(
        [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for match in re.finditer(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Run(rps, _latency(out, "50%"), _latency(out, "99%"), errors)


def _latency(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def setup_ingress(server: Any, backend_port: int) -> None:
    objects = [
        (
            "/api/v1/namespaces/default/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "bench"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend_port}]},
            },
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "bench-manual",
                    "labels": {"kubernetes.io/service-name": "bench"},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [BACKEND_IP], "conditions": {"ready": True}}],
            },
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "bench"},
                "spec": {
                    "rules": [
                        {
                            "http": {
                                "paths": [
                                    _path("/api", "Prefix", "api"),
                                    _path("/bench", "Prefix", "bench"),
                                    _path("/exact", "Exact", "bench"),
                                ]
                            }
                        }
                    ]
                },
            },
        ),
    ]
    connector = aiohttp.TCPConnector(ssl=server.ssl)
    async with aiohttp.ClientSession(connector=connector) as session:
        for path, body in objects:
            async with session.post(server.url + path, json=body, headers=server.headers) as r:
                if r.status != 201:
                    raise RuntimeError(f"creating {body['kind']}: {r.status} {await r.text()}")


def _path(path: str, kind: str, service: str) -> dict[str, Any]:
    return {
        "path": path,
        "pathType": kind,
        "backend": {"service": {"name": service, "port": {"number": 80}}},
    }


async def l7(
    *,
    duration: float = 10.0,
    connections: int = 50,
    runs: int = 3,
    threads: int = 2,
    warmup: float = 2.0,
) -> L7Result:
    """Run the L7 comparison; prints progress on stderr and returns every run."""
    ensure_tools()
    result = L7Result([], [])
    backend_port, nginx_port, ingress_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="procorch-bench-l7-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        www = workdir / "www" / "bench"
        www.mkdir(parents=True)
        (www / "index.html").write_bytes(BODY)
        backend = Nginx(
            workdir,
            "backend",
            f"  server {{\n    listen {BACKEND_IP}:{backend_port};\n    root {workdir}/www;\n"
            "    keepalive_timeout 75s;\n  }",
        )
        forwarded = (
            "      proxy_http_version 1.1;\n"
            '      proxy_set_header Connection "";\n'
            "      proxy_set_header Host $host;\n"
            "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "      proxy_set_header X-Forwarded-Proto $scheme;\n"
            "      proxy_set_header X-Forwarded-Host $http_host;\n"
            "      proxy_set_header X-Forwarded-Port $server_port;\n"
        )
        reference = Nginx(
            workdir,
            "proxy",
            f"  upstream bench {{\n    server {BACKEND_IP}:{backend_port};\n    keepalive 128;\n"
            "    keepalive_requests 1000000;\n  }\n"
            f"  server {{\n    listen 127.0.0.1:{nginx_port};\n"
            "    location /api/ { return 503; }\n"
            f"    location /bench/ {{\n      proxy_pass http://bench;\n{forwarded}    }}\n"
            f"    location = /exact {{\n      proxy_pass http://bench;\n{forwarded}    }}\n"
            "    location / { return 404; }\n  }",
        )
        backend.start()
        reference.start()
        try:
            async with procorch_server(
                "--ingress-port", str(ingress_port), "--ingress-tls-port", "-1"
            ) as server:
                await setup_ingress(server, backend_port)
                targets = {
                    "procorch": f"http://127.0.0.1:{ingress_port}/bench/index.html",
                    "nginx": f"http://127.0.0.1:{nginx_port}/bench/index.html",
                }
                for url in targets.values():
                    await wait_http(url)
                    if warmup:
                        await asyncio.to_thread(
                            wrk, url, connections=connections, duration=warmup, threads=threads
                        )
                for i in range(runs):
                    for name, url in targets.items():
                        run = await asyncio.to_thread(
                            wrk, url, connections=connections, duration=duration, threads=threads
                        )
                        getattr(result, name).append(run)
                        print(
                            f"  run {i + 1}/{runs} {name:8s} {run.requests_per_s:10,.0f} req/s"
                            f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                            f"  errors {run.errors}",
                            file=sys.stderr,
                        )
        finally:
            reference.stop()
            backend.stop()
    return result


def print_rows(result: L7Result) -> None:
    print("| measurement | result | target |")
    print("|---|---|---|")
    for row in result.rows():
        print("| " + " | ".join(row) + " |")
    mine = [r.requests_per_s for r in result.procorch]
    ref = [r.requests_per_s for r in result.nginx]
    pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(mine, ref) if b)
    print(
        f"\npaired ratios: {pairs}\n"
        f"procorch runs: {', '.join(f'{v:,.0f}' for v in mine)} "
        f"(median {statistics.median(mine):,.0f}); nginx runs: "
        f"{', '.join(f'{v:,.0f}' for v in ref)} (median {statistics.median(ref):,.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()
    result = asyncio.run(
        l7(
            duration=args.duration,
            connections=args.connections,
            runs=args.runs,
            threads=args.threads,
        )
    )
    print_rows(result)


if __name__ == "__main__":
    main()
