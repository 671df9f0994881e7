"""Node agent benchmark (issue 3), run by hand: ``./scripts/bench/agent``.

1. Start-up: 200 pods created through the API until all are Running (and Ready).
2. Crash-to-restart latency of the first restart, for procorch, supervisord and circus in the
   same run: each supervises the same program (``sh -c 'echo started >> FILE; exec sleep'``);
   the benchmark kills the process with SIGKILL and times how long until the restarted
   process has written its line (the file is polled every 0.2 ms).
3. Control-plane cost: CPU (percent of one core) and memory (RSS) of procorch and its node
   supervisor with 1,000 idle pods, and with 200 pods whose HTTP readiness probe runs every
   second.

supervisord and circus are installed from PyPI into a throwaway virtualenv on first use
(``.bench-peers/``); ``--no-peers`` skips them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, percentile, procorch_server  # noqa: E402

PEERS = ROOT / ".bench-peers"


def pod(name: str, command: list[str], *, probe: dict[str, Any] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "command": command}
    if probe is not None:
        container["ports"] = [{"name": "http", "containerPort": 8080}]
        container["readinessProbe"] = probe
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "agent"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
    }


async def create_pods(
    session: aiohttp.ClientSession, server: Any, pods: list[dict[str, Any]]
) -> None:
    url = f"{server.url}/api/v1/namespaces/default/pods"
    sem = asyncio.Semaphore(50)

    async def one(body: dict[str, Any]) -> None:
        async with sem, session.post(url, json=body, headers=server.headers) as r:
            assert r.status == 201, await r.text()

    await asyncio.gather(*(one(p) for p in pods))


async def wait_pods(
    session: aiohttp.ClientSession, server: Any, count: int, *, ready: bool, timeout: float = 600
) -> float:
    url = f"{server.url}/api/v1/namespaces/default/pods?labelSelector=bench%3Dagent"
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        async with session.get(url, headers=server.headers) as r:
            items = (await r.json())["items"]
        done = 0
        for p in items:
            status = p.get("status") or {}
            if status.get("phase") != "Running":
                continue
            if ready and not any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in status.get("conditions") or []
            ):
                continue
            done += 1
        if done >= count:
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"pods not {'ready' if ready else 'running'} in time")


async def delete_pods(session: aiohttp.ClientSession, server: Any) -> None:
    url = f"{server.url}/api/v1/namespaces/default/pods?labelSelector=bench%3Dagent"
    async with session.delete(url, headers=server.headers, json={"gracePeriodSeconds": 1}) as r:
        assert r.status == 200, await r.text()
    while True:
        async with session.get(url, headers=server.headers) as r:
            if not (await r.json())["items"]:
                return
        await asyncio.sleep(0.1)


def processes(server: Any) -> list[psutil.Process]:
    main = psutil.Process(server.proc.pid)
    found = [main]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "procorch.agent.runtime.shim" in cmd and str(server.data_dir) in " ".join(cmd):
            found.append(proc)
    return found


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


async def measure_cost(server: Any, seconds: float) -> tuple[float, float, float]:
    """(% of one core, procorch RSS MiB, supervisor RSS MiB) over ``seconds``."""
    procs = processes(server)
    before = cpu_seconds(procs)
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    used = cpu_seconds(procs) - before
    elapsed = time.perf_counter() - t0
    rss = [p.memory_info().rss / 2**20 for p in procs]
    return 100 * used / elapsed, rss[0], sum(rss[1:])


# -- 1 & 3: procorch ------------------------------------------------------------------------


async def bench_procorch(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with procorch_server("--max-pods", "2000") as server:
        connector = aiohttp.TCPConnector(ssl=server.ssl, limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            parts = set(args.only or ["start", "restart", "idle", "probed"])
            # 1. 200 pods to Running.
            runs = []
            for _ in range(args.repeat if "start" in parts else 0):
                pods = [pod(f"start-{i}", ["sleep", "100000"]) for i in range(200)]
                t0 = time.perf_counter()
                await create_pods(session, server, pods)
                t_running = await wait_pods(session, server, 200, ready=False)
                runs.append(t_running - t0)
                await delete_pods(session, server)
            if runs:
                results["start_200"] = runs
                print(f"200 pods applied -> all Running: {', '.join(f'{r:.2f} s' for r in runs)}")

            # 2. crash -> restart, procorch.
            if "restart" in parts:
                results["restart_procorch"] = await restart_latency_procorch(session, server, args)
            if "idle" in parts:
                await idle(session, server, args, results)
            if "probed" in parts:
                await probed(session, server, args, results)
    return results


async def idle(  # 3a. 1,000 idle pods.
    session: aiohttp.ClientSession, server: Any, args: argparse.Namespace, results: dict[str, Any]
) -> None:
    pods = [pod(f"idle-{i}", ["sleep", "100000"]) for i in range(1000)]
    t0 = time.perf_counter()
    await create_pods(session, server, pods)
    t1 = await wait_pods(session, server, 1000, ready=True)
    print(f"1,000 pods applied -> all Ready: {t1 - t0:.2f} s")
    await asyncio.sleep(5)
    cpu, rss_main, rss_shim = await measure_cost(server, args.seconds)
    results["idle_1000"] = (cpu, rss_main, rss_shim)
    print(
        f"1,000 idle pods: {cpu:.2f} % of one core (procorch + supervisor), "
        f"RSS procorch {rss_main:.0f} MiB, supervisor {rss_shim:.0f} MiB"
    )
    await delete_pods(session, server)


async def probed(  # 3b. 200 pods probed every second.
    session: aiohttp.ClientSession, server: Any, args: argparse.Namespace, results: dict[str, Any]
) -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    server_cmd = [sys.executable, "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
    pods = [pod(f"probed-{i}", server_cmd, probe=probe) for i in range(200)]
    await create_pods(session, server, pods)
    await wait_pods(session, server, 200, ready=True)
    await asyncio.sleep(5)
    cpu, rss_main, rss_shim = await measure_cost(server, args.seconds)
    results["probed_200"] = (cpu, rss_main, rss_shim)
    print(
        f"200 pods with 1 s HTTP readiness probes: {cpu:.2f} % of one core, "
        f"RSS procorch {rss_main:.0f} MiB, supervisor {rss_shim:.0f} MiB"
    )
    await delete_pods(session, server)


def watched_file_grows(path: Path, size: int, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if path.stat().st_size > size:
                return time.perf_counter()
        except FileNotFoundError:
            pass
        time.sleep(0.0002)
    raise RuntimeError(f"{path} did not grow")


def find_pid(marker: str) -> int:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd[:1] == ["sleep"] and marker in cmd:
            return proc.pid
    raise RuntimeError(f"no process with {marker}")


def kill_and_time(marker: str, stamp: Path) -> float:
    pid = find_pid(marker)
    size = stamp.stat().st_size
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    return watched_file_grows(stamp, size) - t0


def program(stamp: Path, marker: str) -> list[str]:
    # "sleep <big number> marker" would be refused by sleep; use the marker as a suffix.
    return ["sh", "-c", f"echo started >> {stamp}; exec sleep {marker}"]


async def restart_latency_procorch(
    session: aiohttp.ClientSession, server: Any, args: argparse.Namespace
) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    latencies = []
    for i in range(args.restarts):
        stamp = tmp / f"p{i}"
        marker = f"{110000 + i}"
        await create_pods(session, server, [pod(f"crash-{i}", program(stamp, marker))])
        await wait_pods(session, server, 1, ready=False)
        while not stamp.exists():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        latencies.append(await asyncio.to_thread(kill_and_time, marker, stamp))
        await delete_pods(session, server)
    print(f"procorch   first restart after kill -9: {fmt(latencies)}")
    return latencies


def fmt(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms "
        f"(n={len(values)}, mean {statistics.fmean(values) * 1000:.1f} ms)"
    )


# -- 2: peers -------------------------------------------------------------------------------


def ensure_peers() -> Path:
    py = PEERS / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    if subprocess.run([str(py), "-c", "import supervisor, circus"], capture_output=True).returncode:
        print("installing supervisor and circus into .bench-peers/ ...", file=sys.stderr)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "supervisor", "circus"], check=True)
    return PEERS / "bin"


def restart_latency_supervisord(bin_dir: Path, n: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-supervisord-"))
    programs = []
    for i in range(n):
        stamp = tmp / f"s{i}"
        cmd = f'sh -c "echo started >> {stamp}; exec sleep {200000 + i}"'
        programs.append(
            f"[program:p{i}]\ncommand={cmd}\nautorestart=true\nstartsecs=0\nstartretries=1000\n"
        )
    conf = tmp / "supervisord.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            [supervisord]
            nodaemon=true
            logfile={tmp}/supervisord.log
            pidfile={tmp}/supervisord.pid
            [unix_http_server]
            file={tmp}/supervisor.sock
            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
            """
        )
        + "\n".join(programs)
    )
    proc = subprocess.Popen(
        [str(bin_dir / "supervisord"), "-c", str(conf)], stdout=subprocess.DEVNULL
    )
    try:
        for i in range(n):
            watched_file_grows(tmp / f"s{i}", 0, timeout=30)
        time.sleep(1.5)
        latencies = []
        for i in range(n):
            latencies.append(kill_and_time(f"{200000 + i}", tmp / f"s{i}"))
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"supervisord first restart after kill -9: {fmt(latencies)}")
    return latencies


