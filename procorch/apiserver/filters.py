"""List and watch filtering: a request's label and field selectors as one predicate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procorch.api.resources import ResourceType
from procorch.api.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
    validate_fields,
)


@dataclass(frozen=True)
class ObjectFilter:
    labels: LabelSelector
    fields: FieldSelector

    @classmethod
    def parse(cls, rt: ResourceType, *, label_selector: str, field_selector: str) -> ObjectFilter:
        """Parse both selectors; BadRequest for bad syntax or an unsupported field."""
        labels = parse_label_selector(label_selector)
        fields = validate_fields(rt.key, parse_field_selector(field_selector))
        return cls(labels=labels, fields=fields)

    @property
    def empty(self) -> bool:
        return self.labels.empty and self.fields.empty

    def matches(self, obj: dict[str, Any]) -> bool:
        if not self.labels.empty and not self.labels.matches(
            (obj.get("metadata") or {}).get("labels")
        ):
            return False
        return self.fields.empty or self.fields.matches(obj)
