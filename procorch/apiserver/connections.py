"""The API port's connections, guarded: handshake and request-head deadlines, and a bound on
connections that have not authenticated, in front of aiohttp's request handler.

A slow client must not be able to hold the API: 500 TLS connections sending one header byte
every 5 s once kept every other client out of a server with a 1,024-descriptor limit. So the
listener accepts connections itself, and each one is a :class:`GuardedConnection` from the
moment it is accepted, before any TLS:

* the TLS handshake (``loop.connect_accepted_socket``) must finish within
  ``handshake_timeout``;
* a request head must be complete within ``header_timeout`` of its first byte, or of the end
  of the handshake for the first one (Go's ``ReadHeaderTimeout``; kube-apiserver uses 32 s),
  checked by a sweeper once a second;
* at most ``max_unauthenticated`` connections may be open that have not yet carried a request
  with valid credentials; beyond that the *oldest* such connection is closed (sparing those
  younger than ``grace`` until there are twice as many). A real client authenticates on its
  first request, within milliseconds of connecting, and leaves that pool at once, so a flood of
  idle connections only ever evicts its own. When ``accept`` itself finds no descriptor left,
  the oldest unauthenticated connection goes at once.

Once the handshake is done, the connection gives aiohttp's ``RequestHandler`` the transport and
forwards every protocol callback to it. The API server tells the guard when a request's head
has arrived and when its handler has finished (:meth:`ConnectionGuard.request_started`,
:meth:`~ConnectionGuard.request_finished`), and when a request authenticated
(:meth:`ConnectionGuard.authenticated`).

Concurrency: single event loop. Owned tasks: one per connection in its handshake, and the
sweeper; :meth:`ConnectionGuard.close` cancels them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from procorch.kit.logging import get_logger
from procorch.kit.oldest import OldestFirst, share_of_open_files

log = get_logger("apiserver.connections")

OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


@dataclass(frozen=True)
class ConnectionLimits:
    handshake_timeout: float = 10.0
    """A TLS handshake must finish within this."""
    header_timeout: float = 32.0
    """A request head must be complete this long after its first byte (kube-apiserver's
    ``ReadHeaderTimeout``)."""
    max_unauthenticated: int = 0
    """Connections open without an authenticated request; 0 derives it from the descriptor
    limit (a fifth of it, between 16 and 1,024)."""
    grace: float = 1.0
    """Unauthenticated connections younger than this are not closed to make room until there
    are twice ``max_unauthenticated`` of them (a burst accepted at once holds real clients
    that are still handshaking)."""
    sweep_interval: float = 1.0

    def unauthenticated_bound(self) -> int:
        if self.max_unauthenticated > 0:
            return self.max_unauthenticated
        return share_of_open_files(5, maximum=1024)


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: its socket until the handshake is done, then aiohttp's
    handler behind the transport."""

    def __init__(self, guard: ConnectionGuard, sock: socket.socket) -> None:
        self.guard = guard
        self.sock = sock
        # uvloop's transports are not asyncio.Transport subclasses: typed as Any.
        self.transport: Any = None
        self.handler: asyncio.Protocol | None = None
        self.authenticated = False
        self.busy = 0  # requests whose head has arrived and whose handler has not returned
        self.head_started = 0.0  # loop time the pending request head became due
        self.closed = False

    # -- asyncio.Protocol (after the handshake) ----------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.closed:  # evicted while handshaking
            transport.abort()
            return
        self.guard._by_transport[transport] = self
        self.head_started = self.guard.loop.time()  # the first head is due from now
        self.handler = self.guard.handler_factory()
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.handler is None:
            return
        if not self.busy and not self.head_started:
            self.head_started = self.guard.loop.time()
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self.handler is None else self.handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.guard._forget(self)
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    # -- the guard's side --------------------------------------------------------------------

    def abort(self) -> None:
        """Close at once: the transport once there is one, else the socket under the
        handshake (which then fails and closes it)."""
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class ConnectionGuard:
    """Accepts and guards the connections of one listener (see the module docstring)."""

    def __init__(
        self,
        handler_factory: Callable[[], Any],
        *,
        ssl_context: ssl.SSLContext | None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.handler_factory = handler_factory
        self.ssl_context = ssl_context
        self.limits = limits or ConnectionLimits()
        self.loop = asyncio.get_running_loop()
        self.port = 0
        self._listener: socket.socket | None = None
        # Insertion order is accept order: the first entry is the oldest.
        self._unauthenticated: OldestFirst[GuardedConnection] = OldestFirst(
            limit=self.limits.unauthenticated_bound(),
            grace=self.limits.grace,
            evict=GuardedConnection.abort,
            clock=self.loop.time,
            what="unauthenticated API connections",
        )
        self._open: set[GuardedConnection] = set()
        self._by_transport: dict[Any, GuardedConnection] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._accept_paused = False
        self.timed_out = 0

    async def listen(self, host: str, port: int, *, backlog: int = 1024) -> int:
        """Bind and start accepting; the port bound."""
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(backlog)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self.loop.add_reader(listener.fileno(), self._accept)
        self._sweeper = self.loop.create_task(self._sweep(), name="apiserver/conn-sweeper")
        return self.port

    # -- what the API server reports ---------------------------------------------------------

    def request_started(self, transport: Any) -> None:
        conn = self._by_transport.get(transport)
        if conn is not None:
            conn.busy += 1
            conn.head_started = 0.0

    def request_finished(self, transport: Any) -> None:
        conn = self._by_transport.get(transport)
        if conn is not None and conn.busy:
            conn.busy -= 1

    def authenticated(self, transport: Any) -> None:
        conn = self._by_transport.get(transport)
        if conn is not None and not conn.authenticated:
            conn.authenticated = True
            self._unauthenticated.discard(conn)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def unauthenticated_connections(self) -> int:
        return len(self._unauthenticated)

    @property
    def evicted(self) -> int:
        return self._unauthenticated.evicted

    # -- accepting ---------------------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(128):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in OUT_OF_DESCRIPTORS:
                    log.warning("accepting an API connection failed", error=str(exc))
                    return
                self._out_of_descriptors()
                return
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        conn = GuardedConnection(self, sock)
        self._open.add(conn)
        self._unauthenticated.add(conn)
        task = self.loop.create_task(self._serve(conn), name="apiserver/tls-handshake")
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _serve(self, conn: GuardedConnection) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: conn,
                conn.sock,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.limits.handshake_timeout if self.ssl_context else None,
            )
        except asyncio.CancelledError:
            conn.abort()
            conn.sock.close()
            self._forget(conn)
            raise
        except Exception as exc:  # noqa: BLE001 - a failed handshake is the client's problem
            log.debug("API connection closed in its TLS handshake", error=repr(exc))
            conn.abort()
            conn.sock.close()
            self._forget(conn)

    def _out_of_descriptors(self) -> None:
        """``accept`` found no descriptor: close the oldest unauthenticated connection, and
        stop accepting until the loop has released it."""
        if not self._unauthenticated.evict_oldest():
            log.warning("no file descriptor left to accept an API connection")
        if not self._accept_paused and self._listener is not None:
            self._accept_paused = True
            self.loop.remove_reader(self._listener.fileno())
            self.loop.call_later(0.05, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_paused = False
        if self._listener is not None:
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def _forget(self, conn: GuardedConnection) -> None:
        self._open.discard(conn)
        self._unauthenticated.discard(conn)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval)
            now = self.loop.time()
            deadline = self.limits.header_timeout
            for conn in list(self._open):
                if conn.head_started and now - conn.head_started > deadline:
                    self.timed_out += 1
                    log.debug("request head not complete in time; closing the connection")
                    conn.abort()

    # -- stop --------------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            if not self._accept_paused:
                self.loop.remove_reader(listener.fileno())
            listener.close()

    async def close(self) -> None:
        """Stop accepting, end every handshake and the sweeper. Connections with a handler
        are aiohttp's to close (its runner's cleanup)."""
        self.stop_accepting()
        tasks = list(self._handshakes)
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
