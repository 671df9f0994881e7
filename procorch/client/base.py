"""The client interface every component uses to talk to the API.

Two transports implement it: :class:`~procorch.client.local.LocalClient` calls the API service
in the same process (``procorch up``), :class:`~procorch.client.http.HttpClient` speaks HTTP
to any procorch (or Kubernetes) API server. Components are written against :class:`Client`
only, so an agent on another machine is the same code with another transport.

Objects passed in are not kept; objects returned belong to the caller (fresh copies).
Errors are :class:`procorch.api.errors.ApiError` subclasses, the same on both transports.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from procorch.api.resources import ResourceType

PatchType = Literal["merge", "strategic", "json", "apply"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class ObjectList:
    items: list[dict[str, Any]]
    resource_version: str


class Client(abc.ABC):
    @abc.abstractmethod
    async def get(
        self, rt: ResourceType, name: str, *, namespace: str = "", subresource: str = ""
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def list(
        self,
        rt: ResourceType,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> ObjectList: ...

    @abc.abstractmethod
    async def create(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        *,
        namespace: str = "",
        dry_run: bool = False,
        field_manager: str = "",
        field_validation: str = "",
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def update(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        *,
        namespace: str = "",
        subresource: str = "",
        dry_run: bool = False,
        field_manager: str = "",
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
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
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
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
        """Returns the object (if deletion is pending) or a Status (if it is gone)."""

    @abc.abstractmethod
    def watch(
        self,
        rt: ResourceType,
        *,
        namespace: str = "",
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (synthetic ADDED for all first when it is empty
        or "0"). Raises :class:`~procorch.api.errors.Gone` when it is too old."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # Conveniences built on the verbs.

    async def update_status(
        self, rt: ResourceType, obj: dict[str, Any], *, namespace: str = ""
    ) -> dict[str, Any]:
        return await self.update(rt, obj, namespace=namespace, subresource="status")

    async def bind(self, namespace: str, pod: str, node: str) -> None:
        """POST a Binding for ``pod`` to ``node`` (the scheduler's write)."""
        from procorch.api import resources

        pods = resources.by_key("core/pods")
        assert pods is not None
        await self.create_subresource(
            pods,
            pod,
            "binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
            namespace=namespace,
        )

    @abc.abstractmethod
    async def create_subresource(
        self,
        rt: ResourceType,
        name: str,
        subresource: str,
        body: dict[str, Any],
        *,
        namespace: str = "",
    ) -> dict[str, Any]: ...
