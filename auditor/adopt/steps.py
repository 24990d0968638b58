"""A drift path (the ``diff`` contract's text form) as steps into a document, and finding
what a path points at."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditor.adopt.model import CannotEdit

_PLAIN_FIELD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_INT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class Sel:
    """A list item by merge keys, ``[name=web]`` / ``[containerPort=80,protocol=TCP]``."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Val:
    """An item of a set-like list, by value."""

    value: Any


@dataclass(frozen=True, slots=True)
class Idx:
    """A list item by position (or a number-valued set item)."""

    index: int


Step = str | Sel | Val | Idx


def _token(text: str) -> Any:
    text = text.strip()
    if text.startswith('"'):
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    return text


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf))
    return out


def parse_path(text: str) -> tuple[Step, ...]:
    """The steps of a drift path in the contract's text form (inverse of
    :func:`auditor.engine.paths.render`). A quoted bracket is a map key or a set item; which one
    depends on the node it is applied to."""
    steps: list[Step] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            i += 1
            continue
        if ch == "[":
            if text.startswith('["', i):
                value, end = json.JSONDecoder().raw_decode(text, i + 1)
                if not text.startswith("]", end):
                    raise CannotEdit(f"path {text!r}: expected ']' at {end}")
                steps.append(str(value))
                i = end + 1
                continue
            j, quoted = i + 1, False
            while j < len(text) and (quoted or text[j] != "]"):
                if text[j] == '"' and text[j - 1] != "\\":
                    quoted = not quoted
                j += 1
            inner = text[i + 1:j]
            parts = _split_outside_quotes(inner, ",")
            if inner.startswith("="):
                # A set item, `finalizers[="example.com/x"]`, as server-side apply writes it.
                steps.append(Val(_token(inner[1:])))
            elif all("=" in p for p in parts):
                pairs = []
                for part in parts:
                    k, _, v = part.partition("=")
                    pairs.append((k.strip(), _token(v)))
                steps.append(Sel(tuple(pairs)))
            elif _INT.fullmatch(inner):
                steps.append(Idx(int(inner)))
            else:
                steps.append(Val(_token(inner)))
            i = j + 1
            continue
        match = _PLAIN_FIELD.match(text, i)
        if match is None:
            raise CannotEdit(f"path {text!r}: unexpected {ch!r} at {i}")
        steps.append(match.group())
        i = match.end()
    return tuple(steps)


def same_value(a: Any, b: Any) -> bool:
    if a == b and type(a) is type(b):
        return True
    # Paths print merge-key values without type (``[containerPort=80]``).
    def text(v: Any) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    return not isinstance(a, dict | list) and not isinstance(b, dict | list) and text(a) == text(b)


def find_item(items: list[Any], step: Sel | Val | Idx) -> int | None:
    if isinstance(step, Idx):
        for n, item in enumerate(items):  # a number-valued set item first
            if not isinstance(item, dict | list) and same_value(item, step.index):
                return n
        return step.index if 0 <= step.index < len(items) else None
    for n, item in enumerate(items):
        if isinstance(step, Sel):
            if isinstance(item, dict) and all(k in item and same_value(item[k], v)
                                              for k, v in step.pairs):
                return n
        elif same_value(item, step.value) or (isinstance(step.value, str) and not isinstance(
                item, dict | list) and json.dumps(item, sort_keys=True) == step.value):
            return n
    return None


def get(root: Any, steps: Sequence[Step]) -> tuple[bool, Any]:
    """``(found, value)`` at ``steps`` below ``root``."""
    node = root
    for step in steps:
        if isinstance(node, dict):
            if not isinstance(step, str) and not isinstance(step, Val):
                return False, None
            name = step if isinstance(step, str) else str(step.value)
            if name not in node:
                return False, None
            node = node[name]
        elif isinstance(node, list):
            index = find_item(node, Val(step) if isinstance(step, str) else step)
            if index is None:
                return False, None
            node = node[index]
        else:
            return False, None
    return True, node
