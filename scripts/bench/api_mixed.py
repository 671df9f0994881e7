"""The API under a mixed load: 50 clients creating, getting, listing by label selector and
opening short watches over ~4,000 ConfigMaps at once, as the reliability run found slow.

Each client loops for ``duration`` seconds over operations drawn with fixed weights:

* create (25 %): a new ConfigMap with two labels;
* get (40 %): one existing ConfigMap by name;
* list (25 %): ``labelSelector=app=gN`` over the namespace (~100 matches of ~4,000+);
* watch (10 %): a short watch-list, as client-go's WatchList streams a list:
  ``sendInitialEvents=true`` with ``labelSelector=app=gN``, read until the bookmark that ends
  the initial events, then closed.

Target (issue 11): >= 1,000 operations/s with create p99 < 100 ms, no errors.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import ssl
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import aiohttp
import psutil
from _common import Server, percentile
from http_lite import Connection

GROUPS = 40
WEIGHTS = {"create": 25, "get": 40, "list": 25, "watch": 10}


def configmap(ns: str, name: str, i: int) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"app": f"g{i % GROUPS}", "tier": f"t{i % 4}"},
            },
            "data": {"key": "value", "other": "x" * 200},
        }
    ).encode()


@dataclass
class MixedResult:
    duration: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    server_cpu: float = 0.0
    rate_asked: float = 0.0

    @property
    def operations(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def rate(self) -> float:
        return self.operations / self.duration


async def preload(session: aiohttp.ClientSession, url: str, ns: str, count: int) -> list[str]:
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    async with session.post(f"{url}/api/v1/namespaces", data=body) as r:
        assert r.status == 201, await r.text()
    names = [f"pre-{i}" for i in range(count)]
    queue = iter(enumerate(names))

    async def worker() -> None:
        for i, name in queue:
            async with session.post(
                f"{url}/api/v1/namespaces/{ns}/configmaps", data=configmap(ns, name, i)
            ) as r:
                assert r.status == 201, await r.text()
                await r.read()

    await asyncio.gather(*(worker() for _ in range(50)))
    return names


@dataclass(frozen=True)
class Plan:
    """What one load-generating process does (picklable)."""

    url: str
    token: str
    cafile: str
    ns: str
    names: list[str]
    clients: int
    first_seed: int
    start_at: float  # time.time() at which every process starts
    duration: float
    interval: float  # seconds between one client's operations (0: as fast as it can)


def _run_plan(plan: Plan) -> tuple[dict[str, list[float]], list[str]]:
    """One process of the load: its own uvloop loop and ``plan.clients`` connections."""
    import uvloop

    return uvloop.run(_clients(plan))


async def _clients(plan: Plan) -> tuple[dict[str, list[float]], list[str]]:
    host, port = plan.url.removeprefix("https://").rsplit(":", 1)
    tls = ssl.create_default_context(cafile=plan.cafile)
    base = f"/api/v1/namespaces/{plan.ns}/configmaps"
    names = list(plan.names)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    counter = iter(range(10**9))

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = Connection(host, int(port), tls, plan.token)
        while time.time() < plan.start_at:
            await asyncio.sleep(0.01)
        deadline = plan.start_at + plan.duration
        due = time.perf_counter() + rng.uniform(0, plan.interval)
        while time.time() < deadline:
            if plan.interval:
                # Open loop: each operation is due at a fixed pace and timed from when it
                # was due, so time queued behind a slow server counts in its latency.
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                started, due = due, due + plan.interval
            else:
                started = time.perf_counter()
            kind = rng.choices(kinds, weights)[0]
            try:
                if kind == "create":
                    i = next(counter)
                    name = f"new-{seed}-{i}"
                    reply = await conn.request("POST", base, configmap(plan.ns, name, i))
                    expected = 201
                    names.append(name)
                elif kind == "get":
                    reply = await conn.request("GET", f"{base}/{rng.choice(names)}")
                    expected = 200
                elif kind == "list":
                    selector = f"app%3Dg{rng.randrange(GROUPS)}"
                    reply = await conn.request("GET", f"{base}?labelSelector={selector}")
                    expected = 200
                else:
                    selector = f"app%3Dg{rng.randrange(GROUPS)}"
                    reply = await conn.request(
                        "GET",
                        f"{base}?watch=1&labelSelector={selector}&sendInitialEvents=true"
                        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
                        "&timeoutSeconds=10",
                        stop_marker=b'"BOOKMARK"',
                    )
                    expected = 200
                if reply.status != expected:
                    raise RuntimeError(f"{reply.status}: {bytes(reply.body[:200])!r}")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{kind}: {exc!r}"[:200])
                conn.close()
                continue
            latencies[kind].append(time.perf_counter() - started)
        conn.close()

    await asyncio.gather(*(client(plan.first_seed + i) for i in range(plan.clients)))
    return dict(latencies), errors


async def mixed_load(
    session: aiohttp.ClientSession,
    server: Server,
    proc: psutil.Process,
    *,
    ns: str = "mix",
    objects: int = 4000,
    clients: int = 50,
    processes: int = 2,
    duration: float = 60.0,
    rate: float = 0.0,
) -> MixedResult:
    """The mixed load from ``processes`` load-generating processes (lean clients, see
    http_lite.py) sharing ``clients`` connections: as fast as they can, or at ``rate``
    operations per second in all (open loop)."""
    names = await preload(session, server.url, ns, objects)
    start_at = time.time() + 2.0
    share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    plans = [
        Plan(
            url=server.url,
            token=server.token,
            cafile=str(server.data_dir / "pki" / "ca.crt"),
            ns=ns,
            names=names,
            clients=count,
            first_seed=sum(share[:i]),
            start_at=start_at,
            duration=duration,
            interval=clients / rate if rate else 0.0,
        )
        for i, count in enumerate(share)
    ]
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [loop.run_in_executor(pool, _run_plan, plan) for plan in plans]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        proc.cpu_percent()
        cpu_started = time.perf_counter()
        outcomes = await asyncio.gather(*futures)
        server_cpu = proc.cpu_percent()
        measured = time.perf_counter() - cpu_started
    result = MixedResult(duration=duration, server_cpu=server_cpu, rate_asked=rate)
    for latencies, errors in outcomes:
        for kind, values in latencies.items():
            result.latencies[kind].extend(values)
        result.errors.extend(errors)
    result.server_cpu = server_cpu * duration / max(measured, duration)
    return result


def report(result: MixedResult) -> list[str]:
    def p(kind: str, q: float) -> str:
        return f"{percentile(result.latencies[kind], q) * 1000:.1f}"

    pace = f"paced at {result.rate_asked:,.0f}/s" if result.rate_asked else "as fast as they can"
    lines = [
        f"| mixed load, 50 clients in 2 processes ({pace}), {result.duration:.0f} s: operations/s | "
        f"{result.rate:,.0f} ({result.operations:,} ops, {len(result.errors)} errors, "
        f"server CPU {result.server_cpu:.0f} %) |"
    ]
    for kind in WEIGHTS:
        lines.append(
            f"| mixed load ({pace}): {kind} (n={len(result.latencies[kind]):,}) | "
            f"p50 {p(kind, 50)} ms, p99 {p(kind, 99)} ms |"
        )
    return lines


async def churn_memory(
    session: aiohttp.ClientSession,
    url: str,
    server: psutil.Process,
    *,
    ns: str = "churn",
    rounds: int = 8,
    objects: int = 2_100,
    clients: int = 50,
) -> list[float]:
    """RSS (MiB) of the server after each round of ``clients`` clients creating ``objects``
    ConfigMaps and deleting them all: what the reliability run saw grow 86 -> 262 MB."""
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    async with session.post(f"{url}/api/v1/namespaces", data=body) as r:
        assert r.status == 201, await r.text()
    base = f"{url}/api/v1/namespaces/{ns}/configmaps"
    rss = [server.memory_info().rss / 2**20]
    for _ in range(rounds):

        async def create(names: Iterator[int]) -> None:
            for i in names:
                async with session.post(base, data=configmap(ns, f"c-{i}", i)) as r:
                    assert r.status == 201, await r.text()
                    await r.read()

        created = iter(range(objects))
        await asyncio.gather(*(create(created) for _ in range(clients)))

        async def delete(doomed: Iterator[int]) -> None:
            for i in doomed:
                async with session.delete(f"{base}/c-{i}") as r:
                    assert r.status == 200, await r.text()
                    await r.read()

        deleted = iter(range(objects))
        await asyncio.gather(*(delete(deleted) for _ in range(clients)))
        await asyncio.sleep(2)  # let the GC policy and informers settle
        rss.append(server.memory_info().rss / 2**20)
    return rss
