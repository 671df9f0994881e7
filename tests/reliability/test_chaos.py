"""A chaos run: a Deployment of 3 web pods behind a Service and an Ingress, under load
through both, while a pod is SIGKILLed every 3 s and the Deployment is restarted
(``kubectl rollout restart``) every 20 s. Clients keep being served, and at the end the
Deployment is available, with exactly its pods' processes on the node.

Load: 3 clients through the Service's ClusterIP (the L4 proxy) and 3 through the Ingress
(the L7 router), each sending GETs back to back on keep-alive connections, none retried by
the client. What they see counts: a request fails if it gets no answer within 5 s, a broken
connection, or a status other than 200.

The killer takes a ready pod, and only while another one is ready too (a disruption budget
of one ready pod). Without that budget a pod dies every 3 s while each restart waits out
crash-loop back-off (immediately, then 10 s, 20 s, ... as kubelet does), so in a run of a few
minutes all three pods end up in ``CrashLoopBackOff`` together, and the clients rightly get
connection refused and 503 "no ready endpoints" - a measure of back-off, not of procorch
(a 200 s run without it: 90 % through the Service, 88 % through the Ingress, every failure
while no pod was ready).

Availability threshold, 99 % per path. A SIGKILL takes down the requests in flight on that
pod and the connections open to it: at most one per client through the L4 proxy (it relays
bytes: a connection cut is a request lost), while the Ingress retries an idempotent request
that got nothing back on another endpoint. So a kill costs at most ~3 requests per path; at
the thousand requests a second the clients make, a kill every 3 s costs at most ~0.1 % even
if every one lands on a busy connection. Rolling restarts cost nothing by design (a
terminating pod leaves the endpoints before it is signalled, and finishes what is in flight).
Below 99 %, something other than the kills themselves is failing requests.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from reliability_harness import (
    DEPLOYMENTS,
    PODS,
    UpProcess,
    node_dir_cleanup,
    node_processes,
    procorch_up,
    report,
    restart_patch,
    rolled_out,
    scaled,
    serve_web,
    settled_audit,
    tally,
    trials,
    wait_for,
)

from tests.conftest import KUBECTL

REPLICAS = 3
KILL_EVERY = 3.0
RESTART_EVERY = 20.0
AVAILABILITY = 0.99
CLIENTS = 3


class Load:
    """``CLIENTS`` clients sending GETs back to back through ``url``; every outcome counted."""

    def __init__(self, url: str, *, host: str | None = None) -> None:
        self.url = url
        self.headers = {"Host": host} if host else {}
        self.ok = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    @property
    def availability(self) -> float:
        return self.ok / self.total if self.total else 0.0

    async def __aenter__(self) -> Load:
        self._tasks = [
            asyncio.create_task(self._client(), name=f"load-{i}") for i in range(CLIENTS)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self) -> None:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=5),
        ) as session:
            while not self._stop.is_set():
                try:
                    async with session.get(self.url, headers=self.headers) as reply:
                        text = await reply.text()
                        if reply.status == 200:
                            self.ok += 1
                        else:
                            self.failures.append(f"{reply.status} {text.strip()[:80]}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(type(exc).__name__)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


async def _killer(
    up: UpProcess, stop: asyncio.Event, kills: Counter[str], skipped: list[float]
) -> None:
    """Every KILL_EVERY seconds, SIGKILL the process of a ready pod chosen at random - when
    another pod is ready too (a disruption budget of one ready pod, as a PodDisruptionBudget
    with ``minAvailable: 1`` asks of voluntary disruptions). Unbounded, the kills outpace
    crash-loop back-off (10 s, 20 s, 40 s... as kubelet's) until no pod is ready at all, and
    the run measures that arithmetic rather than the proxies."""
    rng = random.Random()
    loop = asyncio.get_running_loop()
    due = loop.time()
    client = up.client()
    try:
        while not stop.is_set():
            due += KILL_EVERY  # on a fixed cadence, whatever finding the victim took
            try:
                async with asyncio.timeout_at(due):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            pods = (await client.list(PODS, namespace="default", label_selector="app=web")).items
            ready = {f"default/{p['metadata']['name']}" for p in pods if _ready(p)}
            if len(ready) < 2:
                skipped.append(loop.time())
                continue
            found = await asyncio.to_thread(node_processes, up.data_dir)
            mains = [p for p in found.pods if p.main and p.pod in ready]
            if mains:
                victim = rng.choice(mains)
                try:
                    psutil.Process(victim.pid).kill()
                    kills[victim.pod] += 1
                except psutil.NoSuchProcess:
                    pass
    finally:
        await client.close()


async def _restarter(up: UpProcess, stop: asyncio.Event, restarts: list[float]) -> None:
    """``kubectl rollout restart deploy/web`` 8 s in, then every RESTART_EVERY seconds (the
    same PATCH by hand when kubectl is not installed)."""
    wait = 8.0
    while not stop.is_set():
        try:
            async with asyncio.timeout(wait):
                await stop.wait()
            return
        except TimeoutError:
            pass
        wait = RESTART_EVERY
        if KUBECTL is None:
            client = up.client()
            try:
                await client.patch(
                    DEPLOYMENTS, "web", restart_patch(), namespace="default", patch_type="strategic"
                )
            finally:
                await client.close()
        else:
            proc = await asyncio.create_subprocess_exec(
                KUBECTL,
                f"--kubeconfig={up.data_dir / 'kubeconfig'}",
                f"--cache-dir={up.data_dir.parent / 'kube-cache'}",
                "rollout",
                "restart",
                "deploy/web",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
            assert proc.returncode == 0, out.decode()
        restarts.append(time.monotonic())


@pytest.mark.slow
async def test_clients_stay_served_while_pods_are_killed_and_the_deployment_restarted(
    tmp_path: Path,
) -> None:
    seconds = 10.0 * trials(2) if scaled() else 15.0
    seconds = float(os.environ.get("PROCORCH_RELIABILITY_CHAOS_SECONDS", seconds))
    data = tmp_path / "data"
    async with node_dir_cleanup(data), procorch_up(data) as up:
        await up.wait_ready()
        svc = await serve_web(up, replicas=REPLICAS)
        client = up.client()
        try:
            await wait_for(lambda: rolled_out(client, "web"), timeout=60, what="rolled out")
        finally:
            await client.close()
        through_service = Load(f"http://{svc['spec']['clusterIP']}/")
        through_ingress = Load(f"{up.ingress_url}/", host="web.test")

        async def both_answer() -> bool:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
                for load in (through_service, through_ingress):
                    async with s.get(load.url, headers=load.headers) as r:
                        if r.status != 200:
                            return False
            return True

        await wait_for(both_answer, timeout=30, what="the Service and the Ingress answering")
        stop = asyncio.Event()
        kills: Counter[str] = Counter()
        skipped: list[float] = []
        restarts: list[float] = []
        async with through_service, through_ingress:
            chaos = [
                asyncio.create_task(_killer(up, stop, kills, skipped), name="killer"),
                asyncio.create_task(_restarter(up, stop, restarts), name="restarter"),
            ]
            try:
                done, _ = await asyncio.wait(chaos, timeout=seconds)
                for task in done:
                    task.result()  # a chaos task that failed fails the test
            finally:
                stop.set()
                await asyncio.gather(*chaos)
        client = up.client()
        try:
            await wait_for(
                lambda: rolled_out(client, "web"), timeout=60, what="rolled out after the chaos"
            )
            final = await settled_audit(client, data, pods=REPLICAS)
        finally:
            await client.close()
        assert up.proc.returncode is None, up.log_tail()
        assert await up.stop() == 0, up.log_tail()
        left = node_processes(data)
        assert not left.supervisors and not left.pods, f"left after SIGTERM: {left}"
    figures = {
        "seconds": seconds,
        "kills": sum(kills.values()),
        "kills_skipped": len(skipped),
        "rollout_restarts": len(restarts),
        "orphans": final.orphans,
        "duplicates": final.duplicates,
    }
    for path, load in (("service", through_service), ("ingress", through_ingress)):
        figures[f"{path}_requests"] = load.total
        figures[f"{path}_failed"] = len(load.failures)
        figures[f"{path}_availability"] = round(load.availability, 5)
    report("chaos", **figures)
    for path, load in (("service", through_service), ("ingress", through_ingress)):
        assert load.availability >= AVAILABILITY, (
            f"through the {path}: {load.ok} of {load.total} served "
            f"({load.availability:.2%}); failures: {tally(load.failures)}"
        )
        assert load.total > 20 * seconds, f"{path}: only {load.total} requests in {seconds} s"
    # Most kills happen (some wait for the budget: a pod back from the last one).
    assert sum(kills.values()) >= 0.5 * int(seconds / KILL_EVERY), (kills, len(skipped))
    assert restarts, "no rollout restart happened"
