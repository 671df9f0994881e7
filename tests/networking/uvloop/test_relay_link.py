"""The relay's link between two nodes, over real mutual TLS on uvloop (as the agents run it):
many relayed connections on one TLS connection, each with its own half-close, reset and flow
control, and what happens when the link goes."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from procorch.apiserver.certs import ensure_pki, issue
from procorch.kit.pki import NODES_GROUP, node_user
from procorch.proxy.relay import wire
from procorch.proxy.relay.link import Link, Stream
from procorch.proxy.relay.relay import _contexts
from procorch.proxy.relay.wire import Kind


class Echo(asyncio.Protocol):
    """The owner's end of a stream: sends back what it reads, half-closes when its peer
    does; ``paused`` makes it stop reading until :meth:`go_on`."""

    def __init__(self, paused: bool = False) -> None:
        self.transport: Stream | None = None
        self.paused = paused
        self.received = 0
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.paused:
            transport.pause_reading()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool:
        assert self.transport is not None
        self.transport.write_eof()
        return True

    def go_on(self) -> None:
        assert self.transport is not None
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


class Reader(asyncio.Protocol):
    """The dialer's end: collects what comes back, and when writing was paused."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.pauses = 0
        self.writable = asyncio.Event()
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.eof.set_result(bytes(self.data))
        return True

    def pause_writing(self) -> None:
        self.pauses += 1
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_exception(exc or EOFError("closed without EOF"))
        self.lost.set_result(exc)


@dataclass
class Pair:
    dialer: Link
    owner_links: list[Link]
    echoes: dict[int, Echo] = field(default_factory=dict)
    owner_app: Callable[[Stream], Echo | None] = lambda _s: Echo()

    @property
    def owner(self) -> Link:
        return self.owner_links[0]

    async def open(self, port: int = 80) -> tuple[Stream, Reader]:
        stream = self.dialer.open(("127.9.0.1", port))
        assert stream.reply is not None
        kind, payload = await stream.reply
        assert kind is Kind.OPENED, payload
        reader = Reader()
        stream.attach(reader)
        return stream, reader


@pytest.fixture
def contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    pki = ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    cert, key = issue(
        pki,
        tmp_path / "node",
        "node",
        common_name=node_user("n"),
        organizations=(NODES_GROUP,),
        hosts=("127.0.0.1",),
        server=True,
    )
    return _contexts(cert, key, pki.ca_cert)


