"""Label selectors: the compiled :class:`LabelSelector` and its three constructors.

* :func:`parse_label_selector` parses the query-string form (``app=web,tier!=be``,
  ``app in (web,x)``, ``env notin (a,b)``, ``k``, ``!k``, ``k>3``) as ``labels.Parse`` does;
  an empty string selects everything.
* :func:`label_selector_from_dict` compiles a ``metav1.LabelSelector`` as
  ``LabelSelectorAsSelector`` does: ``None`` selects nothing, ``{}`` selects everything.
* :func:`selector_from_set` compiles a plain map as ``SelectorFromSet`` does: empty selects
  everything.

Invalid syntax, keys, values or operators raise :class:`errors.BadRequest` with Kubernetes'
message. Pure data; every value is immutable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from procorch.api import errors
from procorch.api.selectors._names import label_value_errors, qualified_name_errors

# Operators, spelled as Kubernetes' selection package spells them.
EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
IN: Final = "in"
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_BINARY_OPERATORS: Final = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_ALL_OPERATORS: Final = (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST)


def _parse_int(text: str) -> int | None:
    # Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits only.
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key <operator> values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in (GREATER_THAN, LESS_THAN):
            if not present or len(self.values) != 1:
                return False
            have, want = _parse_int(labels[self.key]), _parse_int(self.values[0])
            if have is None or want is None:
                return False
            return have > want if self.operator == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        text = ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return text
        spelled = {
            EQUALS: "=",
            DOUBLE_EQUALS: "==",
            NOT_EQUALS: "!=",
            IN: " in ",
            NOT_IN: " notin ",
            GREATER_THAN: ">",
            LESS_THAN: "<",
        }[self.operator]
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            values = f"({values})"
        return text + spelled + values


def new_requirement(
    key: str, operator: str, values: Iterable[str], *, path: str = ""
) -> Requirement:
    """Build a requirement, validating key, operator and values as ``labels.NewRequirement``.

    ``path`` prefixes the field paths in error messages (empty for a query string).
    """
    values = tuple(values)
    causes: list[errors.Cause] = []
    prefix = f"{path}." if path else ""
    key_problems = qualified_name_errors(key)
    if key_problems:
        causes.append(errors.invalid(prefix + "key", key, "; ".join(key_problems)))
    values_path = prefix + "values"
    if operator in (IN, NOT_IN):
        if not values:
            causes.append(
                errors.invalid(
                    values_path, [], "for 'in', 'notin' operators, values set can't be empty"
                )
            )
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            causes.append(
                errors.invalid(
                    values_path, list(values), "exact-match compatibility requires one single value"
                )
            )
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            causes.append(
                errors.invalid(
                    values_path,
                    list(values),
                    "values set must be empty for exists and does not exist",
                )
            )
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            causes.append(
                errors.invalid(
                    values_path,
                    list(values),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                )
            )
        for i, value in enumerate(values):
            if _parse_int(value) is None:
                causes.append(
                    errors.invalid(
                        f"{values_path}[{i}]",
                        value,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        causes.append(errors.not_supported(prefix + "operator", operator, list(_ALL_OPERATORS)))
    for i, value in enumerate(values):
        value_problems = label_value_errors(value)
        if value_problems:
            causes.append(
                errors.invalid(f"{values_path}[{i}][{key}]", value, "; ".join(value_problems))
            )
    if causes:
        raise errors.BadRequest(_aggregate(causes))
    return Requirement(key, operator, values)


def _aggregate(causes: list[errors.Cause]) -> str:
    rendered = [c.render() for c in causes]
    return rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"


@dataclass(frozen=True)
class LabelSelector:
    """A compiled label selector: every requirement must hold.

    ``nothing`` marks the selector that matches no object at all (what a ``null``
    ``metav1.LabelSelector`` means); it prints as ``""`` like the empty selector but is not
    ``empty``.
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def match_nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @property
    def empty(self) -> bool:
        """True when the selector has no requirements and so matches every object."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def indexable_terms(self) -> dict[str, frozenset[str]]:
        """The terms an index of label values can answer: key -> the values it may have
        (``=``, ``==``, ``in``). Every object matching the selector satisfies them; the
        selector's other terms must still be checked."""
        terms: dict[str, frozenset[str]] = {}
        for r in self.requirements:
            if r.operator in (EQUALS, DOUBLE_EQUALS, IN):
                values = frozenset(r.values)
                terms[r.key] = terms[r.key] & values if r.key in terms else values
        return terms

    @property
    def indexable(self) -> bool:
        """True when :meth:`indexable_terms` says all there is to the selector."""
        return not self.nothing and all(
            r.operator in (EQUALS, DOUBLE_EQUALS, IN) for r in self.requirements
        )

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must equal for a match, if the selector pins it to one value."""
        for r in self.requirements:
            if r.key == key and r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                return r.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sorted_by_key(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(requirements, key=lambda r: r.key))


# Lexer tokens. Identifiers are any run of characters that are neither whitespace nor one of
# the special symbols, exactly as Kubernetes lexes, so validity is judged afterwards by
# the key and value validators and not by the tokenizer.
# Symbols are their own token names; identifiers, lexer errors and the end have names that
# cannot be spelled in a selector.
_END, _ERROR, _IDENT = "<end>", "<error>", "<identifier>"
_SYMBOLS: Final = frozenset({")", ",", "!", "==", "=", ">", "in", "<", "!=", "notin", "("})
_OPERATOR_TOKENS: Final = {
    "in": IN,
    "notin": NOT_IN,
    "=": EQUALS,
    "==": DOUBLE_EQUALS,
    "!=": NOT_EQUALS,
    ">": GREATER_THAN,
    "<": LESS_THAN,
}
_SPECIAL: Final = frozenset("=!(),<>")
_WHITESPACE: Final = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end:
            tokens.append((_END, ""))
            return tokens
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still spells a known symbol.
            buffer, best = "", ("", "")
            while pos < end and text[pos] in _SPECIAL:
                candidate = buffer + text[pos]
                if candidate in _SYMBOLS:
                    buffer, best = candidate, (candidate, candidate)
                    pos += 1
                elif best[0]:
                    break
                else:
                    buffer = candidate
                    pos += 1
            tokens.append(
                best if best[0] else (_ERROR, f"error expected: keyword found '{buffer}'")
            )
            continue
        start = pos
        while pos < end and text[pos] not in _WHITESPACE and text[pos] not in _SPECIAL:
            pos += 1
        word = text[start:pos]
        tokens.append((word, word) if word in ("in", "notin") else (_IDENT, word))


class _Parser:
    """Recursive-descent parser over the token list, after Kubernetes' ``labels.Parser``.

    Where the grammar expects a value, the keywords ``in``/``notin`` are plain identifiers
    (``in=notin`` is a valid selector); only in operator position are they operators.
    """

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.position = 0

    def lookahead(self, *, values: bool = True) -> tuple[str, str]:
        tok, lit = self.tokens[min(self.position, len(self.tokens) - 1)]
        if values and tok in ("in", "notin"):
            tok = _IDENT
        return tok, lit

    def consume(self, *, values: bool = True) -> tuple[str, str]:
        item = self.lookahead(values=values)
        self.position += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_IDENT, "!"):
                try:
                    requirements.append(self.requirement())
                except errors.BadRequest as exc:
                    raise errors.BadRequest(f"unable to parse requirement: {exc.message}") from exc
                tok, lit = self.consume()
                if tok == _END:
                    return requirements
                if tok != ",":
                    raise errors.BadRequest(f"found '{lit}', expected: ',' or 'end of string'")
                tok, lit = self.lookahead()
                if tok not in (_IDENT, "!"):
                    raise errors.BadRequest(f"found '{lit}', expected: identifier after ','")
            elif tok == _END:
                return requirements
            else:
                raise errors.BadRequest(
                    f"found '{lit}', expected: !, identifier, or 'end of string'"
                )

    def requirement(self) -> Requirement:
        operator = ""
        tok, lit = self.consume()
        if tok == "!":
            operator = DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _IDENT:
            raise errors.BadRequest(f"found '{lit}', expected: identifier")
        key = lit
        problems = qualified_name_errors(key)
        if problems:
            raise errors.BadRequest(errors.invalid("", key, "; ".join(problems)).render())
        if self.lookahead()[0] in (_END, ",") and operator != DOES_NOT_EXIST:
            operator = EXISTS
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator, ())
        operator = self.operator()
        if operator in (IN, NOT_IN):
            values = self.value_set()
        else:
            values = self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def operator(self) -> str:
        tok, lit = self.consume(values=False)
        if tok not in _OPERATOR_TOKENS:
            raise errors.BadRequest(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return _OPERATOR_TOKENS[tok]

    def value_set(self) -> set[str]:
        tok, lit = self.consume()
        if tok != "(":
            raise errors.BadRequest(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok == ")":
            self.consume()
            return {""}
        if tok not in (_IDENT, ","):
            raise errors.BadRequest(f"found '{lit}', expected: ',', ')' or identifier")
        found = self.identifiers()
        if self.consume()[0] != ")":
            raise errors.BadRequest(f"found '{lit}', expected: ')'")
        return found

    def identifiers(self) -> set[str]:
        # Empty members are allowed: "(a,)" and "(,a)" both contain "".
        found: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _IDENT:
                found.add(lit)
                nxt, nlit = self.lookahead()
                if nxt == ",":
                    continue
                if nxt == ")":
                    return found
                raise errors.BadRequest(f"found '{nlit}', expected: ',' or ')'")
            if tok == ",":
                if not found:
                    found.add("")
                nxt, _ = self.lookahead()
                if nxt == ")":
                    found.add("")
                    return found
                if nxt == ",":
                    self.consume()
                    found.add("")
                continue
            raise errors.BadRequest(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in (_END, ","):
            return {""}
        tok, lit = self.consume()
        if tok == _IDENT:
            return {lit}
        raise errors.BadRequest(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form of a label selector; ``""`` or ``None`` selects everything.

    Raises :class:`errors.BadRequest` with Kubernetes' message on a syntax error or an
    invalid key or value.
    """
    if not text:
        return LabelSelector()
    return LabelSelector(_sorted_by_key(_Parser(text).parse()))


