"""Readable deltas where a plain ``desired → live`` pair is not enough (the only deepdiff user).

deepdiff costs milliseconds per object pair, so it never runs on the comparison's in-sync
path; it is used where its output is worth it:

* :func:`text_delta` – a unified diff of two long multi-line strings (ConfigMap data, an
  embedded config file), so a one-line change in a 200-line file reads as one line;
* :func:`object_delta` – a summary of what changed between two versions of one object
  (for the ledger's change history), with paths in :mod:`auditor.engine.paths` text form.
"""

from __future__ import annotations

from typing import Any

import orjson

from auditor.engine.paths import Element, Index, render

# Strings shorter than this or on one line read fine as ``desired → live``.
MULTILINE_MIN_LINES = 3

_OPS = {
    "values_changed": "changed",
    "type_changes": "changed",
    "dictionary_item_added": "added",
    "iterable_item_added": "added",
    "dictionary_item_removed": "removed",
    "iterable_item_removed": "removed",
    "set_item_added": "added",
    "set_item_removed": "removed",
}


def is_multiline(value: Any) -> bool:
    """Whether a value is a string long enough to deserve a line diff."""
    return isinstance(value, str) and value.count("\n") + 1 >= MULTILINE_MIN_LINES


def list_delta(desired: list[Any], live: list[Any]) -> tuple[list[Any], list[Any]]:
    """``(removed, added)``: the items of an atomic list (RBAC ``rules``: it drifts as a
    whole) that ``desired`` has and ``live`` lacks, and the reverse, compared as canonical
    JSON. Both empty when the lists hold the same items in another order (order is meaning
    in an atomic list: the caller shows the lists whole then)."""
    def key(item: Any) -> bytes:
        return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)

    want = [key(i) for i in desired]
    have = [key(i) for i in live]
    removed = [i for i, k in zip(desired, want, strict=True) if k not in have]
    added = [i for i, k in zip(live, have, strict=True) if k not in want]
    return removed, added


def text_delta(desired: str, live: str) -> list[str]:
    """Unified-diff lines (``-`` desired, ``+`` live) of two multi-line strings, without the
    file headers."""
    from deepdiff import DeepDiff  # ~0.13 s to import: only when a multi-line value drifted

    diff = DeepDiff(desired, live)
    change = diff.get("values_changed", {}).get("root", {})
    text = change.get("diff", "") if isinstance(change, dict) else ""
    return [line for line in str(text).splitlines() if not line.startswith(("---", "+++"))]


def object_delta(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """``(path, op, old, new)`` for every difference between two versions of an object,
    sorted by path. Lists are compared by position: this is a history summary, not drift."""
    from deepdiff import DeepDiff

    diff = DeepDiff(old, new, view="tree")
    out: list[tuple[str, str, Any, Any]] = []
    for report, levels in diff.items():
        op = _OPS.get(report, "changed")
        for level in levels:
            elements = level.path(output_format="list")
            before = None if op == "added" else level.t1
            after = None if op == "removed" else level.t2
            out.append((render(_elements(elements)), op, before, after))
    out.sort(key=lambda row: (row[0], row[1]))
    return out


def _elements(raw: list[Any]) -> list[Element]:
    return [Index(e) if isinstance(e, int) and not isinstance(e, bool) else str(e) for e in raw]
