"""kill -9 during concurrent writes: every acknowledged write survives, and the node's pods
are adopted, not orphaned or duplicated.

Each trial: writers create and update ConfigMaps as fast as the API takes them, each writer
owning its objects (so each object's writes are ordered), and ``procorch up`` is SIGKILLed
after a random number of acknowledgements, while writes are in flight - alone, with its
process group, or with the node supervisor (:data:`~reliability_harness.KILLS`, in turn).
Then ``procorch up`` restarts on the same data dir, and:

* every write acknowledged with a 2xx is there at its acknowledged resourceVersion or later,
  holding the acknowledged value or that of a write sent after it (one in flight at the kill
  may or may not have landed: it was never acknowledged);
* the two pods of a Deployment are each exactly one process in the supervisor's tree: the
  same processes, restart counts unchanged, when only procorch died (adopted); new ones, each
  container restarted once, when the supervisor died with it (what it left is killed first).

At the end, SIGTERM stops everything and nothing of the node is left.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from reliability_harness import (
    CM,
    DEPLOYMENTS,
    KILLS,
    Audit,
    Kill,
    UpProcess,
    deployment,
    node_dir_cleanup,
    node_processes,
    procorch_up,
    report,
    rolled_out,
    settled_audit,
    trials,
    wait_for,
)

WRITERS = 8
NAMESPACE = "default"


@dataclass
class Ledger:
    """One object's writes as its writer saw them."""

    issued: list[str] = field(default_factory=list)  # values sent, in order
    acked: int = -1  # index in ``issued`` of the last acknowledged write
    acked_rv: int = 0
    rv: str = ""  # the resourceVersion to write over next


@dataclass
class Writes:
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    acked: int = 0
    server_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0


async def _writer(up: UpProcess, writes: Writes, *, trial: int, writer: int) -> None:
    """Creates and updates its own ConfigMaps until the server goes away."""
    creds = up.credentials
    rng = random.Random(f"{trial}-{writer}")
    mine: list[str] = []
    url = f"{creds.server}/api/v1/namespaces/{NAMESPACE}/configmaps"
    headers = {"Authorization": f"Bearer {creds.token}"}
    connector = aiohttp.TCPConnector(ssl=up.tls(), limit=1)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        for seq in range(1_000_000):
            if len(mine) < 5 or rng.random() < 0.4:
                name = f"t{trial}-w{writer}-{len(mine)}"
                mine.append(name)
                ledger = writes.ledgers[name] = Ledger()
                method, target, rv = "POST", url, None
            else:
                name = rng.choice(mine)
                ledger = writes.ledgers[name]
                if ledger.acked < len(ledger.issued) - 1:
                    return  # an earlier write's outcome is unknown: the server is gone
                method, target, rv = "PUT", f"{url}/{name}", ledger.rv
            value = f"{writer}.{seq}"
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, **({"resourceVersion": rv} if rv else {})},
                "data": {"v": value, "pad": "x" * rng.randrange(0, 2048)},
            }
            ledger.issued.append(value)
            try:
                async with session.request(method, target, json=body) as reply:
                    answer = await reply.json(content_type=None)
                    status = reply.status
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return  # killed: this write may or may not have landed
            if status >= 500:
                writes.server_errors.append(f"{method} {name}: {status} {answer}")
                return
            if status >= 300:
                writes.refused.append(f"{method} {name}: {status} {answer}")
                return
            ledger.acked = len(ledger.issued) - 1
            ledger.rv = answer["metadata"]["resourceVersion"]
            ledger.acked_rv = int(ledger.rv)
            writes.acked += 1
            if writes.acked >= writes.target:
                writes.reached.set()


def _lost(writes: Writes, stored: dict[str, dict[str, Any]]) -> list[str]:
    """Acknowledged writes not found at their resourceVersion or later."""
    lost: list[str] = []
    for name, ledger in writes.ledgers.items():
        obj = stored.get(name)
        if ledger.acked < 0:
            if obj is not None and obj["data"]["v"] not in ledger.issued:
                lost.append(f"{name}: holds {obj['data']['v']!r}, never written")
            continue
        if obj is None:
            lost.append(f"{name}: gone (acknowledged at {ledger.acked_rv})")
            continue
        rv, value = int(obj["metadata"]["resourceVersion"]), obj["data"]["v"]
        later = ledger.issued[ledger.acked :]
        if (
            rv < ledger.acked_rv
            or value not in later
            or (rv == ledger.acked_rv and value != ledger.issued[ledger.acked])
        ):
            lost.append(
                f"{name}: {value!r} at {rv}; acknowledged {ledger.issued[ledger.acked]!r} "
                f"at {ledger.acked_rv}"
            )
    return lost


