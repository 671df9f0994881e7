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
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import psutil
from _common import percentile

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


async def mixed_load(
    session: aiohttp.ClientSession,
    url: str,
    server: psutil.Process,
    *,
    ns: str = "mix",
    objects: int = 4000,
    clients: int = 50,
    duration: float = 60.0,
) -> MixedResult:
    names = await preload(session, url, ns, objects)
    base = f"{url}/api/v1/namespaces/{ns}/configmaps"
    kinds = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    result = MixedResult(duration=duration)
    counter = iter(range(objects, 10**9))

    async def create(rng: random.Random) -> None:
        i = next(counter)
        async with session.post(base, data=configmap(ns, f"new-{i}", i)) as r:
            if r.status != 201:
                raise RuntimeError(f"create {r.status}: {await r.text()}")
            await r.read()
        names.append(f"new-{i}")

    async def get(rng: random.Random) -> None:
        async with session.get(f"{base}/{rng.choice(names)}") as r:
            if r.status != 200:
                raise RuntimeError(f"get {r.status}: {await r.text()}")
            await r.read()

    async def list_(rng: random.Random) -> None:
        params = {"labelSelector": f"app=g{rng.randrange(GROUPS)}"}
        async with session.get(base, params=params) as r:
            if r.status != 200:
                raise RuntimeError(f"list {r.status}: {await r.text()}")
            await r.read()

    async def watch(rng: random.Random) -> None:
        params = {
            "watch": "1",
            "labelSelector": f"app=g{rng.randrange(GROUPS)}",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "10",
        }
        async with session.get(base, params=params) as r:
            if r.status != 200:
                raise RuntimeError(f"watch {r.status}: {await r.text()}")
            async for line in r.content:
                if b'"BOOKMARK"' in line:
                    return
        raise RuntimeError("watch ended before the initial events did")

    ops = {"create": create, "get": get, "list": list_, "watch": watch}

    async def client(seed: int, deadline: float) -> None:
        rng = random.Random(seed)
        while time.perf_counter() < deadline:
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                await ops[kind](rng)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                result.errors.append(f"{kind}: {exc!r}"[:200])
                continue
            result.latencies[kind].append(time.perf_counter() - started)

    server.cpu_percent()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(client(seed, deadline) for seed in range(clients)))
    result.duration = time.perf_counter() - started
    result.server_cpu = server.cpu_percent()
    return result


def report(result: MixedResult) -> list[str]:
    def p(kind: str, q: float) -> str:
        return f"{percentile(result.latencies[kind], q) * 1000:.1f}"

    lines = [
        f"| mixed load, 50 clients, {result.duration:.0f} s: operations/s | "
        f"{result.rate:,.0f} ({result.operations:,} ops, {len(result.errors)} errors, "
        f"server CPU {result.server_cpu:.0f} %) |"
    ]
    for kind in WEIGHTS:
        lines.append(
            f"| mixed load: {kind} (n={len(result.latencies[kind]):,}) | "
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
