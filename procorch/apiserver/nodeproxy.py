"""What the API server serves by asking a node: ``pods/log`` and ``metrics.k8s.io``.

As in Kubernetes, these are not in the store: the API server finds the node that runs the pod
(its Node's InternalIP and ``daemonEndpoints.kubeletEndpoint.Port``) and calls the node agent's
endpoint (:mod:`procorch.agent.server`) over mutual TLS, streaming the answer back.
``kubectl logs`` (with ``-f``, ``--previous``, ``--tail``, ``--since``, ``--timestamps``,
``--limit-bytes``) and ``kubectl top pod|node`` work through here.

Concurrency: aiohttp handlers; one shared client session to the nodes.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from procorch.api import errors
from procorch.api.resources import ResourceType, must
from procorch.api.selectors.labels import parse_label_selector
from procorch.apiserver import discovery
from procorch.apiserver.auth import SYSTEM, User
from procorch.apiserver.service import ApiService
from procorch.kit.logging import get_logger

log = get_logger("apiserver.nodeproxy")

PODS = must("core/pods")
NODES = must("core/nodes")
METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
METRICS_PREFIX = f"/apis/{METRICS_GROUP}/{METRICS_VERSION}/"
LOG_QUERY = (
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
)


def register_discovery() -> None:
    """Announce metrics.k8s.io/v1beta1 (``kubectl top`` refuses to run without it)."""
    discovery.register_extra(
        METRICS_GROUP,
        METRICS_VERSION,
        [
            {
                "resource": "nodes",
                "responseKind": {
                    "group": METRICS_GROUP,
                    "version": METRICS_VERSION,
                    "kind": "NodeMetrics",
                },
                "scope": "Cluster",
                "singularResource": "",
                "verbs": ["get", "list"],
            },
            {
                "resource": "pods",
                "responseKind": {
                    "group": METRICS_GROUP,
                    "version": METRICS_VERSION,
                    "kind": "PodMetrics",
                },
                "scope": "Namespaced",
                "singularResource": "",
                "verbs": ["get", "list"],
            },
        ],
    )


def container_of(pod: dict[str, Any], requested: str) -> str:
    """The container a ``pods/log`` or ``pods/exec`` request names: the one asked for, which
    must be the pod's, or the only one; Kubernetes' messages otherwise."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    init_names = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if not requested:
        if len(names) == 1:
            return names[0]
        message = (
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
        if init_names:
            message += f" or one of the init containers: [{' '.join(init_names)}]"
        raise errors.BadRequest(message)
    debug_names = [str(c.get("name")) for c in spec.get("ephemeralContainers") or []]
    if requested not in (*names, *init_names, *debug_names):
        raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
    return requested


def scheduled_node(pod: dict[str, Any], container: str) -> str:
    """The node that runs ``pod``; a BadRequest while it has none."""
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.BadRequest(
            f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
            "pod has not been scheduled to a node"
        )
    return str(node)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeProxy:
    def __init__(self, service: ApiService) -> None:
        self.service = service
        self.tls: ssl.SSLContext | None = None
        """Verifies agents' serving certificates with the cluster CA and presents the API
        server's kubelet-client certificate (see :mod:`procorch.apiserver.join`)."""
        self._session: aiohttp.ClientSession | None = None

    def use_tls(self, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(cert_file, key_file)
        self.tls = context

    def session(self) -> aiohttp.ClientSession:
        """The session to the nodes. Unlimited connections: every followed log, exec, attach
        and port-forward holds one for its whole life, and must never make ``top`` or the
        HPA's stats wait for a free one."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=None),
                connector=aiohttp.TCPConnector(ssl=self.tls or False, limit=0),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def endpoint(self, node_name: str) -> str:
        """The base URL of ``node_name``'s agent endpoint (kubelet's port)."""
        node = self.service.store.get(self.service.key(NODES, "", node_name))
        if node is None:
            raise errors.NotFound(
                f'nodes "{node_name}" not found', details={"name": node_name, "kind": "nodes"}
            )
        status = node.object.get("status") or {}
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        address = next(
            (
                a.get("address")
                for a in status.get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            None,
        )
        if not port or not address:
            raise errors.ServiceUnavailable(
                f"node {node_name} has no reachable agent endpoint (is its agent running?)"
            )
        if self.tls is None:
            raise errors.ServiceUnavailable("the API server has no credentials for node agents")
        host = f"[{address}]" if ":" in str(address) else address
        return f"https://{host}:{port}"

    # -- pods/log ----------------------------------------------------------------------------

    async def pod_log(
        self, request: web.BaseRequest, user: User, rt: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        self.service.authorize(user, "get", rt, namespace=namespace, name=name, subresource="log")
        pod = self.service.get(user, PODS, namespace, name).object
        container = container_of(pod, request.query.get("container", ""))
        node = scheduled_node(pod, container)
        params = {k: request.query[k] for k in LOG_QUERY if k in request.query}
        url = f"{self.endpoint(node)}/containerLogs/{namespace}/{name}/{container}"
        try:
            upstream = await self.session().get(url, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ServiceUnavailable(
                f"cannot reach the agent of node {node} for logs: {exc}"
            ) from exc
        try:
            if upstream.status != 200:
                body = await upstream.read()
                try:
                    status = orjson.loads(body)
                    raise errors.from_status(status, code=upstream.status)
                except ValueError:
                    raise errors.InternalError(body.decode(errors="replace")) from None
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                # The client went away (a followed log's reader closing it): the stream ends
                # here, as its reader wanted; nothing failed.
                log.debug("log stream closed by the client", path=request.path)
            return response
        finally:
            upstream.release()

    # -- metrics.k8s.io ----------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return path.startswith(f"/apis/{METRICS_GROUP}/{METRICS_VERSION}/")

    async def metrics(self, request: web.BaseRequest, user: User) -> web.Response:
        if request.method != "GET":
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        rest = request.path.rstrip("/")[len(f"/apis/{METRICS_GROUP}/{METRICS_VERSION}/") :]
        parts = rest.split("/")
        namespace = ""
        if parts[:1] == ["namespaces"] and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        if not parts or parts[0] not in ("nodes", "pods") or len(parts) > 2:
            raise errors.NotFound("the server could not find the requested resource", details={})
        resource, name = parts[0], (parts[1] if len(parts) == 2 else "")
        selector = request.query.get("labelSelector", "")
        self.service.authorize(
            user,
            "list" if not name else "get",
            PODS if resource == "pods" else NODES,
            namespace=namespace,
            name=name,
        )
        if resource == "nodes":
            items = await self._node_metrics(user, name, selector)
            kind = "NodeMetrics"
        else:
            items = await self._pod_metrics(user, namespace, name, selector)
            kind = "PodMetrics"
        if name:
            if not items:
                raise errors.NotFound(
                    f'{resource}.{METRICS_GROUP} "{name}" not found',
                    details={"name": name, "group": METRICS_GROUP, "kind": resource},
                )
            body: dict[str, Any] = items[0]
        else:
            body = {
                "kind": f"{kind}List",
                "apiVersion": f"{METRICS_GROUP}/{METRICS_VERSION}",
                "metadata": {},
                "items": items,
            }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _summaries(self, nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        async def one(node: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
            name = str(node["metadata"]["name"])
            try:
                url = f"{self.endpoint(name)}/stats/summary"
                async with asyncio.timeout(5):
                    async with self.session().get(url) as resp:
                        if resp.status != 200:
                            return name, None
                        return name, orjson.loads(await resp.read())
            except (errors.ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.debug("no stats from node", node=name, error=str(exc))
                return name, None

        results = await asyncio.gather(*(one(n) for n in nodes))
        return {name: summary for name, summary in results if summary is not None}

    def _nodes(self, user: User) -> list[dict[str, Any]]:
        items, _ = self.service.list(user, NODES, "")
        return [s.object for s in items]

    async def _node_metrics(self, user: User, name: str, selector: str) -> list[dict[str, Any]]:
        nodes = [n for n in self._nodes(user) if not name or n["metadata"]["name"] == name]
        if selector:
            sel = parse_label_selector(selector)
            nodes = [n for n in nodes if sel.matches(n["metadata"].get("labels"))]
        summaries = await self._summaries(nodes)
        out = []
        for node in nodes:
            summary = summaries.get(str(node["metadata"]["name"]))
            if summary is None:
                continue
            usage = summary.get("node") or {}
            out.append(
                {
                    "kind": "NodeMetrics",
                    "apiVersion": f"{METRICS_GROUP}/{METRICS_VERSION}",
                    "metadata": {
                        "name": node["metadata"]["name"],
                        "creationTimestamp": node["metadata"].get("creationTimestamp"),
                        "labels": node["metadata"].get("labels") or {},
                    },
                    "timestamp": _now(),
                    "window": summary.get("window", "10s"),
                    "usage": _usage(usage),
                }
            )
        return out

    async def pod_metrics(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """PodMetrics items of ``namespace`` matching a label selector, as ``metrics.k8s.io``
        lists them, read as the system user: the HorizontalPodAutoscaler's metrics source."""
        return await self._pod_metrics(SYSTEM, namespace, "", selector)

    async def _pod_metrics(
        self, user: User, namespace: str, name: str, selector: str
    ) -> list[dict[str, Any]]:
        items, _ = self.service.list(user, PODS, namespace, label_selector=selector)
        pods = {
            str(s.object["metadata"].get("uid")): s.object
            for s in items
            if not name or s.object["metadata"]["name"] == name
        }
        node_names = {str((p.get("spec") or {}).get("nodeName") or "") for p in pods.values()}
        nodes = [n for n in self._nodes(user) if n["metadata"]["name"] in node_names]
        summaries = await self._summaries(nodes)
        out = []
        for summary in summaries.values():
            for entry in summary.get("pods") or []:
                pod = pods.get(str((entry.get("podRef") or {}).get("uid")))
                if pod is None:
                    continue
                out.append(
                    {
                        "kind": "PodMetrics",
                        "apiVersion": f"{METRICS_GROUP}/{METRICS_VERSION}",
                        "metadata": {
                            "name": pod["metadata"]["name"],
                            "namespace": pod["metadata"].get("namespace"),
                            "creationTimestamp": pod["metadata"].get("creationTimestamp"),
                            "labels": pod["metadata"].get("labels") or {},
                        },
                        "timestamp": _now(),
                        "window": summary.get("window", "10s"),
                        "containers": [
                            {"name": c.get("name"), "usage": _usage(c)}
                            for c in entry.get("containers") or []
                        ],
                    }
                )
        out.sort(key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))
        return out


def _usage(entry: dict[str, Any]) -> dict[str, str]:
    cores = int(((entry.get("cpu") or {}).get("usageNanoCores")) or 0)
    memory = int(((entry.get("memory") or {}).get("workingSetBytes")) or 0)
    return {"cpu": f"{cores}n", "memory": f"{memory // 1024}Ki"}
