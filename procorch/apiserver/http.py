"""The HTTP face of the API: Kubernetes REST paths on aiohttp.

Decodes requests (JSON, YAML, kubectl's protobuf), authenticates the bearer token, maps the
path and method onto an :class:`~procorch.apiserver.service.ApiService` verb and encodes the
answer the way the client asked (object, list, ``Table``, ``PartialObjectMetadata``, watch
stream). Every error leaves as a Kubernetes ``Status``. Non-resource paths: ``/version``,
``/livez``, ``/readyz``, ``/healthz`` (anonymous), discovery and OpenAPI.

Concurrency: one aiohttp server on the event loop; watch handlers hold a stream each.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from procorch.api import errors, resources
from procorch.api.meta import now
from procorch.api.printers import to_table
from procorch.api.registry import printer_for, strategy_for
from procorch.api.resources import ResourceType
from procorch.apiserver import decode, discovery, openapi
from procorch.apiserver.auth import Attributes, User, forbidden_message
from procorch.apiserver.connections import ConnectionGuard, ConnectionLimits
from procorch.apiserver.impersonation import impersonated
from procorch.apiserver.options import delete_options, read_object, truthy, write_options
from procorch.apiserver.paging import Pager
from procorch.apiserver.service import ApiService
from procorch.kit.logging import get_logger
from procorch.store.base import Stored, WatchClosed

log = get_logger("apiserver")

JSON = "application/json"
WATCH_CHUNK_BYTES = 256 * 1024
# The start of a watch event's JSON line, before the object: by event type.
_EVENT_HEAD = {
    t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED")
}
"""Events already waiting are written together up to about this much."""
ANONYMOUS_PATHS = {"/livez", "/readyz", "/healthz", "/version"}

# A pods/log handler and friends are provided by whoever can reach the node (the agent).
SubresourceHandler = Callable[
    [web.BaseRequest, User, ResourceType, str, str], Awaitable[web.StreamResponse]
]


@dataclass(frozen=True)
class RequestInfo:
    rt: ResourceType
    namespace: str
    name: str
    subresource: str
    legacy_watch: bool = False


def status_response(err: errors.ApiError) -> web.Response:
    headers = {"Content-Type": JSON, **err.headers}
    # kube-apiserver's JSON encoder ends the body with a newline; clients' tests compare text.
    body = orjson.dumps(err.status()) + b"\n"
    return web.Response(status=err.code, body=body, headers=headers)


def _wire(rt: ResourceType, stored: Stored) -> bytes:
    """The stored JSON as served at ``rt``'s version: a custom resource read through another
    of its CRD's versions than the one it is stored at gets that ``apiVersion`` (conversion
    strategy ``None``); everything else is served as stored, uncopied."""
    if not rt.custom:
        return stored.raw
    obj = stored.object
    if obj.get("apiVersion") == rt.api_version or obj.get("kind") != rt.kind:
        return stored.raw  # already that version, or a subresource's (a Scale)
    return orjson.dumps({**obj, "apiVersion": rt.api_version})


def _json_response(
    body: bytes, *, status: int = 200, warnings: list[str] | None = None, content_type: str = JSON
) -> web.Response:
    headers = {"Content-Type": content_type}
    response = web.Response(status=status, body=body, headers=headers)
    for text in warnings or []:
        response.headers.add("Warning", warning_header(text))
    return response


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def warning_header(text: str) -> str:
    """``299 - "text"``, the text quoted as Go's ``strconv.Quote`` (Kubernetes'
    ``NewWarningHeader``): a warning naming what a client sent (an unknown field called
    ``a\\nb``) must not put a line break in a header, which aiohttp refuses to write."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'299 - "{text}"'
    out = []
    for ch in text:
        escaped = _GO_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '299 - "' + "".join(out) + '"'


def _accept_as(request: web.BaseRequest) -> tuple[str, str]:
    """What representation the client wants: ('Table'|'PartialObjectMetadata'|'', version)."""
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        params = dict(p.split("=", 1) for p in pieces[1:] if "=" in p)
        mime = pieces[0]
        if mime not in ("application/json", "*/*", "application/*"):
            continue
        as_ = params.get("as", "")
        if as_ in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            if params.get("g") == "meta.k8s.io":
                return as_, params.get("v", "v1")
            continue
        return "", ""
    return "", ""


