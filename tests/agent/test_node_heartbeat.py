"""The node's heartbeat loop (Lease and Node status) when writing them fails."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from procorch.agent.node import NodeManager
from procorch.agent.settings import AgentSettings


async def test_failing_heartbeats_are_retried_with_backoff_not_in_a_busy_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Lease renewal and status update fails (no descriptor left, say): the loop waits
    longer after each failure. It once retried a due status update at once, for ever: 42,000
    warnings in 3 s, and an event loop too busy to serve anyone."""
    settings = AgentSettings(
        data_dir=tmp_path, lease_renew_interval=0.05, node_status_interval=0.05
    )
    node = NodeManager(client=None, settings=settings, kubelet_port=0)  # type: ignore[arg-type]
    attempts = 0

    async def fail(*_args: object, **_kwargs: object) -> None:
        nonlocal attempts
        attempts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(node, "renew_lease", fail)
    monkeypatch.setattr(node, "update_status", fail)
    task = asyncio.create_task(node.run())
    try:
        await asyncio.sleep(1.2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # At 0.05 s, then 0.5 s later, then 1 s later: 2 or 3 failures, not thousands.
    assert 1 <= attempts <= 4, attempts
