"""Nodes benchmark (issue 12), run by hand as root: ``./scripts/bench/nodes``.

A control plane (``procorch up --no-node`` in this process, on a bridge's address) and three
``procorch agent`` processes, each on a host of its own: a network namespace with a veth on
the bridge (:mod:`procorch.testing.netns`). Agents keep Kubernetes' defaults (40 s Lease,
renewed every 10 s) unless said otherwise.

1. 300 pods (a Deployment) created over the 3 nodes → all Running.
2. Steady state with 100 pods per node: the API writes per node per minute (store revisions
   over ``--idle`` seconds; target ≤ 6, as node Leases give Kubernetes) and one remote node's
   procorch CPU (agent and supervisor processes; target < 1 % of a core).
3. Node lost: every process of one node killed at once, with ``--node-monitor-grace-period``
   10 s and pods tolerating the unreachable taint for 5 s: time from the kill until the
   Deployment has all its replicas Ready again, none on the lost node (target ≤ grace +
   toleration + 2 s = 17 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from procorch.api.resources import must
from procorch.launcher.up import Procorch, UpConfig
from procorch.testing.netns import Host, HostNetwork, available

PODS = must("core/pods")
DEPLOYMENTS = must("apps/deployments")
NODES = must("core/nodes")
GRACE = 10.0
TOLERATION = 5


def deployment(name: str, replicas: int, seconds: int) -> dict[str, Any]:
    tolerations = [
        {
            "key": f"node.kubernetes.io/{taint}",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": TOLERATION,
        }
        for taint in ("unreachable", "not-ready")
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "tolerations": tolerations,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "command": ["sleep", str(seconds)]}],
                },
            },
        },
    }


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what}: not within {timeout} s")


async def pods_of(plane: Procorch, app: str) -> list[dict[str, Any]]:
    listed = await plane.admin.list(PODS, namespace="default", label_selector=f"app={app}")
    return listed.items


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def procorch_pids(network: HostNetwork, host: Host) -> list[int]:
    """The node's procorch processes (agent and supervisor), not its containers."""
    found = []
    for pid in network.pids(host):
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:
            continue
        if "procorch" in cmdline:
            found.append(pid)
    return found


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    network = HostNetwork()
    network.create()
    with tempfile.TemporaryDirectory(prefix="procorch-bench-nodes-") as tmp:
        root = Path(tmp)
        plane = Procorch(
            UpConfig(
                data_dir=root / "control-plane",
                api_host=network.address,
                api_port=0,
                node=False,
                remote_nodes=True,
                node_monitor_grace_period=GRACE,
            )
        )
        await plane.start()
        try:
            token = root / "token"
            token.write_text((plane.data_dir / "node-token").read_text())
            hosts = [network.add_host(f"node-{i}") for i in range(3)]
            for host in hosts:
                await network.agent(
                    host,
                    server=plane.api_url,
                    token_file=token,
                    data_dir=root / host.name,
                    log=root / f"{host.name}.log",
                )

            async def nodes_ready() -> bool:
                nodes = (await plane.admin.list(NODES)).items
                return sum(
                    any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in (n.get("status") or {}).get("conditions") or []
                    )
                    for n in nodes
                ) == len(hosts)

            await wait_for(nodes_ready, 60, "3 nodes Ready")

            # 1. 300 pods over 3 nodes.
            started = time.monotonic()
            await plane.admin.create(
                DEPLOYMENTS, deployment("many", 300, 3600), namespace="default"
            )

            async def all_running() -> bool:
                pods = await pods_of(plane, "many")
                return len(pods) == 300 and all(
                    (p.get("status") or {}).get("phase") == "Running" for p in pods
                )

            await wait_for(all_running, 300, "300 pods Running")
            took = time.monotonic() - started
            per_node: dict[str, int] = {}
            for pod in await pods_of(plane, "many"):
                node = pod["spec"]["nodeName"]
                per_node[node] = per_node.get(node, 0) + 1
            rows.append(
                (
                    "300 pods created over 3 nodes → all Running",
                    f"{took:.1f} s ({', '.join(f'{n} {c}' for n, c in sorted(per_node.items()))})",
                )
            )

            # 2. Steady state.
            await asyncio.sleep(args.settle)
            pids = procorch_pids(network, hosts[0])
            revision = plane.control_plane.store.revision
            cpu = cpu_seconds(pids)
            began = time.monotonic()
            await asyncio.sleep(args.idle)
            elapsed = time.monotonic() - began
            writes = plane.control_plane.store.revision - revision
            used = cpu_seconds(pids) - cpu
            for pid in pids:  # what each took, for whoever reads the log
                try:
                    proc = psutil.Process(pid)
                    print(pid, proc.cpu_times(), " ".join(proc.cmdline())[:80], file=sys.stderr)
                except psutil.NoSuchProcess:
                    pass
            rows.append(
                (
                    f"3 nodes × 100 idle pods, {args.idle:.0f} s: API writes per node per minute",
                    f"{writes / len(hosts) / (elapsed / 60):.1f} ({writes} writes)",
                )
            )
            rows.append(
                (
                    "3 nodes × 100 idle pods: one remote node's procorch CPU (agent + supervisor)",
                    f"{100 * used / elapsed:.2f} % of a core",
                )
            )

            # 3. A node lost: every process on it killed at once.
            await plane.admin.delete(DEPLOYMENTS, "many", namespace="default")
            await wait_for(lambda: _none_left(plane, "many"), 120, "the 300 pods gone")
            await plane.admin.create(DEPLOYMENTS, deployment("kept", 6, 3600), namespace="default")

            async def six_ready() -> list[dict[str, Any]] | None:
                pods = [p for p in await pods_of(plane, "kept") if is_ready(p)]
                return pods if len(pods) == 6 else None

            await wait_for(six_ready, 60, "6 pods Ready")
            lost = hosts[0]
            started = time.monotonic()
            for pid in network.pids(lost):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            async def replaced() -> bool:
                pods = [
                    p
                    for p in await pods_of(plane, "kept")
                    if is_ready(p)
                    and not p["metadata"].get("deletionTimestamp")
                    and p["spec"].get("nodeName") != lost.name
                ]
                return len(pods) == 6

            await wait_for(replaced, 120, "replacements Ready")
            took = time.monotonic() - started
            rows.append(
                (
                    f"node lost (every process SIGKILLed), grace {GRACE:.0f} s, "
                    f"tolerationSeconds {TOLERATION} → 6 replicas Ready on the other nodes",
                    f"{took:.1f} s (target ≤ {GRACE + TOLERATION + 2:.0f} s)",
                )
            )
        finally:
            await network.stop_processes()
            await plane.stop()
            await network.remove()
    return rows


async def _none_left(plane: Procorch, app: str) -> bool:
    return not await pods_of(plane, app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of steady state")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds before measuring")
    args = parser.parse_args()
    why_not = available()
    if why_not:
        sys.exit(f"cannot run: {why_not}")
    rows = asyncio.run(run(args))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
