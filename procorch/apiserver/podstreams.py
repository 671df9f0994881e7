"""The streaming subresources of pods: ``pods/exec``, ``pods/attach`` and ``pods/portforward``
through the API server to the pod's node.

As kube-apiserver does, the API server checks the request (who may ``create pods/exec``, which
container, which streams) and then connects to the agent of the pod's node
(:mod:`procorch.agent.server`, kubelet's port, mutual TLS), which runs the process
(:mod:`procorch.agent.streaming.remotecommand`) or connects to the pod's ports
(:mod:`procorch.agent.streaming.portforward`). The client's WebSocket and the agent's are joined
message by message, with the subprotocol the agent chose among the client's offers
(``v5.channel.k8s.io`` for kubectl's exec, ``SPDY/3.1+portforward.k8s.io`` for its
port-forward), so every frame, the final status and the close pass through unchanged.

Concurrency: one task per direction per session, on the API server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.apiserver.auth import User
from procorch.apiserver.nodeproxy import PODS, NodeProxy, container_of, scheduled_node
from procorch.kit.logging import get_logger

log = get_logger("apiserver.podstreams")

MAX_MESSAGE = 16 * 1024 * 1024


def _offered_protocols(request: web.BaseRequest) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


class PodStreams:
    def __init__(self, nodes: NodeProxy) -> None:
        self.nodes = nodes
        self.service = nodes.service

    async def exec(
        self, request: web.BaseRequest, user: User, rt: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        if not request.query.getall("command", []):
            raise errors.BadRequest("you must specify at least one command for the container")
        return await self._container_stream(request, user, rt, namespace, name, "exec")

    async def attach(
        self, request: web.BaseRequest, user: User, rt: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        return await self._container_stream(request, user, rt, namespace, name, "attach")

    async def _container_stream(
        self,
        request: web.BaseRequest,
        user: User,
        rt: ResourceType,
        namespace: str,
        name: str,
        subresource: str,
    ) -> web.StreamResponse:
        """``exec`` or ``attach``: checked here, served by the agent of the pod's node."""
        if request.method not in ("GET", "POST"):
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        self.service.authorize(
            user, "create", rt, namespace=namespace, name=name, subresource=subresource
        )
        query = request.query
        pod = self.service.get(user, PODS, namespace, name).object
        container = container_of(pod, query.get("container", ""))
        node = scheduled_node(pod, container)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            what = "exec into" if subresource == "exec" else "attach"
            raise errors.BadRequest(
                f"cannot {what} a container in a completed pod; current phase is {phase}"
            )
        params = [(k, v) for k, v in query.items() if k != "container"]
        url = f"{self.nodes.endpoint(node)}/{subresource}/{namespace}/{name}/{container}"
        return await self._join(request, url, params, node=node)

    async def port_forward(
        self, request: web.BaseRequest, user: User, rt: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        self.service.authorize(
            user, "create", rt, namespace=namespace, name=name, subresource="portforward"
        )
        pod = self.service.get(user, PODS, namespace, name).object
        ports: list[tuple[str, str]] = []
        for value in request.query.getall("ports", []):
            for text in value.split(","):
                try:
                    port = int(text.strip())
                except ValueError:
                    port = 0
                if not 0 < port < 65536:
                    raise errors.BadRequest(f"invalid port {text.strip()!r}: must be 1-65535")
                ports.append(("port", str(port)))
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            raise errors.BadRequest(f"pod {name} does not have a host assigned")
        url = f"{self.nodes.endpoint(str(node))}/portForward/{namespace}/{name}"
        return await self._join(request, url, ports, node=str(node))

    async def _join(
        self, request: web.BaseRequest, url: str, params: list[tuple[str, str]], *, node: str
    ) -> web.StreamResponse:
        """Connect the client's WebSocket to the agent's at ``url``."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            # kubectl retries a refused WebSocket over SPDY: answer with the node's reason.
            raise await self._refusal(url, params, status=400)
        session = self.nodes.session()
        try:
            upstream = await session.ws_connect(
                url,
                params=params,
                protocols=_offered_protocols(request),
                autoping=True,
                max_msg_size=MAX_MESSAGE,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise await self._refusal(url, params, status=exc.status) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ServiceUnavailable(
                f"cannot reach the agent of node {node}: {exc}"
            ) from exc
        try:
            chosen = upstream.protocol
            client = web.WebSocketResponse(
                protocols=(chosen,) if chosen else (), autoping=True, max_msg_size=MAX_MESSAGE
            )
            await client.prepare(request)
            await _splice(client, upstream)
            return client
        finally:
            await upstream.close()

    async def _refusal(
        self, url: str, params: list[tuple[str, str]], *, status: int
    ) -> errors.ApiError:
        """Why the node refuses this stream: asked again without an upgrade, the agent
        answers its checks' Status; if they pass, only the upgrade was missing."""
        try:
            async with self.nodes.session().get(url, params=params) as response:
                body = orjson.loads(await response.read())
                if isinstance(body, dict) and body.get("kind") == "Status":
                    return errors.from_status(body, code=response.status)
        except (aiohttp.ClientError, OSError, ValueError):
            pass
        return errors.BadRequest(
            f"Upgrade request required ({status}): procorch serves this stream over "
            "WebSocket (v5.channel.k8s.io, v4.channel.k8s.io, SPDY/3.1+portforward.k8s.io), "
            "not plain SPDY"
        )


async def _splice(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Relay messages both ways until either side closes; then close the other."""

    async def pump(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type is WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type is WSMsgType.TEXT:
                await sink.send_str(message.data)

    tasks = [
        asyncio.create_task(pump(client, upstream), name="exec/from-client"),
        asyncio.create_task(pump(upstream, client), name="exec/from-node"),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        with contextlib.suppress(ConnectionError):
            await client.close()
        with contextlib.suppress(ConnectionError):
            await upstream.close()