def restart_latency_circus(bin_dir: Path, n: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-circus-"))
    watchers = []
    for i in range(n):
        stamp = tmp / f"c{i}"
        watchers.append(
            f'[watcher:w{i}]\ncmd=sh\nargs=-c "echo started >> {stamp}; exec sleep {300000 + i}"\n'
            "numprocesses=1\nrespawn=true\nwarmup_delay=0\n"
        )
    conf = tmp / "circus.ini"
    conf.write_text(
        textwrap.dedent(
            f"""
            [circus]
            endpoint = ipc://{tmp}/endpoint
            pubsub_endpoint = ipc://{tmp}/pubsub
            stats_endpoint = ipc://{tmp}/stats
            statsd = false
            # The library's default; circus.ini files default to 5 s (restarts took 4.9 s).
            check_delay = 1
            """
        )
        + "\n".join(watchers)
    )
    proc = subprocess.Popen(
        [str(bin_dir / "circusd"), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for i in range(n):
            watched_file_grows(tmp / f"c{i}", 0, timeout=30)
        time.sleep(1.5)
        latencies = []
        for i in range(n):
            latencies.append(kill_and_time(f"{300000 + i}", tmp / f"c{i}"))
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"circus     first restart after kill -9: {fmt(latencies)}")
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="runs of the 200-pod start")
    parser.add_argument("--restarts", type=int, default=30, help="kills per supervisor")
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU sampling window")
    parser.add_argument("--no-peers", action="store_true", help="skip supervisord and circus")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--only",
        choices=["start", "restart", "idle", "probed"],
        action="append",
        help="run only these parts (repeatable)",
    )
    args = parser.parse_args()
    results = await bench_procorch(args)
    if not args.no_peers and (not args.only or "restart" in args.only):
        bin_dir = ensure_peers()
        results["restart_supervisord"] = restart_latency_supervisord(bin_dir, args.restarts)
        results["restart_circus"] = restart_latency_circus(bin_dir, args.restarts)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
