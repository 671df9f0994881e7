"""The in-memory state of one resource, indexed as lists and selectors ask for it.

kube-apiserver answers lists from its watch cache, not from etcd; procorch's store holds every
object in memory, and this index keeps what makes a list cheap whatever the number of
objects:

* names sorted per namespace, kept sorted as objects come and go (``bisect``), so a list is a
  walk in key order, never a sort;
* label postings, ``(key, value) -> namespace -> sorted names``, so a label selector's
  equality and set terms (``app=web``, ``tier in (a,b)``) pick their candidates, already in
  order, without looking at the others. The caller still checks the whole selector on the
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


class ResourceIndex:
    """Every object of one resource (see the module docstring)."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Stored]] = {}  # namespace -> name -> Stored
        self._names: dict[str, list[str]] = {}  # namespace -> sorted names
        # (key, value) -> namespace -> names with that label, sorted
        self._postings: dict[tuple[str, str], dict[str, list[str]]] = {}

    # -- writes ------------------------------------------------------------------------------

    def put(self, namespace: str, name: str, stored: Stored) -> None:
        by_name = self._objects.setdefault(namespace, {})
        previous = by_name.get(name)
        by_name[name] = stored
        if previous is None:
            bisect.insort(self._names.setdefault(namespace, []), name)
            old: dict[str, Any] = {}
        else:
            old = _labels(previous)
        new = _labels(stored)
        if old == new:
            return
        for key, value in old.items():
            if new.get(key) != value:
                self._unpost(key, value, namespace, name)
        for key, value in new.items():
            if old.get(key) != value and isinstance(value, str):
                names = self._postings.setdefault((key, value), {}).setdefault(namespace, [])
                bisect.insort(names, name)

    def remove(self, namespace: str, name: str) -> None:
        by_name = self._objects.get(namespace)
        if by_name is None or name not in by_name:
            return
        previous = by_name.pop(name)
        names = self._names[namespace]
        del names[bisect.bisect_left(names, name)]
        if not by_name:
            del self._objects[namespace]
            del self._names[namespace]
        for key, value in _labels(previous).items():
            self._unpost(key, value, namespace, name)

    def _unpost(self, key: str, value: Any, namespace: str, name: str) -> None:
        if not isinstance(value, str):
            return
        by_namespace = self._postings.get((key, value))
        if by_namespace is None:
            return
        names = by_namespace.get(namespace)
        if names is None:
            return
        at = bisect.bisect_left(names, name)
        if at < len(names) and names[at] == name:
            del names[at]
        if not names:
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
            by_name = self._objects.get(ns)
            if not by_name:
                continue
            if labels:
                out.extend(by_name[n] for n in self._candidates(ns, labels))
            else:
                out.extend(by_name[n] for n in self._names[ns])
        return out

    def _candidates(self, namespace: str, labels: LabelTerms) -> builtins.list[str]:
        """Names in ``namespace`` whose labels satisfy every term, in order. The common
        selector, one key and one value (``app=web``), is one posting list as it stands."""
        lists: builtins.list[builtins.list[str]] = []
        for key, values in labels.items():
            if len(values) == 1:
                (value,) = values
                names = self._postings.get((key, value), {}).get(namespace, [])
            else:
                names = sorted(
                    n for v in values for n in self._postings.get((key, v), {}).get(namespace, ())
                )
            if not names:
                return []
            lists.append(names)
        lists.sort(key=len)
        if len(lists) == 1:
            return lists[0]
        others = [set(names) for names in lists[1:]]
        return [n for n in lists[0] if all(n in other for other in others)]

    def count(self, namespace: str | None = None) -> int:
        if namespace is not None:
            return len(self._objects.get(namespace, ()))
        return sum(len(v) for v in self._objects.values())

    def namespaces(self) -> set[str]:
        return set(self._objects)

    def __iter__(self) -> Iterator[Stored]:
        for by_name in self._objects.values():
            yield from by_name.values()
