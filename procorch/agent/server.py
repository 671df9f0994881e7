"""The agent's HTTP endpoint (kubelet's port): container logs and resource usage.

The API server serves ``pods/log`` and ``metrics.k8s.io`` by calling this endpoint on the node
that runs the pod, as Kubernetes' API server calls kubelet; its address is in the Node's
``status.addresses`` and ``status.daemonEndpoints.kubeletEndpoint.Port``. It is served over
TLS with the node's certificate, and only to a client certificate of the API server's
(``kube-apiserver-kubelet-client``, or ``system:masters``) signed by the cluster CA.

* ``GET /containerLogs/{namespace}/{pod}/{container}`` with kubectl's options (``follow``,
  ``previous``, ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``timestamps``,
  ``limitBytes``), streamed as ``text/plain``; errors are Kubernetes ``Status`` objects with
  Kubernetes' messages.
* ``GET /exec/{namespace}/{pod}/{container}?command=...&stdin=&stdout=&stderr=&tty=``: a WebSocket
  (:mod:`procorch.agent.streaming.remotecommand`) to a process started in the container.
* ``GET /attach/{namespace}/{pod}/{container}?stdin=&stdout=&stderr=&tty=``: a WebSocket to a
  running container's output (followed from its log) and input.
* ``GET /portForward/{namespace}/{pod}?port=...``: a WebSocket
  (:mod:`procorch.agent.streaming.portforward`) to the pod's ports.
* ``GET /stats/summary``: CPU (nanocores) and working-set memory of the node and of every
  running container, from the agent's periodic samples.
* ``GET /healthz``.

It serves from the agent through :class:`NodePods` (its pod workers and resource samples),
without importing it.

Concurrency: aiohttp handlers on the agent's loop; a followed log is polled from its file, so
a slow client never slows a container.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web

from procorch.agent.containers import ContainerRecord, State
from procorch.agent.podlogs import container_log_path
from procorch.agent.podworker import PodWorker
from procorch.agent.runtime.api import AttachedProcess, Runtime
from procorch.agent.runtime.logs import parse_time, read_log
from procorch.agent.runtime.spec import ExecStdio
from procorch.agent.settings import AgentSettings
from procorch.agent.streaming import portforward
from procorch.agent.streaming.remotecommand import (
    PROTOCOLS,
    AttachSession,
    ExecSession,
    StreamOptions,
)
from procorch.kit.logging import get_logger
from procorch.kit.pki import KUBELET_CLIENT, MASTERS_GROUP, subject_of

log = get_logger("agent.server")

ATTACH_POLL = 0.02
"""Seconds between looks at an attached container's log for new output."""


class NodePods(Protocol):
    """What the endpoint serves from (the agent): its pod workers and resource samples."""

    @property
    def settings(self) -> AgentSettings: ...

    @property
    def workers(self) -> Mapping[str, PodWorker]: ...

    @property
    def runtime(self) -> Runtime: ...

    def worker_for(self, namespace: str, name: str) -> PodWorker | None: ...

    async def sample_once(self) -> None: ...

    def usage(self, run_id: str) -> tuple[int, int] | None: ...

    def node_summary(self) -> dict[str, Any]: ...


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def _api_server(request: web.Request) -> bool:
    """Whether the peer presented the API server's certificate (verified in the handshake)."""
    transport = request.transport
    peercert = transport.get_extra_info("peercert") if transport is not None else None
    if not peercert:
        return False
    name, organizations = subject_of(peercert)
    return name == KUBELET_CLIENT or MASTERS_GROUP in organizations


