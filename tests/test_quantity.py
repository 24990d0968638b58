"""resource.Quantity parsing and canonical strings."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from auditor.engine.quantity import canonical_quantity, parse_quantity, quantities_equal

EQUAL = [
    ("0.5", "500m"),
    (0.5, "500m"),
    (".5", "500m"),
    ("1024Mi", "1Gi"),
    ("1000m", "1"),
    (1, "1"),
    (1.0, "1"),
    ("1e3", "1k"),
    ("1E3", "1k"),
    ("1000", "1k"),
    ("1.5Gi", "1536Mi"),
    ("0.5Gi", "512Mi"),
    ("1073741824", "1Gi"),
    ("128974848", "123Mi"),
    ("129e6", "129M"),
    ("2", "2000m"),
    ("0.1", "100m"),
    (0.1, "100m"),
    ("1e-3", "1m"),
    ("+1", "1"),
    ("5.", "5"),
    ("0", "0m"),
    ("0", "0Gi"),
    ("-1.5", "-1500m"),
    ("1Ki", "1024"),
    ("1Ei", "1024Pi"),
    ("1E", "1000P"),
    ("100u", "0.0001"),
]

DIFFERENT = [
    ("1G", "1Gi"),
    ("1k", "1Ki"),
    ("1M", "1Mi"),
    ("500m", "0.6"),
    ("1E", "1E3"),
    ("1m", "1M"),
    ("1", "-1"),
]

CANONICAL = [
    ("500m", "500m"),
    ("0.25", "250m"),
    ("2Gi", "2Gi"),
    ("2048Mi", "2Gi"),
    ("1000000", "1M"),
    ("1500", "1500"),
    ("1.5", "1500m"),
    ("100Mi", "100Mi"),
    ("20Gi", "20Gi"),
    ("1n", "1n"),
    (3, "3"),
    ("-0", "0"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_values_have_equal_canonical_strings(a: Any, b: Any) -> None:
    assert canonical_quantity(a) == canonical_quantity(b)
    assert quantities_equal(a, b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_values_have_different_canonical_strings(a: str, b: str) -> None:
    assert canonical_quantity(a) != canonical_quantity(b)
    assert not quantities_equal(a, b)


@pytest.mark.parametrize(("value", "expected"), CANONICAL)
def test_canonical_string_is_readable(value: Any, expected: str) -> None:
    assert canonical_quantity(value) == expected


@pytest.mark.parametrize("text", ["1Gi", "1500m", "123Mi", "129M", "1n", "1536Mi", "1E"])
def test_canonical_strings_are_fixed_points_with_the_same_value(text: str) -> None:
    once = canonical_quantity(text)
    assert canonical_quantity(once) == once
    assert parse_quantity(once) == parse_quantity(text)


def test_parse_is_exact() -> None:
    assert parse_quantity("0.1") == Fraction(1, 10)
    assert parse_quantity(0.1) == Fraction(1, 10)  # the YAML text, not the binary float
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("1.5e2") == 150
    assert parse_quantity("-2m") == Fraction(-2, 1000)


@pytest.mark.parametrize("bad", ["abc", "", "1 Gi", " 1", "1Gb", "1.2.3", "Gi", "1e", "--1",
                                 "1e999999999", "١٢", True, False, None, [], {},
                                 float("nan"), float("inf")])
def test_invalid_quantities_are_left_as_they_are(bad: Any) -> None:
    assert parse_quantity(bad) is None
    assert canonical_quantity(bad) is bad


def test_precision_below_nano_rounds_up_to_nano() -> None:
    assert canonical_quantity("0.0000000001") == "1n"
    assert canonical_quantity("1.0000000001") == "1000000001n"


def test_resource_lists_round_up_to_milli_like_the_api_server() -> None:
    # SetDefaults_ResourceList: val.RoundUp(-3).
    assert canonical_quantity("0.0001", round_up_to_milli=True) == "1m"
    assert canonical_quantity("100u", round_up_to_milli=True) == "1m"
    assert canonical_quantity("1.0001", round_up_to_milli=True) == "1001m"
    assert canonical_quantity("250m", round_up_to_milli=True) == "250m"
    assert canonical_quantity("0.0001") == "100u"
