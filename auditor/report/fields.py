"""Which fields a change touched, from the two normalised versions the ledger kept.

Only paths come out of here, never values: the report lists *what* moved, and Secret values
must not reach it in any form. Paths use the project's notation (dotted fields, list items by
``name`` when every item has one, keys with dots in brackets), so a path here reads like one
in ``drift-auditor diff``.
"""

from __future__ import annotations

from typing import Any

MAX_PATHS = 20
MAX_DEPTH = 12
# Server bookkeeping that moves on every write and says nothing about what a person changed.
_NOISE = frozenset({"metadata.resourceVersion", "metadata.generation", "metadata.managedFields",
                    "metadata.uid", "metadata.creationTimestamp", "status"})


def _join(prefix: str, key: str) -> str:
    part = f'["{key}"]' if ("." in key or "[" in key or not key) else key
    if not prefix:
        return part
    return prefix + part if part.startswith("[") else f"{prefix}.{part}"


def _named(items: list[Any]) -> dict[str, Any] | None:
    if not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                            for i in items):
        return None
    out = {str(i["name"]): i for i in items}
    return out if len(out) == len(items) else None


def _walk(old: Any, new: Any, prefix: str, depth: int, out: list[str]) -> None:
    if len(out) >= MAX_PATHS or old == new or prefix in _NOISE:
        return
    if depth < MAX_DEPTH and isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            # Most keys of two versions hold equal values: skip them before naming their path
            # (a quarter's 19,000 updates: 0.88 → 0.58 s under cProfile).
            a, b = old.get(key), new.get(key)
            if a != b:
                _walk(a, b, _join(prefix, str(key)), depth + 1, out)
        return
    if depth < MAX_DEPTH and isinstance(old, list) and isinstance(new, list):
        a, b = _named(old), _named(new)
        if a is not None and b is not None:
            for name in sorted(a.keys() | b.keys()):
                x, y = a.get(name), b.get(name)
                if x != y:
                    _walk(x, y, f"{prefix}[name={name}]", depth + 1, out)
            return
    out.append(prefix or "(object)")


def changed_paths(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """The leaf paths that differ between two versions (at most :data:`MAX_PATHS`)."""
    if old is None or new is None:
        return []
    out: list[str] = []
    _walk(old, new, "", 0, out)
    return out
