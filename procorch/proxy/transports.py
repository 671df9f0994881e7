"""Small things both proxies and the relay do with asyncio transports: how an endpoint is
connected to (:data:`Dialer`), and a reset."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

ProtocolFactory = Callable[[], asyncio.Protocol]
Dialer = Callable[[ProtocolFactory, str, int], Awaitable[tuple[Any, Any]]]
"""``dial(protocol_factory, host, port) -> (transport, protocol)``, as
``loop.create_connection``: how the Service proxy and Ingress router reach an endpoint (the
node relay's :meth:`~procorch.proxy.relay.NodeRelay.dial` for pods on other machines)."""


async def connect_directly(factory: ProtocolFactory, host: str, port: int) -> tuple[Any, Any]:
    """The :data:`Dialer` of a node without a relay: a plain TCP connect."""
    return await asyncio.get_running_loop().create_connection(factory, host, port)


_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(transport: Any) -> None:
    """Drop ``transport`` so that its peer sees a reset, as it would from a refused or broken
    connection (``SO_LINGER`` 0 before the close, where there is a socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
    transport.abort()
