"""Write ``auditor/engine/listkeys.json``: the part of the Kubernetes OpenAPI schemas that
``auditor.engine.schema`` reads, taken from the newest ``v<x.y.z>-local`` schema version the
installed ``kubernetes-validate`` ships (a development dependency only: the runtime reads
the table). Run ``make listkeys`` (or ``.venv/bin/python tools/gen_listkeys.py``) after
upgrading kubernetes-validate; ``tests/test_listkeys.py`` fails while the committed table
differs from a fresh one.

What the table holds, and why it is a graph rather than a flat list of paths: schema.py
answers three questions for any ``(group, version, kind, path)`` — the list's merge keys or
type (:func:`list_info`), whether the value is atomic (:func:`is_atomic`, which also reads
``x-kubernetes-map-type``), and whether the schema knows the path at all (an unknown path
gets the CRD fallback keys, a known non-list path is ``atomic``). Paths run through maps
(``additionalProperties``: any key) and recursive definitions (``JSONSchemaProps`` inside a
CustomResourceDefinition), so the set of paths is unbounded; a flat path table would have
to cut it somewhere and answer differently there. So the table keeps the definitions'
shape (``properties`` / ``items`` / ``additionalProperties`` / ``$ref``) and drops
everything schema.py never reads:

- only definitions reachable from a kind (``x-kubernetes-group-version-kind``, moved into a
  sorted ``kinds`` list);
- descriptions, formats, defaults, enums, patch strategies, unions, two-option ``oneOf``;
- a ``$ref`` keeps the definition's name only, a one-option ``allOf``/``anyOf``/``oneOf``
  is replaced by its option (the walker resolves both the same way);
- list extensions reduced to the one the walker's answer comes from
  (``x-kubernetes-list-map-keys``, else ``x-kubernetes-patch-merge-key``, else
  ``x-kubernetes-list-type: set``; no extension means atomic);
- ``type`` kept only as ``array``, or as ``object`` where no ``properties`` /
  ``additionalProperties`` already say so; ``x-kubernetes-map-type`` only when ``atomic``;
  a scalar leaf is ``{}``.

For 1.37.0 that is 236,547 bytes (1,193 lines: 860 definitions, 325 kinds) against the
1.8 MB ``_definitions.json`` (and the 108 MB installed package). Loading it was measured
both ways: this JSON parsed with orjson takes ~1.6 ms; the same data as a literal in a
``.py`` module ~1.8 ms from a warm ``.pyc`` and ~50 ms more whenever the ``.pyc`` has to be
compiled first (a read-only or ``PYTHONDONTWRITEBYTECODE`` install, as in the image). So
the table is JSON.

The file is deterministic: keys sorted, one definition per line (a schema upgrade reads as
a diff of the definitions that changed). :class:`SchemaWalker` is schema.py's walker as it
was over the full ``_definitions.json``; the test compares its answers with the table's.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "auditor" / "engine" / "listkeys.json"
ITEM = "[]"
COMBOS = ("allOf", "anyOf", "oneOf")
MAP_KEYS = "x-kubernetes-list-map-keys"
MERGE_KEY = "x-kubernetes-patch-merge-key"
LIST_TYPE = "x-kubernetes-list-type"
MAP_TYPE = "x-kubernetes-map-type"
GVK = "x-kubernetes-group-version-kind"


def schema_root() -> Any:
    return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")


def newest_schema_dir() -> str:
    """The newest ``v<version>-local`` folder the installed package ships."""
    best: tuple[tuple[int, ...], str] | None = None
    for entry in schema_root().iterdir():
        match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local", entry.name)
        if match:
            version = tuple(int(g) for g in match.groups())
            if best is None or version > best[0]:
                best = (version, entry.name)
    if best is None:
        raise SystemExit("kubernetes-validate ships no schemas")
    return best[1]


def load_definitions(folder: str) -> dict[str, Any]:
    raw = schema_root().joinpath(folder, "_definitions.json").read_bytes()
    defs: dict[str, Any] = orjson.loads(raw)["$defs"]
    return defs


# ------------------------------------------------------------ the walker over the full schemas


class SchemaWalker:
    """schema.py's answers computed from full definitions, as schema.py did before the table
    (the reference the table is tested against)."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.kinds: dict[tuple[str, str, str], str] = {}
        for name, definition in definitions.items():
            for gvk in definition.get(GVK) or ():
                self.kinds[(gvk.get("group", ""), gvk.get("version", ""),
                            gvk.get("kind", ""))] = name

    def kind_definition(self, group: str, version: str, kind: str) -> str | None:
        found = self.kinds.get((group, version, kind))
        if found is None:
            for (g, _v, k), name in sorted(self.kinds.items()):
                if g == group and k == kind:
                    return name
        return found

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = node.get("$ref")
        while isinstance(ref, str):
            node = self.definitions.get(ref.rpartition("/")[2], {})
            ref = node.get("$ref")
        for combo in COMBOS:
            options = node.get(combo)
            if isinstance(options, list) and len(options) == 1 and isinstance(options[0], dict):
                return self.resolve(options[0])
        return node

    def schema_at(self, group: str, version: str, kind: str,
                  path: tuple[str, ...]) -> Mapping[str, Any] | None:
        name = self.kind_definition(group, version, kind)
        if name is None:
            return None
        node = self.resolve(self.definitions[name])
        for element in path:
            if element == ITEM:
                items = node.get("items")
                if not isinstance(items, dict):
                    return None
                node = self.resolve(items)
                continue
            props = node.get("properties")
            if isinstance(props, dict) and element in props:
                node = self.resolve(props[element])
                continue
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                node = self.resolve(extra)
                continue
            return None
        return node

    def list_info(self, group: str, version: str, kind: str,
                  path: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
        """``(type, keys)``, or ``None`` where the schema does not know the path."""
        node = self.schema_at(group, version, kind, path)
        return None if node is None else node_list_info(node)

    def is_atomic(self, group: str, version: str, kind: str,
                  path: tuple[str, ...]) -> bool | None:
        node = self.schema_at(group, version, kind, path)
        if node is None:
            return None
        if node.get(MAP_TYPE) == "atomic":
            return True
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "array" in types:
            return node_list_info(node)[0] == "atomic"
        if "object" in types or "properties" in node or "additionalProperties" in node:
            return False
        return None

    def paths(self, group: str, version: str, kind: str,
              max_depth: int = 14) -> Iterator[tuple[str, ...]]:
        """Every path of the kind's schema (a map's key written ``*``), each definition
        entered at most twice on one path, so recursive schemas end."""
        name = self.kind_definition(group, version, kind)
        if name is None:
            return

        def walk(node: Mapping[str, Any], path: tuple[str, ...],
                 entered: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
            yield path
            if len(path) >= max_depth:
                return
            children: list[tuple[str, Any]] = []
            props = node.get("properties")
            if isinstance(props, dict):
                children += sorted(props.items())
            if isinstance(node.get("items"), dict):
                children.append((ITEM, node["items"]))
            if isinstance(node.get("additionalProperties"), dict):
                children.append(("*", node["additionalProperties"]))
            for element, child in children:
                target = _ref_name(child)
                if target is not None and entered.count(target) >= 2:
                    continue
                yield from walk(self.resolve(child), (*path, element),
                                (*entered, target) if target else entered)

        yield from walk(self.resolve(self.definitions[name]), (), (name,))


def _ref_name(node: Any) -> str | None:
    ref = node.get("$ref") if isinstance(node, dict) else None
    return ref.rpartition("/")[2] if isinstance(ref, str) else None


def node_list_info(node: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    map_keys = node.get(MAP_KEYS)
    if isinstance(map_keys, list) and map_keys:
        return "map", tuple(str(k) for k in map_keys)
    merge_key = node.get(MERGE_KEY)
    if isinstance(merge_key, str) and merge_key:
        return "map", (merge_key,)
    if node.get(LIST_TYPE) == "set":
        return "set", ()
    return "atomic", ()


# ------------------------------------------------------------------------ the compact table


def prune(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node reduced to what the walker reads (see the module's docstring)."""
    if not isinstance(node, dict):
        raise SystemExit(f"unexpected schema node {node!r}: teach tools/gen_listkeys.py")
    ref = _ref_name(node)
    if ref is not None:
        return {"$ref": ref}
    for combo in COMBOS:
        options = node.get(combo)
        if isinstance(options, list) and len(options) == 1 and isinstance(options[0], dict):
            return prune(options[0])
    out: dict[str, Any] = {}
    if "properties" in node:
        props = node["properties"]
        if not isinstance(props, dict):
            raise SystemExit(f"unexpected properties {props!r}")
        out["properties"] = {name: prune(child) for name, child in props.items()}
    if isinstance(node.get("items"), dict):
        out["items"] = prune(node["items"])
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        out["additionalProperties"] = prune(extra) if isinstance(extra, dict) else extra
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    if "array" in types:
        out["type"] = "array"
    elif "object" in types and not ("properties" in out or "additionalProperties" in out):
        out["type"] = "object"
    if node.get(MAP_TYPE) == "atomic":
        out[MAP_TYPE] = "atomic"
    list_type, keys = node_list_info(node)
    if list_type == "map" and isinstance(node.get(MAP_KEYS), list) and node[MAP_KEYS]:
        out[MAP_KEYS] = list(keys)
    elif list_type == "map":
        out[MERGE_KEY] = keys[0]
    elif list_type == "set":
        out[LIST_TYPE] = "set"
    return out


def _refs(node: Mapping[str, Any]) -> Iterator[str]:
    """The definitions a pruned node refers to (a property may be named ``$ref``)."""
    if "$ref" in node:
        yield node["$ref"]
    for child in (node.get("properties") or {}).values():
        yield from _refs(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _refs(node[key])


def build(definitions: Mapping[str, Any], folder: str) -> bytes:
    walker = SchemaWalker(definitions)
    kinds = sorted((*gvk, name) for gvk, name in walker.kinds.items())
    todo = sorted({name for *_gvk, name in kinds})
    kept: dict[str, dict[str, Any]] = {}
    while todo:
        name = todo.pop()
        if name in kept or name not in definitions:
            continue  # a dangling $ref resolves to {} through the table as it did before
        kept[name] = prune(definitions[name])
        todo.extend(_refs(kept[name]))
    dump = lambda value: orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()  # noqa: E731
    version = re.fullmatch(r"v(\d+\.\d+\.\d+)-local", folder)
    assert version is not None
    lines = [
        "{",
        f'"generator":{dump("tools/gen_listkeys.py from kubernetes-validate")},',
        f'"kubernetes":{dump(version.group(1))},',
        f'"schemas":{dump(folder)},',
        '"kinds":[',
        ",\n".join(dump(list(row)) for row in kinds),
        "],",
        '"definitions":{',
        ",\n".join(f"{dump(name)}:{dump(kept[name])}" for name in sorted(kept)),
        "}}",
    ]
    return ("\n".join(lines) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT}")
    args = parser.parse_args(argv)
    folder = newest_schema_dir()
    data = build(load_definitions(folder), folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data):,} bytes from kubernetes-validate {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
