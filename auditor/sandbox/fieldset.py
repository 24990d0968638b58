"""Field sets: the paths a field manager owns, as in sigs.k8s.io/structured-merge-diff.

A path is a tuple of encoded path elements, exactly as they appear in ``fieldsV1``:
``f:<field>``, ``k:<json of the list-map keys>``, ``v:<json of a set value>``, ``i:<index>``.
Three walks mirror structured-merge-diff:

* :func:`to_field_set` — the set an *applied configuration* claims (``ToFieldSet``);
* :func:`compare` — added / modified / removed paths between two objects (``Compare``),
  which is what an ``Update`` operation takes ownership of;
* :func:`merge` — an applied configuration merged into the live object.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from auditor.sandbox.schema import Field, child, element

Path = tuple[str, ...]
FieldSet = set[Path]


class _Missing:
    """Marks "no value at all", which is different from JSON ``null``."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _key_element(item: Any, f: Field) -> str | None:
    if not isinstance(item, dict):
        return None
    key: dict[str, Any] = {}
    defaults = dict(f.key_defaults)
    for name in f.keys:
        if name in item:
            key[name] = item[name]
        elif name in defaults:
            key[name] = defaults[name]
    if not key:
        return None
    return "k:" + orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()


def _item_element(item: Any, f: Field, index: int) -> str:
    if f.list == "map":
        found = _key_element(item, f)
        if found is not None:
            return found
    if f.list == "set":
        return "v:" + orjson.dumps(item).decode()
    return f"i:{index}"


def _is_leaf(value: Any, f: Field) -> bool:
    if f.atomic:
        return True
    if isinstance(value, dict):
        return False
    return not (isinstance(value, list) and f.list in ("map", "set"))


def to_field_set(value: Any, f: Field, path: Path = ()) -> FieldSet:
    """The paths an applied configuration sets (structured-merge-diff ``ToFieldSet``)."""
    out: FieldSet = set()
    _to_set(value, f, path, out)
    return out


def _to_set(value: Any, f: Field, path: Path, out: FieldSet) -> None:
    if _is_leaf(value, f):
        out.add(path)
        return
    if isinstance(value, dict):
        for key, sub in value.items():
            cf, declared = child(f, key)
            cpath = (*path, "f:" + key)
            _to_set(sub, cf, cpath, out)
            if sub is None or sub == {} or not declared:
                out.add(cpath)
        return
    ef = element(f)
    for i, item in enumerate(value):
        ipath = (*path, _item_element(item, f, i))
        if f.list == "set":
            out.add(ipath)
            continue
        _to_set(item, ef, ipath, out)
        out.add(ipath)


def compare(lhs: Any, rhs: Any, f: Field) -> tuple[FieldSet, FieldSet, FieldSet]:
    """Added, modified and removed paths from ``lhs`` to ``rhs`` (structured-merge-diff ``Compare``)."""
    added: FieldSet = set()
    modified: FieldSet = set()
    removed: FieldSet = set()
    _compare(lhs, rhs, f, (), added, modified, removed)
    return added, modified, removed


def _compare(lhs: Any, rhs: Any, f: Field, path: Path, added: FieldSet, modified: FieldSet,
             removed: FieldSet) -> None:
    # Mirrors structured-merge-diff's merging walker: leaves (scalars, atomic values, and
    # maps/lists empty on both sides) are added/removed/modified; a map or list item present
    # on one side only is added/removed together with everything under it.
    if lhs is MISSING:
        _mark_all(rhs, f, path, added)
        return
    if rhs is MISSING:
        _mark_all(lhs, f, path, removed)
        return
    if lhs == rhs:
        return  # identical subtrees: nothing added, modified or removed below here
    if not f.atomic:
        tl, tr = type(lhs), type(rhs)
        if (tl is dict or lhs is None) and (tr is dict or rhs is None):
            lm: dict[str, Any] = lhs or {}
            rm: dict[str, Any] = rhs or {}
            if lm or rm:
                for key in lm.keys() | rm.keys():
                    cf, _ = child(f, key)
                    _compare(lm.get(key, MISSING), rm.get(key, MISSING), cf,
                             (*path, "f:" + key), added, modified, removed)
                return
        elif f.list is not None and (tl is list or lhs is None) and (tr is list or rhs is None):
            ll: list[Any] = lhs or []
            rl: list[Any] = rhs or []
            if ll or rl:
                left = {_item_element(item, f, i): item for i, item in enumerate(ll)}
                right = {_item_element(item, f, i): item for i, item in enumerate(rl)}
                ef = element(f)
                for pe in left.keys() | right.keys():
                    li = left.get(pe, MISSING)
                    ri = right.get(pe, MISSING)
                    if f.list == "set":
                        if li is MISSING:
                            added.add((*path, pe))
                        elif ri is MISSING:
                            removed.add((*path, pe))
                        continue
                    _compare(li, ri, ef, (*path, pe), added, modified, removed)
                return
    modified.add(path)


