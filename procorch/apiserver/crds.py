"""The API server's CustomResourceDefinition controller: what apiextensions-apiserver does.

It serves every stored CRD before the API opens (:meth:`CrdController.start`), then watches
CRDs and keeps the served resources in step: a CRD written is installed at once
(:func:`procorch.api.crd.serving.install`: discovery, REST paths, pruning, defaulting,
validation, its printer columns) and its status says so (``NamesAccepted``, ``Established``,
``acceptedNames``, ``storedVersions``), or why not (a kind another CRD of the group already
has). A CRD being deleted (``customresourcecleanup.apiextensions.k8s.io``) is marked
``Terminating``; its objects are deleted, then the finalizer goes and the resource with it.

Concurrency: one task on the API server's loop; every change to the registry happens there.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from procorch.api import errors, resources
from procorch.api.crd import definition, serving
from procorch.api.meta import deep_copy
from procorch.apiserver.auth import SYSTEM
from procorch.apiserver.service import ApiService
from procorch.kit.logging import get_logger
from procorch.store.base import Event
from procorch.store.follow import follow

log = get_logger("apiserver.crds")

CRDS = resources.must("apiextensions.k8s.io/customresourcedefinitions")
CLEANUP_RETRY = 1.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CrdController:
    def __init__(self, service: ApiService) -> None:
        self.service = service
        self.store = service.store
        self._installed: dict[str, dict[str, Any]] = {}  # CRD name -> the CRD it serves
        self._task: asyncio.Task[None] | None = None
        self._retries: dict[str, asyncio.Task[None]] = {}  # CRD name -> its cleanup's next look

    async def start(self) -> None:
        revision = await self._resync()
        self._task = asyncio.create_task(self._watch(revision), name="apiserver/crds")

    async def _resync(self) -> int:
        """Serve what the store holds now (and stop serving CRDs no longer there)."""
        stored, revision = self.store.list(CRDS.key)
        present = {str(item.object["metadata"]["name"]) for item in stored}
        for name, crd in list(self._installed.items()):
            if name not in present:
                self._uninstall(crd)
        for item in stored:
            await self._reconcile_safely(item.object)
        return revision

    async def _reconcile_safely(self, crd: dict[str, Any]) -> None:
        try:
            await self._reconcile(crd)
        except Exception:  # noqa: BLE001 - one bad CRD must not stop the others
            log.exception("CRD reconcile failed", crd=crd["metadata"].get("name"))

    async def stop(self) -> None:
        """Stop, and stop serving: the registry is the process's, and outlives this server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._retries.values()):
            task.cancel()
        for crd in list(self._installed.values()):
            self._uninstall(crd)

    async def _watch(self, revision: int) -> None:
        await follow(self.store, CRDS.key, revision, on_event=self._on_event, resync=self._resync)

    async def _on_event(self, event: Event) -> None:
        if event.type != "DELETED":
            await self._reconcile_safely(event.current.object)
            return
        self._uninstall(event.current.object)
        # A CRD refused for a name this one held may be served now.
        for item in self.store.list(CRDS.key)[0]:
            await self._reconcile_safely(item.object)

    async def _reconcile(self, crd: dict[str, Any]) -> None:
        name = str(crd["metadata"]["name"])
        if crd["metadata"].get("deletionTimestamp"):
            await self._clean_up(crd)
            return
        conflict = self._kind_conflict(crd)
        if conflict:
            await self._set_status(crd, accepted=False, reason=conflict)
            return
        if (self._installed.get(name) or {}).get("spec") != crd.get("spec"):
            types = serving.install(crd)
            self._installed[name] = deep_copy(crd)
            log.info("serving a custom resource", crd=name, versions=[t.version for t in types])
        await self._set_status(crd, accepted=True, reason="")

    def _kind_conflict(self, crd: dict[str, Any]) -> str:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for rt in resources.RESOURCES:
            if rt.group != spec.get("group"):
                continue
            if rt.plural == names.get("plural"):
                if not rt.custom:  # a built-in resource is never taken over
                    return f'"{rt.plural}" is already served by the API server'
                continue
            if rt.kind == names.get("kind"):
                return f'"{rt.kind}" is already in use'
            taken = set(rt.short_names) & set(names.get("shortNames") or [])
            if taken:
                return f'"{sorted(taken)[0]}" is already in use'
        return ""

    def _uninstall(self, crd: dict[str, Any]) -> None:
        name = str(crd["metadata"]["name"])
        if self._installed.pop(name, None) is None:
            return
        serving.uninstall(crd)
        log.info("stopped serving a custom resource", crd=name)

    async def _set_status(self, crd: dict[str, Any], *, accepted: bool, reason: str) -> None:
        status = deep_copy(crd.get("status") or {})
        before = deep_copy(status)
        names = (crd.get("spec") or {}).get("names") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}

        def condition(kind: str, ok: bool, why: str, message: str) -> None:
            old = conditions.get(kind) or {}
            value = "True" if ok else "False"
            conditions[kind] = {
                "type": kind,
                "status": value,
                "lastTransitionTime": old.get("lastTransitionTime")
                if old.get("status") == value
                else _now(),
                "reason": why,
                "message": message,
            }

        if accepted:
            condition("NamesAccepted", True, "NoConflicts", "no conflicts found")
            condition(
                "Established", True, "InitialNamesAccepted", "the initial names have been accepted"
            )
            accepted_names = {k: v for k, v in names.items() if v}
            accepted_names.setdefault("singular", str(names.get("kind") or "").lower())
            accepted_names.setdefault("listKind", f"{names.get('kind')}List")
            status["acceptedNames"] = accepted_names
        else:
            condition("NamesAccepted", False, "KindConflict", reason)
            condition("Established", False, "NotAccepted", "not all names are accepted")
        status["conditions"] = [conditions[k] for k in ("NamesAccepted", "Established")] + [
            c for k, c in conditions.items() if k not in ("NamesAccepted", "Established")
        ]
        stored = list(status.get("storedVersions") or [])
        storage = definition.storage_version(crd)
        if accepted and storage and storage not in stored:
            stored.append(storage)
        status["storedVersions"] = stored
        if status == before:
            return
        await self._write_status(crd, status)

    async def _write_status(self, crd: dict[str, Any], status: dict[str, Any]) -> None:
        body = {**crd, "status": status}
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.service.update(
                SYSTEM, CRDS, "", str(crd["metadata"]["name"]), body, subresource="status"
            )

    async def _clean_up(self, crd: dict[str, Any]) -> None:
        """Delete every object of a CRD being deleted, then let the CRD go."""
        name = str(crd["metadata"]["name"])
        status = deep_copy(crd.get("status") or {})
        terminating = {
            "type": "Terminating",
            "status": "True",
            "lastTransitionTime": _now(),
            "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress",
        }
        if not any(c.get("type") == "Terminating" for c in status.get("conditions") or []):
            status["conditions"] = [*(status.get("conditions") or []), terminating]
            await self._write_status(crd, status)
        group, plural = definition.group_and_plural(crd)
        rt = resources.by_key(f"{group or 'core'}/{plural}")
        if rt is not None and rt.custom and str(crd["metadata"]["name"]) in self._installed:
            serving.TERMINATING.add(rt.key)
            remaining, _ = self.store.list(rt.key)
            for item in remaining:
                meta = item.object["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                with contextlib.suppress(errors.NotFound):
                    await self.service.delete(
                        SYSTEM, rt, str(meta.get("namespace") or ""), str(meta["name"])
                    )
            if self.store.list(rt.key)[0]:
                # Some still have finalizers of their own: look again shortly.
                pending = self._retries.get(name)
                if pending is None or pending.done():
                    self._retries[name] = asyncio.create_task(
                        self._recheck(name), name="apiserver/crd-cleanup"
                    )
                return
        latest = self.store.get(self.service.key(CRDS, "", name))
        if latest is None:
            return
        body = deep_copy(latest.object)
        body["metadata"]["finalizers"] = [
            f for f in body["metadata"].get("finalizers") or [] if f != definition.CLEANUP_FINALIZER
        ]
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.service.update(SYSTEM, CRDS, "", name, body)

    async def _recheck(self, name: str) -> None:
        await asyncio.sleep(CLEANUP_RETRY)
        self._retries.pop(name, None)  # a look still needed after this one is scheduled anew
        latest = self.store.get(self.service.key(CRDS, "", name))
        if latest is not None:
            await self._reconcile_safely(latest.object)
