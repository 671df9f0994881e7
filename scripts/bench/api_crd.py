"""Custom resources beside ConfigMaps (issue 14): durable creates/s with 50 concurrent
clients and the latency of listing 1,000, for a Widget of a CRD with a structural schema
(pruned, defaulted and validated on every write) and for a ConfigMap of the same size.

Run through ``./scripts/bench/api --only crd``. Target: the custom resource at >= 0.8x the
ConfigMap's rates.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from _common import configmap, percentile, summary

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.bench.example.com"},
    "spec": {
        "group": "bench.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["key"],
                                "properties": {
                                    "key": {"type": "string", "maxLength": 64},
                                    "other": {"type": "string"},
                                    "size": {"type": "integer", "minimum": 0, "default": 1},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _widget(ns: str, name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "bench.example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
            "spec": {"key": "value", "other": "x" * 200},
        }
    ).encode()


async def _creates(
    session: aiohttp.ClientSession, url: str, body: Any, count: int, concurrency: int = 50
) -> float:
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            async with session.post(url, data=body(f"o-{i}")) as r:
                if r.status != 201:
                    raise RuntimeError(await r.text())
                await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _lists(session: aiohttp.ClientSession, url: str, rounds: int = 20) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(url) as r:
            assert r.status == 200
            await r.read()
        out.append(time.perf_counter() - started)
    return out


async def custom_resources(session: aiohttp.ClientSession, url: str) -> list[str]:
    async with session.post(
        f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD
    ) as r:
        assert r.status == 201, await r.text()
    for ns in ("cm", "cr"):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        async with session.post(f"{url}/api/v1/namespaces", json=body) as r:
            assert r.status == 201, await r.text()
    cm_url = f"{url}/api/v1/namespaces/cm/configmaps"
    cr_url = f"{url}/apis/bench.example.com/v1/namespaces/cr/widgets"
    deadline = time.monotonic() + 10
    while True:  # the CRD is served within moments
        async with session.get(cr_url) as r:
            if r.status == 200:
                break
        assert time.monotonic() < deadline, "the CRD was never served"
        await asyncio.sleep(0.01)
    rows = []
    # Interleaved rounds, so that a slow moment of the machine hits both.
    cm_rates, cr_rates = [], []
    for round_ in range(3):
        cm_rates.append(
            await _creates(session, cm_url, lambda n, r=round_: configmap("cm", f"{r}-{n}"), 1000)
        )
        cr_rates.append(
            await _creates(session, cr_url, lambda n, r=round_: _widget("cr", f"{r}-{n}"), 1000)
        )
    cm_list = await _lists(session, cm_url)
    cr_list = await _lists(session, cr_url)
    cm_rate, cr_rate = max(cm_rates), max(cr_rates)
    rows += [
        f"| creates/s, 50 clients, ConfigMap (best of 3 x 1,000) | {cm_rate:,.0f} |",
        f"| creates/s, 50 clients, custom resource (best of 3 x 1,000) | {cr_rate:,.0f} "
        f"({cr_rate / cm_rate:.2f}x) |",
        f"| list 3,000 ConfigMaps | {summary(cm_list)} |",
        f"| list 3,000 custom resources | {summary(cr_list)} "
        f"({percentile(cm_list, 50) / percentile(cr_list, 50):.2f}x the ConfigMaps' rate) |",
    ]
    return rows
