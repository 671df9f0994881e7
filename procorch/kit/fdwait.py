"""Waiting for a raw file descriptor to be readable or writable, on the running event loop.

For descriptors that are not a transport's (a pty master, a pipe shared with a process, a
socket read with ``recvmsg``): wait, then do the non-blocking call yourself.
"""

from __future__ import annotations

import asyncio


async def readable(fd: int) -> None:
    await _ready(fd, write=False)


async def writable(fd: int) -> None:
    await _ready(fd, write=True)


async def _ready(fd: int, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
