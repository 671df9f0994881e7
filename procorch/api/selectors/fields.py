"""Field selectors: ``metadata.name=web,status.phase!=Failed,spec.nodeName=``.

Parsing follows Kubernetes' ``fields`` package (``=``, ``==``, ``!=``; empty values; ``\\,``
``\\=`` and ``\\\\`` escapes in values). :class:`SelectableFields` are the fields a kind's
field-label conversion function accepts (each kind's are part of its definition in
:mod:`procorch.api.registry`); :func:`field_value` renders a field
the way Kubernetes fills its ``fields.Set``, so values compare as strings (``"true"``,
``"0"``, ``""`` for a missing string). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from procorch.api import errors


@dataclass(frozen=True)
class FieldRequirement:
    """One term of a field selector; ``operator`` is ``"="`` (also for ``==``) or ``"!="``."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A compiled field selector: every requirement must hold. Empty matches everything."""

    requirements: tuple[FieldRequirement, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for r in self.requirements:
            equal = field_value(obj, r.field) == r.value
            if equal != (r.operator == "="):
                return False
        return True

    def exact_value(self, name: str) -> str | None:
        """The value ``name`` must equal, if an ``=`` term pins it (``RequiresExactMatch``);
        lets a caller index by ``metadata.name`` instead of scanning."""
        for r in self.requirements:
            if r.field == name and r.operator == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    """Undo ``\\\\``, ``\\,`` and ``\\=``; any other escape, a trailing backslash, or a bare
    ``,`` or ``=`` is refused as Kubernetes refuses it."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    escaped = False
    for c in value:
        if escaped:
            if c not in "\\,=":
                raise errors.BadRequest(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            raise errors.BadRequest(f"invalid field selector: unescaped character in value: {c}")
        else:
            out.append(c)
    if escaped:
        raise errors.BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    # A backslash-escaped comma is data, not a separator; the escape stays in the term.
    terms, start, escaped = [], 0, False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator occurrence splits the term; "!=" and "==" are tried before "=" so
    # the value never keeps a leading "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``metadata.name=web,status.phase!=Failed``; ``""`` or ``None`` selects everything.

    Terms come out sorted (as Kubernetes sorts them), so equal selectors print equally.
    """
    if not text:
        return FieldSelector()
    requirements = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        requirements.append(
            FieldRequirement(lhs, "!=" if op == "!=" else "=", unescape_field_value(rhs))
        )
    return FieldSelector(tuple(requirements))


# Fields whose Go type is a number or a boolean render their zero value when absent, the way
# Kubernetes fills its fields.Set from the typed object; every other missing field is "".
_ZERO_VALUES: Final[dict[str, str]] = {
    "spec.hostNetwork": "false",
    "spec.unschedulable": "false",
    "status.replicas": "0",
    "status.successful": "0",
}


def _walk(obj: Mapping[str, Any], dotted: str) -> Any:
    current: Any = obj
    for part in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _render(value: Any) -> str:
    if value is None or isinstance(value, (list, dict)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_value(obj: Mapping[str, Any], name: str) -> str:
    """The string a field selector compares for ``name`` on ``obj``.

    A few fields are not plain paths in the v1 JSON: a pod's ``status.podIP`` is its first
    ``podIPs`` entry, an event's ``source`` is ``source.component`` falling back to
    ``reportingComponent``, a job's ``status.successful`` is ``status.succeeded``.
    """
    if name == "status.podIP":
        ips = _walk(obj, "status.podIPs")
        if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
            return _render(ips[0].get("ip"))
        return _render(_walk(obj, "status.podIP"))
    if name == "source":
        return _render(_walk(obj, "source.component")) or _render(obj.get("reportingComponent"))
    if name == "status.successful":
        value = _walk(obj, "status.succeeded")
    else:
        value = _walk(obj, name)
    rendered = _render(value)
    if value is None:
        return _ZERO_VALUES.get(name, rendered)
    return rendered


_META: Final = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class SelectableFields:
    """The fields a kind's objects can be selected on (Kubernetes' field-label conversion
    function of the kind), and old spellings it still accepts and rewrites."""

    names: frozenset[str] = _META
    aliases: Mapping[str, str] = field(default_factory=dict)

    def validate(self, selector: FieldSelector) -> FieldSelector:
        """Refuse fields outside :attr:`names`; return the selector with old aliases
        rewritten (``spec.host`` becomes ``spec.nodeName`` for pods)."""
        converted = []
        for r in selector.requirements:
            name = self.aliases.get(r.field, r.field)
            if name not in self.names:
                raise errors.BadRequest(f"field label not supported: {r.field}")
            converted.append(FieldRequirement(name, r.operator, r.value))
        return FieldSelector(tuple(converted))


# Kinds without a conversion function of their own accept metadata.name and
# metadata.namespace only; Node and Namespace have their own and do not accept the namespace.
META_FIELDS: Final = SelectableFields()
POD_FIELDS: Final = SelectableFields(
    _META
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    },
    # v1 clients once sent spec.host.
    aliases={"spec.host": "spec.nodeName"},
)
EVENT_FIELDS: Final = SelectableFields(
    _META
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
SECRET_FIELDS: Final = SelectableFields(_META | {"type"})
NODE_FIELDS: Final = SelectableFields(frozenset({"metadata.name", "spec.unschedulable"}))
NAMESPACE_FIELDS: Final = SelectableFields(frozenset({"metadata.name", "status.phase"}))
REPLICAS_FIELDS: Final = SelectableFields(_META | {"status.replicas"})
JOB_FIELDS: Final = SelectableFields(_META | {"status.successful"})
