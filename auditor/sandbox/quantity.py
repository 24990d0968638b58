"""Resource quantities as the API server stores them (k8s.io/apimachinery ``resource.Quantity``).

A real server never echoes a quantity as written: it parses it and serialises the
canonical form of the same format family — ``0.5`` → ``500m``, ``1024Mi`` → ``1Gi``,
``1.5Ki`` → ``1536``, ``0.1Ki`` → ``102400m``, ``1000`` → ``1k``, ``2e3`` → ``2e3`` — and
resource lists (requests, limits, capacity, quota) are first rounded up to milli precision.
The sandbox does the same so that clients see what they would see on a cluster.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_NUMBER = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BINARY_SUFFIX = {v: k for k, v in _BINARY.items()}


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def canonical(value: Any, *, milli: bool = False) -> Any:
    """The canonical string for ``value``, or ``value`` unchanged if it is not a quantity."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    text = str(value).strip()
    m = _NUMBER.match(text)
    if not m:
        return value
    number, suffix = Fraction(m.group(1)), m.group(2)
    if suffix in _BINARY:
        fmt, amount = "binary", number * 1024 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        fmt, amount = "decimal", number * Fraction(10) ** _DECIMAL[suffix]
    elif re.fullmatch(r"[eE][+-]?[0-9]+", suffix):
        fmt, amount = "exponent", number * Fraction(10) ** int(suffix[1:])
    else:
        return value
    # Quantities keep nano precision (finer values round up); resource lists keep milli.
    scale = 3 if milli else 9
    amount = Fraction(_ceil(amount * 10**scale), 10**scale)
    if amount == 0:
        return "0"
    if fmt == "binary":
        if -1024 < amount < 1024 or amount.denominator != 1:
            fmt = "decimal"  # as upstream: no rounding, no confusing "0.5Ki"
        else:
            mantissa, power = int(amount), 0
            while mantissa % 1024 == 0 and power < 6:
                mantissa //= 1024
                power += 1
            return f"{mantissa}{_BINARY_SUFFIX.get(power, '')}"
    mantissa_f, exponent = amount * 10**9, -9
    mantissa = int(mantissa_f)
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if fmt == "exponent":
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def canonical_list(resources: Any) -> None:
    """Canonicalise a ResourceList (a map of quantities) in place, at milli precision."""
    if isinstance(resources, dict):
        for key, value in resources.items():
            resources[key] = canonical(value, milli=True)
