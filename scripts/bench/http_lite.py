"""A lean HTTP/1.1 client for load generation: one keep-alive TLS connection per worker,
responses parsed with httptools, no cookie jars, URL objects or tracing hooks.

aiohttp's client cost this machine about 1 ms of CPU per request of the API's mixed load, as
much as the server it measured; a benchmark whose load generator is saturated measures the
generator. This one costs a fraction of that, so the server is what limits the rate.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import httptools


@dataclass
class Reply:
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    done: bool = False


class _Parser:
    def __init__(self, stop_marker: bytes | None) -> None:
        self.reply = Reply()
        self.parser = httptools.HttpResponseParser(self)
        self.stop_marker = stop_marker  # end early once the body holds this (a watch)
        self.keep_alive = True

    def on_body(self, body: bytes) -> None:
        self.reply.body += body

    def on_message_complete(self) -> None:
        self.reply.done = True
        self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> bool:
        self.parser.feed_data(data)
        if self.reply.status == 0:
            try:
                self.reply.status = self.parser.get_status_code()
            except httptools.HttpParserError:
                pass
        if self.stop_marker is not None and self.stop_marker in self.reply.body:
            self.keep_alive = False  # the rest of the stream is abandoned with the connection
            return True
        return self.reply.done


class Connection:
    """One keep-alive connection to ``host:port``, reopened when the server closes it or a
    request leaves it unusable."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext, token: str) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        stop_marker: bytes | None = None,
    ) -> Reply:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.tls
            )
            self.connects += 1
        assert self.reader is not None and self.writer is not None
        parts = [f"{method} {path} HTTP/1.1\r\n".encode(), self.head]
        if body:
            parts.append(
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
            )
        parts.append(b"\r\n")
        parts.append(body)
        self.writer.write(b"".join(parts))
        parser = _Parser(stop_marker)
        while True:
            data = await self.reader.read(262_144)
            if not data:
                self.close()
                if parser.reply.status:
                    return parser.reply
                raise ConnectionError("the server closed the connection")
            if parser.feed(data):
                break
        if not parser.keep_alive:
            self.close()
        return parser.reply

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