def _mark_all(value: Any, f: Field, path: Path, out: FieldSet) -> None:
    """Every path of a subtree present on one side only (the fast path of ``_compare``)."""
    out.add(path)
    if f.atomic:
        return
    if type(value) is dict:
        for key, sub in value.items():
            cf, _ = child(f, key)
            _mark_all(sub, cf, (*path, "f:" + key), out)
    elif type(value) is list and f.list is not None:
        if f.list == "set":
            out.update((*path, _item_element(item, f, i)) for i, item in enumerate(value))
            return
        ef = element(f)
        for i, item in enumerate(value):
            _mark_all(item, ef, (*path, _item_element(item, f, i)), out)


def all_paths(value: Any, f: Field, path: Path = ()) -> FieldSet:
    """Every field and list-item path present in ``value`` (not the root)."""
    out: FieldSet = set()
    _all_paths(value, f, path, out)
    out.discard(path)
    return out


def _all_paths(value: Any, f: Field, path: Path, out: FieldSet) -> None:
    out.add(path)
    if f.atomic:
        return
    if type(value) is dict:
        for key, sub in value.items():
            cf, _ = child(f, key)
            _all_paths(sub, cf, (*path, "f:" + key), out)
    elif type(value) is list and f.list is not None:
        ef = element(f)
        for i, item in enumerate(value):
            ipath = (*path, _item_element(item, f, i))
            if f.list == "set":
                out.add(ipath)
            else:
                _all_paths(item, ef, ipath, out)


def merge(live: Any, config: Any, f: Field) -> Any:
    """``config`` merged into ``live`` as server-side apply does."""
    if live is MISSING or live is None or _is_leaf(config, f) or type(live) is not type(config):
        return copy.deepcopy(config)
    if isinstance(config, dict):
        out = dict(live)
        for key, sub in config.items():
            cf, _ = child(f, key)
            out[key] = merge(live.get(key, MISSING), sub, cf)
        return out
    out_list = list(live)
    index = {_item_element(item, f, i): i for i, item in enumerate(out_list)}
    ef = element(f)
    for i, item in enumerate(config):
        pe = _item_element(item, f, i)
        if pe in index:
            pos = index[pe]
            out_list[pos] = item if f.list == "set" else merge(out_list[pos], item, ef)
        else:
            index[pe] = len(out_list)
            out_list.append(copy.deepcopy(item))
    return out_list


def remove_path(obj: Any, path: Path, f: Field) -> None:
    """Remove the value at ``path`` from ``obj`` in place, if it is there."""
    node = obj
    nf = f
    for depth, pe in enumerate(path):
        last = depth == len(path) - 1
        if pe.startswith("f:"):
            if not isinstance(node, dict):
                return
            key = pe[2:]
            if key not in node:
                return
            if last:
                del node[key]
                return
            nf, _ = child(nf, key)
            node = node[key]
        else:
            if not isinstance(node, list):
                return
            pos = next((i for i, item in enumerate(node) if _item_element(item, nf, i) == pe),
                       None)
            if pos is None:
                return
            if last:
                del node[pos]
                return
            node = node[pos]
            nf = element(nf)


def encode(fields: FieldSet) -> dict[str, Any]:
    """``fieldsV1`` JSON for a set of paths (``"."`` marks a member that also has children).

    Inserting the paths in sorted order leaves every level sorted, as the server emits it.
    """
    tree: dict[str, Any] = {}
    for path in sorted(fields):
        node = tree
        for depth, pe in enumerate(path):
            nxt = node.get(pe)
            if nxt is None:
                if not node and depth > 0 and path[:depth] in fields:
                    node["."] = {}
                nxt = node[pe] = {}
            node = nxt
    return tree


def decode(fields_v1: dict[str, Any], prefix: Path = ()) -> FieldSet:
    """The set of paths a ``fieldsV1`` object describes."""
    out: FieldSet = set()
    for pe, sub in fields_v1.items():
        if pe == ".":
            out.add(prefix)
            continue
        path = (*prefix, pe)
        if sub:
            out |= decode(sub, path)
        else:
            out.add(path)
    return out


def path_string(path: Path) -> str:
    """A path as structured-merge-diff prints it in conflict messages: ``.spec.replicas``."""
    parts: list[str] = []
    for pe in path:
        kind, rest = pe[:2], pe[2:]
        if kind == "f:":
            parts.append("." + rest)
        elif kind == "k:":
            key = orjson.loads(rest)
            parts.append("[" + ",".join(f"{k}={orjson.dumps(v).decode()}"
                                        for k, v in key.items()) + "]")
        elif kind == "v:":
            parts.append("[=" + rest + "]")
        else:
            parts.append("[" + rest + "]")
    return "".join(parts)


def has_prefix(fields: FieldSet, prefix: Path) -> bool:
    """Whether any path in ``fields`` is ``prefix`` or lies under it."""
    n = len(prefix)
    return any(p[:n] == prefix for p in fields)
