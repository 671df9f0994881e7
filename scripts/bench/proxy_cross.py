"""Cross-node part of the proxy benchmark (issue 13): a Service whose endpoint is on another
node, through the node relay, beside the same hop through a pair of HAProxy speaking TLS.

Two hosts, each a network namespace on a bridge (:mod:`procorch.testing.netns`), run
``procorch agent`` (node-b and node-c); the control plane runs in this process. The backends
are pods: an nginx (one worker, sendfile, no access log) pinned to node-c and an identical one
on node-b, each on its ``$POD_IP:8080``, serving a small static file and a 10 MiB one; one
Service selects each. wrk runs in node-b's namespace, as a pod there would, against:

* ``cross``: the clusterIP of node-c's backend, so node-b's Service proxy dials through the
  relay (TLS 1.3, node certificates verified both ways) to node-c, which connects the pod;
* ``haproxy``: the same hop through two HAProxy (``mode tcp``, ``nbthread 1``): one on node-b's
  loopback, speaking TLS 1.3 to one on node-c's address with the same node certificates and CA
  (client certificate required), which connects the pod;
* ``same``: the clusterIP of node-b's backend (no relay);
* ``direct``: wrk in node-c's namespace straight to the pod's IP, as a ceiling.

Small files: requests/s and p99 latency with ``connections`` keep-alive connections
(``small``), and with a new connection for every request (``new``: ``Connection: close``, so
the HAProxy pair makes a TLS handshake per request, the relay opens a stream on its link).
10 MiB files: MiB/s with ``big_connections`` connections (``big``). CPU (user + system) per request of the
proxies on both nodes: the procorch agent processes of node-b and node-c, or the two haproxy.
Runs are interleaved (cross, haproxy, same, direct, cross, ...); the median run of each is
reported. Needs root (namespaces); haproxy, nginx and wrk are installed with apt-get when
missing. Everything (agents, pods, haproxy, namespaces, bridge) is removed at the end, also
on failure.

Use :func:`cross` from another benchmark (``await cross(...)``) or run this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, which  # noqa: E402
from proxy_l4 import (  # noqa: E402
    BIG_SIZE,
    SMALL,
    Process,
    Run,
    ensure_tools,
    nginx_conf,
    print_rows,
    wrk,
)

from procorch.api.resources import must  # noqa: E402
from procorch.kit import logging as procorch_logging  # noqa: E402
from procorch.launcher.up import Procorch, UpConfig  # noqa: E402
from procorch.testing.netns import Host, HostNetwork, available  # noqa: E402

PODS = must("core/pods")
NODES = must("core/nodes")
SERVICES = must("core/services")
TARGETS = ("cross", "haproxy", "same", "direct")
BACKEND_PORT = 8080
NODE_B, NODE_C = "node-b", "node-c"
LABEL = "procorch-bench-cross"


@dataclass
class Measured:
    """One wrk run and the CPU time per request of each proxy process group during it."""

    run: Run
    cpu_us: dict[str, float] = field(default_factory=dict)
    """Per node name: CPU (user + system) µs per request of that node's proxy processes."""

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_us.values()) if self.cpu_us else float("nan")


