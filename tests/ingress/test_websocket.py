"""WebSocket upgrades become raw tunnels through the router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from procorch.proxy.ingress import IngressRouter
from tests.ingress.conftest import Api, Backend, get, raw_request, routed, rule

Start = Callable[..., Awaitable[Backend]]


async def test_a_websocket_echoes_through_the_router(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    backend = await backends("chat")
    await api.service("chat", [backend.addr])
    await api.ingress("site", {"rules": [rule("/", "chat", host="chat.test")]})
    await routed(session, f"{router.url}/", host="chat.test")
    async with session.ws_connect(f"{router.url}/ws", headers={"Host": "chat.test"}) as ws:
        for i in range(20):
            await ws.send_str(f"hello {i}")
            assert (await ws.receive(timeout=5)).data == f"chat:hello {i}"
        big = bytes(range(256)) * 4096  # 1 MiB in one frame
        await ws.send_bytes(big)
        assert (await ws.receive(timeout=5)).data == big
    # The tunnel ended with the socket; the router serves plain requests as before.
    assert (await get(session, f"{router.url}/after", host="chat.test"))[0] == 200
    assert not [c for c in router.conns if c.tunnel is not None]


async def test_an_upgrade_to_an_unrouted_path_is_refused_and_closed(
    router: IngressRouter, api: Api, backends: Start
) -> None:
    answer = await raw_request(
        router.port,
        b"GET /ws HTTP/1.1\r\nHost: nowhere.test\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 404")
    assert b"Connection: close" in answer
