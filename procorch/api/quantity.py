"""Kubernetes ``resource.Quantity``: parsing, canonical form, and helpers for printing.

A quantity is a decimal number with an optional suffix: a binary SI suffix (``Ki Mi Gi Ti Pi
Ei``), a decimal SI suffix (``n u m k M G T P E``) or a decimal exponent (``1e3``, ``5E-2``).
Parsing follows apimachinery's hand-written scanner, quirks included (``"1."`` is valid, so
is a bare ``"-"``), and rounds a non-zero value *up* to the nearest nano unit, as Kubernetes
does. :func:`canonical_quantity` renders the form the API server stores and returns
(``"0.5"`` -> ``"500m"``, ``"1024Mi"`` -> ``"1Gi"``).

Pure data: no I/O.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal, InvalidOperation, localcontext
from typing import Literal

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]
QuantityValue = str | int | float

QUANTITY_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = f"quantities must match the regular expression '{QUANTITY_REGEX}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {exp // 10: suffix for suffix, exp in _BINARY_SUFFIXES.items()}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_NANO = Decimal("1e-9")
# Enough digits for any value the API deals in (Go uses arbitrary precision for big ones).
_PRECISION = 80


def _as_text(value: QuantityValue) -> str:
    # bool is an int in Python but never a quantity in JSON: Kubernetes' decoder reports it
    # as a badly formatted quantity, hence ValueError.
    if isinstance(value, bool):
        raise ValueError(ERR_FORMAT)  # noqa: TRY004
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(ERR_FORMAT)
        return repr(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"a quantity must be a string or a number, not {type(value).__name__}")


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Split ``text`` into (positive, number, digits-after-dot, suffix) like apimachinery.

    Returns the raw number text (sign included) used for the slow path.
    """
    positive = True
    pos = 0
    end = len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] != "-"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    whole = text[start:pos] or "0"
    if pos >= end:
        return positive, whole, "", ""
    fraction = ""
    if text[pos] == ".":
        pos += 1
        frac_start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        fraction = text[frac_start:pos]
        if pos >= end:
            return positive, whole, fraction, ""
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(ERR_FORMAT)
    return positive, whole, fraction, text[suffix_start:end]


def _interpret_suffix(suffix: str) -> tuple[int, int, Format]:
    """(base, exponent, format) for a suffix, as apimachinery's suffixer does."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        digits = rest[1:] if rest[:1] in ("+", "-") else rest
        if digits and all(c in _DIGITS for c in digits):
            return 10, int(rest), "DecimalExponent"
    raise ValueError(ERR_SUFFIX)


def parse_quantity_format(value: QuantityValue) -> tuple[Decimal, Format]:
    """Parse a quantity; returns its exact value and the format it was written in."""
    text = _as_text(value)
    if not text:
        raise ValueError(ERR_FORMAT)
    if text == "0":
        return Decimal(0), "DecimalSI"
    positive, whole, fraction, suffix = _scan(text)
    base, exponent, fmt = _interpret_suffix(suffix)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        try:
            number = Decimal(f"{whole}.{fraction}" if fraction else whole)
            if base == 10:
                number = number.scaleb(exponent)
            else:
                number = number * (Decimal(2) ** exponent)
            # Kubernetes rounds anything below a nano unit up, so asking for a sliver of a
            # resource still gets some of it.
            if number != 0:
                number = number.quantize(_NANO, rounding=ROUND_CEILING)
        except (InvalidOperation, ArithmeticError) as exc:
            # Digits beyond any sensible precision, or an absurd exponent.
            raise ValueError(ERR_NUMERIC) from exc
        if fmt == "BinarySI" and 0 < number < 1:
            fmt = "DecimalSI"
        if not positive:
            number = -number
        return _tidy(number), fmt


def _tidy(number: Decimal) -> Decimal:
    # Drop trailing zeros without switching integers to exponent notation (1E+3).
    if number == number.to_integral_value():
        return Decimal(int(number))
    return number.normalize()


def parse_quantity(value: QuantityValue) -> Decimal:
    """The value of a quantity; raises ``ValueError`` with Kubernetes' message when invalid."""
    return parse_quantity_format(value)[0]


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def _integral(value: Decimal) -> int | None:
    return int(value) if value == value.to_integral_value() else None


def _decimal_mantissa(value: Decimal) -> tuple[int, int]:
    """(mantissa, exponent) with an integer mantissa and the exponent a multiple of 3,
    the exponent as large as the value allows (``1500`` -> (1500, 0), ``1000`` -> (1, 3))."""
    sign, digits, exp = value.as_tuple()
    assert isinstance(exp, int)
    mantissa = int("".join(map(str, digits)) or "0")
    # Move to the next multiple of three at or below the exponent.
    shift = exp % 3
    mantissa *= 10**shift
    exp -= shift
    while mantissa != 0 and mantissa % 1000 == 0 and exp < 18:
        mantissa //= 1000
        exp += 3
    # Exponents past exa have no suffix: fold them back into the mantissa.
    while exp > 18:
        mantissa *= 1000
        exp -= 3
    return (-mantissa if sign else mantissa), exp


def format_quantity(value: Decimal, fmt: Format = "DecimalSI") -> str:
    """Render a value in Kubernetes' canonical form for the given format."""
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        whole = _integral(value)
        if -1024 < value < 1024 or whole is None:
            fmt = "DecimalSI"
        else:
            power = 0
            while power < 6 and whole % 1024 == 0:
                whole //= 1024
                power += 1
            return f"{whole}{_BINARY_BY_POWER.get(power, '')}"
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        mantissa, exponent = _decimal_mantissa(value.normalize())
    if fmt == "DecimalExponent":
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if exponent < -9:
        # Values are held to nano precision, so this cannot normally happen.
        return f"{mantissa}e{exponent}"
    return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


def canonical_quantity(value: QuantityValue) -> str:
    """The canonical text Kubernetes stores for a quantity (``"0.5"`` -> ``"500m"``)."""
    number, fmt = parse_quantity_format(value)
    return format_quantity(number, fmt)


def round_up_quantity(value: QuantityValue, *, scale: int = -3) -> str:
    """Round a quantity up to ``10**scale`` and return its canonical text.

    Kubernetes does this to every resource list with ``scale=-3`` (milli units), so
    ``cpu: 0.0001`` is stored as ``1m``.
    """
    number, fmt = parse_quantity_format(value)
    unit = Decimal(1).scaleb(scale)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        rounded = (number / unit).to_integral_value(rounding=ROUND_CEILING) * unit
    return format_quantity(rounded, fmt)


def cpu_millis(q: QuantityValue) -> int:
    """CPU in milli-cores, rounded up as Kubernetes' ``MilliValue`` does."""
    return math.ceil(parse_quantity(q) * 1000)


def bytes_of(q: QuantityValue) -> int:
    """A memory or storage quantity in bytes, rounded up as Kubernetes' ``Value`` does."""
    return math.ceil(parse_quantity(q))


def format_cpu_millis(millis: int) -> str:
    """CPU for tables and metrics, as ``kubectl top`` prints it (``250m``)."""
    return f"{int(millis)}m"


def format_memory(n_bytes: int) -> str:
    """Memory for tables and metrics, in whole mebibytes as ``kubectl top`` prints it."""
    return f"{int(n_bytes) // (1024 * 1024)}Mi"


def format_bytes(n_bytes: int) -> str:
    """A byte count in canonical quantity form (``1073741824`` -> ``1Gi``; below 1Ki it
    prints in decimal form, ``1000`` -> ``1k``), for values such as node capacity."""
    return format_quantity(Decimal(int(n_bytes)), "BinarySI")
