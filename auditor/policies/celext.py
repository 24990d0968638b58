"""Kubernetes' CEL extension libraries on top of the ``cel`` package (cel-rust bindings).

Kubernetes adds libraries to CEL that policy authors rely on (``k8s.io/apiserver/pkg/cel/
library`` and cel-go's ``ext.Strings``). The ``cel`` package evaluates core CEL natively; the
functions here are the ones it lacks, written to the upstream semantics:

- quantities: ``quantity(s)``, ``isQuantity(s)``, ``q.isGreaterThan(q)``, ``q.isLessThan(q)``,
  ``q.compareTo(q)``, ``q.add(q|int)``, ``q.sub(q|int)``, ``q.asInteger()``,
  ``q.asApproximateFloat()``, ``q.isInteger()``, ``q.sign()``;
- lists: ``isSorted()``, ``sum()``, ``min()``, ``max()``, ``indexOf(x)``, ``lastIndexOf(x)``
  (``min``/``max`` of an empty list is an error, as upstream);
- regex: ``s.find(re)`` (``""`` when nothing matches), ``s.findAll(re[, n])``;
- URLs: ``url(s)``, ``isURL(s)``, ``getScheme()``, ``getHost()``, ``getHostname()``,
  ``getPort()``, ``getEscapedPath()``, ``getQuery()``;
- strings: ``charAt``, ``indexOf``, ``lastIndexOf``, ``lowerAscii``, ``upperAscii``, ``replace``,
  ``split``, ``substring``, ``trim``, ``join`` (from ``cel.stdlib``).

A quantity or URL crosses into CEL as a map with one marker key (Python callbacks can only
return plain values). A quantity's map holds its canonical string, so ``==`` compares values:
``quantity('1Gi') == quantity('1024Mi')`` as in Kubernetes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cel import stdlib

from auditor.engine.quantity import format_quantity, parse_quantity

QUANTITY = "__quantity__"
URL = "__url__"
_INT64 = (-(2**63), 2**63 - 1)


class CelFunctionError(ValueError):
    """A Kubernetes CEL function was called with a value it rejects."""


# --------------------------------------------------------------------------- quantities


def _q(value: Any) -> Fraction:
    if isinstance(value, dict) and QUANTITY in value:
        parsed = parse_quantity(value[QUANTITY])
        if parsed is not None:
            return parsed
    if isinstance(value, int) and not isinstance(value, bool):
        return Fraction(value)
    raise CelFunctionError(f"expected a quantity, got {value!r}")


def _wrap(value: Fraction) -> dict[str, str]:
    return {QUANTITY: format_quantity(value)}


def quantity(text: Any) -> dict[str, str]:
    parsed = parse_quantity(text) if isinstance(text, str) else None
    if parsed is None:
        raise CelFunctionError(f"quantities must match the regular expression "
                               f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    return _wrap(parsed)


def is_quantity(text: Any) -> bool:
    return isinstance(text, str) and parse_quantity(text) is not None


def is_greater_than(a: Any, b: Any) -> bool:
    return _q(a) > _q(b)


def is_less_than(a: Any, b: Any) -> bool:
    return _q(a) < _q(b)


def compare_to(a: Any, b: Any) -> int:
    x, y = _q(a), _q(b)
    return (x > y) - (x < y)


def add(a: Any, b: Any) -> dict[str, str]:
    return _wrap(_q(a) + _q(b))


def sub(a: Any, b: Any) -> dict[str, str]:
    return _wrap(_q(a) - _q(b))


def as_integer(a: Any) -> int:
    value = _q(a)
    if value.denominator != 1 or not _INT64[0] <= value.numerator <= _INT64[1]:
        raise CelFunctionError("cannot convert value to integer")
    return int(value)


def as_approximate_float(a: Any) -> float:
    return float(_q(a))


def is_integer(a: Any) -> bool:
    value = _q(a)
    return value.denominator == 1 and _INT64[0] <= value.numerator <= _INT64[1]


def sign(a: Any) -> int:
    if isinstance(a, dict) and QUANTITY in a:
        value = _q(a)
        return (value > 0) - (value < 0)
    return int(stdlib.math_sign(a))


# --------------------------------------------------------------------------- lists


def _comparable(items: list[Any]) -> list[Any]:
    if items and isinstance(items[0], dict) and QUANTITY in items[0]:
        return [_q(i) for i in items]
    return items


def is_sorted(items: Any) -> bool:
    if not isinstance(items, list):
        raise CelFunctionError(f"isSorted: expected a list, got {type(items).__name__}")
    values = _comparable(items)
    try:
        return all(values[i] <= values[i + 1] for i in range(len(values) - 1))
    except TypeError as exc:
        raise CelFunctionError(f"isSorted: elements are not comparable: {exc}") from None


def list_sum(items: Any) -> Any:
    if not isinstance(items, list):
        raise CelFunctionError(f"sum: expected a list, got {type(items).__name__}")
    return stdlib.sum_(items) if items else 0


def list_min(items: Any) -> Any:
    if not isinstance(items, list) or not items:
        raise CelFunctionError("min called on an empty list" if isinstance(items, list)
                               else f"min: expected a list, got {type(items).__name__}")
    return min(items)


def list_max(items: Any) -> Any:
    if not isinstance(items, list) or not items:
        raise CelFunctionError("max called on an empty list" if isinstance(items, list)
                               else f"max: expected a list, got {type(items).__name__}")
    return max(items)


def index_of(target: Any, item: Any, *rest: Any) -> int:
    """Lists: position of the first equal element; strings: cel-go ``ext.Strings``."""
    if isinstance(target, list):
        return next((i for i, v in enumerate(target) if v == item), -1)
    return int(stdlib.index_of(target, item, *rest))


def last_index_of(target: Any, item: Any, *rest: Any) -> int:
    if isinstance(target, list):
        return next((i for i in range(len(target) - 1, -1, -1) if target[i] == item), -1)
    return int(stdlib.last_index_of(target, item, *rest))


# --------------------------------------------------------------------------- regex


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CelFunctionError(f"invalid regular expression {pattern!r}: {exc}") from None


def find(text: Any, pattern: Any) -> str:
    match = _regex(str(pattern)).search(str(text))
    return match.group(0) if match else ""


def find_all(text: Any, pattern: Any, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found = [m.group(0) for m in _regex(str(pattern)).finditer(str(text))]
    return found if limit < 0 else found[:limit]


# --------------------------------------------------------------------------- URLs


def _parse_url(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port  # validates the port
    except ValueError:
        return None
    # Go's url.ParseRequestURI: an absolute URI or an absolute path, no fragment.
    if not (parts.scheme or text.startswith("/")) or "#" in text or " " in text:
        return None
    return parts


def url(text: Any) -> dict[str, str]:
    if _parse_url(text) is None:
        raise CelFunctionError(f"URL parse error during conversion from string: {text!r}")
    return {URL: str(text)}


def is_url(text: Any) -> bool:
    return _parse_url(text) is not None


def _parts(u: Any) -> Any:
    if not (isinstance(u, dict) and URL in u):
        raise CelFunctionError(f"expected a URL, got {u!r}")
    return urlsplit(u[URL])


def get_scheme(u: Any) -> str:
    return str(_parts(u).scheme)


def get_host(u: Any) -> str:
    netloc = str(_parts(u).netloc)
    return netloc.rpartition("@")[2]


def get_hostname(u: Any) -> str:
    host = get_host(u)
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rpartition(":")[0] if ":" in host else host


def get_port(u: Any) -> str:
    host = get_host(u)
    if host.startswith("["):
        rest = host[host.index("]") + 1:]
        return rest[1:] if rest.startswith(":") else ""
    return host.rpartition(":")[2] if ":" in host else ""


def get_escaped_path(u: Any) -> str:
    return str(_parts(u).path)


def get_query(u: Any) -> dict[str, list[str]]:
    return {k: list(v) for k, v in parse_qs(_parts(u).query, keep_blank_values=True).items()}


# --------------------------------------------------------------------------- registry


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quantity": quantity, "isQuantity": is_quantity, "isGreaterThan": is_greater_than,
    "isLessThan": is_less_than, "compareTo": compare_to, "add": add, "sub": sub,
    "asInteger": as_integer, "asApproximateFloat": as_approximate_float,
    "isInteger": is_integer, "sign": sign,
    "isSorted": is_sorted, "sum": list_sum, "min": list_min, "max": list_max,
    "indexOf": index_of, "lastIndexOf": last_index_of,
    "find": find, "findAll": find_all,
    "url": url, "isURL": is_url, "getScheme": get_scheme, "getHost": get_host,
    "getHostname": get_hostname, "getPort": get_port, "getEscapedPath": get_escaped_path,
    "getQuery": get_query,
    "charAt": stdlib.char_at, "lowerAscii": stdlib.lower_ascii,
    "upperAscii": stdlib.upper_ascii, "replace": stdlib.replace, "split": stdlib.split,
    "substring": stdlib.substring, "trim": stdlib.trim, "join": stdlib.join,
    "reverse": stdlib.reverse,
}

# What cel-rust evaluates natively (functions, macros and conversions): anything else a
# program calls must be in FUNCTIONS, or the policy does not compile.
NATIVE: frozenset[str] = frozenset({
    "size", "has", "all", "exists", "exists_one", "map", "filter", "int", "uint", "double",
    "string", "bytes", "bool", "timestamp", "duration", "contains", "startsWith", "endsWith",
    "matches", "type", "dyn", "in", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getFullYear", "getHours", "getMilliseconds", "getMinutes", "getMonth", "getSeconds",
    "optional.of", "optional.none", "optional.ofNonZeroValue", "hasValue", "value", "orValue",
    "or",
})
