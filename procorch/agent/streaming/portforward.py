"""``kubectl port-forward`` on the node: connections to a pod's ports over a WebSocket.

Two protocols, as kubelet serves them:

* ``SPDY/3.1+portforward.k8s.io`` (kubectl 1.31+): SPDY tunnelled in the WebSocket's binary
  messages (:mod:`procorch.agent.streaming.spdy`). For each connection kubectl accepts it opens
  an *error* stream and a *data* stream, paired by their ``requestID`` header; each is answered
  at once (kubectl opens the data stream only when the error stream is answered). The data
  stream carries the connection's bytes both ways, FIN a half-close, RST an abort; the error
  stream carries kubelet's message if the pod's port cannot be reached. Both end with FIN.
  Any number of connections share one WebSocket.
* ``v4.channel.k8s.io`` (the Python client): one connection per port in ``?port=``, made at
  once; port *i* uses channel 2i for data and 2i+1 for errors, each first carrying the port
  (two bytes, little-endian) in a message of its own. The WebSocket ends when every
  connection has.

The pod's port is reached at the pod's IP (procorch's pods share the node's network).

Concurrency: one task reads the WebSocket; one task per connection copies the pod's bytes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from procorch.agent.streaming import spdy
from procorch.kit.logging import get_logger

log = get_logger("agent.portforward")

SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
CHANNELS = "v4.channel.k8s.io"
PROTOCOLS = (SPDY_TUNNEL, CHANNELS)
MAX_PAIRS = 1024
"""Forwarded connections at once on one WebSocket (more are refused with a stream reset)."""
MAX_PENDING = 4 * 1024 * 1024
"""Bytes from kubectl held while the pod's port has not answered yet."""
BUFFERED = 1024 * 1024
"""Bytes from kubectl buffered for one pod connection before reading the WebSocket waits."""
CHUNK = 256 * 1024
"""Bytes read from the pod per message: 32 KiB gave 114 MiB/s through kubectl port-forward
here, 256 KiB 166 MiB/s (scripts/bench/api --only streams)."""

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Connect to the pod's port; raises OSError."""
Describe = Callable[[int, str], str]
"""The error message for a port that cannot be reached, and why."""


async def serve(
    ws: web.WebSocketResponse, ports: list[int], dial: Dial, describe: Describe
) -> None:
    """Forward over ``ws`` until either end closes."""
    try:
        if ws.ws_protocol == SPDY_TUNNEL:
            await SpdyForwarder(ws, dial, describe).run()
        else:
            await ChannelForwarder(ws, ports, dial, describe).run()
    except ConnectionError as exc:
        log.debug("port-forward ended", error=str(exc))
    finally:
        await ws.close()


def _reason(exc: OSError) -> str:
    """Why a connection failed, in the kernel's words ("connection refused"), whatever the
    event loop's wording of the error."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


async def _copy_out(reader: asyncio.StreamReader, send: Callable[[bytes], Awaitable[None]]) -> None:
    while chunk := await reader.read(CHUNK):
        await send(chunk)


# -- kubectl: SPDY in the WebSocket -----------------------------------------------------------


@dataclass
class _Pair:
    """One forwarded connection: its two streams, and the pod's end once connected."""

    port: int
    error_id: int = 0
    data_id: int = 0
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = field(default_factory=list)
    """Bytes from kubectl before the pod's port answered."""
    pending_bytes: int = 0
    client_done: bool = False
    reset: bool = False
    """kubectl reset the data stream: whatever the pod's end is, it is abandoned."""
    task: asyncio.Task[None] | None = None


