"""WATCH: events of one resource after a revision, through the request's selectors."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from procorch.api.resources import ResourceType
from procorch.apiserver.auth import User
from procorch.apiserver.filters import ObjectFilter
from procorch.apiserver.verbs_common import parse_rv
from procorch.apiserver.verbs_core import ServiceCore
from procorch.store.base import Event, Store, Stored, Watch


class WatchVerbs(ServiceCore):
    # -- watch -------------------------------------------------------------------------------

    def watch(
        self,
        user: User,
        rt: ResourceType,
        namespace: str,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> WatchStream:
        selector = ObjectFilter.parse(
            rt, label_selector=label_selector, field_selector=field_selector
        )
        self.authorize_collection(user, "watch", rt, namespace, selector)
        ns = namespace if rt.namespaced and namespace else None
        initial: builtins.list[Stored] = []
        if resource_version in ("", "0"):
            items, revision = self.store.list(rt.key, ns, labels=selector.index_terms)
            initial = selector.select(items)
        else:
            revision = parse_rv(resource_version) or 0
        watch = self.store.watch(rt.key, since=revision, namespace=ns)
        return WatchStream(
            self.store,
            watch,
            initial=initial,
            matches=selector.matches,
            filtered=not selector.empty,
        )


class WatchStream:
    """Events for one watch request, translated through its selectors.

    An object that stops matching a selector is reported DELETED and one that starts matching
    ADDED, as Kubernetes' watch cache does.
    """

    def __init__(
        self,
        store: Store,
        watch: Watch,
        *,
        initial: list[Stored],
        matches: Callable[[dict[str, Any]], bool],
        filtered: bool,
    ) -> None:
        self._store = store
        self._watch = watch
        self._initial = list(reversed(initial))
        self._matches = matches
        self._filtered = filtered

    def idle(self) -> bool:
        return not self._initial and bool(self._watch.idle())

    @property
    def revision(self) -> int:
        return self._store.revision

    async def next(self, timeout: float | None = None) -> tuple[str, Stored] | None:
        """(type, object), or None after ``timeout``; raises WatchClosed at the end."""
        if self._initial:
            return "ADDED", self._initial.pop()
        while True:
            event = await self._watch.next(timeout)
            if event is None:
                return None
            translated = self._translate(event)
            if translated is not None:
                return translated

    def poll(self) -> tuple[str, Stored] | None:
        """The next event if one is already waiting (initial objects first), else None."""
        if self._initial:
            return "ADDED", self._initial.pop()
        while (event := self._watch.poll()) is not None:
            translated = self._translate(event)
            if translated is not None:
                return translated
        return None

    def _translate(self, event: Event) -> tuple[str, Stored] | None:
        """The event as this watch's selectors see it, or None when they hide it."""
        if not self._filtered:
            return event.type, event.current
        now_matches = event.type != "DELETED" and self._matches(event.current.object)
        was_matching = event.previous is not None and self._matches(event.previous.object)
        if event.type == "DELETED":
            if was_matching or self._matches(event.current.object):
                return "DELETED", event.current
        elif now_matches and was_matching:
            return "MODIFIED", event.current
        elif now_matches:
            return "ADDED", event.current
        elif was_matching:
            return "DELETED", event.current
        return None

    def close(self) -> None:
        self._watch.close()
