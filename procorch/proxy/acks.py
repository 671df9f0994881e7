"""Quick ACKs towards endpoints that wait for them: the proxy's side of a delayed-ACK race.

The race: an endpoint that writes one answer in two sends (Python's ``http.server`` on
HTTP/1.1 writes the head, then the body; many development servers do) has Nagle on, so its
second, small segment waits until the first is ACKed. On a keep-alive connection the proxy
forwards each request soon after it read the previous answer, so Linux puts our
endpoint-facing socket in delayed-ACK ("pingpong") mode, expecting the ACK to ride on our next
data; but we have nothing more to send until the client has the whole answer, so the head is
ACKed only when the delayed-ACK timer fires: 40 ms or more per request. TCP_NODELAY (ours)
cannot help: the Nagle is the endpoint's. A fresh connection is not affected (the kernel
enters pingpong mode only on a send within its ACK timeout of received data, a timeout it
starts at the first data it receives), which is why one connection per request was fast.

The cure is ``TCP_QUICKACK`` on that socket after a read: it leaves pingpong mode and sends
the pending ACK at once; later reads then ACK as they drain the socket, until our next send
puts it back in pingpong mode (Linux clears quick-ACK by itself). So once per exchange, on
the first read after bytes went to the endpoint, is enough. But a quick ACK is a packet of its
own: a setsockopt that sends one costs ~3.6 µs on loopback (the endpoint's receive path runs in
our system call), against ~0.5 µs with nothing to send, and a sixth of what the proxy spends
on a small request; without it the ACK rides on our next request for free. At L4 we do not
know where an answer ends, so a read cannot tell whether the endpoint waits for more.

So the proxy learns it, per Service. An endpoint waiting for our ACK shows as an answer whose
first read was at most one segment and whose second read came a delayed-ACK timeout later
(30-500 ms), with nothing sent to the endpoint in between; pauses later in an answer are
flow control or the endpoint's own pace, and are not looked at. An endpoint or a machine
under load pauses too now and then, so it takes two answers in a row paused so on one
connection (one count in ``ServiceStats.ack_stalls``); from then on, the first read of every
answer on that Service's connections is quick-ACKed. Two exchanges per Service pay the 40 ms;
the Services whose endpoints never pause so pay a clock read per answer. (A Service whose
endpoints pause for their own reasons, a slow body after an early head, gets quick ACKs it
does not need: a cost of microseconds on exchanges that take tens of milliseconds anyway.)

Concurrency: called from the connection's protocol and splice callbacks on the event loop.
"""

from __future__ import annotations

import os
import socket
from time import monotonic
from typing import Any

from procorch.proxy.balancer import ServiceStats

_TCP_QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)  # Linux only; 0: not here
_SEGMENT = 65535  # the most one TCP segment carries
STALL_MIN = 0.03
"""Seconds: Linux's delayed-ACK timer fires 40 ms (TCP_DELACK_MIN) or more after the segment
came; less some slack, as the pause is measured between our reads."""
STALL_MAX = 0.5
"""Seconds: ...and at most HZ/2 after (TCP_DELACK_MAX, 200 ms, in pingpong mode); a longer
pause is the endpoint's own."""


class EndpointAcks:
    """The ACK side of one endpoint-facing socket. :attr:`due` is set when bytes are sent to
    the endpoint; :meth:`read` is called after each read from it; :meth:`close` with it."""

    __slots__ = ("stats", "transport", "sock", "can_ack", "heard", "due", "first_read", "run")

    def __init__(self, stats: ServiceStats) -> None:
        self.stats = stats
        self.transport: Any = None  # set when the connection is made
        # A duplicate of the socket, made at the first quick ACK: the transport's own socket
        # object is, on uvloop, a stand-in that builds and detaches a socket object for each
        # call (2 µs a setsockopt, against 0.5 µs on a socket of our own).
        self.sock: socket.socket | None = None
        self.can_ack = bool(_TCP_QUICKACK)
        self.heard = False  # the endpoint has sent us something
        self.due = False  # bytes went to the endpoint since the last read: an answer starts
        self.first_read = 0.0  # when the answer's first read came, if it was one segment
        self.run = 0  # answers in a row whose second read waited for a delayed ACK

    def read(self, size: int) -> None:
        """``size`` bytes were read from the endpoint."""
        if self.due:
            # The first read of an answer: bytes went to the endpoint since the last read.
            self.due = False
            if self.heard and self.stats.ack_stalls:
                self.quickack()
            if self.first_read:
                self.run = 0  # the last answer came whole in one read: nothing waited
            if size <= _SEGMENT:
                self.first_read = monotonic()
            else:
                self.first_read = 0.0
                self.run = 0
        elif self.first_read:
            # Its second read: did it wait for our delayed ACK?
            if STALL_MIN <= monotonic() - self.first_read < STALL_MAX:
                self.run += 1
                if self.run == 2:
                    self.stats.ack_stalls += 1
            else:
                self.run = 0
            self.first_read = 0.0
        self.heard = True

    def quickack(self) -> None:
        """ACK what was read now, not when the delayed-ACK timer fires."""
        sock = self.sock
        if sock is None:
            if not self.can_ack:
                return
            sock = self.sock = self._duplicate()
            if sock is None:
                self.can_ack = False
                return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except OSError:
            self.close()

    def _duplicate(self) -> socket.socket | None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        sock: Any = transport.get_extra_info("socket")
        if sock is None:
            return None
        try:
            fd = os.dup(sock.fileno())
        except OSError:
            return None
        try:
            return socket.socket(sock.family, sock.type, sock.proto, fd)
        except OSError:
            os.close(fd)
            return None

    def close(self) -> None:
        self.can_ack = False
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
