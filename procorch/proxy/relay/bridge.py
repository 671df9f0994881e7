"""Two connections joined into one: what the relay does at both of its ends.

A :class:`Bridge` has two sides, each the asyncio Protocol of one transport (a TCP connection,
or a relay :class:`~procorch.proxy.relay.link.Stream`). Bytes read on one side are written
to the other as they come; a side whose peer's send buffer is full stops being read until it
drains; a half-close (EOF) is passed on and the other direction goes on; a side that ends
cleanly closes the other after what is buffered is sent, and a side that is reset resets the
other (``SO_LINGER`` 0 on a TCP socket), so the far end sees what the near end saw.

A side may be connected before the other (the dialer's side is accepted before the relay
connection exists): what it reads meanwhile is held, with reading paused, and written once the
other side is there.

Concurrency: callbacks on the event loop; no tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from procorch.proxy import transports


class Bridge:
    __slots__ = ("sides", "on_done", "done")

    def __init__(self, on_done: Callable[[Bridge], None] | None = None) -> None:
        self.sides = (Side(self), Side(self))
        self.sides[0].peer = self.sides[1]
        self.sides[1].peer = self.sides[0]
        self.on_done = on_done
        self.done = False

    def reset(self) -> None:
        """Drop both sides at once (each end sees a reset)."""
        for side in self.sides:
            side.reset()
        self._finish()

    def _finish(self) -> None:
        if not self.done and all(s.lost or s.transport is None for s in self.sides):
            self.done = True
            if self.on_done is not None:
                self.on_done(self)


class Side(asyncio.Protocol):
    __slots__ = ("bridge", "peer", "transport", "held", "eof", "lost", "throttled")

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.peer: Side = self
        self.transport: Any = None
        self.held: list[bytes] = []
        self.eof = False
        self.lost = False
        self.throttled = False
        """Not read because the other side's send buffer is full."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = self.peer
        if peer.lost:
            self.reset()  # the other end is gone already: as it went, a reset
            return
        if peer.transport is None:
            transport.pause_reading()  # type: ignore[attr-defined]
            return
        # Both are there: what each held goes across, and both read.
        for side in (self, peer):
            side._flush_to_peer()
        for side in (self, peer):
            if not side.eof and not side.throttled:
                side.transport.resume_reading()

    def _flush_to_peer(self) -> None:
        held, self.held = self.held, []
        target = self.peer.transport
        for chunk in held:
            target.write(chunk)
        if self.eof:
            self._pass_eof()

    def data_received(self, data: bytes) -> None:
        target = self.peer.transport
        if target is None:
            self.held.append(data)
            self.transport.pause_reading()
            return
        target.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.peer.transport is not None:
            self._pass_eof()
        return True

    def _pass_eof(self) -> None:
        target = self.peer.transport
        if target.is_closing():
            return
        if self.peer.eof:
            # Both directions are done.
            target.close()
            self.transport.close()
            return
        try:
            if target.can_write_eof():
                target.write_eof()
            else:
                target.close()
        except (OSError, RuntimeError):
            target.abort()

    def pause_writing(self) -> None:
        self.peer.throttled = True
        if self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        peer.throttled = False
        if peer.transport is not None and not peer.eof and not peer.lost:
            peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        peer = self.peer
        if peer.transport is not None and not peer.lost:
            if exc is None:
                peer.close()
            else:
                peer.reset()
        self.bridge._finish()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def reset(self) -> None:
        if self.transport is None:
            self.lost = True
            return
        transports.reset(self.transport)
