"""One component's view of the process's informer for a resource.

The :class:`~procorch.reconcile.factory.InformerFactory` holds one
:class:`~procorch.reconcile.informer.Informer` per resource; every component (a controller,
the scheduler, the agent, a proxy) reads it through an :class:`InformerView` of its own, which
behaves as a private informer watching with the component's selectors would:

* reads (:meth:`~InformerView.get`, :meth:`~InformerView.list`,
  :meth:`~InformerView.by_index`, ``len``) see only the objects the view selects;
* handlers fire only for those objects, and an update that moves an object into or out of the
  selection is an ``ADDED`` or a ``DELETED`` for the view, as the API server's watch reports an
  object that starts or stops matching a selector (``DELETED`` carries the object as it is now,
  and the view's previous one);
* :meth:`~InformerView.add_handler` first replays ``ADDED`` for every object the view sees;
  a handler that raises is logged and the others go on, in the replay as in events;
* ``synced`` is the shared informer's: set once its first list is in the cache.

A view filters by the selectors it was asked for minus those the shared watch already applies
(the factory's scope), so asking for exactly the scope costs nothing. Indexes live in the
shared cache, one function per name; ``by_index`` keeps what the view selects.
:meth:`InformerView.close` detaches the view's handlers: a component that stops before the
process does closes its views, so nothing of it runs afterwards.

Concurrency: single event loop. Handlers run inside the shared informer's event, in the order
the views first added one, and must not block.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass

from procorch.api.resources import ResourceType
from procorch.api.selectors import FieldSelector, LabelSelector
from procorch.kit.logging import get_logger
from procorch.reconcile.informer import Handler, IndexFunc, Informer, Obj

log = get_logger("informer")


@dataclass(frozen=True)
class Selection:
    """The terms a view checks itself: every one must hold."""

    labels: LabelSelector
    fields: FieldSelector

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)


class InformerView:
    """One component's reads and handlers on a shared informer (see the module docstring)."""

    def __init__(self, informer: Informer, selection: Selection | None) -> None:
        self._informer = informer
        self._selection = selection
        self.rt: ResourceType = informer.rt
        self.synced: asyncio.Event = informer.synced
        self._handlers: tuple[Handler, ...] = ()
        self._subscriber: Handler | None = None

    # -- configuration -----------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Call ``handler`` with ``ADDED`` for every object the view sees now, then for every
        change of what it sees."""
        self._handlers = (*self._handlers, handler)
        if self._subscriber is None:
            self._subscriber = self._deliver
            self._informer.subscribe(self._subscriber)
        for obj in self.list():
            self._call(handler, "ADDED", obj, None)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._informer.add_index(name, func)

    def close(self) -> None:
        """Detach every handler of this view (reads go on working)."""
        if self._subscriber is not None:
            self._informer.unsubscribe(self._subscriber)
            self._subscriber = None
        self._handlers = ()

    # -- reads -------------------------------------------------------------------------------

    def get(self, name: str, namespace: str = "") -> Obj | None:
        obj = self._informer.get(name, namespace)
        if obj is None or self._selection is None or self._selection.matches(obj):
            return obj
        return None

    def list(
        self, namespace: str | None = None, selector: LabelSelector | None = None
    ) -> builtins.list[Obj]:
        return self._selected(self._informer.list(namespace, selector))

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        return self._selected(self._informer.by_index(name, value))

    def __len__(self) -> int:
        if self._selection is None:
            return len(self._informer)
        return len(self._selected(self._informer.list()))

    def _selected(self, objs: builtins.list[Obj]) -> builtins.list[Obj]:
        selection = self._selection
        if selection is None:
            return objs
        return [obj for obj in objs if selection.matches(obj)]

    # -- events ------------------------------------------------------------------------------

    def _deliver(self, etype: str, obj: Obj, old: Obj | None) -> None:
        selection = self._selection
        if selection is not None:
            etype, old = _as_selected(selection, etype, obj, old)
            if not etype:
                return
        for handler in self._handlers:
            self._call(handler, etype, obj, old)

    def _call(self, handler: Handler, etype: str, obj: Obj, old: Obj | None) -> None:
        try:
            handler(etype, obj, old)
        except Exception:
            log.exception("informer handler failed", resource=self.rt.key)


def _as_selected(
    selection: Selection, etype: str, obj: Obj, old: Obj | None
) -> tuple[str, Obj | None]:
    """The shared informer's event as a watch with ``selection`` reports it: (type, previous
    object the view saw), or ("", None) when the view does not see it at all."""
    was = old is not None and selection.matches(old)
    if etype == "DELETED":
        return ("DELETED", old) if was else ("", None)
    now = selection.matches(obj)
    if now and was:
        return "MODIFIED", old
    if now:
        return "ADDED", None
    if was:
        return "DELETED", old
    return "", None
