"""Paginated lists (``limit`` / ``continue``) over consistent snapshots.

etcd serves every page of a paginated list at the revision of the first page. procorch's
store keeps no old revisions, but a list result is a list of shared, immutable objects, so the
first page keeps the whole filtered result as a snapshot and later pages are cut from it.
Snapshots expire (``ttl``) and are bounded in number and in the items they hold together
(they keep versions alive that may have been deleted since); an expired or dropped token is 410
Gone with Kubernetes' message, and the client starts the list again.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from procorch.api import errors
from procorch.store.base import Stored


@dataclass
class Page:
    items: list[Stored]
    revision: int
    continue_token: str
    remaining: int


@dataclass
class _Snapshot:
    items: list[Stored]
    revision: int
    created: float


class Pager:
    def __init__(
        self, *, ttl: float = 300.0, max_snapshots: int = 64, max_items: int = 200_000
    ) -> None:
        self.ttl = ttl
        self.max_snapshots = max_snapshots
        self.max_items = max_items
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        self._items = 0

    def first(self, items: list[Stored], revision: int, limit: int) -> Page:
        if limit <= 0 or len(items) <= limit:
            return Page(items, revision, "", 0)
        self._expire()
        snapshot_id = secrets.token_hex(8)
        snapshot = self._snapshots[snapshot_id] = _Snapshot(items, revision, time.monotonic())
        self._items += len(items)
        while len(self._snapshots) > 1 and (
            len(self._snapshots) > self.max_snapshots or self._items > self.max_items
        ):
            self._drop(next(iter(self._snapshots)))
        return self._cut(snapshot_id, snapshot, 0, limit)

    def _drop(self, snapshot_id: str) -> None:
        dropped = self._snapshots.pop(snapshot_id, None)
        if dropped is not None:
            self._items -= len(dropped.items)

    def next(self, token: str, limit: int) -> Page:
        try:
            decoded = orjson.loads(base64.urlsafe_b64decode(token.encode() + b"=" * 4))
            snapshot_id = str(decoded["id"])
            start = int(decoded["start"])
        except (ValueError, KeyError, TypeError):
            raise errors.BadRequest(f'continue key is not valid: "{token}"') from None
        self._expire()
        snapshot = self._snapshots.get(snapshot_id)
        if snapshot is None:
            raise errors.Gone(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            )
        return self._cut(snapshot_id, snapshot, start, limit)

    def _cut(self, snapshot_id: str, snapshot: _Snapshot, start: int, limit: int) -> Page:
        end = len(snapshot.items) if limit <= 0 else start + limit
        items = snapshot.items[start:end]
        if end >= len(snapshot.items):
            self._drop(snapshot_id)
            return Page(items, snapshot.revision, "", 0)
        token = (
            base64.urlsafe_b64encode(
                orjson.dumps(
                    {
                        "v": "meta.k8s.io/v1",
                        "rv": snapshot.revision,
                        "id": snapshot_id,
                        "start": end,
                    }
                )
            )
            .decode()
            .rstrip("=")
        )
        return Page(items, snapshot.revision, token, len(snapshot.items) - end)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl
        for snapshot_id in [k for k, v in self._snapshots.items() if v.created < cutoff]:
            self._drop(snapshot_id)
