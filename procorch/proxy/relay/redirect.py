"""Every port of other machines' pods, with root: their pod ranges redirected to the relay.

Without it, the relay answers only the ports it knows of (declared ``containerPort``\\ s and
EndpointSlice ports, one loopback listener each). With root and ``nft`` (the ``nftables``
package; the kernel's ``nf_tables`` with ``nat``), the node instead puts one rule in its
network namespace, as kube-proxy's userspace mode did with iptables: every TCP connection made
on this machine to an address in another machine's pod range is redirected (``nat`` ``output``
hook) to one listener of the relay on 127.0.0.1, which reads the address the connection was
meant for (``SO_ORIGINAL_DST``) and relays it there. The rule lives in a table of this node's
own (``procorch_relay_<node>_<hash>``), made when the first node on another machine appears
(a node with none, as ``procorch up`` alone, never runs ``nft``), replaced whole at each change
(also one a killed relay left), and deleted when the relay stops. Only loopback ranges are
redirected (:attr:`~procorch.proxy.relay.routes.Routes.remote_networks`).

Concurrency: :class:`Redirect` runs ``nft`` as a subprocess; one change at a time (callers
serialize: the relay's sync loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import struct
from collections.abc import Sequence

_SO_ORIGINAL_DST = 80
"""``linux/netfilter_ipv4.h``: the destination of a connection before NAT changed it."""
_NFT_TIMEOUT = 10.0


def unavailable() -> str | None:
    """Why this process cannot redirect (None if it can)."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("nft") is None:
        return "no nft (install the nftables package)"
    return None


def original_destination(sock: socket.socket) -> tuple[str, int] | None:
    """Where a redirected connection was headed, or None if it was not redirected."""
    try:
        raw = sock.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    port, packed = struct.unpack_from("!H4s", raw, 2)
    return socket.inet_ntoa(packed), port


class Redirect:
    """This node's nftables table: TCP to ``networks`` → ``127.0.0.1:port``."""

    def __init__(self, node_name: str, port: int) -> None:
        digest = hashlib.sha256(node_name.encode()).hexdigest()[:8]  # a-b and a.b differ
        self.table = f"procorch_relay_{re.sub(r'[^A-Za-z0-9_]', '_', node_name)[:32]}_{digest}"
        self.port = port
        self.networks: tuple[str, ...] = ()
        """What the table redirects, as this node last made it (none: no table)."""

    async def apply(self, networks: Sequence[str], *, force: bool = False) -> bool:
        """Make the table redirect exactly ``networks`` (none: no table); True if nft ran
        (the networks changed, or ``force``). Raises ``OSError`` with nft's message if nft
        refuses."""
        wanted = tuple(sorted(networks))
        if wanted == self.networks and not force:
            return False
        # Declaring the table first makes the delete valid whether or not it was there: one
        # transaction replaces it whole, so no connection sees a half-made rule set.
        script = f"table ip {self.table} {{}}\ndelete table ip {self.table}\n"
        if wanted:
            script += (
                f"table ip {self.table} {{\n"
                "  chain output {\n"
                "    type nat hook output priority -100; policy accept;\n"
                f"    ip daddr {{ {', '.join(wanted)} }} meta l4proto tcp "
                f"redirect to :{self.port}\n"
                "  }\n"
                "}\n"
            )
        await _nft(script)
        self.networks = wanted
        return True

    async def remove(self) -> None:
        """Delete the table, whatever this process knows of it (also one a killed relay
        left, or one an nft that failed half-way may have made)."""
        await self.apply((), force=True)


async def _nft(script: str) -> None:
    nft = shutil.which("nft")
    if nft is None:
        raise OSError("nft is not installed")
    proc = await asyncio.create_subprocess_exec(
        nft,
        "-f",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(_NFT_TIMEOUT):
            _, err = await proc.communicate(script.encode())
    except BaseException as exc:
        # Timed out or cancelled (the relay stopping): nft must not commit behind our back.
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        if isinstance(exc, TimeoutError):
            raise OSError("nft did not answer in time") from None
        raise
    if proc.returncode != 0:
        raise OSError(f"nft: {err.decode(errors='replace').strip()}")
