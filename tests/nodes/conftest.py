"""Several machines on one: each test host is a network namespace the test makes itself
(:mod:`procorch.testing.netns`), removed at the end, also on failure. Tests skip, saying why,
where namespaces cannot be made (not root, no ``ip``). The control plane runs in the test's
process, on the bridge's address."""

from __future__ import annotations

import asyncio
import json
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


SERVER = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"""
"""A pod's HTTP server on its ``$POD_IP:8080``, answering every GET with the pod's name."""

FETCH = """
import json, sys, time, urllib.request
results = []
for url in sys.argv[1:]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                results.append([url, response.read().decode()])
                break
        except OSError as exc:
            if time.monotonic() > deadline:
                results.append([url, f"failed: {exc}"])
                break
            time.sleep(0.1)
print(json.dumps(results))
"""
"""GET each URL of ``sys.argv[1:]``, retrying one that fails for up to 30 s; prints
``[[url, body or "failed: ..."], ...]`` as JSON."""


async def fetch_each(
    network: HostNetwork, host: Host, urls: list[str], *, timeout: float = 5.0
) -> list[str]:
    """GET each URL once from ``host``: the bodies, or ``failed: ...`` (no retry)."""
    code = f"""
import json, urllib.request
out = []
for url in {urls!r}:
    try:
        with urllib.request.urlopen(url, timeout={timeout}) as response:
            out.append(response.read().decode())
    except OSError as exc:
        out.append(f"failed: {{exc}}")
print(json.dumps(out))
"""
    result: list[str] = json.loads(await network.python(host, code))
    return result
