"""The HTTP transport: a Kubernetes REST client on aiohttp.

Talks to any server speaking the Kubernetes API with a bearer token (procorch, or a real
cluster). Error responses are decoded from their ``Status`` into the same exceptions the
in-process transport raises. Watches read the newline-delimited event stream incrementally.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.client.base import PATCH_CONTENT_TYPES, Client, ObjectList, PatchType, WatchEvent
from procorch.client.kubeconfig import Credentials

USER_AGENT = "procorch/0.1"


class HttpClient(Client):
    @classmethod
    def from_credentials(cls, creds: Credentials, **kwargs: Any) -> HttpClient:
        return cls(
            creds.server,
            token=creds.token,
            ca_data=creds.ca_data,
            insecure=creds.insecure,
            **kwargs,
        )

    def __init__(
        self,
        server: str,
        *,
        token: str = "",
        field_manager: str = "procorch",
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        ca_data: bytes = b"",
        insecure: bool = False,
    ) -> None:
        self.server = server.rstrip("/")
        self._ssl: ssl.SSLContext | bool = True
        if insecure:
            self._ssl = False
        elif ca_data:
            self._ssl = ssl.create_default_context(cadata=ca_data.decode())
        self.token = token
        self.field_manager = field_manager
        self.timeout = timeout
        self._session = session
        self._own_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers(),
                connector=aiohttp.TCPConnector(limit=100, ssl=self._ssl),
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    # -- plumbing ----------------------------------------------------------------------------

    def _url(
        self, rt: ResourceType, *, namespace: str = "", name: str = "", subresource: str = ""
    ) -> str:
        path = rt.path(namespace if rt.namespaced else None, name or None)
        if subresource:
            path += f"/{subresource}"
        return self.server + path

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        data = None if body is None else _encode(body)
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise self._error(response.status, payload)
                if not payload:
                    return None
                if response.content_type.startswith("application/json"):
                    return orjson.loads(payload)
                return payload.decode(errors="replace")
        except aiohttp.ClientConnectionError as exc:
            raise errors.ServiceUnavailable(
                f"cannot reach the API server at {self.server}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise errors.Timeout(f"the API server at {self.server} did not answer in time") from exc

    @staticmethod
    def _error(status: int, payload: bytes) -> errors.ApiError:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            return errors.from_status(body, code=status)
        text = payload.decode(errors="replace").strip() or f"HTTP {status}"
        return errors.from_status({"message": text}, code=status)

    def _write_params(
        self, *, dry_run: bool, field_manager: str, field_validation: str = "", force: bool = False
    ) -> dict[str, str]:
        params = {"fieldManager": field_manager or self.field_manager}
        if dry_run:
            params["dryRun"] = "All"
        if field_validation:
            params["fieldValidation"] = field_validation
        if force:
            params["force"] = "true"
        return params

    # -- verbs -------------------------------------------------------------------------------

    async def get(
        self, rt: ResourceType, name: str, *, namespace: str = "", subresource: str = ""
    ) -> dict[str, Any]:
        return await self.request(
            "GET", self._url(rt, namespace=namespace, name=name, subresource=subresource)
        )

    async def list(
        self,
        rt: ResourceType,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> ObjectList:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        body = await self.request("GET", self._url(rt, namespace=namespace), params=params)
        return ObjectList(
            list(body.get("items") or []),
            str((body.get("metadata") or {}).get("resourceVersion") or ""),
        )

    async def create(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        *,
        namespace: str = "",
        dry_run: bool = False,
        field_manager: str = "",
        field_validation: str = "",
    ) -> dict[str, Any]:
        ns = namespace or str((obj.get("metadata") or {}).get("namespace") or "")
        return await self.request(
            "POST",
            self._url(rt, namespace=ns),
            params=self._write_params(
                dry_run=dry_run, field_manager=field_manager, field_validation=field_validation
            ),
            body=obj,
        )

    async def update(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        *,
        namespace: str = "",
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str = "",
    ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        ns = namespace or str(meta.get("namespace") or "")
        return await self.request(
            "PUT",
            self._url(rt, namespace=ns, name=str(meta.get("name")), subresource=subresource),
            params=self._write_params(dry_run=dry_run, field_manager=field_manager),
            body=obj,
        )

    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: PatchType = "merge",
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str = "",
        force: bool = False,
        field_validation: str = "",
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            self._url(rt, namespace=namespace, name=name, subresource=subresource),
            params=self._write_params(
                dry_run=dry_run,
                field_manager=field_manager,
                field_validation=field_validation,
                force=force,
            ),
            body=patch,
            content_type=PATCH_CONTENT_TYPES[patch_type],
        )

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        *,
        namespace: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if uid:
            body["preconditions"] = {"uid": uid}
        params = {"dryRun": "All"} if dry_run else None
        return await self.request(
            "DELETE", self._url(rt, namespace=namespace, name=name), params=params, body=body
        )

    async def create_subresource(
        self,
        rt: ResourceType,
        name: str,
        subresource: str,
        body: dict[str, Any],
        *,
        namespace: str = "",
    ) -> dict[str, Any]:
        return await self.request(
            "POST",
            self._url(rt, namespace=namespace, name=name, subresource=subresource),
            body=body,
        )

    async def watch(
        self,
        rt: ResourceType,
        *,
        namespace: str = "",
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        params = {"watch": "true", "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(int(max(1, timeout_seconds)))
        try:
            async with self.session.get(
                self._url(rt, namespace=namespace),
                params=params,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            ) as response:
                if response.status >= 400:
                    raise self._error(response.status, await response.read())
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if not line.strip():
                            continue
                        event = orjson.loads(line)
                        if event.get("type") == "ERROR":
                            raise errors.from_status(
                                event.get("object") or {},
                                code=int((event.get("object") or {}).get("code") or 500),
                            )
                        yield WatchEvent(event["type"], event["object"])
        except aiohttp.ClientConnectionError as exc:
            raise errors.ServiceUnavailable(
                f"watch connection to {self.server} failed: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise errors.Timeout("watch timed out") from exc


def _encode(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:
        pass
    # What orjson refuses and YAML manifests may hold: integers beyond 64 bits, keys that are
    # not strings, nesting deeper than 254 levels. The standard encoder takes what it can (the
    # server then says what it thinks of it); the rest is the caller's error, not a crash.
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise errors.BadRequest(f"the request body cannot be sent as JSON: {exc}") from None
