"""Label and field selectors: parsing, validation, matching and printing, as Kubernetes does.

Label selectors come in three forms, each with its own entry point (:mod:`.labels`):

* :func:`parse_label_selector` parses the string kubectl sends in ``?labelSelector=``
  (``app=web,tier!=be``, ``app in (web,x)``, ``env notin (a,b)``, ``k``, ``!k``, ``k>3``),
  as Kubernetes' ``labels.Parse`` does. An empty string selects everything.
* :func:`label_selector_from_dict` converts a ``metav1.LabelSelector`` object
  (``matchLabels`` + ``matchExpressions``), as ``metav1.LabelSelectorAsSelector`` does:
  ``None`` selects **nothing**, ``{}`` selects **everything**.
* :func:`selector_from_set` converts a plain map (a Service's or ReplicationController's
  ``spec.selector``), as ``labels.SelectorFromSet`` does: an empty or missing map selects
  **everything**. Code that must treat an empty Service selector as "manages no endpoints"
  checks ``LabelSelector.empty`` itself, as Kubernetes' endpoints controller does.

Field selectors (:func:`parse_field_selector`, :mod:`.fields`) follow Kubernetes' ``fields``
package: terms ``field=value``, ``field==value`` and ``field!=value`` joined by commas, empty
values allowed, ``\\,`` ``\\=`` and ``\\\\`` escapes in values. Which fields a kind accepts
is its :class:`SelectableFields` (part of its definition in :mod:`procorch.api.registry`).

Every syntax or validity problem raises :class:`~procorch.api.errors.BadRequest` with
Kubernetes' message. Pure data: no I/O; every value is immutable, so selectors can be shared
between tasks and cached.
"""

from procorch.api.selectors._names import (
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
)
from procorch.api.selectors.fields import (
    FieldRequirement,
    FieldSelector,
    SelectableFields,
    escape_field_value,
    field_value,
    parse_field_selector,
    unescape_field_value,
)
from procorch.api.selectors.labels import (
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    LabelSelector,
    Requirement,
    format_label_selector,
    format_labels,
    label_selector_from_dict,
    new_requirement,
    parse_label_selector,
    selector_from_set,
)

__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectableFields",
    "dns1123_subdomain_errors",
    "escape_field_value",
    "field_value",
    "format_label_selector",
    "format_labels",
    "label_selector_from_dict",
    "label_value_errors",
    "new_requirement",
    "parse_field_selector",
    "parse_label_selector",
    "qualified_name_errors",
    "selector_from_set",
    "unescape_field_value",
]