@dataclass
class CrossResult:
    small: dict[str, list[Measured]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    big: dict[str, list[Measured]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    new: dict[str, list[Measured]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    """Small responses, a new connection for every request (``Connection: close``)."""

    @staticmethod
    def median(runs: list[Measured], key: str) -> Run:
        ordered = sorted((m.run for m in runs), key=lambda r: getattr(r, key))
        return ordered[len(ordered) // 2]

    @staticmethod
    def cpu(runs: list[Measured], node: str | None = None) -> float:
        """Median CPU µs per request, of one node's proxy processes or (None) of both."""
        values = [m.cpu_total if node is None else m.cpu_us.get(node, float("nan")) for m in runs]
        return statistics.median(values) if values else float("nan")

    def paired_ratio(self, kind: str, key: str) -> float:
        """Median over run pairs (cross then haproxy, back to back) of cross/haproxy."""
        runs = getattr(self, kind)
        ratios = [
            getattr(a.run, key) / getattr(b.run, key)
            for a, b in zip(runs["cross"], runs["haproxy"])
            if getattr(b.run, key)
        ]
        return statistics.median(ratios) if ratios else float("nan")

    def rows(self) -> list[tuple[str, str, str]]:
        """(measurement, result, target) rows for the README's Performance table, for the
        kinds of response that were measured."""
        return (
            (self._small_rows() if self.small["cross"] else [])
            + (self._big_rows() if self.big["cross"] else [])
            + (self._new_rows() if self.new["cross"] else [])
        )

    def _cpu(self, kind: str, target: str, scale: float = 1.0, unit: str = "µs") -> str:
        runs = getattr(self, kind)[target]
        both = self.cpu(runs) * scale
        parts = ", ".join(f"{n} {self.cpu(runs, n) * scale:.1f}" for n in (NODE_B, NODE_C))
        return f"{both:.1f} {unit} ({parts})"

    def _small_rows(self) -> list[tuple[str, str, str]]:
        small = {t: self.median(self.small[t], "requests_per_s") for t in TARGETS}
        mine, ref = small["cross"], small["haproxy"]
        ratio = mine.requests_per_s / ref.requests_per_s if ref.requests_per_s else float("nan")
        runs = len(self.small["cross"])
        small_cpu = self.cpu(self.small["cross"]) / self.cpu(self.small["haproxy"])
        return [
            (
                "Service across nodes (pod on node B → clusterIP → endpoint on node C, relay "
                "with mutual TLS), requests/s, small HTTP responses, keep-alive",
                f"{mine.requests_per_s:,.0f} vs HAProxy pair (TLS) {ref.requests_per_s:,.0f}: "
                f"**{ratio:.2f}x** (paired runs {self.paired_ratio('small', 'requests_per_s'):.2f}x"
                f"; endpoint on the same node {small['same'].requests_per_s:,.0f}; direct on "
                f"node C {small['direct'].requests_per_s:,.0f}; medians of {runs} runs)",
                "≥ 0.8x HAProxy",
            ),
            (
                "Service across nodes, latency",
                f"p50 {mine.p50_ms:.2f} ms, p99 {mine.p99_ms:.2f} ms (HAProxy pair p50 "
                f"{ref.p50_ms:.2f} ms, p99 {ref.p99_ms:.2f} ms; same node p99 "
                f"{small['same'].p99_ms:.2f} ms; direct p99 {small['direct'].p99_ms:.2f} ms)",
                "",
            ),
            (
                "Service across nodes, CPU per small request (both nodes' proxies, user + system)",
                f"procorch agents {self._cpu('small', 'cross')} vs HAProxy pair "
                f"{self._cpu('small', 'haproxy')}: {small_cpu:.2f}x (same node: "
                f"{self._cpu('small', 'same')})",
                "",
            ),
        ]

    def _new_rows(self) -> list[tuple[str, str, str]]:
        new = {t: self.median(self.new[t], "requests_per_s") for t in TARGETS}
        mine, ref = new["cross"], new["haproxy"]
        ratio = mine.requests_per_s / ref.requests_per_s if ref.requests_per_s else float("nan")
        return [
            (
                "Service across nodes, a new connection per request (small responses, "
                "`Connection: close`), requests/s",
                f"{mine.requests_per_s:,.0f} vs HAProxy pair (TLS) {ref.requests_per_s:,.0f}: "
                f"**{ratio:.2f}x** (paired runs {self.paired_ratio('new', 'requests_per_s'):.2f}x"
                f"; p99 {mine.p99_ms:.2f} vs {ref.p99_ms:.2f} ms; same node "
                f"{new['same'].requests_per_s:,.0f}; direct {new['direct'].requests_per_s:,.0f})",
                "",
            ),
            (
                "Service across nodes, CPU per new connection (both nodes' proxies)",
                f"procorch agents {self._cpu('new', 'cross')} vs HAProxy pair "
                f"{self._cpu('new', 'haproxy')}",
                "",
            ),
        ]

    def _big_rows(self) -> list[tuple[str, str, str]]:
        big = {t: self.median(self.big[t], "mib_per_s") for t in TARGETS}
        big_ratio = (
            big["cross"].mib_per_s / big["haproxy"].mib_per_s
            if big["haproxy"].mib_per_s
            else float("nan")
        )
        big_cpu = self.cpu(self.big["cross"]) / self.cpu(self.big["haproxy"])
        return [
            (
                "Service across nodes, 10 MiB bodies",
                f"{big['cross'].mib_per_s:,.0f} MiB/s vs HAProxy pair (TLS) "
                f"{big['haproxy'].mib_per_s:,.0f} MiB/s: **{big_ratio:.2f}x** (paired runs "
                f"{self.paired_ratio('big', 'mib_per_s'):.2f}x; same node "
                f"{big['same'].mib_per_s:,.0f} MiB/s; direct {big['direct'].mib_per_s:,.0f} MiB/s)",
                "≥ 1.0x HAProxy",
            ),
            (
                "Service across nodes, CPU per 10 MiB body (both nodes' proxies)",
                f"procorch agents {self._cpu('big', 'cross', 1e-3, 'ms')} vs HAProxy pair "
                f"{self._cpu('big', 'haproxy', 1e-3, 'ms')}: {big_cpu:.2f}x",
                "",
            ),
        ]


# -- hosts ---------------------------------------------------------------------------------------


def enter(host: Host) -> list[str]:
    """The command prefix that runs a program in ``host``'s network namespace only."""
    nsenter = which("nsenter")
    assert nsenter is not None
    return [nsenter, f"--net=/run/netns/{host.netns}", "--"]


def agent_pids(network: HostNetwork, host: Host) -> list[int]:
    """The node's procorch processes (``python -m procorch agent`` and whatever procorch
    process it starts), not its pods."""
    found = []
    for pid in network.pids(host):
        try:
            cmdline = psutil.Process(pid).cmdline()
        except psutil.NoSuchProcess:
            continue
        if len(cmdline) > 2 and cmdline[1:3] == ["-m", "procorch"]:
            found.append(pid)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measured(url: str, prefix: list[str], pids: dict[str, list[int]], **load: Any) -> Measured:
    """A wrk run through ``prefix``, with the CPU time each node's ``pids`` spent meanwhile."""
    before = {node: cpu_seconds(p) for node, p in pids.items()}
    run = wrk(url, prefix=prefix, **load)
    result = Measured(run)
    if run.requests:
        for node, p in pids.items():
            result.cpu_us[node] = (cpu_seconds(p) - before[node]) / run.requests * 1e6
        run.cpu_us_per_request = result.cpu_total
    return result


FETCH = """
import sys, time, urllib.request
url, size = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            if response.status == 200 and len(response.read()) == size:
                break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"{url}: {exc}")
    if time.monotonic() > deadline:
        sys.exit(f"{url}: no 200 with {size} bytes in time")
    time.sleep(0.1)
"""


async def wait_http(network: HostNetwork, host: Host, url: str, size: int) -> None:
    """Until ``url`` answers 200 with ``size`` bytes from ``host``'s namespace."""
    timeout = 60.0
    code = f"import sys\nsys.argv[1:] = {[url, str(size), str(timeout)]!r}\n{FETCH}"
    await network.python(host, code, timeout=timeout + 10)


# -- backends and the reference ------------------------------------------------------------------


def backend_pod(node: str, workdir: Path) -> dict[str, Any]:
    """An nginx pod on ``node`` listening on its ``$POD_IP:8080``: the pod's shell writes the
    configuration from a template (placeholders @POD_IP@ and @DIR@) at start."""
    script = (
        f'dir={workdir}/pods/"$POD_NAME" && mkdir -p "$dir" && '
        f'sed -e "s|@POD_IP@|$POD_IP|g" -e "s|@DIR@|$dir|g" {workdir}/nginx.conf.in '
        '> "$dir/nginx.conf" && '
        'exec nginx -p "$dir" -c "$dir/nginx.conf" -g "daemon off;"'
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bench-nginx-{node}",
            "namespace": "default",
            "labels": {"app": LABEL, "node": node},
        },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "nginx",
                    "command": ["sh", "-c", script],
                    "ports": [{"containerPort": BACKEND_PORT, "name": "http"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/small.html", "port": BACKEND_PORT},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }


def backend_service(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"bench-{node}", "namespace": "default"},
        "spec": {
            "selector": {"app": LABEL, "node": node},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def haproxy_pair(
    workdir: Path, b: Host, c: Host, pod_ip: str, port: int, tls_port: int
) -> tuple[Process, Process]:
    """HAProxy on node-b (``127.0.0.1:port``, TLS to node-c) and on node-c (TLS on its address,
    client certificate required, to the pod): one thread each, TCP mode, TLS 1.3 with the node
    certificates the agents got at join."""
    haproxy = which("haproxy")
    assert haproxy is not None
    pki = {host.name: workdir / host.name / "agent" / "pki" for host in (b, c)}
    ca = pki[NODE_B] / "ca.crt"
    pems = {}
    for name, directory in pki.items():
        pem = workdir / f"haproxy-{name}.pem"
        pem.write_text((directory / "node.crt").read_text() + (directory / "node.key").read_text())
        pem.chmod(0o600)
        pems[name] = pem
    common = (
        "global\n  nbthread 1\n  maxconn 4000\n"
        "  ssl-default-bind-options ssl-min-ver TLSv1.3\n"
        "  ssl-default-server-options ssl-min-ver TLSv1.3\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
        "  timeout server 60s\n"
    )
    conf_b = workdir / "haproxy-b.cfg"
    conf_b.write_text(
        common + f"frontend bench\n  bind 127.0.0.1:{port}\n  default_backend relay\n"
        f"backend relay\n  server c {c.address}:{tls_port} ssl verify required "
        f"ca-file {ca} crt {pems[NODE_B]}\n"
    )
    conf_c = workdir / "haproxy-c.cfg"
    conf_c.write_text(
        common + f"frontend relay\n  bind {c.address}:{tls_port} ssl crt {pems[NODE_C]} "
        f"ca-file {ca} verify required\n  default_backend pod\n"
        f"backend pod\n  server pod {pod_ip}:{BACKEND_PORT}\n"
    )
    return (
        Process([*enter(b), haproxy, "-f", str(conf_b), "-db"], stop_signal=signal.SIGUSR1),
        Process([*enter(c), haproxy, "-f", str(conf_c), "-db"], stop_signal=signal.SIGUSR1),
    )


# -- the run -------------------------------------------------------------------------------------


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{what}: not within {timeout} s")


def is_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def log_warnings(path: Path) -> Counter[str]:
    """Lines of an agent's log at warning level or above, counted (the same line repeats)."""
    if not path.exists():
        return Counter()
    return Counter(
        line.strip()
        for line in path.read_text(errors="replace").splitlines()
        if re.search(r"\b(warn(ing)?|error|critical|exception|traceback)\b", line, re.I)
    )


async def cross(
    *,
    duration: float = 10.0,
    connections: int = 50,
    big_connections: int = 4,
    runs: int = 3,
    threads: int = 2,
    warmup: float = 2.0,
    kinds: Sequence[str] = ("small", "big", "new"),
) -> CrossResult:
    """Run the cross-node comparison; prints progress on stderr and returns every run."""
    why_not = available()
    if why_not:
        raise RuntimeError(f"the cross-node benchmark cannot run here: {why_not}")
    ensure_tools()
    # The control plane runs in this process: its info lines would bury the progress lines.
    procorch_logging.configure(level="warning")
    result = CrossResult()
    network = HostNetwork()
    with tempfile.TemporaryDirectory(prefix="pcbench-cross-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        www = workdir / "www"
        www.mkdir()
        (www / "small.html").write_bytes(SMALL)
        (www / "big.bin").write_bytes(os.urandom(1 << 20) * (BIG_SIZE >> 20))
        (workdir / "nginx.conf.in").write_text(nginx_conf("@DIR@", f"@POD_IP@:{BACKEND_PORT}", www))
        references: list[Process] = []
        plane: Procorch | None = None
        try:
            network.create()
            plane = Procorch(
                UpConfig(
                    data_dir=workdir / "control-plane",
                    api_host=network.address,
                    api_port=0,
                    node=False,
                    remote_nodes=True,
                )
            )
            await plane.start()
            token = workdir / "token"
            token.write_text((plane.data_dir / "node-token").read_text())
            b, c = network.add_host(NODE_B), network.add_host(NODE_C)
            for host in (b, c):
                await network.agent(
                    host,
                    server=plane.api_url,
                    token_file=token,
                    data_dir=workdir / host.name,
                    log=workdir / f"{host.name}.log",
                )
            admin = plane.admin

            async def nodes_ready() -> bool:
                nodes = (await admin.list(NODES)).items
                return sum(is_ready(n) for n in nodes) == 2

            await wait_for(nodes_ready, 60, "2 nodes Ready")
            services = {}
            for node in (NODE_B, NODE_C):
                await admin.create(PODS, backend_pod(node, workdir), namespace="default")
                services[node] = await admin.create(
                    SERVICES, backend_service(node), namespace="default"
                )

            async def pods_ready() -> dict[str, str] | None:
                pods = (
                    await admin.list(PODS, namespace="default", label_selector=f"app={LABEL}")
                ).items
                ready = {p["spec"]["nodeName"]: p["status"]["podIP"] for p in pods if is_ready(p)}
                return ready if len(ready) == 2 else None

            pod_ips = await wait_for(pods_ready, 60, "both nginx pods Ready")
            port, tls_port = free_port(), free_port()
            references = list(haproxy_pair(workdir, b, c, pod_ips[NODE_C], port, tls_port))
            for reference in references:
                reference.start()
            hosts = {
                "cross": (b, f"http://{services[NODE_C]['spec']['clusterIP']}:80"),
                "haproxy": (b, f"http://127.0.0.1:{port}"),
                "same": (b, f"http://{services[NODE_B]['spec']['clusterIP']}:80"),
                "direct": (c, f"http://{pod_ips[NODE_C]}:{BACKEND_PORT}"),
            }
            for host, base in hosts.values():
                await wait_http(network, host, f"{base}/small.html", len(SMALL))
                await wait_http(network, host, f"{base}/big.bin", BIG_SIZE)
                if warmup:
                    await asyncio.to_thread(
                        wrk,
                        f"{base}/small.html",
                        connections=connections,
                        duration=warmup,
                        threads=threads,
                        prefix=enter(host),
                    )
            agents = {host.name: agent_pids(network, host) for host in (b, c)}
            haproxies = {
                host.name: [r.proc.pid] if r.proc else [] for host, r in zip((b, c), references)
            }
            print(f"  procorch agent pids: {agents}; haproxy: {haproxies}", file=sys.stderr)
            pids = {"cross": agents, "same": agents, "haproxy": haproxies, "direct": {}}
            loads = {
                "small": ("/small.html", connections, ()),
                "big": ("/big.bin", big_connections, ()),
                "new": ("/small.html", connections, ("Connection: close",)),
            }
            for kind in kinds:
                path, conns, headers = loads[kind]
                for i in range(runs):
                    for name, (host, base) in hosts.items():
                        m = await asyncio.to_thread(
                            measured,
                            base + path,
                            enter(host),
                            pids[name],
                            connections=conns,
                            duration=duration,
                            threads=threads,
                            headers=headers,
                        )
                        getattr(result, kind)[name].append(m)
                        run = m.run
                        split = " ".join(f"{n} {v:.1f}" for n, v in m.cpu_us.items())
                        print(
                            f"  {kind} run {i + 1}/{runs} {name:8s} "
                            f"{run.requests_per_s:10,.0f} req/s {run.mib_per_s:8,.0f} MiB/s"
                            f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                            f"  cpu {m.cpu_total:7.1f} µs/req ({split})  errors {run.errors}",
                            file=sys.stderr,
                        )
        finally:
            for reference in references:
                reference.stop()
            await network.stop_processes()
            if plane is not None:
                await plane.stop()
            await network.remove()
            for host in network.hosts:
                warnings = log_warnings(workdir / f"{host.name}.log")
                print(
                    f"  {host.name} agent log: {sum(warnings.values())} warning/error lines"
                    + "".join(f"\n    {n} × {line}" for line, n in warnings.most_common(10)),
                    file=sys.stderr,
                )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--big-connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--kinds",
        default="small,big,new",
        help="comma-separated: small (keep-alive), big (10 MiB), new (a connection per request)",
    )
    args = parser.parse_args()
    result = asyncio.run(
        cross(
            duration=args.duration,
            connections=args.connections,
            big_connections=args.big_connections,
            runs=args.runs,
            threads=args.threads,
            kinds=args.kinds.split(","),
        )
    )
    print_rows(result.rows())


if __name__ == "__main__":
    main()
