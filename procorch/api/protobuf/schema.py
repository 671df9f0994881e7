"""The field tables' little language, compiled into lookup structures for the decoder.

Each ``tables_*`` module declares messages as ``{"Name": "<field>; <field>; ..."}`` per
package. A field reads ``<number> <jsonName><modifier>[:<type>]``:

* modifier ``*``: repeated (a JSON list); ``{}``: a map with string keys (the wire carries
  entry messages with key = 1, value = 2); ``?``: a Go pointer, whose zero value is meaningful
  and kept; ``^``: a Go ``json:",inline"`` member, whose fields are flattened into the parent
  (its json name is only documentation); none: a plain Go value, dropped when zero, because
  gogo-protobuf writes every non-pointer field whether or not it was set.
* type: ``str`` (the default), ``int``, ``bool``, ``bytes`` (base64 in JSON); the apimachinery
  types ``Time``, ``MicroTime``, ``Quantity``, ``IntOrString``, ``Raw`` (RawExtension/FieldsV1,
  which carry JSON); or a message, ``Name`` in the same package or ``pkg.Name`` in another.

The tables follow k8s.io/api v0.36.3, a superset of what kubectl 1.32 sends; unknown field
numbers are skipped, so a newer client's extra fields are dropped rather than refused.
Compilation checks every reference, so a typo in a table fails at import, not on a request.
Pure data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

SCALARS = frozenset({"str", "int", "bool", "bytes"})
SPECIALS = frozenset({"Time", "MicroTime", "Quantity", "IntOrString", "Raw"})

_FIELD = re.compile(r"^(\d+) (\w+)(\^|\*|\{\}|\?)?(?::([\w.]+))?$")


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    name: str
    # A scalar, a special, or a qualified message name such as "core.PodSpec".
    type: str
    repeated: bool = False
    map: bool = False
    pointer: bool = False
    inline: bool = False

    @property
    def is_message(self) -> bool:
        return "." in self.type


Message = dict[int, Field]
Tables = Mapping[str, Mapping[str, str]]


def parse_field(text: str, *, package: str) -> Field:
    match = _FIELD.match(text.strip())
    if match is None:
        raise ValueError(f"unparsable field spec {text!r} in package {package}")
    number, name, modifier, type_ = match.groups()
    type_ = type_ or "str"
    if type_ not in SCALARS and type_ not in SPECIALS and "." not in type_:
        type_ = f"{package}.{type_}"
    return Field(
        number=int(number),
        name=name,
        type=type_,
        repeated=modifier == "*",
        map=modifier == "{}",
        pointer=modifier == "?",
        inline=modifier == "^",
    )


def compile_tables(*tables: Tables) -> dict[str, Message]:
    """Merge table modules into ``{"pkg.Name": {number: Field}}``, checking references."""
    messages: dict[str, Message] = {}
    for table in tables:
        for package, entries in table.items():
            for name, spec in entries.items():
                qualified = f"{package}.{name}"
                if qualified in messages:
                    raise ValueError(f"message {qualified} is declared twice")
                fields: Message = {}
                for part in spec.split(";"):
                    field = parse_field(part, package=package)
                    if field.number in fields:
                        raise ValueError(f"{qualified}: field number {field.number} repeats")
                    if field.inline and not field.is_message:
                        raise ValueError(f"{qualified}.{field.name}: only messages inline")
                    fields[field.number] = field
                messages[qualified] = fields
    for qualified, fields in messages.items():
        for field in fields.values():
            if field.is_message and field.type not in messages:
                raise ValueError(f"{qualified}.{field.name} refers to unknown {field.type}")
    return messages
