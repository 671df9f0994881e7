"""The SQLite store: revisions, compare-and-swap, durability, group commit, watch history."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from procorch.api import errors
from procorch.store.base import Key, WatchClosed
from procorch.store.sqlite import SQLiteStore


def cm(name: str, value: str = "v") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": value},
    }


def key(name: str) -> Key:
    return Key("core/configmaps", "default", name)


@pytest.fixture
async def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "store.db", history_size=50)
    await s.start()
    yield s
    await s.close()


async def test_every_write_takes_the_next_global_revision(store: SQLiteStore) -> None:
    a = await store.create(key("a"), cm("a"))
    b = await store.create(key("b"), cm("b"))
    a2 = await store.update(key("a"), cm("a", "w"), expected_rv=a.revision)
    gone = await store.delete(key("b"))
    assert [a.revision, b.revision, a2.revision, gone.revision] == [1, 2, 3, 4]
    assert a2.object["metadata"]["resourceVersion"] == "3"
    assert gone.object["metadata"]["resourceVersion"] == "4"
    assert store.revision == 4


async def test_stale_resource_version_is_a_conflict_and_changes_nothing(store: SQLiteStore) -> None:
    first = await store.create(key("a"), cm("a"))
    await store.update(key("a"), cm("a", "second"), expected_rv=first.revision)
    with pytest.raises(errors.Conflict):
        await store.update(key("a"), cm("a", "third"), expected_rv=first.revision)
    current = store.get(key("a"))
    assert current is not None and current.object["data"]["k"] == "second"


async def test_create_of_existing_key_is_already_exists(store: SQLiteStore) -> None:
    await store.create(key("a"), cm("a"))
    with pytest.raises(errors.AlreadyExists):
        await store.create(key("a"), cm("a"))


async def test_concurrent_writers_share_commits(store: SQLiteStore) -> None:
    await asyncio.gather(*(store.create(key(f"c{i}"), cm(f"c{i}")) for i in range(200)))
    assert store.committed_writes == 200
    assert store.commits < 50, f"{store.commits} commits for 200 concurrent writes"
    assert store.count("core/configmaps", "default") == 200


async def test_objects_survive_a_restart(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "store.db")
    await s.start()
    await s.create(key("a"), cm("a"))
    await s.create(key("b"), cm("b"))
    await s.delete(key("b"))
    await s.close()
    s2 = SQLiteStore(tmp_path / "store.db")
    await s2.start()
    try:
        assert s2.revision == 3
        assert s2.get(key("a")) is not None and s2.get(key("b")) is None
        assert (await s2.create(key("c"), cm("c"))).revision == 4
    finally:
        await s2.close()


async def test_a_batch_that_writes_one_key_several_times_stores_its_final_state(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.start()
    await store.create(key("gone"), cm("gone"))
    await store.create(key("stays"), cm("stays"))
    # Submitted together, these are planned and committed as one batch.
    results = await asyncio.gather(
        store.create(key("back"), cm("back", "first")),
        store.delete(key("back")),
        store.create(key("back"), cm("back", "second")),
        store.delete(key("gone")),
        store.update(key("stays"), cm("stays", "updated")),
        *(store.create(key(f"many-{i}"), cm(f"many-{i}")) for i in range(500)),
    )
    assert store.commits <= 3
    back = results[2]
    await store.close()
    reopened = SQLiteStore(tmp_path / "store.db")
    await reopened.start()
    try:
        assert reopened.get(key("gone")) is None
        restored = reopened.get(key("back"))
        assert restored is not None and restored.object["data"] == {"k": "second"}
        assert restored.revision == back.revision
        stays = reopened.get(key("stays"))
        assert stays is not None and stays.object["data"] == {"k": "updated"}
        assert reopened.count("core/configmaps", "default") == 502
        assert reopened.revision == store.revision
    finally:
        await reopened.close()


async def test_a_slow_commit_sends_the_next_commits_to_the_writer_thread(tmp_path: Path) -> None:
    # Any real COMMIT is slower than a nanosecond: the first runs on the loop, is found
    # slow, and the commits of the next second go to the writer thread.
    store = SQLiteStore(tmp_path / "store.db", inline_commit_limit=1e-9)
    await store.start()
    try:
        for i in range(20):
            await store.create(key(f"s{i}"), cm(f"s{i}"))
        assert store.commits == 20
        assert store.inline_commits == 1
    finally:
        await store.close()
    reopened = SQLiteStore(tmp_path / "store.db", inline_commit_limit=0)  # 0: never inline
    await reopened.start()
    try:
        assert reopened.count("core/configmaps", "default") == 20
        await reopened.create(key("t"), cm("t"))
        assert reopened.inline_commits == 0
        assert reopened.get(key("t")) is not None
    finally:
        await reopened.close()


async def _wal_bytes_after_writes(path: Path, checkpoint_rows: int) -> tuple[int, int]:
    store = SQLiteStore(path, checkpoint_rows=checkpoint_rows)
    await store.start()
    try:
        for round_ in range(30):
            await asyncio.gather(
                *(
                    store.create(key(f"w{round_}-{i}"), cm(f"w{round_}-{i}", "x" * 500))
                    for i in range(100)
                )
            )
            async with asyncio.timeout(10):  # each round's checkpoint, if one is due
                while store._checkpointing:
                    await asyncio.sleep(0.001)
        return Path(f"{path}-wal").stat().st_size, store.checkpoints
    finally:
        await store.close()


async def test_checkpoints_keep_the_wal_bounded_and_lose_nothing(tmp_path: Path) -> None:
    bounded, checkpoints = await _wal_bytes_after_writes(tmp_path / "a.db", checkpoint_rows=500)
    unbounded, none = await _wal_bytes_after_writes(tmp_path / "b.db", checkpoint_rows=10**9)
    assert none == 0 and checkpoints >= 5
    assert bounded * 3 < unbounded, (bounded, unbounded)
    reopened = SQLiteStore(tmp_path / "a.db")
    await reopened.start()
    try:
        assert reopened.count("core/configmaps", "default") == 3000
        assert reopened.revision == 3000
    finally:
        await reopened.close()


def test_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    """A child process acknowledges writes on stdout and is SIGKILLed right after."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from procorch.store.base import Key
        from procorch.store.sqlite import SQLiteStore
        async def main():
            s = SQLiteStore(__import__("pathlib").Path({str(tmp_path / "store.db")!r}))
            await s.start()
            i = 0
            while True:
                name = f"obj{{i}}"
                await s.create(Key("core/configmaps", "default", name),
                               {{"metadata": {{"name": name}}, "data": {{"i": str(i)}}}})
                print(name, flush=True)
                i += 1
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = [proc.stdout.readline().strip() for _ in range(300)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    async def check() -> None:
        s = SQLiteStore(tmp_path / "store.db")
        await s.start()
        try:
            for name in acked:
                assert s.get(Key("core/configmaps", "default", name)) is not None, name
        finally:
            await s.close()

    asyncio.run(check())


async def test_watch_replays_history_after_a_revision_then_streams(store: SQLiteStore) -> None:
    a = await store.create(key("a"), cm("a"))
    await store.update(key("a"), cm("a", "2"), expected_rv=a.revision)
    watch = store.watch("core/configmaps", since=a.revision)
    await store.delete(key("a"))
    seen = [await watch.next(timeout=1) for _ in range(2)]
    watch.close()
    assert [(e.type, e.revision) for e in seen if e] == [("MODIFIED", 2), ("DELETED", 3)]
    assert seen[1] is not None and seen[1].previous is not None


async def test_watch_from_a_compacted_revision_is_gone(store: SQLiteStore) -> None:
    for i in range(60):  # history_size is 50
        await store.create(key(f"x{i}"), cm(f"x{i}"))
    with pytest.raises(errors.Gone, match="too old resource version"):
        store.watch("core/configmaps", since=1)
    # The current revision (what a list just returned) is always watchable.
    store.watch("core/configmaps", since=store.revision).close()


async def test_watch_filters_by_namespace_and_resource(store: SQLiteStore) -> None:
    watch = store.watch("core/configmaps", since=store.revision, namespace="other")
    await store.create(key("a"), cm("a"))
    await store.create(Key("core/secrets", "other", "s"), {"metadata": {"name": "s"}})
    await store.create(Key("core/configmaps", "other", "b"), {"metadata": {"name": "b"}})
    event = await watch.next(timeout=1)
    assert event is not None and event.key.name == "b"
    assert await watch.next(timeout=0.05) is None
    watch.close()
    with pytest.raises(WatchClosed):
        await watch.next(timeout=0.05)


async def test_slow_watcher_is_closed_not_buffered_forever(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "store.db", max_watch_backlog=10)
    await s.start()
    try:
        watch = s.watch("core/configmaps", since=0)
        for i in range(20):
            await s.create(key(f"x{i}"), cm(f"x{i}"))
        drained = 0
        with pytest.raises(WatchClosed) as closed:
            while True:
                if await watch.next(timeout=1) is not None:
                    drained += 1
        assert drained == 10
        assert "behind" in (closed.value.reason or "")
    finally:
        await s.close()
