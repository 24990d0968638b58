"""Field paths: the elements the drift engine walks, and their text form (a contract).

A path is a tuple of elements:

* ``str`` – an object field or a map key;
* :class:`Key` – a list item identified by its merge keys (``k:{…}`` in FieldsV1);
* :class:`Value` – an item of a set-like list (``v:<json>`` in FieldsV1), rendered ``[="x"]``;
* :class:`Index` – a list item by position (``i:<n>`` in FieldsV1; never used to match).

Text form (``drift-auditor diff --output json``): dotted fields, list items by merge key
``[key=value]``, composite keys ``[containerPort=80,protocol=TCP]``, and keys that are not
plain identifiers in brackets with JSON quotes: ``metadata.labels["app.kubernetes.io/name"]``;
items of set-like lists (``list-type: set``) as structured-merge-diff writes them:
``metadata.finalizers[="example.com/cleanup"]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

_PLAIN = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]*")


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return value


class Key:
    """A list item identified by merge keys; equal whatever the order the keys come in."""

    __slots__ = ("_canon", "pairs")

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self.pairs: tuple[tuple[str, Any], ...] = tuple((k, _hashable(v)) for k, v in pairs)
        self._canon = tuple(sorted(self.pairs, key=lambda p: p[0]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self._canon == other._canon

    def __hash__(self) -> int:
        return hash(("k", self._canon))

    def __repr__(self) -> str:
        return f"Key({self.pairs!r})"


class Value:
    """An item of a set-like list, identified by its value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = _hashable(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and self.value == other.value

    def __hash__(self) -> int:
        return hash(("v", self.value))

    def __repr__(self) -> str:
        return f"Value({self.value!r})"


class Index:
    """A list item by position."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Index) and self.index == other.index

    def __hash__(self) -> int:
        return hash(("i", self.index))

    def __repr__(self) -> str:
        return f"Index({self.index})"


Element = str | Key | Value | Index
Path = tuple[Element, ...]


def _quote(text: str) -> str:
    return orjson.dumps(text).decode()


def _key_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and _PLAIN_VALUE.fullmatch(value) and value:
        return value
    return _quote(value) if isinstance(value, str) else str(value)


def render(path: Iterable[Element]) -> str:
    """The text form of a path."""
    out: list[str] = []
    for element in path:
        if isinstance(element, str):
            if _PLAIN.fullmatch(element):
                out.append(f".{element}" if out else element)
            else:
                out.append(f"[{_quote(element)}]")
        elif isinstance(element, Key):
            out.append("[" + ",".join(f"{k}={_key_value(v)}" for k, v in element.pairs) + "]")
        elif isinstance(element, Value):
            # structured-merge-diff's own form for a set item (`.metadata.finalizers[="x"]`,
            # as in server-side apply conflict messages): distinct from a map key `["x"]`.
            out.append(f"[={_quote(element.value) if isinstance(element.value, str) else element.value}]")
        else:
            out.append(f"[{element.index}]")
    return "".join(out)


def schema_path(path: Iterable[Element]) -> tuple[str, ...]:
    """The path as the schema and defaults tables see it: list items become ``"[]"``."""
    return tuple(e if isinstance(e, str) else "[]" for e in path)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a path pattern in the text form, with globs.

    ``*`` matches within one element (a field name, or a value inside brackets), ``**``
    matches across elements. A pattern also matches everything below the path it names
    (``spec.template`` covers ``spec.template.spec.containers[name=web].image``).
    """
    out: list[str] = []
    i = 0
    in_brackets = False
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append(r'[^\]]*' if in_brackets else r"[^.\[]*")
        else:
            if ch == "[":
                in_brackets = True
            elif ch == "]":
                in_brackets = False
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"(?:$|(?=[.\[]))")
