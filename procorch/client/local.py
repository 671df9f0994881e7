"""The in-process transport: calls the API service directly, as a given user.

Same semantics as HTTP (authorization, validation, admission all run), without sockets or
JSON round trips through the network stack. Inputs are copied before the service takes
ownership of them; outputs are decoded afresh from the stored JSON, so callers may mutate what
they get.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from procorch.api.meta import deep_copy
from procorch.api.resources import ResourceType
from procorch.apiserver.auth import SYSTEM, User
from procorch.apiserver.service import ApiService, DeleteOptions, WatchClosed, WriteOptions
from procorch.client.base import PATCH_CONTENT_TYPES, Client, ObjectList, PatchType, WatchEvent


class LocalClient(Client):
    def __init__(
        self, service: ApiService, *, user: User = SYSTEM, field_manager: str = "procorch"
    ) -> None:
        self.service = service
        self.user = user
        self.field_manager = field_manager

    def _opts(
        self, *, dry_run: bool, field_manager: str, field_validation: str = "", force: bool = False
    ) -> WriteOptions:
        return WriteOptions(
            dry_run=dry_run,
            field_manager=field_manager or self.field_manager,
            field_validation=(field_validation or "Strict"),  # type: ignore[arg-type]
            force=force,
        )

    async def get(
        self, rt: ResourceType, name: str, *, namespace: str = "", subresource: str = ""
    ) -> dict[str, Any]:
        stored = self.service.get(self.user, rt, namespace, name, subresource=subresource)
        return orjson.loads(stored.raw)

    async def list(
        self,
        rt: ResourceType,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> ObjectList:
        items, revision = self.service.list(
            self.user, rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return ObjectList([orjson.loads(s.raw) for s in items], str(revision))

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
        result = await self.service.create(
            self.user,
            rt,
            namespace or str((obj.get("metadata") or {}).get("namespace") or ""),
            deep_copy(obj),
            self._opts(
                dry_run=dry_run, field_manager=field_manager, field_validation=field_validation
            ),
        )
        return orjson.loads(result.stored.raw)

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
        result = await self.service.update(
            self.user,
            rt,
            namespace or str(meta.get("namespace") or ""),
            str(meta.get("name")),
            deep_copy(obj),
            self._opts(dry_run=dry_run, field_manager=field_manager),
            subresource=subresource,
        )
        return orjson.loads(result.stored.raw)

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
        result = await self.service.patch(
            self.user,
            rt,
            namespace,
            name,
            PATCH_CONTENT_TYPES[patch_type],
            deep_copy(patch),
            self._opts(
                dry_run=dry_run,
                field_manager=field_manager,
                field_validation=field_validation,
                force=force,
            ),
            subresource=subresource,
        )
        return orjson.loads(result.stored.raw)

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
        outcome = await self.service.delete(
            self.user,
            rt,
            namespace,
            name,
            DeleteOptions(
                grace_period_seconds=grace_period_seconds,
                propagation_policy=propagation_policy,  # type: ignore[arg-type]
                precondition_uid=uid,
                dry_run=dry_run,
            ),
        )
        if outcome.finished:
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "kind": rt.plural,
                    "uid": (outcome.stored.object.get("metadata") or {}).get("uid"),
                },
            }
        return orjson.loads(outcome.stored.raw)

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
        stream = self.service.watch(
            self.user,
            rt,
            namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        loop = asyncio.get_running_loop()
        deadline = None if timeout_seconds is None else loop.time() + timeout_seconds
        try:
            while True:
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    return
                event = await stream.next(timeout=left)
                if event is None:
                    return
                etype, stored = event
                yield WatchEvent(etype, orjson.loads(stored.raw))  # type: ignore[arg-type]
        except WatchClosed:
            return
        finally:
            stream.close()

    async def create_subresource(
        self,
        rt: ResourceType,
        name: str,
        subresource: str,
        body: dict[str, Any],
        *,
        namespace: str = "",
    ) -> dict[str, Any]:
        if subresource == "binding":
            return await self.service.bind(self.user, namespace, name, deep_copy(body))
        if subresource == "token" and rt.key == "core/serviceaccounts":
            return self.service.request_token(self.user, namespace, name, deep_copy(body))
        raise NotImplementedError(f"subresource {subresource} over the local client")

    async def close(self) -> None:
        return None