def _adopted(before: Audit, after: Audit, how: str) -> str | None:
    """Why ``after`` is not what a restart after killing ``how`` should leave, or None."""
    if set(before.restarts) != set(after.restarts):
        return f"other pods: {sorted(before.restarts)} then {sorted(after.restarts)}"
    if how == "supervisor":
        bumped = {k: v + 1 for k, v in before.restarts.items()}
        if after.restarts != bumped:
            return f"restart counts {after.restarts}, expected {bumped}"
        survivors = [pid for pid in before.found.pids.values() if psutil.pid_exists(pid)]
        return f"old processes alive: {survivors}" if survivors else None
    if after.found.pids != before.found.pids:
        return f"processes replaced: {before.found.pids} then {after.found.pids}"
    if after.restarts != before.restarts:
        return f"restart counts {before.restarts} then {after.restarts}"
    return None


@pytest.mark.slow
async def test_acknowledged_writes_and_running_pods_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writes = Writes()
    count = trials(3)
    figures = dict.fromkeys(("trials", "lost", "orphans", "duplicates", "restarts"), 0)
    before: Audit | None = None
    async with node_dir_cleanup(data):
        # Incarnation i checks what the kill of incarnation i - 1 left, then is killed in
        # turn; the last one is stopped with SIGTERM.
        for incarnation in range(count + 1):
            async with procorch_up(data) as up:
                await up.wait_ready()
                client = up.client()
                try:
                    if incarnation == 0:
                        await client.create(
                            DEPLOYMENTS, deployment("sleepers", replicas=2), namespace=NAMESPACE
                        )
                        await wait_for(
                            lambda c=client: rolled_out(c, "sleepers"),
                            timeout=30,
                            what="the Deployment available",
                        )
                    else:
                        how = KILLS[(incarnation - 1) % len(KILLS)]
                        lost = _lost(writes, await _stored(client))
                        figures["lost"] += len(lost)
                        assert not lost, f"kill -9 ({how}) lost acknowledged writes: {lost[:5]}"
                        assert before is not None
                        after = await _wait_adopted(client, data, before, how)
                        figures["orphans"] += after.orphans
                        figures["duplicates"] += after.duplicates
                        figures["restarts"] += sum(after.restarts.values()) - sum(
                            before.restarts.values()
                        )
                        figures["trials"] += 1
                    before = await settled_audit(client, data, pods=2)
                finally:
                    await client.close()
                if incarnation == count:
                    assert await up.stop() == 0, up.log_tail()
                    break
                await _write_and_kill(up, writes, trial=incarnation, how=KILLS[incarnation % 3])
        left = node_processes(data)
        assert not left.supervisors and not left.pods, f"left after SIGTERM: {left}"
    acknowledged = sum(1 for ledger in writes.ledgers.values() if ledger.acked >= 0)
    report("kill -9 durability", writes=writes.acked, objects=acknowledged, **figures)


async def _write_and_kill(up: UpProcess, writes: Writes, *, trial: int, how: Kill) -> None:
    """Writers running; SIGKILL after a random number of acknowledgements, writes in flight."""
    writes.target = writes.acked + random.randrange(50, 400)
    writes.reached.clear()
    tasks = [
        asyncio.create_task(_writer(up, writes, trial=trial, writer=i), name=f"writer-{i}")
        for i in range(WRITERS)
    ]
    try:
        reached = asyncio.create_task(writes.reached.wait())
        await asyncio.wait([reached, *tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
        assert writes.reached.is_set(), (
            f"writers stopped at {writes.acked} acknowledgements: "
            f"{writes.server_errors[:3]} {writes.refused[:3]}\n{up.log_tail()}"
        )
        await up.kill(how)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert not writes.server_errors, writes.server_errors[:5]
    assert not writes.refused, writes.refused[:5]


async def _wait_adopted(client: Any, data: Path, before: Audit, how: Kill) -> Audit:
    problem: list[str | None] = [None]

    async def adopted() -> Audit | None:
        after = await settled_audit(client, data, pods=2)
        problem[0] = _adopted(before, after, how)
        return after if problem[0] is None else None

    try:
        return await wait_for(adopted, timeout=40, what="pods adopted")
    except AssertionError as exc:
        raise AssertionError(f"after kill -9 ({how}): {problem[0]}; {exc}") from None


async def _stored(client: Any) -> dict[str, dict[str, Any]]:
    items = (await client.list(CM, namespace=NAMESPACE)).items
    return {o["metadata"]["name"]: o for o in items}
