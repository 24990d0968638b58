"""Kubernetes ``resource.Quantity``: exact parsing and one canonical string per value.

Owns the quantity grammar of ``k8s.io/apimachinery/pkg/api/resource/quantity.go``::

    <quantity>     ::= <signedNumber><suffix>
    <number>       ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>       ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>     ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>    ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExp>   ::= "e" <signedNumber> | "E" <signedNumber>

Values are compared as exact fractions, so ``0.5`` == ``500m``, ``1024Mi`` == ``1Gi``,
``1e3`` == ``1k``. The canonical string is our own (Kubernetes keeps the input's *format*, so
``1Gi`` and ``1073741824`` print differently there; here equal values always print equally):

- integers print with the suffix (binary or decimal) that gives the fewest digits, decimal on
  a tie: ``1Gi``, ``1k``, ``512Mi``, ``1500`` (not ``1.5k``: suffixes never take fractions);
- fractions print in the largest of ``m``/``u``/``n`` that makes them whole: ``500m``, ``1500m``;
- precision below ``1n`` is rounded up to ``1n``, as the API server does.

Anything that is not a quantity (``"abc"``, ``True``, ``None``) is returned unchanged: the
comparison then shows it as it is instead of failing the run.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache
from typing import Final, TypeVar

T = TypeVar("T")

_BINARY: Final[dict[str, int]] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_DECIMAL_EXP: Final[dict[str, int]] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}
# Largest first: the printer wants the biggest suffix that divides the value.
_BINARY_DESC: Final[tuple[tuple[str, int], ...]] = tuple(
    sorted(_BINARY.items(), key=lambda kv: -kv[1]))
_DECIMAL_DESC: Final[tuple[tuple[str, int], ...]] = tuple(
    (s, 10**e) for s, e in sorted(_DECIMAL_EXP.items(), key=lambda kv: -kv[1]) if e > 0)
_SUBUNIT: Final[tuple[tuple[str, int], ...]] = (("m", 10**3), ("u", 10**6), ("n", 10**9))

# The exponent branch is tried after the SI suffixes; "1E" is exa, "1E3" is 10^3 because the
# anchored match backtracks into the exponent alternative.
# [0-9], not \d: Python's \d also matches other scripts' digits, which Kubernetes rejects.
_QUANTITY_RE: Final = re.compile(
    r"([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?[0-9]+))?")

# Kubernetes caps the exponent it accepts; a huge exponent would otherwise let a hostile
# manifest make Fraction build a number with billions of digits.
_MAX_EXPONENT: Final = 100


def parse_quantity(value: object) -> Fraction | None:
    """The exact value of a quantity (string, int or float), or ``None`` if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # repr() gives the shortest decimal that round-trips, i.e. what the YAML said (0.1,
        # not 0.1000000000000000055...).
        return Fraction(repr(value))
    if not isinstance(value, str):
        return None
    return _parse_str(value)


@lru_cache(maxsize=4096)
def _parse_str(text: str) -> Fraction | None:
    m = _QUANTITY_RE.fullmatch(text)
    if m is None:
        return None
    sign, number, suffix, exponent = m.groups()
    mantissa = Fraction(number if not number.endswith(".") else number[:-1])
    if suffix is not None:
        if suffix in _BINARY:
            mantissa *= _BINARY[suffix]
        else:
            mantissa *= Fraction(10) ** _DECIMAL_EXP[suffix]
    elif exponent is not None:
        exp = int(exponent)
        if abs(exp) > _MAX_EXPONENT:
            return None
        mantissa *= Fraction(10) ** exp
    return -mantissa if sign == "-" else mantissa


def format_quantity(value: Fraction, *, round_up_to_milli: bool = False) -> str:
    """The canonical string of an exact value (see the module docstring for the rules).

    ``round_up_to_milli`` applies the API server's ``SetDefaults_ResourceList``, which rounds
    every ``ResourceList`` entry up to milli precision (``0.0001`` is stored as ``1m``).
    """
    negative = value < 0
    magnitude = -value if negative else value
    scale = 10**3 if round_up_to_milli else 10**9
    if (magnitude * scale).denominator != 1:
        magnitude = Fraction(math.ceil(magnitude * scale), scale)
    sign = "-" if negative and magnitude else ""
    if magnitude.denominator == 1:
        return sign + _format_integer(magnitude.numerator)
    for suffix, factor in _SUBUNIT:
        scaled = magnitude * factor
        if scaled.denominator == 1:
            return f"{sign}{scaled.numerator}{suffix}"
    raise AssertionError("unreachable: magnitude was rounded to nano precision")  # pragma: no cover


def _format_integer(n: int) -> str:
    if n == 0:
        return "0"
    best = str(n)
    for suffix, factor in _BINARY_DESC:
        if n % factor == 0:
            candidate = f"{n // factor}{suffix}"
            if len(candidate) < len(best):
                best = candidate
            break
    for suffix, factor in _DECIMAL_DESC:
        if n % factor == 0:
            candidate = f"{n // factor}{suffix}"
            if len(candidate) <= len(best):
                best = candidate
            break
    return best


@lru_cache(maxsize=4096)
def _canonical_str(text: str, round_up_to_milli: bool) -> str | None:
    parsed = _parse_str(text)
    return None if parsed is None else format_quantity(parsed, round_up_to_milli=round_up_to_milli)


def canonical_quantity(value: T, *, round_up_to_milli: bool = False) -> str | T:
    """One string per quantity value (``"0.5"``, ``0.5`` and ``"500m"`` all give ``"500m"``).

    Values that are not quantities are returned unchanged.
    """
    if isinstance(value, str):
        out = _canonical_str(value, round_up_to_milli)
        return value if out is None else out
    parsed = parse_quantity(value)
    if parsed is None:
        return value
    return format_quantity(parsed, round_up_to_milli=round_up_to_milli)


def quantities_equal(a: object, b: object) -> bool:
    """Whether two quantities have the same exact value (non-quantities compare with ``==``)."""
    pa, pb = parse_quantity(a), parse_quantity(b)
    if pa is None or pb is None:
        return a == b
    return pa == pb
