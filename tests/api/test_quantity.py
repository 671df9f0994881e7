"""resource.Quantity parsing and formatting, checked against values Kubernetes produces."""

from __future__ import annotations

from decimal import Decimal

import pytest

from procorch.api.quantity import (
    ERR_FORMAT,
    ERR_SUFFIX,
    bytes_of,
    canonical_quantity,
    cpu_millis,
    format_bytes,
    format_cpu_millis,
    format_memory,
    is_quantity,
    parse_quantity,
    parse_quantity_format,
    round_up_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Ki", 1024),
        ("1Mi", 1024**2),
        ("2Gi", 2 * 1024**3),
        ("1Ti", 1024**4),
        ("1Pi", 1024**5),
        ("1Ei", 1024**6),
        ("1n", Decimal("1e-9")),
        ("1u", Decimal("1e-6")),
        ("250m", Decimal("0.25")),
        ("3k", 3000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("1e3", 1000),
        ("1E3", 1000),
        ("5e-2", Decimal("0.05")),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("1.", 1),
        ("+7", 7),
        ("-500m", Decimal("-0.5")),
        ("0", 0),
        (2, 2),
        (0.25, Decimal("0.25")),
    ],
)
def test_parse_quantity_understands_every_suffix(text: str | float, value: object) -> None:
    assert parse_quantity(text) == Decimal(str(value))


def test_parse_quantity_rounds_below_nano_up() -> None:
    assert parse_quantity("0.0000000001") == Decimal("1e-9")
    assert parse_quantity("1.0000000001") == Decimal("1.000000001")


@pytest.mark.parametrize("text", ["", "abc", "1 Gi", "1Gb", "1.2.3", "1Gix", "12%"])
def test_parse_quantity_refuses_bad_format_with_kubernetes_message(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quantity(text)
    assert str(info.value) == ERR_FORMAT
    assert "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$" in str(info.value)


@pytest.mark.parametrize("text", ["1mi", "1e", "1Kii", "5kk"])
def test_parse_quantity_refuses_unknown_suffix(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quantity(text)
    assert str(info.value) == ERR_SUFFIX


def test_parse_quantity_refuses_booleans_and_other_types() -> None:
    with pytest.raises(ValueError):
        parse_quantity(True)
    with pytest.raises(TypeError):
        parse_quantity(["1"])  # type: ignore[arg-type]
    assert not is_quantity(None)
    assert is_quantity("10Mi")


def test_parse_quantity_reports_the_format_it_was_written_in() -> None:
    assert parse_quantity_format("1Gi")[1] == "BinarySI"
    assert parse_quantity_format("1G")[1] == "DecimalSI"
    assert parse_quantity_format("1e9")[1] == "DecimalExponent"
    # A binary value below one has no binary form.
    assert parse_quantity_format("0.5Ki")[1] == "BinarySI"
    assert parse_quantity_format("0.0001Ki")[1] == "DecimalSI"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("1.5", "1500m"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("2048Ki", "2Mi"),
        ("1023Ki", "1023Ki"),
        ("0.1Ki", "102400m"),
        ("1000M", "1G"),
        ("129e6", "129e6"),
        ("1.5e3", "1500"),
        ("128974848", "128974848"),
        ("-0.5", "-500m"),
        ("0", "0"),
        (1, "1"),
        (0.5, "500m"),
    ],
)
def test_canonical_quantity_matches_kubernetes_serialization(
    text: str | float, canonical: str
) -> None:
    assert canonical_quantity(text) == canonical


def test_round_up_quantity_rounds_to_milli_units_like_resource_list_defaults() -> None:
    assert round_up_quantity("0.0001") == "1m"
    assert round_up_quantity("1n") == "1m"
    assert round_up_quantity("1.5") == "1500m"
    assert round_up_quantity("1Gi") == "1Gi"
    assert round_up_quantity("100m") == "100m"


def test_cpu_millis_and_bytes_round_up() -> None:
    assert cpu_millis("1") == 1000
    assert cpu_millis("250m") == 250
    assert cpu_millis("0.0001") == 1
    assert bytes_of("1Ki") == 1024
    assert bytes_of("1.5k") == 1500
    assert bytes_of("0.5") == 1


def test_print_helpers_match_kubectl_top() -> None:
    assert format_cpu_millis(250) == "250m"
    assert format_memory(300 * 1024 * 1024 + 5) == "300Mi"
    assert format_bytes(16 * 1024**3) == "16Gi"
    # Below 1Ki a binary quantity prints in decimal form, as in Kubernetes.
    assert format_bytes(1000) == "1k"
    assert format_bytes(1500) == "1500"
