"""Workload controllers benchmark (issue 4), run by hand: ``./scripts/bench/workloads``.

1. A Deployment of ``--replicas`` (100) pods (``sleep``, no readiness probe) from create until
   ``kubectl rollout status`` would say it is rolled out (every replica updated and
   available).
2. A full rolling update of it (a new env var, default strategy 25 %/25 %) until rolled out.
3. Deleting it until every pod process is gone (background cascade through the garbage
   collector).

procorch runs in this process (with its node and the node's supervisor process), on the
default asyncio loop rather than uvloop: every callback the loop runs is timed with the
thread's CPU clock and charged to the task it belongs to, which splits the process's CPU into
the Deployment and ReplicaSet controllers (their workers, including the API calls they make
in-process, and their event writers), the shared informers, the node agent, and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from procorch.api.resources import must  # noqa: E402
from procorch.kit.logging import configure  # noqa: E402
from procorch.launcher.up import Procorch, UpConfig  # noqa: E402

DEPLOYMENTS = must("apps/deployments")
PODS = must("core/pods")


class TaskClock:
    """CPU seconds of the loop's main thread, per task name, while installed."""

    def __init__(self) -> None:
        self.by_task: collections.Counter[str] = collections.Counter()
        self._orig: Callable[[Any], None] | None = None

    def install(self) -> None:
        orig = asyncio.events.Handle._run
        self._orig = orig
        by_task = self.by_task

        def timed(handle: Any) -> None:
            started = time.thread_time()
            try:
                orig(handle)
            finally:
                owner = getattr(handle._callback, "__self__", None)
                name = owner.get_name() if isinstance(owner, asyncio.Task) else "<callbacks>"
                by_task[name] += time.thread_time() - started

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._orig is not None:
            asyncio.events.Handle._run = self._orig  # type: ignore[method-assign]

    def snapshot(self) -> collections.Counter[str]:
        return collections.Counter(self.by_task)


GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("deployment controller", ("deployment/",)),
    ("replicaset controller", ("replicaset/",)),
    ("informers (shared)", ("controllers/informer:",)),
    ("scheduler", ("controllers/scheduler", "scheduler:")),
    ("node agent", ("agent", "pod/", "probes/")),
]


def grouped(delta: collections.Counter[str]) -> dict[str, float]:
    out: dict[str, float] = {name: 0.0 for name, _ in GROUPS}
    out["other"] = 0.0
    for task, seconds in delta.items():
        for name, prefixes in GROUPS:
            if task.startswith(prefixes):
                out[name] += seconds
                break
        else:
            out["other"] += seconds
    return out


def deployment(name: str, replicas: int, marker: str) -> dict[str, Any]:
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
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "main", "command": ["sleep", marker]}],
                },
            },
        },
    }


def rolled_out(d: dict[str, Any]) -> bool:
    status, wanted = d.get("status") or {}, int(d["spec"]["replicas"])
    return (
        int(status.get("observedGeneration") or 0) >= int(d["metadata"]["generation"])
        and status.get("updatedReplicas") == wanted
        and status.get("replicas") == wanted
        and status.get("availableReplicas") == wanted
    )


async def wait_rolled_out(p: Procorch, name: str, timeout: float = 600) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if rolled_out(await p.admin.get(DEPLOYMENTS, name, namespace="default")):
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"deployment {name} did not roll out in {timeout} s")


def live(marker: str) -> int:
    count = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and marker in proc.cmdline():
                count += 1
        except psutil.Error:
            continue
    return count


def process_cpu() -> float:
    """CPU seconds of this process and its supervisor (not of the pods' own processes)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children():
        try:
            if "procorch" in " ".join(child.cmdline()):
                total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


async def phase(
    label: str, clock: TaskClock, action: Callable[[], Any], done: Callable[[], Any]
) -> dict[str, Any]:
    before, cpu_before = clock.snapshot(), process_cpu()
    started = time.perf_counter()
    await action()
    await done()
    wall = time.perf_counter() - started
    delta = clock.snapshot()
    delta.subtract(before)
    groups = grouped(delta)
    result = {"label": label, "wall": wall, "process_cpu": process_cpu() - cpu_before, **groups}
    controllers = groups["deployment controller"] + groups["replicaset controller"]
    print(
        f"{label}: {wall:.2f} s; controllers {controllers:.2f} CPU-s "
        f"({100 * controllers / wall:.1f} % of a core: deployment "
        f"{groups['deployment controller']:.2f}, replicaset {groups['replicaset controller']:.2f}); "
        f"informers {groups['informers (shared)']:.2f}, scheduler {groups['scheduler']:.2f}, "
        f"agent {groups['node agent']:.2f}, other {groups['other']:.2f}; "
        f"whole process + supervisor {result['process_cpu']:.2f} CPU-s",
        flush=True,
    )
    return result


async def one_run(replicas: int, run: int, agent: dict[str, Any]) -> list[dict[str, Any]]:
    clock = TaskClock()
    marker = str(4_000_000 + run)
    with tempfile.TemporaryDirectory(prefix="procorch-bench-workloads-") as tmp:
        p = Procorch(UpConfig(data_dir=Path(tmp) / "data", api_port=0, ingress_port=0, agent=agent))
        await p.start()
        clock.install()
        results = []
        try:
            body = deployment("bench", replicas, marker)

            async def create() -> None:
                await p.admin.create(DEPLOYMENTS, body, namespace="default")

            async def available() -> None:
                await wait_rolled_out(p, "bench")

            results.append(await phase(f"apply → {replicas} available", clock, create, available))
            assert live(marker) == replicas, live(marker)

            async def update() -> None:
                await p.admin.patch(
                    DEPLOYMENTS,
                    "bench",
                    {
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [
                                        {"name": "main", "env": [{"name": "V", "value": "2"}]}
                                    ]
                                }
                            }
                        }
                    },
                    namespace="default",
                    patch_type="strategic",
                )

            results.append(await phase("rolling update", clock, update, available))

            async def delete() -> None:
                await p.admin.delete(DEPLOYMENTS, "bench", namespace="default")

            async def gone() -> None:
                deadline = time.perf_counter() + 120
                while live(marker) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.05)

            results.append(await phase("delete → processes gone", clock, delete, gone))
        finally:
            clock.uninstall()
            await p.stop()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--ready-settle",
        type=float,
        default=None,
        help="the agent's ready_settle in seconds (default: the agent's own, 0.5)",
    )
    args = parser.parse_args()
    configure(level=os.environ.get("PROCORCH_LOG_LEVEL", "warning"))
    print(f"machine: {os.cpu_count()} cores; {args.replicas} replicas; {args.runs} run(s)")
    agent = {} if args.ready_settle is None else {"ready_settle": args.ready_settle}
    all_results = [await one_run(args.replicas, run, agent) for run in range(args.runs)]
    if args.runs > 1:
        for i, label in enumerate(r["label"] for r in all_results[0]):
            walls = [run[i]["wall"] for run in all_results]
            ctl = [
                run[i]["deployment controller"] + run[i]["replicaset controller"]
                for run in all_results
            ]
            print(
                f"median {label}: {statistics.median(walls):.2f} s, "
                f"controllers {statistics.median(ctl):.2f} CPU-s"
            )


if __name__ == "__main__":
    asyncio.run(main())
