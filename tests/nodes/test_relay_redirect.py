"""The relay's nftables redirect, in a host's own network namespace: connections to another
machine's pod range land on the relay's listener, which reads where they were headed; the
table is replaced whole and gone when removed."""

from __future__ import annotations

import json

import pytest

from procorch.proxy.relay.redirect import unavailable
from tests.nodes.conftest import HostNetwork

CHECK = """
import asyncio, json, socket, subprocess
from procorch.proxy.relay.redirect import Redirect, original_destination

def tables():
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout

async def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    redirect = Redirect("node-b.example", listener.getsockname()[1])
    out = {}
    await redirect.apply(["127.7.0.0/16", "127.8.0.0/16"])
    await redirect.apply(["127.7.0.0/16", "127.8.0.0/16"])  # the same: nothing to do
    out["tables"] = tables()
    seen = []
    for address in ("127.7.3.4", "127.8.0.9"):
        client = socket.create_connection((address, 4321), timeout=2)
        conn, _ = listener.accept()
        seen.append(original_destination(conn))
        conn.close(); client.close()
    out["seen"] = seen
    await redirect.apply(["127.8.0.0/16"])  # replaced whole: 127.7/16 is no longer taken
    try:
        socket.create_connection(("127.7.3.4", 4321), timeout=2)
        out["after"] = "connected"
    except OSError as exc:
        out["after"] = exc.strerror
    await redirect.remove()
    out["removed"] = tables()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.skipif(unavailable() is not None, reason=f"no nftables redirect: {unavailable()}")
async def test_the_redirect_sends_other_machines_pod_ranges_to_the_relay_and_goes_away(
    network: HostNetwork,
) -> None:
    host = network.add_host("node-b")
    out = json.loads(await network.python(host, CHECK))
    assert "table ip procorch_relay_node_b_example_" in out["tables"], out
    assert out["seen"] == [["127.7.3.4", 4321], ["127.8.0.9", 4321]], out
    assert out["after"] == "Connection refused", out
    assert "procorch_relay" not in out["removed"], out
