"""DNS benchmark (issue 13): cluster DNS's queries/s and latency from one client, beside dnsmasq
serving the same names from a hosts file.

procorch runs as ``python -m procorch up`` in a subprocess (its own data dir in a temp dir, its
own Service range so that it does not meet another procorch on this machine) with ``services``
ClusterIP Services (one named port each) and one headless Service with three endpoints (an
EndpointSlice made by hand). dnsmasq (one process, ``--local-ttl`` 5 s as CoreDNS's TTL) serves
a hosts file with the same names and the same addresses on another loopback address.

The client is one process asking for the A records of a rotating mix of those names
(``<svc>.default.svc.cluster.local.``) over UDP:

* a closed loop (this file, :func:`closed_loop`) keeping ``window`` questions in flight on one
  socket, each answer checked (NOERROR, an answer, the question echoed); queries/s, p50 and p99
  of every answer's latency, and the client's own CPU share, so that it is seen when the client
  is what limits;
* ``dnsperf`` (``-c 1 -T 1``, ``--dnsperf-inflight`` questions in flight) as a
  cross-check of the throughput with a C client; it gives a mean latency only.

What limits: on a 2-core machine the client and the server each take a core. The closed loop
pushes ~130,000 q/s at most here (its CPU share near 100 %: the client is then what limits,
for dnsmasq and for procorch alike, and the server CPU per query is the number that tells them
apart); at 1 in flight both servers wait on wake-ups, not on CPU. dnsperf runs a sender and a
receiver thread, so on 2 cores it competes with the server and does not go further.

Runs are interleaved (procorch and dnsmasq alternate, first one then the other), ``duration``
seconds each, the median run (by queries/s) of each reported, and the CPU time (user + system)
the server process spent per query: all of procorch's process, the API and controllers
included, against dnsmasq's. dnsmasq and dnsperf are installed with apt-get when missing.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from dnslib import QTYPE, DNSRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_packages, free_port, which  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "cluster.local"
HEADLESS = "bench-headless"
HEADLESS_IPS = ("127.1.253.1", "127.1.253.2", "127.1.253.3")
TARGETS = ("procorch", "dnsmasq")


# -- results -------------------------------------------------------------------------------------


@dataclass
class Run:
    queries_per_s: float
    p50_ms: float
    p99_ms: float
    queries: int
    errors: int = 0
    """Answers that were not NOERROR with an answer for the question asked."""
    lost: int = 0
    """Questions with no answer within the client's timeout."""
    client_cpu: float = float("nan")
    """The client's CPU time over the run's wall time (1.0: one core busy)."""
    server_cpu_us: float = float("nan")
    """The server process's CPU time (user + system) per answered query, in µs."""
    others_cpu: float = float("nan")
    """CPU the machine's other processes used meanwhile, in cores (roughly: ±0.2 is noise of
    the accounting): a run that shared the machine with other work shows here."""


@dataclass
class Result:
    closed: dict[int, dict[str, list[Run]]] = field(default_factory=dict)
    dnsperf: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TARGETS})

    @staticmethod
    def median(runs: list[Run]) -> Run:
        ordered = sorted(runs, key=lambda r: r.queries_per_s)
        return ordered[len(ordered) // 2]

    def others(self) -> float:
        """The most CPU other processes used during any run, in cores."""
        runs = [r for t in self.closed.values() for rs in t.values() for r in rs]
        runs += [r for rs in self.dnsperf.values() for r in rs]
        return max((r.others_cpu for r in runs), default=float("nan"))

    def rows(self, services: int, dnsperf_inflight: int) -> list[tuple[str, str, str, str]]:
        """Rows for the README: each run's median, CPU per query the median over the runs."""
        rows = []
        cpu: dict[str, float] = {}
        for window, by_target in sorted(self.closed.items()):
            mine, ref = self.median(by_target["procorch"]), self.median(by_target["dnsmasq"])
            cpu = {t: statistics.median(r.server_cpu_us for r in by_target[t]) for t in TARGETS}
            rows.append(
                (
                    f"DNS queries/s, one client, {window} in flight ({services + 1} names)",
                    _cell(mine, cpu["procorch"]),
                    _cell(ref, cpu["dnsmasq"]),
                    _ratio(mine, ref),
                )
            )
        if cpu:
            rows.append(
                (
                    f"DNS server CPU per query (user + system), {max(self.closed)} in flight",
                    f"{cpu['procorch']:.1f} µs, the whole procorch process "
                    f"(≈ {1e6 / cpu['procorch']:,.0f} q/s per core)",
                    f"{cpu['dnsmasq']:.1f} µs (≈ {1e6 / cpu['dnsmasq']:,.0f} q/s per core)",
                    f"{cpu['procorch'] / cpu['dnsmasq']:.2f}x the CPU",
                )
            )
        if all(self.dnsperf.values()):
            mine, ref = self.median(self.dnsperf["procorch"]), self.median(self.dnsperf["dnsmasq"])
            rows.append(
                (
                    f"DNS queries/s, dnsperf (one client, -T 1), {dnsperf_inflight} in flight",
                    f"{mine.queries_per_s:,.0f} (mean {mine.p50_ms:.2f} ms)",
                    f"{ref.queries_per_s:,.0f} (mean {ref.p50_ms:.2f} ms)",
                    _ratio(mine, ref),
                )
            )
        return rows


def _cell(run: Run, cpu_us: float) -> str:
    return (
        f"{run.queries_per_s:,.0f} (p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms; "
        f"{cpu_us:.1f} µs CPU/query; client {run.client_cpu:.0%} of a core)"
    )


def _ratio(mine: Run, ref: Run) -> str:
    return f"**{mine.queries_per_s / ref.queries_per_s:.2f}x**" if ref.queries_per_s else "n/a"


def print_rows(rows: list[tuple[str, str, str, str]]) -> None:
    print("| measurement | procorch | dnsmasq | procorch / dnsmasq |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nTarget (issue 13): ≥ 0.5x dnsmasq's queries/s, p99 < 2 ms.")


# -- tools ---------------------------------------------------------------------------------------


def ensure_tools() -> None:
    ensure_packages("dnsmasq", "dnsperf")


def port_53_free(ip: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 53))
        except OSError:
            return False
    return True


