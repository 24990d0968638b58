"""The three non-apply PATCH formats: strategic merge, JSON merge (RFC 7386), JSON (RFC 6902).

Strategic merge follows k8s.io/apimachinery ``strategicpatch``: lists whose Go field carries
``patchStrategy:"merge"`` merge by ``patchMergeKey`` (or as a set for primitives), other lists
are replaced; directives ``$patch: replace|delete|merge``, ``$retainKeys``,
``$setElementOrder/<field>`` and ``$deleteFromPrimitiveList/<field>`` are honoured. The merge
keys come from :mod:`auditor.sandbox.schema`, the sandbox's own table.
"""

from __future__ import annotations

import copy
from typing import Any

from auditor.sandbox.schema import Field, child, element
from auditor.sandbox.status import ApiError

_DELETE = object()


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = json_merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError("BadRequest", f"json patch path {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        if isinstance(node, dict):
            if part not in node:
                raise ApiError("UnprocessableEntity", f"doc is missing path: /{'/'.join(parts)}",
                               code=422)
            node = node[part]
        elif isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError) as exc:
                raise ApiError("UnprocessableEntity", f"doc is missing path: /{'/'.join(parts)}",
                               code=422) from exc
        else:
            raise ApiError("UnprocessableEntity", f"doc is missing path: /{'/'.join(parts)}",
                           code=422)
    return node


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 operations applied to a copy of ``doc``."""
    if not isinstance(ops, list):
        raise ApiError("BadRequest", "json patch must be a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise ApiError("BadRequest", f"invalid json patch operation: {op!r}")
        kind = op["op"]
        parts = _pointer(str(op.get("path", "")))
        if kind == "test":
            if _walk(out, parts) != op.get("value"):
                raise ApiError("UnprocessableEntity",
                               f"testing value {op.get('path')} failed", code=422)
            continue
        if kind in ("copy", "move"):
            src = _pointer(str(op.get("from", "")))
            value = copy.deepcopy(_walk(out, src))
            if kind == "move":
                out = _remove(out, src)
            out = _add(out, parts, value)
        elif kind == "add":
            out = _add(out, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            out = _remove(out, parts)
        elif kind == "replace":
            _walk(out, parts)
            out = _remove(out, parts)
            out = _add(out, parts, copy.deepcopy(op.get("value")))
        else:
            raise ApiError("BadRequest", f"unknown json patch operation {kind!r}")
    return out


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError as exc:
                raise ApiError("UnprocessableEntity", f"bad index {last!r}", code=422) from exc
            if idx < 0 or idx > len(parent):
                raise ApiError("UnprocessableEntity", f"index {idx} out of range", code=422)
            parent.insert(idx, value)
    else:
        raise ApiError("UnprocessableEntity", f"cannot add to /{'/'.join(parts)}", code=422)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    _walk(doc, parts)
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc


def strategic_merge_patch(original: Any, patch: Any, f: Field) -> Any:
    """A strategic-merge ``patch`` applied to ``original`` (which is not modified)."""
    if not isinstance(patch, dict):
        raise ApiError("BadRequest", "strategic merge patch must be a JSON object")
    result = _merge_map(original if isinstance(original, dict) else {}, patch, f)
    return {} if result is _DELETE else result


def _merge_map(original: dict[str, Any], patch: dict[str, Any], f: Field) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _clean(patch)
    out = copy.deepcopy(original)
    orders: dict[str, list[Any]] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(out.get(name), list) and isinstance(value, list):
                out[name] = [v for v in out[name] if v not in value]
            continue
        cf, _ = child(f, key)
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            current = out.get(key)
            if cf.atomic:
                out[key] = _clean(value)
                continue
            merged = _merge_map(current if isinstance(current, dict) else {}, value, cf)
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list) and "merge" in cf.patch_strategy.split(","):
            current = out.get(key)
            out[key] = _merge_list(current if isinstance(current, list) else [], value, cf)
        else:
            out[key] = _clean(value)
    for name, order in orders.items():
        if isinstance(out.get(name), list):
            out[name] = _reorder(out[name], order, child(f, name)[0])
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(original: list[Any], patch: list[Any], f: Field) -> list[Any]:
    key = f.patch_key
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_clean(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if not key:
        out = list(original)
        for item in patch:
            if item not in out:
                out.append(copy.deepcopy(item))
        return out
    out = copy.deepcopy(original)
    ef = element(f)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise ApiError("BadRequest",
                           f"map: {item!r} does not contain declared merge key: {key}")
        pos = next((i for i, o in enumerate(out) if isinstance(o, dict)
                    and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if pos is not None:
                del out[pos]
            continue
        if pos is None:
            out.append(_clean(item))
        else:
            merged = _merge_map(out[pos], item, ef)
            if merged is _DELETE:
                del out[pos]
            else:
                out[pos] = merged
    return out


def _reorder(items: list[Any], order: list[Any], f: Field) -> list[Any]:
    key = f.patch_key

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    rank = {repr(ident(o) if isinstance(o, dict) else o): i for i, o in enumerate(order)}
    listed = [it for it in items if repr(ident(it)) in rank]
    listed.sort(key=lambda it: rank[repr(ident(it))])
    rest = [it for it in items if repr(ident(it)) not in rank]
    return listed + rest


def _clean(value: Any) -> Any:
    """A patch value with its directives removed, to be stored as is."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
