"""List and watch filtering: a request's label and field selectors as one predicate, and
the part of it the store's label index answers (:attr:`ObjectFilter.index_terms`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procorch.api.registry import validate_fields
from procorch.api.resources import ResourceType
from procorch.api.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from procorch.store.base import Stored


@dataclass(frozen=True)
class ObjectFilter:
    labels: LabelSelector
    fields: FieldSelector
    index_terms: dict[str, frozenset[str]] = field(default_factory=dict)
    """Label key -> allowed values: the terms the store's label index answers."""
    index_exact: bool = False
    """True when the index's answer needs no further check (no other terms)."""

    @classmethod
    def parse(cls, rt: ResourceType, *, label_selector: str, field_selector: str) -> ObjectFilter:
        """Parse both selectors; BadRequest for bad syntax or an unsupported field."""
        labels = parse_label_selector(label_selector)
        fields = validate_fields(rt, parse_field_selector(field_selector))
        return cls(
            labels=labels,
            fields=fields,
            index_terms=labels.indexable_terms(),
            index_exact=labels.indexable and fields.empty,
        )

    def select(self, items: list[Stored]) -> list[Stored]:
        """The items (from a store list narrowed by :attr:`index_terms`) that match."""
        if self.empty or self.index_exact:
            return items
        return [s for s in items if self.matches(s.object)]

    @property
    def empty(self) -> bool:
        return self.labels.empty and self.fields.empty

    def matches(self, obj: dict[str, Any]) -> bool:
        if not self.labels.empty and not self.labels.matches(
            (obj.get("metadata") or {}).get("labels")
        ):
            return False
        return self.fields.empty or self.fields.matches(obj)
