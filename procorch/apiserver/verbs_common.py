"""Shared vocabulary of the API verbs: options, results and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from procorch.api import errors, resources
from procorch.api.resources import ResourceType
from procorch.api.shape import FieldValidation
from procorch.store.base import Key, Stored, encode

APPLY_PATCH = "application/apply-patch+yaml"
PODS = resources.must("core/pods")
RETRIES = 10  # read-modify-write attempts before giving up with a Conflict

Propagation = Literal["Background", "Foreground", "Orphan"]


class PreconditionFailed(errors.Conflict):
    """A Conflict no retry can resolve: a precondition of the request itself failed (a uid,
    a namespace still being emptied), unlike a compare-and-swap lost to another writer."""


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: FieldValidation = "Warn"
    force: bool = False  # server-side apply: take fields over from other managers


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: Propagation | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


@dataclass
class Result:
    stored: Stored
    created: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def object(self) -> dict[str, Any]:
        return self.stored.object


@dataclass
class DeleteResult:
    stored: Stored
    finished: bool  # gone from the store (False: deletion pending on finalizers/grace)


def key_for(rt: ResourceType, namespace: str, name: str) -> Key:
    return Key(rt.key, namespace if rt.namespaced else "", name)


def unsaved(obj: dict[str, Any], revision: int) -> Stored:
    """A Stored for a dry run: what would have been written."""
    return Stored(object=obj, raw=encode(obj), revision=revision)


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus what every write changes (resourceVersion, managedFields times)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    if meta.get("managedFields"):
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"} for entry in meta["managedFields"]
        ]
    return {**obj, "metadata": meta}


def parse_rv(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise errors.BadRequest(f'invalid resourceVersion "{value}"') from None
