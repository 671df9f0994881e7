"""LIST with Kubernetes' ``resourceVersion`` and ``resourceVersionMatch`` semantics.

The store serves current state; :meth:`ListVerbs.list_at` adds what a list at a given
resourceVersion means (see its docstring), including lists as of an older revision, which are
rebuilt from the change history the store keeps for watches.
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from procorch.api import errors
from procorch.api.resources import ResourceType
from procorch.apiserver.auth import User
from procorch.apiserver.filters import ObjectFilter
from procorch.apiserver.verbs_common import parse_rv
from procorch.apiserver.verbs_core import ServiceCore
from procorch.store.base import Stored, WatchClosed

# How long a list waits for the store to reach a requested resourceVersion (the watch cache's
# blockTimeout) before answering 504 "Too large resource version".
TOO_LARGE_WAIT = 3.0


def _name_key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _validate_list_options(resource_version: str, match: str) -> None:
    """Kubernetes' ListOptions validation for the resourceVersion parameters of a list."""
    if not match:
        return
    causes = []
    if not resource_version:
        causes.append(
            errors.forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        )
    if match not in ("Exact", "NotOlderThan"):
        causes.append(
            errors.not_supported("resourceVersionMatch", match, ["Exact", "NotOlderThan", ""])
        )
    if match == "Exact" and resource_version == "0":
        causes.append(
            errors.forbidden(
                "resourceVersionMatch",
                'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
            )
        )
    if causes:
        raise errors.Invalid(kind="ListOptions", name="", causes=causes, group="meta.k8s.io")


class ListVerbs(ServiceCore):
    async def list_at(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        *,
        resource_version: str = "",
        resource_version_match: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[builtins.list[Stored], int]:
        """A list with Kubernetes' ``resourceVersion`` / ``resourceVersionMatch`` semantics.

        * unset, or ``"0"`` without ``Exact``: the current state (always at least as new as
          any ``"0"`` reader could ask for);
        * ``N`` with ``NotOlderThan`` (or no match, the legacy meaning): the current state once
          the store has reached ``N``; a revision the store has not reached after
          :data:`TOO_LARGE_WAIT` seconds is 504 "Too large resource version", as the watch
          cache answers;
        * ``N`` with ``Exact``: the state as of ``N``. The store keeps no old snapshots, but it
          keeps each resource's recent change history (what watches replay): the current list
          is rolled back through the changes after ``N``. ``N`` older than that history is
          410 Expired, as an etcd-backed apiserver answers for a compacted revision.
        """
        _validate_list_options(resource_version, resource_version_match)
        if not resource_version or (resource_version == "0" and not resource_version_match):
            return self.list(
                user, rt, namespace, label_selector=label_selector, field_selector=field_selector
            )
        selector = ObjectFilter.parse(
            rt, label_selector=label_selector, field_selector=field_selector
        )
        self.authorize_collection(user, "list", rt, namespace, selector)
        wanted = parse_rv(resource_version) or 0
        await self._wait_for_revision(wanted)
        if resource_version_match != "Exact" or wanted == self.store.revision:
            return self.list(
                user, rt, namespace, label_selector=label_selector, field_selector=field_selector
            )
        items = await self._rolled_back(
            rt, namespace if rt.namespaced and namespace else None, wanted
        )
        if not selector.empty:
            items = [s for s in items if selector.matches(s.object)]
        return items, wanted

    async def _wait_for_revision(self, wanted: int) -> None:
        deadline = asyncio.get_running_loop().time() + TOO_LARGE_WAIT
        while self.store.revision < wanted:
            if asyncio.get_running_loop().time() >= deadline:
                current = self.store.revision
                raise errors.Timeout(
                    f"Timeout: Too large resource version: {wanted}, current: {current}",
                    details={
                        "causes": [
                            {
                                "reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version",
                            }
                        ],
                        "retryAfterSeconds": 1,
                    },
                    headers={"Retry-After": "1"},
                )
            await asyncio.sleep(0.02)

    async def _rolled_back(
        self, rt: ResourceType, namespace: str | None, revision: int
    ) -> builtins.list[Stored]:
        """The objects of ``rt`` as they were at ``revision``: the current list with the
        changes after ``revision`` undone, newest first. The changes come from the history a
        watch replays; Gone when that history no longer reaches back to ``revision``."""
        # The list and the opening of the watch happen with no await between them, so the
        # watch's backlog holds exactly the changes up to the list's revision (and later
        # ones, which are ignored).
        items, current = self.store.list(rt.key, namespace)
        try:
            watch = self.store.watch(rt.key, since=revision, namespace=namespace)
        except errors.Gone:
            raise errors.Gone("The resourceVersion for the provided list is too old.") from None
        changes = []
        try:
            while not watch.idle():
                event = await watch.next(timeout=0)
                if event is None or event.revision > current:
                    break
                changes.append(event)
        except WatchClosed:
            raise errors.Gone("The resourceVersion for the provided list is too old.") from None
        finally:
            watch.close()
        state = {_name_key(s.object): s for s in items}
        for event in reversed(changes):
            key = (event.key.namespace, event.key.name)
            if event.type == "ADDED":
                state.pop(key, None)
            else:
                state[key] = event.previous if event.previous is not None else event.current
        return [state[k] for k in sorted(state)]
