"""The in-memory state of one resource, indexed as lists and selectors ask for it.

kube-apiserver answers lists from its watch cache, not from etcd; procorch's store holds every
object in memory, and this index keeps what makes a list cheap whatever the number of
objects:

* each namespace's objects in name order, kept sorted as objects come and go (``bisect``),
  so a list is a copy, never a sort nor a lookup per object;
* label postings, ``(key, value) -> namespace -> objects in name order``, so a label
  selector's equality and set terms (``app=web``, ``tier in (a,b)``) pick their candidates,
  already in order, without looking at the others. The caller still checks the whole selector on the
  candidates (``!=``, ``notin``, ``exists`` and field selectors are not indexed).

Everything it holds is bounded by what exists: an object's entries leave with it.

Concurrency: single event loop; mutated only by the store when a commit is applied.
"""

from __future__ import annotations

import bisect
import builtins
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from procorch.store.base import Stored

LabelTerms = Mapping[str, Collection[str]]
"""Label key -> the values it may have (one for ``=``, several for ``in``)."""


def _labels(stored: Stored) -> dict[str, Any]:
    meta = stored.object.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


class _Run:
    """Names kept sorted, with each name's current object beside it at the same position,
    so that a list is one copy of ``items`` (no lookup per name: with tens of thousands of
    objects each lookup is a few cache misses, and it was a tenth of a loaded server's time).
    """

    __slots__ = ("items", "names")

    def __init__(self) -> None:
        self.names: builtins.list[str] = []
        self.items: builtins.list[Stored] = []

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def merged(cls, runs: builtins.list[_Run]) -> _Run:
        """The union of runs whose names are disjoint (one label key's several values)."""
        merged = cls()
        pairs = sorted((n, s) for run in runs for n, s in zip(run.names, run.items, strict=True))
        merged.names = [n for n, _ in pairs]
        merged.items = [s for _, s in pairs]
        return merged

    def put(self, name: str, stored: Stored) -> None:
        at = bisect.bisect_left(self.names, name)
        if at < len(self.names) and self.names[at] == name:
            self.items[at] = stored
        else:
            self.names.insert(at, name)
            self.items.insert(at, stored)

    def remove(self, name: str) -> None:
        at = bisect.bisect_left(self.names, name)
        if at < len(self.names) and self.names[at] == name:
            del self.names[at]
            del self.items[at]


class ResourceIndex:
    """Every object of one resource (see the module docstring)."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Stored]] = {}  # namespace -> name -> Stored
        self._runs: dict[str, _Run] = {}  # namespace -> its objects in name order
        # (key, value) -> namespace -> the objects with that label, in name order
        self._postings: dict[tuple[str, str], dict[str, _Run]] = {}

    # -- writes ------------------------------------------------------------------------------

    def put(self, namespace: str, name: str, stored: Stored) -> None:
        by_name = self._objects.setdefault(namespace, {})
        previous = by_name.get(name)
        by_name[name] = stored
        run = self._runs.get(namespace)
        if run is None:
            run = self._runs[namespace] = _Run()
        run.put(name, stored)
        old = {} if previous is None else _labels(previous)
        new = _labels(stored)
        for key, value in old.items():
            if new.get(key) != value:
                self._unpost(key, value, namespace, name)
        for key, value in new.items():
            if isinstance(value, str):
                by_namespace = self._postings.setdefault((key, value), {})
                posting = by_namespace.get(namespace)
                if posting is None:
                    posting = by_namespace[namespace] = _Run()
                posting.put(name, stored)  # new, or the same label's object replaced

    def remove(self, namespace: str, name: str) -> None:
        by_name = self._objects.get(namespace)
        if by_name is None or name not in by_name:
            return
        previous = by_name.pop(name)
        self._runs[namespace].remove(name)
        if not by_name:
            del self._objects[namespace]
            del self._runs[namespace]
        for key, value in _labels(previous).items():
            self._unpost(key, value, namespace, name)

    def _unpost(self, key: str, value: Any, namespace: str, name: str) -> None:
        if not isinstance(value, str):
            return
        by_namespace = self._postings.get((key, value))
        if by_namespace is None:
            return
        posting = by_namespace.get(namespace)
        if posting is None:
            return
        posting.remove(name)
        if not posting:
            del by_namespace[namespace]
            if not by_namespace:
                del self._postings[(key, value)]

    # -- reads -------------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Stored | None:
        by_name = self._objects.get(namespace)
        return None if by_name is None else by_name.get(name)

    def list(self, namespace: str | None = None, labels: LabelTerms | None = None) -> list[Stored]:
        """Objects in key order (namespace, then name); with ``labels``, only those whose
        labels satisfy every term."""
        namespaces = [namespace] if namespace is not None else sorted(self._objects)
        out: list[Stored] = []
        for ns in namespaces:
            if labels:
                out.extend(self._candidates(ns, labels))
            else:
                run = self._runs.get(ns)
                if run is not None:
                    out.extend(run.items)
        return out

    def _candidates(self, namespace: str, labels: LabelTerms) -> builtins.list[Stored]:
        """Objects in ``namespace`` whose labels satisfy every term, in name order. The
        common selector, one key and one value (``app=web``), is one posting as it stands."""
        runs: builtins.list[_Run] = []
        for key, values in labels.items():
            postings = self._postings
            found = [r for v in values if (r := postings.get((key, v), {}).get(namespace))]
            run = found[0] if len(found) == 1 else _Run.merged(found)
            if not run:
                return []
            runs.append(run)
        runs.sort(key=len)
        first, rest = runs[0], [set(run.names) for run in runs[1:]]
        if not rest:
            return first.items
        return [
            s for n, s in zip(first.names, first.items, strict=True) if all(n in r for r in rest)
        ]

    def count(self, namespace: str | None = None) -> int:
        if namespace is not None:
            return len(self._objects.get(namespace, ()))
        return sum(len(v) for v in self._objects.values())

    def namespaces(self) -> set[str]:
        return set(self._objects)

    def __iter__(self) -> Iterator[Stored]:
        for by_name in self._objects.values():
            yield from by_name.values()