@pytest.fixture
async def pair(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[Pair]:
    server_ctx, client_ctx = contexts
    loop = asyncio.get_running_loop()
    owner_links: list[Link] = []
    pair: Pair | None = None

    def on_open(stream: Stream) -> None:
        assert pair is not None
        if stream.target[1] == 1:
            stream.refuse("Connection refused")
            return
        app = pair.owner_app(stream)
        if app is None:
            return
        pair.echoes[stream.id] = app
        stream.accept()
        stream.attach(app)

    def accepted() -> Link:
        link = Link("dialer", on_open=on_open)
        owner_links.append(link)
        return link

    server = await loop.create_server(accepted, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    dialer = Link("owner")
    await loop.create_connection(
        lambda: dialer, "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
    )
    pair = Pair(dialer, owner_links)
    yield pair
    dialer.abort()
    for link in owner_links:
        link.abort()
    server.close()


async def test_many_connections_cross_one_link_whole_and_in_order(pair: Pair) -> None:
    bodies = [os.urandom(n) for n in (0, 1, 9, 4096, 70_000, 600_000, 2_000_000)] * 20

    async def roundtrip(body: bytes) -> bytes:
        stream, reader = await pair.open()
        for at in range(0, len(body), 100_000):
            await reader.writable.wait()
            stream.write(body[at : at + 100_000])
        stream.write_eof()
        echoed = await asyncio.wait_for(reader.eof, 30)
        assert await asyncio.wait_for(reader.lost, 5) is None  # EOF both ways: over, cleanly
        return echoed

    echoed = await asyncio.gather(*(roundtrip(b) for b in bodies))
    assert [len(e) for e in echoed] == [len(b) for b in bodies]
    assert echoed == bodies
    assert len(pair.owner_links) == 1, "one TLS connection for all of them"
    assert set(await asyncio.gather(*(e.lost for e in pair.echoes.values()))) == {None}
    assert not pair.dialer.streams and not pair.owner.streams


async def test_a_refused_open_says_why_and_ends_only_that_stream(pair: Pair) -> None:
    refused = pair.dialer.open(("127.9.0.1", 1))
    assert refused.reply is not None
    assert await refused.reply == (Kind.REFUSED, b"Connection refused")
    assert refused.is_closing() and refused.id not in pair.dialer.streams
    stream, reader = await pair.open()
    stream.write(b"still here")
    stream.write_eof()
    assert await asyncio.wait_for(reader.eof, 5) == b"still here"


async def test_a_reader_that_stops_holds_up_its_own_connection_only(pair: Pair) -> None:
    pair.owner_app = lambda _s: Echo(paused=True)
    slow_stream, slow = await pair.open()
    pair.owner_app = lambda _s: Echo()
    body = os.urandom(2 * wire.WINDOW + 12345)
    slow_stream.write(body)
    # No more than the window crosses to a reader that does not read; the writer is paused.
    await asyncio.wait_for(_until(lambda: slow.pauses == 1), 5)
    assert slow_stream.get_write_buffer_size() == len(body) - wire.WINDOW
    echo = pair.echoes[slow_stream.id]
    assert echo.received == 0
    # Meanwhile another connection on the same link goes at full speed.
    stream, reader = await pair.open()
    stream.write(b"x" * 500_000)
    stream.write_eof()
    assert len(await asyncio.wait_for(reader.eof, 10)) == 500_000
    # Once the reader reads, the rest comes, in order, and the writer is let go.
    echo.go_on()
    slow_stream.write_eof()
    assert await asyncio.wait_for(slow.eof, 10) == body
    assert slow.writable.is_set()


async def test_a_reset_crosses_and_a_close_drops_what_still_comes(pair: Pair) -> None:
    stream, reader = await pair.open()
    stream.write(b"abc")
    await asyncio.wait_for(_until(lambda: bytes(reader.data) == b"abc"), 5)
    stream.abort()
    assert isinstance(await asyncio.wait_for(pair.echoes[stream.id].lost, 5), ConnectionResetError)
    assert await reader.lost is None  # our own abort: as asyncio's, no error

    stream, reader = await pair.open()
    echo = pair.echoes[stream.id]
    assert echo.transport is not None
    echo.transport.abort()
    assert isinstance(await asyncio.wait_for(reader.lost, 5), ConnectionResetError)

    stream, reader = await pair.open()
    echo = pair.echoes[stream.id]
    stream.write(b"last words")
    stream.close()  # a TCP close: sent, then the end
    assert await asyncio.wait_for(echo.lost, 5) is None
    assert echo.received == len(b"last words")
    assert reader.data == b""  # the echo came after our close: dropped
    assert not pair.dialer.streams and not pair.owner.streams


async def test_losing_the_link_resets_every_connection_on_it(pair: Pair) -> None:
    opened = [await pair.open() for _ in range(5)]
    pair.owner.abort()
    for _stream, reader in opened:
        assert isinstance(await asyncio.wait_for(reader.lost, 5), ConnectionResetError)
    for echo in pair.echoes.values():
        assert isinstance(await asyncio.wait_for(echo.lost, 5), ConnectionResetError)
    assert not pair.dialer.usable
    with pytest.raises(ConnectionResetError):
        pair.dialer.open(("127.9.0.1", 80))


async def test_a_protocol_that_ends_its_stream_at_once_hears_of_it_once(pair: Pair) -> None:
    class Quitter(Echo):
        lost_calls = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.abort()  # type: ignore[attr-defined]

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost_calls += 1
            if not self.lost.done():
                self.lost.set_result(exc)

    pair.owner_app = lambda _s: Quitter()
    stream, reader = await pair.open()
    assert isinstance(await asyncio.wait_for(reader.lost, 5), ConnectionResetError)
    quitter = pair.echoes[stream.id]
    assert await quitter.lost is None
    await asyncio.sleep(0)  # a second call would have been scheduled with the first
    assert isinstance(quitter, Quitter) and quitter.lost_calls == 1


async def test_a_close_with_bytes_unsent_sends_them_while_the_peer_goes_on_writing(
    pair: Pair,
) -> None:
    """The peer answers before it reads (a server that writes its whole reply first): our
    close must not stall it, and it must still get every byte we wrote before the close."""
    pair.owner_app = lambda _s: Echo(paused=True)
    stream, _reader = await pair.open()
    talker = pair.echoes[stream.id]
    assert talker.transport is not None
    talker.transport.write(b"r" * (2 * wire.WINDOW))  # more than the window: not all sent
    request = os.urandom(2 * wire.WINDOW)
    stream.write(request)
    stream.close()  # our unsent bytes are still to go; what comes from now on is dropped
    await asyncio.wait_for(_until(lambda: talker.transport.get_write_buffer_size() == 0), 10)
    talker.go_on()
    assert await asyncio.wait_for(talker.lost, 10) is None
    assert talker.received == len(request)
    assert not pair.dialer.streams and not pair.owner.streams


async def test_a_peer_that_breaks_the_protocol_loses_the_link(pair: Pair) -> None:
    _stream, reader = await pair.open()
    assert pair.owner.tls is not None
    # The owner never opens streams: an OPEN from it is the peer gone wrong.
    pair.owner.tls.write(wire.frame(Kind.OPEN, 99, wire.open_payload("127.0.0.1", 22)))
    assert isinstance(await asyncio.wait_for(reader.lost, 5), ConnectionResetError)
    assert not pair.dialer.usable


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.005)


async def test_the_accepting_end_checks_the_peer_before_it_reads_a_frame(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = contexts
    loop = asyncio.get_running_loop()
    opened: list[Stream] = []
    checked: list[Link] = []

    def refuse(link: Link) -> None:
        checked.append(link)
        link.abort()

    server = await loop.create_server(
        lambda: Link("dialer", on_open=opened.append, on_made=refuse),
        "127.0.0.1",
        0,
        ssl=server_ctx,
    )
    port = server.sockets[0].getsockname()[1]
    dialer = Link("owner")
    await loop.create_connection(
        lambda: dialer, "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
    )
    stream = dialer.open(("127.9.0.1", 80))  # sent at once, right behind the handshake
    assert stream.reply is not None
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(stream.reply, 5)
    assert len(checked) == 1 and opened == []
    server.close()