# -- procorch ------------------------------------------------------------------------------------


class Procorch:
    """``python -m procorch up`` (this checkout's code) in a subprocess, talked to over HTTPS."""

    def __init__(self, workdir: Path, service_cidr: str) -> None:
        self.data_dir = workdir / "procorch"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = ""
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PROCORCH_LOG_LEVEL": "warning",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "procorch",
                "up",
                "--data-dir",
                str(self.data_dir),
                "--api-port",
                str(self.port),
                "--ingress-port",
                str(free_port()),
                "--ingress-tls-port",
                "-1",
                "--service-cidr",
                service_cidr,
                "--log-level",
                "warning",
            ],
            cwd=workdir,  # no Procfile here
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(
                    self.url + "/readyz", context=self.context, timeout=2
                ) as r:
                    if r.status == 200 and (self.data_dir / "admin-token").exists():
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("procorch did not come up")
            time.sleep(0.1)
        self.token = (self.data_dir / "admin-token").read_text().strip()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.context, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def publish(procorch: Procorch, count: int) -> dict[str, list[str]]:
    """``count`` ClusterIP Services and one headless one; returns name → addresses."""
    records: dict[str, list[str]] = {}
    for i in range(count):
        name = f"bench-svc-{i}"
        created = procorch.call(
            "POST",
            "/api/v1/namespaces/default/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
        )
        records[fqdn(name)] = [created["spec"]["clusterIP"]]
    procorch.call(
        "POST",
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": HEADLESS},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
        },
    )
    procorch.call(
        "POST",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{HEADLESS}-manual",
                "labels": {"kubernetes.io/service-name": HEADLESS},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [ip], "conditions": {"ready": True}} for ip in HEADLESS_IPS
            ],
        },
    )
    records[fqdn(HEADLESS)] = list(HEADLESS_IPS)
    return records


def fqdn(service: str) -> str:
    return f"{service}.default.svc.{DOMAIN}."


# -- dnsmasq -------------------------------------------------------------------------------------


