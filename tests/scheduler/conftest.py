"""Fixtures: a bare control plane, and a scheduler (with its event recorder) running on it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from scheduler_harness import FAST, Harness, running

from procorch.launcher.up import Procorch, UpConfig
from procorch.scheduler import SchedulerSettings


@pytest.fixture
async def procorch(tmp_path: Path) -> AsyncIterator[Procorch]:
    """Like the shared fixture, but without the launcher's own node (its scheduler and
    agent): these tests run the scheduler under test alone and make the Nodes by hand."""
    config = UpConfig(data_dir=tmp_path / "data", api_port=0)
    if "node" in {f.name for f in dataclasses.fields(UpConfig)}:
        config.node = False
    instance = Procorch(config)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def harness(procorch: Procorch) -> AsyncIterator[Harness]:
    async with running(procorch, FAST) as h:
        yield h


@pytest.fixture
async def quick_retry(procorch: Procorch) -> AsyncIterator[Harness]:
    settings = SchedulerSettings(
        unschedulable_retry_interval=0.1, pod_initial_backoff=0.02, pod_max_backoff=0.05
    )
    async with running(procorch, settings) as h:
        yield h