_EXPRESSION_OPERATORS: Final = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def label_selector_from_dict(
    selector: Mapping[str, Any] | None, *, path: str = ""
) -> LabelSelector:
    """Compile a ``metav1.LabelSelector`` as ``LabelSelectorAsSelector`` does.

    ``None`` matches nothing; ``{}`` (no matchLabels and no matchExpressions) matches
    everything. An invalid key, value or operator raises :class:`errors.BadRequest`.
    """
    if selector is None:
        return LabelSelector.match_nothing()
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return LabelSelector()
    requirements = [new_requirement(k, EQUALS, [v], path=path) for k, v in match_labels.items()]
    for expr in expressions:
        op = expr.get("operator")
        if op not in _EXPRESSION_OPERATORS:
            raise errors.BadRequest(f'"{op}" is not a valid label selector operator')
        requirements.append(
            new_requirement(
                expr.get("key", ""), _EXPRESSION_OPERATORS[op], expr.get("values") or [], path=path
            )
        )
    return LabelSelector(_sorted_by_key(requirements))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """The selector requiring every ``key=value`` of ``labels``; empty or ``None`` matches
    everything (``labels.SelectorFromSet``). Keys and values are not validated."""
    if not labels:
        return LabelSelector()
    return LabelSelector(_sorted_by_key(Requirement(k, EQUALS, (v,)) for k, v in labels.items()))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """``k1=v1,k2=v2`` sorted by key, or ``<none>`` (``labels.FormatLabels``)."""
    text = str(selector_from_set(labels))
    return text or "<none>"


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """A ``metav1.LabelSelector`` for display: its string form, ``<none>`` when that is empty,
    ``<error>`` when it does not compile (``metav1.FormatLabelSelector``)."""
    try:
        text = str(label_selector_from_dict(selector))
    except errors.BadRequest:
        return "<error>"
    return text or "<none>"