class SpdyForwarder:
    def __init__(self, ws: web.WebSocketResponse, dial: Dial, describe: Describe) -> None:
        self.ws = ws
        self.dial = dial
        self.describe = describe
        self.reader = spdy.FrameReader()
        self.frames = spdy.FrameWriter()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}

    async def run(self) -> None:
        try:
            async for message in self.ws:
                if message.type is not WSMsgType.BINARY:
                    continue
                for frame in self.reader.feed(message.data):
                    if not await self._handle(frame):
                        return
        except spdy.ProtocolError as exc:
            log.info("port-forward: SPDY protocol error; closing", error=str(exc))
            await self._send(self.frames.goaway(0, spdy.PROTOCOL_ERROR))
        finally:
            for pair in self.pairs.values():
                if pair.task is not None:
                    pair.task.cancel()
                if pair.writer is not None:
                    pair.writer.transport.abort()

    async def _send(self, frame: bytes) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(frame)

    async def _handle(self, frame: spdy.Frame) -> bool:
        """Act on one frame; False when the connection is over (GOAWAY)."""
        if not frame.control:
            await self._data(frame)
        elif frame.kind == spdy.SYN_STREAM:
            await self._open(frame)
        elif frame.kind == spdy.RST_STREAM:
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data_id:
                pair.reset = pair.client_done = True
                if pair.writer is not None:
                    pair.writer.transport.abort()
        elif frame.kind == spdy.PING and frame.status % 2 == 1:
            await self._send(self.frames.ping(frame.status))  # the client's: echo it
        elif frame.kind == spdy.GOAWAY:
            return False
        return True

    async def _open(self, frame: spdy.Frame) -> None:
        headers = frame.headers
        kind = headers.get("streamtype", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        if kind not in ("error", "data") or not 0 < port < 65536 or len(self.pairs) >= MAX_PAIRS:
            await self._send(self.frames.rst_stream(frame.stream_id, spdy.CANCEL))
            return
        await self._send(self.frames.syn_reply(frame.stream_id))
        # Old clients send no requestID: a data stream follows its error stream (id + 2).
        request = headers.get("requestid") or str(
            frame.stream_id if kind == "error" else frame.stream_id - 2
        )
        pair = self.pairs.setdefault(request, _Pair(port))
        self.by_stream[frame.stream_id] = pair
        if kind == "error":
            pair.error_id = frame.stream_id
        else:
            pair.data_id = frame.stream_id
        if pair.error_id and pair.data_id and pair.task is None:
            pair.task = asyncio.create_task(self._forward(request, pair), name="portforward")

    async def _data(self, frame: spdy.Frame) -> None:
        pair = self.by_stream.get(frame.stream_id)
        if pair is None or frame.stream_id != pair.data_id or pair.client_done:
            return  # the error stream's empty FIN, or a stream already ended
        if pair.writer is None:
            pair.pending_bytes += len(frame.payload)
            if pair.pending_bytes > MAX_PENDING:  # the pod's port is slow to answer: give up
                pair.reset = pair.client_done = True
                pair.pending.clear()
                await self._send(self.frames.rst_stream(pair.data_id, spdy.CANCEL))
                return
            pair.pending.append(frame.payload)
        elif frame.payload:
            pair.writer.write(frame.payload)
            # Buffered, not awaited: one slow pod connection must not stall the others on
            # this WebSocket, until it holds BUFFERED bytes; then it holds the reader back.
            if pair.writer.transport.get_write_buffer_size() > BUFFERED:
                with contextlib.suppress(ConnectionError):
                    await pair.writer.drain()
        if frame.fin:
            pair.client_done = True
            if pair.writer is not None and pair.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    pair.writer.write_eof()

    async def _forward(self, request: str, pair: _Pair) -> None:
        try:
            try:
                reader, writer = await self.dial(pair.port)
            except OSError as exc:
                message = self.describe(pair.port, _reason(exc))
                await self._send(self.frames.data(pair.error_id, message.encode()))
                return
            pair.writer = writer
            if pair.reset:
                writer.transport.abort()
                return
            for chunk in pair.pending:
                writer.write(chunk)
            pair.pending.clear()
            if pair.client_done and writer.can_write_eof():
                writer.write_eof()
            with contextlib.suppress(ConnectionError):
                await _copy_out(
                    reader, lambda chunk: self._send(self.frames.data(pair.data_id, chunk))
                )
        finally:
            # kubelet's order: the error stream ends, then the data stream.
            with contextlib.suppress(ConnectionError):
                await self._send(self.frames.data(pair.error_id, b"", fin=True))
                await self._send(self.frames.data(pair.data_id, b"", fin=True))
            if pair.writer is not None:
                pair.writer.close()
            self.pairs.pop(request, None)
            self.by_stream.pop(pair.error_id, None)
            self.by_stream.pop(pair.data_id, None)


# -- the Python client: v4 channels -------------------------------------------------------------


class ChannelForwarder:
    def __init__(
        self, ws: web.WebSocketResponse, ports: list[int], dial: Dial, describe: Describe
    ) -> None:
        self.ws = ws
        self.ports = ports
        self.dial = dial
        self.describe = describe
        self.writers: dict[int, asyncio.StreamWriter] = {}  # data channel -> the pod's end

    async def run(self) -> None:
        for i, port in enumerate(self.ports):
            prefix = port.to_bytes(2, "little")
            await self.ws.send_bytes(bytes((2 * i,)) + prefix)
            await self.ws.send_bytes(bytes((2 * i + 1,)) + prefix)
        copies = []
        for i, port in enumerate(self.ports):
            try:
                reader, writer = await self.dial(port)
            except OSError as exc:
                message = self.describe(port, _reason(exc))
                await self.ws.send_bytes(bytes((2 * i + 1,)) + message.encode())
                continue
            self.writers[2 * i] = writer
            copies.append(asyncio.create_task(self._copy_out(reader, 2 * i), name="portforward"))
        inbound = asyncio.create_task(self._inbound(), name="portforward/in")
        every_copy: asyncio.Future[list[object]] = asyncio.gather(*copies, return_exceptions=True)
        try:
            if copies:
                # Over when every connection to the pod has ended, or the client has left.
                await asyncio.wait((inbound, every_copy), return_when=asyncio.FIRST_COMPLETED)
        finally:
            inbound.cancel()
            every_copy.cancel()
            for writer in self.writers.values():
                writer.transport.abort()

    async def _copy_out(self, reader: asyncio.StreamReader, channel: int) -> None:
        prefix = bytes((channel,))
        await _copy_out(reader, lambda chunk: self.ws.send_bytes(prefix + chunk))

    async def _inbound(self) -> None:
        async for message in self.ws:
            if message.type is not WSMsgType.BINARY or not message.data:
                continue
            writer = self.writers.get(message.data[0])
            if writer is not None and len(message.data) > 1:
                writer.write(message.data[1:])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
