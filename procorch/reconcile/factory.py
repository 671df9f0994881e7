"""The informer factory: one list+watch per resource for the whole process.

Every component of a process (controllers, scheduler, node agent, Service proxy, Ingress
router) asks the process's one :class:`InformerFactory` for the resources it reads, and gets an
:class:`~procorch.reconcile.views.InformerView` of its own over the factory's single
:class:`~procorch.reconcile.informer.Informer` for that resource, started on first use.

What the factory's informers watch is its *scope*: per resource, the selectors of the one
watch the process opens (everything unless the scope says otherwise). A component may ask for
a narrower selection; the factory serves it when every term of the scope is among the terms
asked for (the rest the view checks itself), and refuses it otherwise, since the shared cache
would not hold what was asked. ``procorch up`` watches every pod, because its controllers
need them; a node on another machine scopes pods to ``spec.nodeName=<its name>``, as kubelet
watches only its own.

Concurrency: single event loop; each informer's list+watch is a task of the factory's
:class:`~procorch.kit.tasks.TaskSet`, stopped with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from procorch.api.resources import ResourceType
from procorch.api.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from procorch.client.base import Client
from procorch.kit.tasks import TaskSet
from procorch.reconcile.informer import Informer
from procorch.reconcile.views import InformerView, Selection


@dataclass(frozen=True)
class Selectors:
    """What one watch asks for: ``?labelSelector=`` and ``?fieldSelector=``."""

    label: str = ""
    field: str = ""


EVERYTHING = Selectors()


class InformerFactory:
    """One shared informer per resource, started on first use, read through views."""

    def __init__(
        self,
        client: Client,
        tasks: TaskSet,
        *,
        scope: Mapping[ResourceType, Selectors] | None = None,
    ) -> None:
        self.client = client
        self._tasks = tasks
        self._scope = {rt.key: selectors for rt, selectors in (scope or {}).items()}
        self._informers: dict[str, Informer] = {}
        self._selections: dict[tuple[str, str, str], Selection | None] = {}

    def get(
        self, rt: ResourceType, *, label_selector: str = "", field_selector: str = ""
    ) -> InformerView:
        """A new view of ``rt`` that sees what the selectors pick; ``ValueError`` when the
        process's watch of ``rt`` (the scope) does not cover them."""
        selection = self._selection(rt, label_selector, field_selector)
        informer = self._informers.get(rt.key)
        if informer is None:
            scope = self._scope.get(rt.key, EVERYTHING)
            informer = Informer(
                self.client, rt, label_selector=scope.label, field_selector=scope.field
            )
            self._informers[rt.key] = informer
            self._tasks.start(f"informer:{rt.key}", informer.run())
        return InformerView(informer, selection)

    def watched(self) -> dict[str, Selectors]:
        """Resource key → the selectors of its watch, for every informer started so far."""
        return {key: self._scope.get(key, EVERYTHING) for key in self._informers}

    async def wait_synced(self, views: Iterable[InformerView] | None = None) -> None:
        """Until ``views`` (default: every informer of the factory) have their first list."""
        if views is not None:
            events = [view.synced for view in views]
        else:
            events = [informer.synced for informer in self._informers.values()]
        await asyncio.gather(*(event.wait() for event in events))

    def _selection(self, rt: ResourceType, label: str, field: str) -> Selection | None:
        cache_key = (rt.key, label, field)
        if cache_key in self._selections:
            return self._selections[cache_key]
        scope = self._scope.get(rt.key, EVERYTHING)
        want_labels = parse_label_selector(label).requirements
        want_fields = parse_field_selector(field).requirements
        have_labels = parse_label_selector(scope.label).requirements
        have_fields = parse_field_selector(scope.field).requirements
        if not (set(have_labels) <= set(want_labels) and set(have_fields) <= set(want_fields)):
            raise ValueError(
                f"{rt.key}: this process watches labelSelector={scope.label!r} "
                f"fieldSelector={scope.field!r}, which does not cover "
                f"labelSelector={label!r} fieldSelector={field!r}"
            )
        extra_labels = tuple(r for r in want_labels if r not in have_labels)
        extra_fields = tuple(r for r in want_fields if r not in have_fields)
        selection = None
        if extra_labels or extra_fields:
            selection = Selection(LabelSelector(extra_labels), FieldSelector(extra_fields))
        self._selections[cache_key] = selection
        return selection
