"""Several machines on one: each test host is a network namespace the test makes itself
(:mod:`procorch.testing.netns`), removed at the end, also on failure. Tests skip, saying why,
where namespaces cannot be made (not root, no ``ip``). The control plane runs in the test's
process, on the bridge's address."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from procorch.launcher.up import Procorch, UpConfig
from procorch.testing.netns import Host, HostNetwork, available

GRACE = 5.0
"""The control plane's --node-monitor-grace-period here; agents renew every second."""


@pytest.fixture
async def network() -> AsyncIterator[HostNetwork]:
    why_not = available()
    if why_not:
        pytest.skip(why_not)
    net = HostNetwork()
    try:
        net.create()
    except subprocess.CalledProcessError as exc:
        await net.remove()
        pytest.skip(f"cannot make a bridge here: {exc.stderr.strip()}")
    try:
        yield net
    finally:
        await net.remove()


@pytest.fixture
async def control_plane(network: HostNetwork, tmp_path: Path) -> AsyncIterator[Procorch]:
    """``procorch up --no-node`` listening on the bridge's address."""
    plane = Procorch(
        UpConfig(
            data_dir=tmp_path / "control-plane",
            api_host=network.address,
            api_port=0,
            node=False,
            remote_nodes=True,
            # Agents here renew their Lease every second (see join).
            node_monitor_grace_period=GRACE,
        )
    )
    await plane.start()
    try:
        yield plane
    finally:
        await network.stop_processes()  # while the API they report to is up
        await plane.stop()


async def join(
    network: HostNetwork,
    plane: Procorch,
    host: Host,
    tmp_path: Path,
    *,
    token: str | None = None,
    server: str | None = None,
    extra: tuple[str, ...] = (),
) -> asyncio.subprocess.Process:
    """``procorch agent`` on ``host`` with the control plane's token (or ``token``), renewing
    its Lease every second and sampling metrics every half second."""
    token_file = tmp_path / f"{host.name}.token"
    token_file.write_text(token or (plane.data_dir / "node-token").read_text())
    return await network.agent(
        host,
        server=server or plane.api_url,
        token_file=token_file,
        data_dir=tmp_path / host.name,
        log=tmp_path / f"{host.name}.log",
        extra=("--node-lease-duration-seconds", "4", "--housekeeping-interval", "0.5", *extra),
    )
