"""Small things both proxies and the relay do to asyncio transports."""

from __future__ import annotations

import socket
import struct
from typing import Any

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