def _parse_path(path: str) -> tuple[str, str, list[str]] | None:
    """``/apis/apps/v1/namespaces/x/deployments`` -> ("apps", "v1", [segments after GV])."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def resolve(path: str) -> RequestInfo | None:
    """Map a REST path to the resource, namespace, name and subresource it addresses."""
    parsed = _parse_path(path)
    if parsed is None:
        return None
    group, version, rest = parsed
    legacy_watch = False
    if rest and rest[0] == "watch":
        legacy_watch = True
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = resources.by_path(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace = rest[1]
            rest = rest[2:]
    if not rest:
        return None
    rt = resources.by_path(group, version, rest[0])
    if rt is None:
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        return None
    if sub and rt.subresource(sub) is None:
        return None
    return RequestInfo(
        rt=rt, namespace=namespace, name=name, subresource=sub, legacy_watch=legacy_watch
    )


class ApiServer:
    """The aiohttp application serving the Kubernetes REST API for one :class:`ApiService`."""

    def __init__(
        self,
        service: ApiService,
        authenticate: Callable[[str | None], User],
        *,
        bookmark_interval: float = 60.0,
        watch_timeout: float = 1800.0,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.service = service
        self.authenticate = authenticate
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.pager = Pager()
        self.ready = False
        self.subresource_handlers: dict[tuple[str, str], SubresourceHandler] = {}
        # Paths anyone may read, before authentication (the CA a join token pins).
        self.anonymous_handlers: dict[
            str, Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
        ] = {}
        # Paths served by something other than the store (metrics.k8s.io from the nodes):
        # path prefix -> handler(request, user).
        self.prefix_handlers: dict[
            str, Callable[[web.BaseRequest, User], Awaitable[web.StreamResponse]]
        ] = {}
        # Texts appended to ``/metrics`` (Prometheus exposition format) by the components that
        # share this process, e.g. the Service proxy's per-Service counters: name -> render().
        self.metrics_sources: dict[str, Callable[[], str]] = {}
        self.requests_total: dict[tuple[str, int], int] = {}
        self.server_address = "127.0.0.1:0"
        self.limits = limits or ConnectionLimits()
        self._runner: web.ServerRunner | None = None
        self.connections: ConnectionGuard | None = None
        self.port = 0
        self.open_watches = 0
        # Whether to log each request (at debug level), decided at start: asking the logger
        # per request costs a bound logger per request (the logger is a lazy proxy).
        self._log_requests = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        # aiohttp's low-level server, not an Application: one handler serves every path, so
        # a router, middlewares and signals would be work per request for nothing.
        loop = asyncio.get_running_loop()
        self._log_requests = log.is_enabled_for(logging.DEBUG)

        def make_request(
            message: Any, payload: Any, protocol: Any, writer: Any, task: Any
        ) -> web.BaseRequest:
            return web.BaseRequest(
                message, payload, protocol, writer, task, loop, client_max_size=decode.MAX_BODY
            )

        server = web.Server(
            self.handle, request_factory=make_request, max_field_size=16384, access_log=None
        )
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        guard = ConnectionGuard(server, ssl_context=ssl_context, limits=self.limits)
        self.port = await guard.listen(host, port, backlog=1024)
        self._runner, self.connections = runner, guard
        self.server_address = f"{host}:{self.port}"
        self.ready = True
        scheme = "https" if ssl_context is not None else "http"
        log.info("API server listening", url=f"{scheme}://{host}:{self.port}")
        return self.port

    async def stop(self) -> None:
        self.ready = False
        if self.connections is not None:
            self.connections.stop_accepting()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.connections is not None:
            await self.connections.close()

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        guard = self.connections
        if guard is not None:
            guard.request_started(request.transport)
        try:
            response = await self._dispatch(request)
        except errors.Unauthorized as err:
            response = status_response(err)
            response.force_close()  # nothing more to serve a client without credentials
        except errors.ApiError as err:
            response = status_response(err)
        except web.HTTPException:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("request failed", method=request.method, path=request.path)
            text = repr(exc)
            if len(text) > 500:
                text = text[:500] + "..."
            response = status_response(errors.InternalError(f"internal error: {text}"))
        finally:
            if guard is not None:
                guard.request_finished(request.transport)
        key = (request.method, response.status)
        self.requests_total[key] = self.requests_total.get(key, 0) + 1
        if self._log_requests:
            log.debug(
                "request",
                method=request.method,
                path=request.path,
                status=response.status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return response

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ANONYMOUS_PATHS:
            return self._non_resource(path)
        anonymous = self.anonymous_handlers.get(path)
        if anonymous is not None:
            return await anonymous(request)
        user = self.authenticate(request.headers.get("Authorization"))
        if any(h.lower().startswith("impersonate-") for h in request.headers):
            user = impersonated(user, request.headers, self.service.authorizer)
        if self.connections is not None:
            self.connections.authenticated(request.transport)
        if path == "/api" or path == "/apis":
            return self._discovery_root(request, core=path == "/api")
        if path.startswith("/openapi/"):
            return self._openapi(path)
        if path == "/metrics":
            self._authorize_path(user, "get", path)
            return self._metrics()
        parsed = _parse_path(path)
        if parsed is not None and len(parsed[2]) == 0:
            return self._group_version(parsed[0], parsed[1])
        if path.startswith("/apis/") and path.count("/") == 2:
            group_doc = discovery.legacy_group(path.split("/")[2])
            if group_doc is not None:
                return _json_response(orjson.dumps(group_doc))
        for prefix, prefix_handler in self.prefix_handlers.items():
            if path.startswith(prefix):
                return await prefix_handler(request, user)
        info = resolve(path)
        if info is None:
            self._refuse_unsupported(path, user)
            raise errors.NotFound("the server could not find the requested resource", details={})
        return await self._resource(request, user, info)

    def _authorize_path(self, user: User, verb: str, path: str) -> None:
        attrs = Attributes(verb=verb, path=path)
        allowed, _ = self.service.authorizer.allowed(user, attrs)
        if not allowed:
            raise errors.Forbidden(forbidden_message(user, attrs), details={})

    def _refuse_unsupported(self, path: str, user: User) -> None:
        """Say what a user can do instead of the ``proxy`` subresources procorch does not
        serve, rather than the bare "could not find the requested resource" kubectl would
        print."""
        parts = path.strip("/").split("/")
        # api/v1/namespaces/{ns}/{pods|services}/{name}/{sub}[/...], api/v1/nodes/{name}/proxy
        if parts[:2] != ["api", "v1"]:
            return
        if len(parts) >= 7 and parts[2] == "namespaces" and parts[4] in ("pods", "services"):
            namespace, plural, name, sub = parts[3], parts[4], parts[5], parts[6]
        elif len(parts) >= 5 and parts[2] == "nodes":
            namespace, plural, name, sub = "", "nodes", parts[3], parts[4]
        else:
            return
        supported = {"pods": ("proxy",), "services": ("proxy",)}
        if sub not in supported.get(plural, ("proxy",)):
            return
        # Kubernetes' SplitSchemeNamePort: name, name:port or scheme:name:port.
        pieces = name.split(":")
        if len(pieces) > 3 or (len(pieces) == 3 and plural == "nodes"):
            return
        name = pieces[1] if len(pieces) == 3 else pieces[0]
        if not name:
            return
        rt = resources.must(f"core/{plural}")
        obj = self.service.get(user, rt, namespace, name).object  # NotFound if it is not there
        message = f'{plural} "{name}": {sub} is not supported by procorch'
        if plural == "pods":
            ip = (obj.get("status") or {}).get("podIP")
            ports = [
                str(port["containerPort"])
                for container in (obj.get("spec") or {}).get("containers") or []
                for port in container.get("ports") or []
                if port.get("containerPort")
            ]
            at = f"{ip}:{'|'.join(ports) or '<port>'}" if ip else "its pod IP"
            message += (
                f"; the pod's ports are open on this machine: connect to {at}, "
                "or use kubectl port-forward"
            )
        elif plural == "services":
            spec = obj.get("spec") or {}
            ip = spec.get("clusterIP")
            service_ports = "|".join(str(p.get("port")) for p in spec.get("ports") or [])
            if ip and ip != "None":
                message += f"; the Service is open on this machine: connect to {ip}:{service_ports}"
        raise errors.NotFound(message, details={"name": name, "kind": plural})

    def _non_resource(self, path: str) -> web.Response:
        if path == "/version":
            return _json_response(orjson.dumps(discovery.VERSION_INFO))
        if path == "/readyz" and not self.ready:
            return web.Response(status=503, text="[-]api-server not ready\nreadyz check failed")
        return web.Response(text="ok", content_type="text/plain")

    def _metrics(self) -> web.Response:
        """``/metrics``: the API server's own counters, then every registered source."""
        lines = [
            "# HELP procorch_apiserver_requests_total Requests answered, by method and status.",
            "# TYPE procorch_apiserver_requests_total counter",
        ]
        for (method, code), count in sorted(self.requests_total.items()):
            lines.append(
                f'procorch_apiserver_requests_total{{method="{method}",code="{code}"}} {count}'
            )
        lines += [
            "# HELP procorch_apiserver_watches_open Watch streams open now.",
            "# TYPE procorch_apiserver_watches_open gauge",
            f"procorch_apiserver_watches_open {self.open_watches}",
        ]
        text = "\n".join(lines) + "\n"
        for render in list(self.metrics_sources.values()):
            text += render()
        return web.Response(
            text=text, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    def _discovery_root(self, request: web.BaseRequest, *, core: bool) -> web.Response:
        aggregated = discovery.wants_aggregated(request.headers.get("Accept", ""))
        if aggregated:
            return _json_response(discovery.aggregated(core), content_type=aggregated)
        if core:
            return _json_response(orjson.dumps(discovery.legacy_api_versions(self.server_address)))
        return _json_response(orjson.dumps(discovery.legacy_group_list()))

    def _group_version(self, group: str, version: str) -> web.Response:
        doc = discovery.legacy_resource_list(group, version)
        if doc is None:
            raise errors.NotFound("the server could not find the requested resource", details={})
        return _json_response(orjson.dumps(doc))

    def _openapi(self, path: str) -> web.Response:
        if path == "/openapi/v2":
            # An empty protobuf Document (k8s-api-contract.md §2, recipe B): kubectl finds no
            # schemas there, so it leaves validation to the server, names an unknown kind
            # itself, and builds client-side apply patches from its compiled-in types.
            return web.Response(body=b"", headers={"Content-Type": openapi.V2_CONTENT_TYPE})
        if path == "/openapi/v3":
            return _json_response(openapi.root_document(discovery.served_group_versions()))
        if path.startswith("/openapi/v3/"):
            parsed = _parse_path(path[len("/openapi/v3") :])
            if parsed is not None and not parsed[2]:
                doc = openapi.group_version_document(parsed[0], parsed[1])
                if doc is not None:
                    return _json_response(doc)
        raise errors.NotFound("the server could not find the requested resource", details={})

    async def _resource(
        self, request: web.BaseRequest, user: User, info: RequestInfo
    ) -> web.StreamResponse:
        method = request.method
        query = request.query
        rt = info.rt
        handler = self.subresource_handlers.get((rt.key, info.subresource))
        if handler is not None:
            return await handler(request, user, rt, info.namespace, info.name)
        if info.subresource in ("log", "eviction", "binding") and handler is None:
            if info.subresource == "binding" and method == "POST":
                options = write_options(request)
                body, _, _ = await read_object(request, rt, options)
                bound = await self.service.bind(user, info.namespace, info.name, body, options)
                return _json_response(orjson.dumps(bound), status=201)
            if info.subresource == "eviction" and method == "POST":
                options = write_options(request)
                body, _, _ = await read_object(request, rt, options)
                evicted = await self.service.evict(
                    user, info.namespace, info.name, body, dry_run=options.dry_run
                )
                return _json_response(orjson.dumps(evicted), status=201)
            raise errors.NotFound(
                f"the server could not find the requested resource ({info.subresource})", details={}
            )
        if method == "GET":
            if info.name:
                if info.legacy_watch or truthy(query.get("watch")):
                    return await self._watch(request, user, info, name=info.name)
                stored = self.service.get(
                    user, rt, info.namespace, info.name, subresource=info.subresource
                )
                return self._encode_object(request, rt, stored)
            if info.legacy_watch or truthy(query.get("watch")):
                return await self._watch(request, user, info)
            return await self._list(request, user, info)
        if method == "POST":
            if info.name:
                raise errors.MethodNotAllowed(
                    "the server does not allow this method on the requested resource"
                )
            options = write_options(request)
            new_obj, _, warnings = await read_object(request, rt, options)
            result = await self.service.create(user, rt, info.namespace, new_obj, options)
            return _json_response(
                _wire(rt, result.stored), status=201, warnings=warnings + result.warnings
            )
        if method == "PUT":
            if not info.name:
                raise errors.MethodNotAllowed(
                    "the server does not allow this method on the requested resource"
                )
            options = write_options(request)
            new_obj, _, warnings = await read_object(request, rt, options)
            result = await self.service.update(
                user,
                rt,
                info.namespace,
                info.name,
                new_obj,
                options,
                subresource=info.subresource,
            )
            return _json_response(_wire(rt, result.stored), warnings=warnings + result.warnings)
        if method == "PATCH":
            if not info.name:
                raise errors.MethodNotAllowed(
                    "the server does not allow this method on the requested resource"
                )
            options = write_options(request)
            patch_body, content_type, warnings = await read_object(request, rt, options, patch=True)
            result = await self.service.patch(
                user,
                rt,
                info.namespace,
                info.name,
                content_type,
                patch_body,
                options,
                subresource=info.subresource,
            )
            return _json_response(
                _wire(rt, result.stored),
                status=201 if result.created else 200,
                warnings=warnings + result.warnings,
            )
        if method == "DELETE":
            deletion = await delete_options(request)
            if not info.name:
                deleted = await self.service.delete_collection(
                    user,
                    rt,
                    info.namespace,
                    label_selector=query.get("labelSelector", ""),
                    field_selector=query.get("fieldSelector", ""),
                    options=deletion,
                )
                return self._encode_list(request, rt, deleted, self.service.store.revision, "", 0)
            outcome = await self.service.delete(user, rt, info.namespace, info.name, deletion)
            if outcome.finished and not strategy_for(rt).returns_deleted_object:
                meta = outcome.stored.object.get("metadata") or {}
                details = {
                    "name": info.name,
                    "group": rt.group,
                    "kind": rt.plural,
                    "uid": meta.get("uid", ""),
                }
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": errors.status_details(details),
                }
                return _json_response(orjson.dumps(status) + b"\n")
            return _json_response(_wire(rt, outcome.stored))
        raise errors.MethodNotAllowed(
            "the server does not allow this method on the requested resource"
        )

    # -- encoding ----------------------------------------------------------------------------

    def _encode_object(
        self, request: web.BaseRequest, rt: ResourceType, stored: Stored
    ) -> web.Response:
        as_, version = _accept_as(request)
        if as_ == "Table":
            table = to_table(
                rt,
                [stored.object],
                printer=printer_for(rt),
                list_meta={"resourceVersion": str(stored.revision)},
                include_object=request.query.get("includeObject", "Metadata"),
                now=now(),
            )
            table["apiVersion"] = f"meta.k8s.io/{version}"
            return _json_response(orjson.dumps(table))
        if as_.startswith("PartialObjectMetadata"):
            return _json_response(orjson.dumps(_partial(stored.object, version)))
        return _json_response(_wire(rt, stored))

    async def _list(self, request: web.BaseRequest, user: User, info: RequestInfo) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise errors.BadRequest("limit must be an integer") from None
        token = query.get("continue", "")
        rv = query.get("resourceVersion", "")
        if token:
            if query.get("resourceVersionMatch"):
                raise errors.Invalid(
                    kind="ListOptions",
                    name="",
                    group="meta.k8s.io",
                    causes=[
                        errors.forbidden(
                            "resourceVersionMatch",
                            "resourceVersionMatch is forbidden when continue is provided",
                        )
                    ],
                )
            if rv not in ("", "0"):
                raise errors.BadRequest(
                    "specifying resource version is not allowed when using continue"
                )
            page = self.pager.next(token, limit)
        else:
            items, revision = await self.service.list_at(
                user,
                info.rt,
                info.namespace,
                resource_version=rv,
                resource_version_match=query.get("resourceVersionMatch", ""),
                label_selector=query.get("labelSelector", ""),
                field_selector=query.get("fieldSelector", ""),
            )
            page = self.pager.first(items, revision, limit)
        return self._encode_list(
            request, info.rt, page.items, page.revision, page.continue_token, page.remaining
        )

    def _encode_list(
        self,
        request: web.BaseRequest,
        rt: ResourceType,
        items: list[Stored],
        revision: int,
        continue_token: str,
        remaining: int,
    ) -> web.Response:
        list_meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if continue_token:
            list_meta["continue"] = continue_token
            list_meta["remainingItemCount"] = remaining
        as_, version = _accept_as(request)
        if as_ == "Table":
            table = to_table(
                rt,
                [s.object for s in items],
                printer=printer_for(rt),
                list_meta=list_meta,
                include_object=request.query.get("includeObject", "Metadata"),
                now=now(),
            )
            table["apiVersion"] = f"meta.k8s.io/{version}"
            return _json_response(orjson.dumps(table))
        if as_.startswith("PartialObjectMetadata"):
            partial = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": f"meta.k8s.io/{version}",
                "metadata": list_meta,
                "items": [_partial(s.object, version) for s in items],
            }
            return _json_response(orjson.dumps(partial))
        head = orjson.dumps(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta}
        )
        # Splice the stored JSON of every item in, without decoding or re-encoding it: one
        # copy of each (a list of thousands of objects is megabytes).
        body = b"".join((head[:-1], b',"items":[', b",".join([_wire(rt, s) for s in items]), b"]}"))
        return _json_response(body)

    # -- watch -------------------------------------------------------------------------------

    async def _watch(
        self, request: web.BaseRequest, user: User, info: RequestInfo, *, name: str = ""
    ) -> web.StreamResponse:
        query = request.query
        field_selector = query.get("fieldSelector", "")
        if name:
            term = f"metadata.name={name}"
            field_selector = f"{field_selector},{term}" if field_selector else term
        try:
            timeout = float(query.get("timeoutSeconds") or self.watch_timeout)
        except ValueError:
            raise errors.BadRequest("timeoutSeconds must be a number") from None
        bookmarks = truthy(query.get("allowWatchBookmarks"))
        initial_events = truthy(query.get("sendInitialEvents"))
        rv = query.get("resourceVersion", "")
        as_, version = _accept_as(request)
        table = as_ == "Table"
        include_object = query.get("includeObject", "Metadata")
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            stream = self.service.watch(
                user,
                info.rt,
                info.namespace,
                resource_version="" if initial_events else rv,
                label_selector=query.get("labelSelector", ""),
                field_selector=field_selector,
            )
        except errors.Gone as err:
            await response.prepare(request)
            await response.write(orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            await response.write_eof()
            return response
        await response.prepare(request)
        self.open_watches += 1
        deadline = time.monotonic() + timeout
        first_table = True
        initial_end_sent = not initial_events
        last_bookmark = time.monotonic()

        def encode_table(etype: str, stored: Stored) -> bytes:
            nonlocal first_table
            tbl = to_table(
                info.rt,
                [stored.object],
                printer=printer_for(info.rt),
                list_meta={"resourceVersion": str(stored.revision)},
                include_object=include_object,
                now=now(),
            )
            tbl["apiVersion"] = f"meta.k8s.io/{version}"
            if not first_table:
                tbl["columnDefinitions"] = []
            first_table = False
            return orjson.dumps({"type": etype, "object": tbl}) + b"\n"

        def chunk_from(event: tuple[str, Stored]) -> bytes:
            """``event`` and everything already waiting after it (a list's initial objects,
            a burst of writes), up to WATCH_CHUNK_BYTES: one TLS record run and one send,
            not one per event. The stored JSON goes in as it is, copied once."""
            parts: list[bytes] = []
            size = 0
            next_event: tuple[str, Stored] | None = event
            while next_event is not None:
                etype, stored = next_event
                if table:
                    parts.append(encode_table(etype, stored))
                    size += len(parts[-1])
                else:
                    raw = _wire(info.rt, stored)
                    parts += (_EVENT_HEAD[etype], raw, b"}\n")
                    size += len(raw) + 32
                if size >= WATCH_CHUNK_BYTES:
                    break
                next_event = stream.poll()
            return b"".join(parts)

        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not initial_end_sent and stream.idle():
                    await response.write(self._bookmark(info.rt, stream.revision, initial=True))
                    initial_end_sent = True
                wait = min(left, 5.0)
                if bookmarks:
                    wait = min(
                        wait, max(0.0, self.bookmark_interval - (time.monotonic() - last_bookmark))
                    )
                try:
                    event = await stream.next(timeout=wait)
                except WatchClosed:
                    break
                if event is None:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if (
                        bookmarks
                        and time.monotonic() - last_bookmark >= self.bookmark_interval
                        and stream.idle()
                    ):
                        await response.write(self._bookmark(info.rt, stream.revision))
                        last_bookmark = time.monotonic()
                    continue
                await response.write(chunk_from(event))
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            stream.close()
            self.open_watches -= 1
        try:
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    @staticmethod
    def _bookmark(rt: ResourceType, revision: int, *, initial: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return (
            orjson.dumps(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
                }
            )
            + b"\n"
        )


def _partial(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata") or {},
    }
