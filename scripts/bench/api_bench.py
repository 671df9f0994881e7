"""Benchmark the API server: durable creates/s (sequential and 50-way), list latency for
1,000 and 10,000 objects, watch delivery latency, and a mixed load (api_mixed.py). Run by
hand: ./scripts/bench/api [--no-node] [--only basic|mixed|memory|streams|crd|rbac] [--duration SECONDS]

``--only streams``: exec round trips and port-forward throughput (api_streams.py).
``--only crd``: a custom resource's creates/s and list latency beside a ConfigMap's (api_crd.py).
``--only rbac``: a non-admin user's requests/s beside the admin's, with 200 roles and 1,000
bindings in the cluster (api_rbac.py).

Targets: >= 1,000 durable writes/s with 50 concurrent clients, a list of 1,000 objects in
< 100 ms, watch delivery p99 < 10 ms (issue 2); the mixed load at >= 1,000 operations/s with
create p99 < 100 ms (issue 11).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp
import psutil

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import configmap, percentile, procorch_server, summary
from api_crd import custom_resources
from api_mixed import churn_memory, mixed_load, report
from api_rbac import authorization
from api_streams import streams


async def make_namespace(session: aiohttp.ClientSession, url: str, ns: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    async with session.post(f"{url}/api/v1/namespaces", data=body) as r:
        assert r.status == 201, await r.text()


async def creates(
    session: aiohttp.ClientSession, url: str, ns: str, count: int, concurrency: int
) -> float:
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            async with session.post(
                f"{url}/api/v1/namespaces/{ns}/configmaps", data=configmap(ns, f"cm-{i}")
            ) as r:
                if r.status != 201:
                    raise RuntimeError(await r.text())
                await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def list_latency(
    session: aiohttp.ClientSession, url: str, ns: str, *, table: bool, rounds: int = 20
) -> list[float]:
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"} if table else {}
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(f"{url}/api/v1/namespaces/{ns}/configmaps", headers=headers) as r:
            body = await r.read()
            assert r.status == 200
        out.append(time.perf_counter() - started)
    assert body
    return out


async def watch_latency(
    session: aiohttp.ClientSession, url: str, ns: str, count: int = 1000
) -> list[float]:
    sent: dict[str, float] = {}
    latencies: list[float] = []
    async with session.post(
        f"{url}/api/v1/namespaces/{ns}/configmaps", data=configmap(ns, "watched")
    ) as r:
        obj = await r.json()
    rv = obj["metadata"]["resourceVersion"]
    ready = asyncio.Event()
    done = asyncio.Event()

    async def watcher() -> None:
        async with session.get(
            f"{url}/api/v1/namespaces/{ns}/configmaps",
            params={
                "watch": "true",
                "resourceVersion": rv,
                "fieldSelector": "metadata.name=watched",
            },
            timeout=aiohttp.ClientTimeout(total=None),
        ) as resp:
            ready.set()
            async for line in resp.content:
                event = json.loads(line)
                value = event["object"]["data"]["key"]
                if value in sent:
                    latencies.append(time.perf_counter() - sent.pop(value))
                if len(latencies) >= count:
                    done.set()
                    return

    task = asyncio.create_task(watcher())
    await ready.wait()
    await asyncio.sleep(0.2)
    for i in range(count):
        patch = json.dumps({"data": {"key": f"v{i}"}})
        sent[f"v{i}"] = time.perf_counter()
        async with session.patch(
            f"{url}/api/v1/namespaces/{ns}/configmaps/watched",
            data=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        ) as r:
            assert r.status == 200, await r.text()
            await r.read()
    await asyncio.wait_for(done.wait(), 30)
    task.cancel()
    return latencies


async def basic(session: aiohttp.ClientSession, url: str, proc: psutil.Process) -> list[str]:
    for ns in ("seq", "conc", "list1k", "list10k", "watch"):
        await make_namespace(session, url, ns)
    seq = await creates(session, url, "seq", 1000, 1)
    proc.cpu_percent()
    conc = await creates(session, url, "conc", 5000, 50)
    cpu = proc.cpu_percent()
    await creates(session, url, "list1k", 1000, 50)
    await creates(session, url, "list10k", 10000, 50)
    l1k = await list_latency(session, url, "list1k", table=False)
    l1k_t = await list_latency(session, url, "list1k", table=True)
    l10k = await list_latency(session, url, "list10k", table=False, rounds=10)
    l10k_t = await list_latency(session, url, "list10k", table=True, rounds=5)
    watch = await watch_latency(session, url, "watch")
    rss = proc.memory_info().rss / 2**20
    assert percentile(watch, 99) >= 0
    return [
        f"| durable creates/s, 1 client (sequential) | {seq:,.0f} |",
        f"| durable creates/s, 50 concurrent clients | {conc:,.0f} (server CPU {cpu:.0f} %) |",
        f"| list 1,000 ConfigMaps (JSON) | {summary(l1k)} |",
        f"| list 1,000 ConfigMaps (Table, as kubectl get) | {summary(l1k_t)} |",
        f"| list 10,000 ConfigMaps (JSON) | {summary(l10k)} |",
        f"| list 10,000 ConfigMaps (Table) | {summary(l10k_t)} |",
        f"| watch delivery, write sent -> event received (1,000 events) | {summary(watch)} |",
        f"| server RSS after 17,000 objects | {rss:.0f} MiB |",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-node", action="store_true", help="the bare control plane")
    parser.add_argument(
        "--only", choices=("basic", "mixed", "memory", "streams", "crd", "rbac"), default=None
    )
    parser.add_argument("--duration", type=float, default=60.0, help="of the mixed load")
    parser.add_argument(
        "--rate",
        type=float,
        action="append",
        help="pace the mixed load at this many operations/s (repeatable; default: as fast "
        "as it goes, then 1,000/s)",
    )
    args = parser.parse_args()
    extra = ["--no-node"] if args.no_node else []
    lines = ["| measurement | result |", "|---|---|"]
    async with procorch_server(*extra) as server:
        proc = psutil.Process(server.proc.pid)
        conn = aiohttp.TCPConnector(limit=100, ssl=server.ssl)
        async with aiohttp.ClientSession(headers=server.headers, connector=conn) as session:
            if args.only in (None, "basic"):
                lines += await basic(session, server.url, proc)
            if args.only in (None, "memory"):
                rss = await churn_memory(session, server.url, proc)
                lines.append(
                    "| RSS after rounds of creating and deleting 2,100 ConfigMaps (MiB) | "
                    + " -> ".join(f"{value:.0f}" for value in rss)
                    + " |"
                )
            if args.only in (None, "crd"):
                lines += await custom_resources(session, server.url)
            if args.only in (None, "rbac"):
                lines += await authorization(session, server)
            if args.only in (None, "streams") and not args.no_node:
                lines += await streams(session, server)
            if args.only in (None, "mixed"):
                for i, rate in enumerate(args.rate or [0.0, 1000.0]):
                    result = await mixed_load(
                        session, server, proc, ns=f"mix{i}", duration=args.duration, rate=rate
                    )
                    lines += report(result)
                    for error in result.errors[:5]:
                        print("error:", error, file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    import uvloop

    uvloop.install()  # the load generator must not be what limits the rate
    asyncio.run(main())