class KubeletServer:
    def __init__(self, agent: NodePods, *, host: str, port: int) -> None:
        self.agent = agent
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self._attach)
        app.router.add_get("/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_get("/stats/summary", self._summary)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, reuse_address=True, ssl_context=self._tls()
        )
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None)  # noqa: SLF001 - aiohttp keeps it here
        assert sockets
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _tls(self) -> ssl.SSLContext | None:
        settings = self.agent.settings
        if not (settings.tls_cert_file and settings.tls_key_file and settings.client_ca_file):
            log.warning("the agent endpoint has no TLS credentials: it serves only /healthz")
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        context.load_verify_locations(cafile=str(settings.client_ca_file))
        context.verify_mode = ssl.CERT_OPTIONAL  # /healthz needs none; the rest is checked below
        context.num_tickets = 0
        return context

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/healthz" and not _api_server(request):
            return _status(401, "Unauthorized", "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod_name = request.match_info["pod"]
        container = request.match_info["container"]
        q = request.query
        worker = self.agent.worker_for(namespace, pod_name)
        if worker is None:
            return _status(404, "NotFound", f'pods "{pod_name}" not found')
        record = worker.record(container)
        if record is None:
            return _status(
                400, "BadRequest", f"container {container} is not valid for pod {pod_name}"
            )
        if _truthy(q.get("previous")):
            if record.last is None:
                return _status(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{pod_name}" not found',
                )
            run_id = record.last.run_id
        else:
            if not record.run_id or (record.state is State.WAITING and record.last is None):
                return _status(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{pod_name}" is waiting to start: '
                    f"{record.reason or 'ContainerCreating'}",
                )
            run_id = record.run_id if record.state is not State.WAITING else record.last.run_id  # type: ignore[union-attr]
        path = self._log_path(worker, container, run_id)
        since_ns: int | None = None
        try:
            if q.get("sinceTime"):
                since_ns = parse_time(q["sinceTime"])
            elif q.get("sinceSeconds"):
                since_ns = time.time_ns() - int(q["sinceSeconds"]) * 1_000_000_000
            tail = int(q["tailLines"]) if q.get("tailLines") not in (None, "") else None
            limit = int(q["limitBytes"]) if q.get("limitBytes") not in (None, "") else None
        except ValueError as exc:
            return _status(400, "BadRequest", f"invalid log options: {exc}")
        follow = _truthy(q.get("follow"))

        def running() -> bool:
            return record.run_id == run_id and record.state is State.RUNNING

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        async for chunk in read_log(
            path,
            follow=follow,
            tail_lines=tail,
            since_ns=since_ns,
            timestamps=_truthy(q.get("timestamps")),
            limit_bytes=limit,
            running=running,
        ):
            await response.write(chunk)
        await response.write_eof()
        return response

    def _log_path(self, worker: PodWorker, container: str, run_id: str) -> Path:
        """The log file of one run of a container (its id ends in the attempt number)."""
        attempt = int(run_id.rsplit("_", 1)[-1]) if "_" in run_id else 0
        return container_log_path(self.agent.settings.node_dir, worker.pod, container, attempt)

    def _running(self, request: web.Request) -> tuple[PodWorker, ContainerRecord] | web.Response:
        """The pod worker and running container a streaming request names, or the refusal."""
        pod_name = request.match_info["pod"]
        container = request.match_info["container"]
        worker = self.agent.worker_for(request.match_info["namespace"], pod_name)
        if worker is None:
            return _status(404, "NotFound", f'pods "{pod_name}" not found')
        record = worker.record(container)
        if record is None:
            return _status(
                400, "BadRequest", f"container {container} is not valid for pod {pod_name}"
            )
        if record.state is not State.RUNNING or not record.run_id:
            return _status(400, "BadRequest", f'container not found ("{container}")')
        return worker, record

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        options = StreamOptions.from_query(request.query)
        if not (options.stdin or options.stdout or options.stderr):
            return _status(
                400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr"
            )
        found = self._running(request)
        if isinstance(found, web.Response):
            return found
        worker, record = found
        spec = worker.spec_of(record)
        runtime = self.agent.runtime
        run_id = record.run_id
        path = self._log_path(worker, record.name, run_id)
        stdin = await runtime.stdin_of(run_id) if options.stdin and spec.get("stdin") else -1

        def follow(stream: str) -> AsyncIterator[bytes]:
            return read_log(
                path,
                follow=True,
                tail_lines=0,
                running=lambda: record.run_id == run_id and record.state is State.RUNNING,
                poll_interval=ATTACH_POLL,
                stream=stream,
            )

        async def close_stdin() -> None:
            await runtime.close_stdin(run_id)

        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
        try:
            await ws.prepare(request)
        except BaseException:
            if stdin >= 0:
                os.close(stdin)
            raise
        session = AttachSession(
            ws,
            options,
            stdin=stdin,
            stdin_once=bool(spec.get("stdinOnce")),
            follow=follow,
            close_stdin=close_stdin,
        )
        await session.run()
        return ws

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        argv = request.query.getall("command", [])
        options = StreamOptions.from_query(request.query)
        if not argv:
            return _status(
                400, "BadRequest", "you must specify at least one command for the container"
            )
        if not (options.stdin or options.stdout or options.stderr):
            return _status(
                400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr"
            )
        found = self._running(request)
        if isinstance(found, web.Response):
            return found
        run_id = found[1].run_id
        runtime = self.agent.runtime

        async def start(stdio: ExecStdio) -> AttachedProcess:
            return await runtime.exec_attached(run_id, argv, stdio=stdio)

        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
        await ws.prepare(request)
        await ExecSession(ws, options, argv).run(start)
        return ws

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod_name = request.match_info["pod"]
        worker = self.agent.worker_for(namespace, pod_name)
        if worker is None:
            return _status(404, "NotFound", f'pods "{pod_name}" not found')
        try:
            ports = [int(p) for p in request.query.getall("port", [])]
        except ValueError:
            return _status(400, "BadRequest", "invalid port: ports must be integers")
        if any(not 0 < p < 65536 for p in ports):
            return _status(400, "BadRequest", "invalid port: ports must be 1-65535")
        address = worker.pod_ip or self.agent.settings.node_ip
        uid = worker.uid

        async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(address, port)

        def describe(port: int, reason: str) -> str:
            return (
                f"error forwarding port {port} to pod {namespace}/{pod_name}, uid {uid}: "
                f"failed to connect to {address}:{port}: {reason}"
            )

        ws = web.WebSocketResponse(protocols=portforward.PROTOCOLS, autoping=True, max_msg_size=0)
        await ws.prepare(request)
        await portforward.serve(ws, ports, dial, describe)
        return ws

    async def _summary(self, request: web.Request) -> web.Response:
        agent = self.agent
        if _truthy(request.query.get("fresh")):
            await agent.sample_once()
        pods = []
        for worker in list(agent.workers.values()):
            containers = []
            for record in worker.records:
                if not record.running:
                    continue
                usage = agent.usage(record.run_id)
                if usage is None:
                    continue
                cores, memory = usage
                containers.append(
                    {
                        "name": record.name,
                        "cpu": {"usageNanoCores": cores},
                        "memory": {"workingSetBytes": memory},
                    }
                )
            if containers:
                pods.append(
                    {
                        "podRef": {
                            "name": worker.name,
                            "namespace": worker.namespace,
                            "uid": worker.uid,
                        },
                        "startTime": worker.start_time,
                        "containers": containers,
                    }
                )
        node = agent.node_summary()
        body = {"node": node, "pods": pods, "window": f"{int(agent.settings.metrics_interval)}s"}
        return web.Response(body=orjson.dumps(body), content_type="application/json")
