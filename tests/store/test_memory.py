"""What the store keeps after a churn of creates and deletes: what exists, not what once did."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from procorch.store.base import Key
from procorch.store.sqlite import SQLiteStore
from procorch.store.watch import MIN_HISTORY

RESOURCE = "core/configmaps"


def configmap(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "churn"}},
        "data": {"key": "value", "other": "x" * 200},
    }


async def churn(store: SQLiteStore, count: int) -> None:
    keys = [Key(RESOURCE, "default", f"cm-{i}") for i in range(count)]
    for start in range(0, count, 100):
        for key in keys[start : start + 100]:
            await store.create(key, configmap(key.name))
    for key in keys:
        await store.delete(key)


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_memory_after_rounds_of_churn_returns_to_what_exists(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.start()
    tracemalloc.start()
    try:
        baseline = traced()
        after = []
        for _ in range(4):
            await churn(store, 2_000)
            after.append(traced() - baseline)
        events, held = store._hub.history_stats(RESOURCE)  # noqa: SLF001
    finally:
        tracemalloc.stop()
        await store.close()
    assert store.count(RESOURCE) == 0
    # Nothing exists: the history is at its floor, holding JSON only.
    assert events == MIN_HISTORY
    assert held < MIN_HISTORY * 1_000
    # Each round leaves what the first did: no growth with what once existed.
    assert after[-1] < after[0] + 1_000_000, after
    assert after[-1] < 4_000_000, after


async def test_history_keeps_lean_copies_and_follows_the_live_count(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.start()
    try:
        for i in range(3 * MIN_HISTORY):
            await store.create(Key(RESOURCE, "default", f"cm-{i}"), configmap(f"cm-{i}"))
        events, _ = store._hub.history_stats(RESOURCE)  # noqa: SLF001
        assert events == 3 * MIN_HISTORY  # two events per live object are allowed
        history = store._hub._history[RESOURCE]  # noqa: SLF001
        assert all(e.current._object is None for e in history)  # noqa: SLF001
        # A watch replaying the history still sees whole objects.
        watch = store.watch(RESOURCE, since=store.revision - 5)
        replayed = [await watch.next(timeout=1) for _ in range(5)]
        watch.close()
        assert [e.current.object["metadata"]["name"] for e in replayed if e] == [
            f"cm-{i}" for i in range(3 * MIN_HISTORY - 5, 3 * MIN_HISTORY)
        ]
    finally:
        await store.close()