def start_dnsmasq(
    workdir: Path, address: str, records: dict[str, list[str]]
) -> subprocess.Popen[bytes]:
    hosts = workdir / "hosts"
    hosts.write_text(
        "".join(f"{ip} {name.rstrip('.')}\n" for name, ips in records.items() for ip in ips)
    )
    binary = which("dnsmasq")
    assert binary is not None
    return subprocess.Popen(
        [
            binary,
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={hosts}",
            f"--listen-address={address}",
            "--port=53",
            "--bind-interfaces",
            "--cache-size=10000",
            "--local-ttl=5",
            f"--pid-file={workdir / 'dnsmasq.pid'}",
            "--log-facility=-",
            "--user=root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- checks and load -----------------------------------------------------------------------------


def wrong_answers(server: str, records: dict[str, list[str]]) -> list[str]:
    """The names ``server`` does not answer as ``records`` says (empty: all right)."""
    wrong = []
    for name, ips in records.items():
        try:
            raw = DNSRecord.question(name, "A").send(server, 53, timeout=2)
            reply = DNSRecord.parse(raw)
            got = sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)
        except (OSError, ValueError) as exc:
            wrong.append(f"{name}: {exc!r}")
            continue
        if got != sorted(ips):
            wrong.append(f"{name}: {got} (rcode {reply.header.rcode}), expected {sorted(ips)}")
    return wrong


def wait_right(server: str, records: dict[str, list[str]], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while wrong := wrong_answers(server, records):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server} answers wrongly: {wrong[:3]} ({len(wrong)} names)")
        time.sleep(0.2)


def closed_loop(
    server: str, names: list[str], *, window: int, duration: float, timeout: float = 1.0
) -> Run:
    """Ask the A records of ``names`` in turn, ``window`` questions in flight, for ``duration``
    seconds; a question not answered within ``timeout`` is lost (and a new one sent)."""
    bodies = [DNSRecord.question(name, "A").pack()[2:] for name in names]  # without the ID
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect((server, 53))
    sock.settimeout(timeout)
    send, recv, clock = sock.send, sock.recv, time.perf_counter
    sent_at = [0.0] * 65536
    asked = [b""] * 65536
    latencies = array("d")
    count = len(bodies)
    qid = k = errors = lost = outstanding = 0
    cpu_before = time.process_time()
    start = clock()
    end = start + duration

    def fire() -> None:
        nonlocal qid, k, outstanding
        body = bodies[k]
        k = k + 1 if k + 1 < count else 0
        asked[qid] = body[10:]
        sent_at[qid] = clock()
        send(qid.to_bytes(2, "big") + body)
        qid = (qid + 1) & 0xFFFF
        outstanding += 1

    try:
        for _ in range(window):
            fire()
        while outstanding:
            try:
                data = recv(4096)
            except TimeoutError:
                lost += outstanding
                outstanding = 0
                sent_at = [0.0] * 65536
                if clock() < end:
                    for _ in range(window):
                        fire()
                continue
            now = clock()
            rid = data[0] << 8 | data[1]
            at = sent_at[rid]
            if not at:
                continue  # a late answer to a question counted lost
            sent_at[rid] = 0.0
            outstanding -= 1
            latencies.append(now - at)
            question = asked[rid]
            if data[3] & 0x0F or data[6:8] == b"\0\0" or data[12 : 12 + len(question)] != question:
                errors += 1
            if now < end:
                fire()
    finally:
        sock.close()
    elapsed = clock() - start
    cpu = time.process_time() - cpu_before
    ordered = sorted(latencies)
    n = len(ordered)
    return Run(
        queries_per_s=n / elapsed,
        p50_ms=ordered[n // 2] * 1000 if n else float("nan"),
        p99_ms=ordered[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        queries=n,
        errors=errors,
        lost=lost,
        client_cpu=cpu / elapsed,
    )


def dnsperf(server: str, datafile: Path, *, inflight: int, duration: float) -> Run:
    binary = which("dnsperf")
    assert binary is not None
    out = subprocess.run(
        [binary, "-s", server, "-d", str(datafile), "-l", f"{duration:g}"]
        + ["-c", "1", "-T", "1", "-q", str(inflight), "-t", "1"],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else float("nan")

    completed = int(number(r"Queries completed:\s+(\d+)"))
    noerror = number(r"NOERROR (\d+)")
    return Run(
        queries_per_s=number(r"Queries per second:\s+([\d.]+)"),
        p50_ms=number(r"Average Latency \(s\):\s+([\d.]+)") * 1000,  # the mean: all dnsperf says
        p99_ms=float("nan"),
        queries=completed,
        errors=completed - int(noerror if noerror == noerror else 0),
        lost=int(number(r"Queries lost:\s+(\d+)")),
    )


def _busy(times: Any) -> float:
    """CPU time the machine spent busy, from ``psutil.cpu_times()``: processes' time, and
    interrupts' (which a process's own times include when they ran in its context)."""
    return float(
        times.user
        + times.nice
        + times.system
        + getattr(times, "irq", 0.0)
        + getattr(times, "softirq", 0.0)
    )


def _own(times: Any) -> float:
    return times.user + times.system + times.children_user + times.children_system


def measured(pid: int, run: Callable[[], Run]) -> Run:
    """``run()``, with the CPU time process ``pid`` spent meanwhile per answered query, and
    what every other process on the machine (neither the server nor this client) used."""
    server, client = psutil.Process(pid), psutil.Process()
    before = (server.cpu_times(), _own(client.cpu_times()), _busy(psutil.cpu_times()))
    started = time.monotonic()
    result: Run = run()
    elapsed = time.monotonic() - started
    after = (server.cpu_times(), _own(client.cpu_times()), _busy(psutil.cpu_times()))
    used = (after[0].user - before[0].user) + (after[0].system - before[0].system)
    if result.queries:
        result.server_cpu_us = used / result.queries * 1e6
    result.others_cpu = (after[2] - before[2] - used - (after[1] - before[1])) / elapsed
    return result


# -- the benchmark -------------------------------------------------------------------------------


def bench(
    *,
    duration: float,
    runs: int,
    services: int,
    windows: list[int],
    dnsperf_inflight: int,
    service_cidr: str,
    dnsmasq_address: str,
    warmup: float = 2.0,
) -> Result:
    ensure_tools()
    kube_dns = str(ipaddress.ip_network(service_cidr)[10])
    for address in (kube_dns, dnsmasq_address):
        if not port_53_free(address):
            raise SystemExit(f"{address}:53 is taken: pick another --service-cidr/--dnsmasq")
    result = Result()
    with tempfile.TemporaryDirectory(prefix="procorch-bench-dns-") as tmp:
        workdir = Path(tmp)
        procorch = Procorch(workdir, service_cidr)
        dnsmasq: subprocess.Popen[bytes] | None = None
        try:
            procorch.wait_ready()
            started = time.monotonic()
            records = publish(procorch, services)
            print(
                f"{services} Services and one headless made in {time.monotonic() - started:.1f} s",
                file=sys.stderr,
            )
            kube = procorch.call("GET", "/api/v1/namespaces/kube-system/services/kube-dns")
            if kube["spec"]["clusterIP"] != kube_dns:
                raise RuntimeError(f"kube-dns is at {kube['spec']['clusterIP']}, not {kube_dns}")
            dnsmasq = start_dnsmasq(workdir, dnsmasq_address, records)
            servers = {"procorch": kube_dns, "dnsmasq": dnsmasq_address}
            pids = {"procorch": procorch.proc.pid, "dnsmasq": dnsmasq.pid}
            for server in servers.values():
                wait_right(server, records)
            print(f"both servers answer all {len(records)} names rightly", file=sys.stderr)
            names = list(records)
            datafile = workdir / "queries.txt"
            datafile.write_text("".join(f"{name} A\n" for name in names))
            for server in servers.values():
                closed_loop(server, names, window=max(windows), duration=warmup)
            for window in windows:
                result.closed[window] = {t: [] for t in TARGETS}
            for i in range(runs):
                order = TARGETS if i % 2 == 0 else TARGETS[::-1]
                for window in windows:
                    for target in order:
                        run = measured(
                            pids[target],
                            partial(
                                closed_loop,
                                servers[target],
                                names,
                                window=window,
                                duration=duration,
                            ),
                        )
                        result.closed[window][target].append(run)
                        _progress(f"run {i + 1}/{runs} {window:3d} in flight", target, run)
                if dnsperf_inflight:
                    for target in order:
                        run = measured(
                            pids[target],
                            partial(
                                dnsperf,
                                servers[target],
                                datafile,
                                inflight=dnsperf_inflight,
                                duration=duration,
                            ),
                        )
                        result.dnsperf[target].append(run)
                        _progress(f"run {i + 1}/{runs} dnsperf -q {dnsperf_inflight}", target, run)
            for target, server in servers.items():
                if wrong := wrong_answers(server, records):
                    print(f"after the runs {target} answers wrongly: {wrong[:3]}", file=sys.stderr)
        finally:
            if dnsmasq is not None:
                dnsmasq.terminate()
                dnsmasq.wait(timeout=10)
            procorch.stop()
    return result


def _progress(label: str, target: str, run: Run) -> None:
    print(
        f"  {time.strftime('%H:%M:%S')} {label} {target:8s} {run.queries_per_s:9,.0f} q/s"
        f"  p50 {run.p50_ms:6.3f} ms  p99 {run.p99_ms:6.3f} ms  errors {run.errors}"
        f"  lost {run.lost}  client cpu {run.client_cpu:4.0%}"
        f"  server cpu {run.server_cpu_us:5.1f} µs/q  others {run.others_cpu:4.2f} cores",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", type=int, default=200, help="ClusterIP Services to ask for")
    parser.add_argument(
        "--windows", default="1,16", help="questions in flight for the closed loop, comma-separated"
    )
    parser.add_argument(
        "--dnsperf-inflight", type=int, default=100, help="dnsperf's -q (0: no dnsperf runs)"
    )
    parser.add_argument(
        "--service-cidr",
        default="127.121.0.0/22",
        help="procorch's Service range (kube-dns on its tenth address)",
    )
    parser.add_argument("--dnsmasq", default="127.77.0.53", help="dnsmasq's address (port 53)")
    args = parser.parse_args()
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", file=sys.stderr)
    result = bench(
        duration=args.duration,
        runs=args.runs,
        services=args.services,
        windows=[int(w) for w in args.windows.split(",")],
        dnsperf_inflight=args.dnsperf_inflight,
        service_cidr=args.service_cidr,
        dnsmasq_address=args.dnsmasq,
    )
    print(f"finished {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", file=sys.stderr)
    print_rows(result.rows(args.services, args.dnsperf_inflight))
    print(
        f"Other processes on the machine used at most {result.others():.2f} cores during a run "
        f"({os.cpu_count()} cores here)."
    )


if __name__ == "__main__":
    main()
