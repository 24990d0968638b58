"""Test support: realistic live objects and the managedFields bookkeeping of an API server.

``record_update`` changes a live object the way an Update (or a non-forced Apply) by another
manager does on a real API server: the value changes, the field moves to that manager's
``managedFields`` entry (merged with its existing entry for the same operation and
subresource) and leaves the other managers' sets.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import yaml

DATA = Path(__file__).parent / "data" / "compare"
DELETE = object()

# A path for the helpers: field names, or a dict of merge keys for a list item.
Step = str | dict[str, Any]


def load_pair(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    desired = yaml.safe_load((DATA / f"{name}.desired.yaml").read_text())
    live = orjson.loads((DATA / f"{name}.live.json").read_bytes())
    return desired, live


def _token(step: Step) -> str:
    if isinstance(step, str):
        return f"f:{step}"
    return "k:" + orjson.dumps(dict(sorted(step.items()))).decode()


def _item_matches(item: Any, keys: dict[str, Any]) -> bool:
    return isinstance(item, dict) and all(item.get(k, "TCP" if k == "protocol" else None) == v
                                          for k, v in keys.items())


def set_value(obj: dict[str, Any], path: list[Step], value: Any) -> None:
    """Set (or with ``DELETE`` remove) the value at ``path``, creating parents."""
    node: Any = obj
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(step, str):
            if last:
                if value is DELETE:
                    node.pop(step, None)
                else:
                    node[step] = copy.deepcopy(value)
                return
            nxt = path[i + 1]
            node = node.setdefault(step, [] if isinstance(nxt, dict) else {})
        else:
            found = next((it for it in node if _item_matches(it, step)), None)
            if last:
                if found is not None:
                    node.remove(found)
                if value is not DELETE:
                    node.append(copy.deepcopy(value))
                return
            if found is None:
                found = dict(step)
                node.append(found)
            node = found


def _fields_at(fields: dict[str, Any], tokens: list[str], *, create: bool) -> dict[str, Any] | None:
    node = fields
    for token in tokens:
        if token not in node:
            if not create:
                return None
            node[token] = {}
        node = node[token]
    return node


def _drop(fields: dict[str, Any], tokens: list[str]) -> None:
    parent = _fields_at(fields, tokens[:-1], create=False)
    if parent is not None:
        parent.pop(tokens[-1], None)


def _leaf_tokens(value: Any, prefix: list[str]) -> list[list[str]]:
    """The FieldsV1 leaves a value written at ``prefix`` creates (maps are granular)."""
    if isinstance(value, dict) and value:
        out: list[list[str]] = [[*prefix, "."]]
        for k, v in value.items():
            out.extend(_leaf_tokens(v, [*prefix, f"f:{k}"]))
        return out
    return [prefix]


def record_update(live: dict[str, Any], manager: str, changes: list[tuple[list[Step], Any]], *,
                  operation: str = "Update", subresource: str = "",
                  time: str = "2026-11-21T09:12:44Z") -> dict[str, Any]:
    """A copy of ``live`` after ``manager`` wrote ``changes`` (path, value or ``DELETE``)."""
    out = copy.deepcopy(live)
    entries: list[dict[str, Any]] = out["metadata"].setdefault("managedFields", [])
    mine = next((e for e in entries if e["manager"] == manager and e["operation"] == operation
                 and e.get("subresource", "") == subresource), None)
    if mine is None:
        mine = {"apiVersion": live["apiVersion"], "fieldsType": "FieldsV1", "fieldsV1": {},
                "manager": manager, "operation": operation, "time": time}
        if subresource:
            mine["subresource"] = subresource
        entries.append(mine)
    mine["time"] = time
    for path, value in changes:
        set_value(out, path, value)
        tokens = [_token(s) for s in path]
        for entry in entries:
            if entry is not mine:
                _drop(entry["fieldsV1"], tokens)
        if value is DELETE:
            _drop(mine["fieldsV1"], tokens)
            continue
        leaves = _leaf_tokens(value, tokens) if not isinstance(path[-1], dict) else [
            [*tokens, "."], *[t for k, v in value.items() for t in _leaf_tokens(v, [*tokens, f"f:{k}"])]]
        for leaf in leaves:
            if leaf[-1] == ".":
                _fields_at(mine["fieldsV1"], leaf[:-1], create=True)["."] = {}
            else:
                _fields_at(mine["fieldsV1"], leaf, create=True)
    out["metadata"]["generation"] = int(out["metadata"].get("generation", 1)) + 1
    return out


def without_managed_fields(live: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(live)
    out["metadata"].pop("managedFields", None)
    return out
