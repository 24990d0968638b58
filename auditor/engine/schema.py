"""List merge keys from the Kubernetes OpenAPI schemas, as a compact table in the package.

Lists in Kubernetes objects are matched item by item by their merge keys (containers by
``name``, container ports by ``containerPort`` + ``protocol``, …), never by index. The keys
come from the schema extensions ``x-kubernetes-list-map-keys`` (preferred: it is what
server-side apply uses) and ``x-kubernetes-patch-merge-key`` (strategic merge patch).

The schemas are those of the newest Kubernetes version ``kubernetes-validate`` ships (a
development dependency), reduced by ``tools/gen_listkeys.py`` (``make listkeys``) to what
this module reads: ``listkeys.json`` next to this file (~240 KB, the definitions' shape and
list/map extensions without descriptions; it records its Kubernetes version). It is loaded
on first use only, and each ``(group, version, kind, path)`` answer is cached, so a
10,000-object run pays for the file once and for each distinct list path once.

This table is the drift engine's own: the sandbox API server must not share it, so that a
test cannot pass because both sides make the same mistake.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import orjson

ListType = Literal["map", "set", "atomic"]

ITEM = "[]"  # a path element standing for "an item of this list"

# Keys the API server defaults when a client omits them; matching must treat the omission
# as the default (a Git port without protocol is the live port with ``protocol: TCP``).
KEY_DEFAULTS: Mapping[str, Any] = {"protocol": "TCP"}

# For kinds without a schema (CRDs): a list of objects that all carry one of these keys is
# matched by it. ``name`` is by far the most common convention in CRDs.
FALLBACK_KEYS: tuple[str, ...] = ("name",)


@dataclass(frozen=True, slots=True)
class ListInfo:
    """How a list at a path is compared: by merge ``keys`` (``map``), as a ``set``, or whole."""

    type: ListType
    keys: tuple[str, ...] = ()


ATOMIC = ListInfo("atomic")


TABLE = "listkeys.json"  # package data of this package, written by tools/gen_listkeys.py


@functools.cache
def _table() -> dict[str, Any]:
    raw = resources.files("auditor.engine").joinpath(TABLE).read_bytes()
    table: dict[str, Any] = orjson.loads(raw)
    return table


def _schema_dir() -> str:
    """The ``kubernetes-validate`` schema folder the table was made from (``v1.37.0-local``)."""
    return str(_table()["schemas"])


def kubernetes_version() -> str:
    """The Kubernetes version whose schemas the table holds (``1.37.0``)."""
    return str(_table()["kubernetes"])


def _definitions() -> dict[str, Any]:
    """Definition name → the definition, reduced to what the walker below reads; a ``$ref``
    holds the definition's name."""
    defs: dict[str, Any] = _table()["definitions"]
    return defs


@functools.cache
def _kinds() -> dict[tuple[str, str, str], str]:
    """``(group, version, kind)`` → definition name (from ``x-kubernetes-group-version-kind``)."""
    return {(group, version, kind): name for group, version, kind, name in _table()["kinds"]}


@functools.cache
def _kind_definition(group: str, version: str, kind: str) -> str | None:
    kinds = _kinds()
    found = kinds.get((group, version, kind))
    if found is None:
        # Another version of the same kind has the same list keys in practice (apps/v1beta2
        # vs apps/v1); better than treating every list of a known kind as atomic.
        for (g, _v, k), name in sorted(kinds.items()):
            if g == group and k == kind:
                return name
    return found


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    while isinstance(ref, str):
        node = _definitions().get(ref.rpartition("/")[2], {})
        ref = node.get("$ref")
    for combo in ("allOf", "anyOf", "oneOf"):
        options = node.get(combo)
        if isinstance(options, list) and len(options) == 1 and isinstance(options[0], dict):
            return _resolve(options[0])
    return node


def _schema_at(group: str, version: str, kind: str, path: tuple[str, ...]) -> Mapping[str, Any] | None:
    name = _kind_definition(group, version, kind)
    if name is None:
        return None
    node: Mapping[str, Any] = _resolve(_definitions()[name])
    for element in path:
        if element == ITEM:
            items = node.get("items")
            if not isinstance(items, dict):
                return None
            node = _resolve(items)
            continue
        props = node.get("properties")
        if isinstance(props, dict) and element in props:
            node = _resolve(props[element])
            continue
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            node = _resolve(extra)
            continue
        return None
    return node


@functools.cache
def _schema_list_info(group: str, version: str, kind: str, path: tuple[str, ...]) -> ListInfo | None:
    """The schema's answer, or ``None`` when the schema does not know the path."""
    node = _schema_at(group, version, kind, path)
    if node is None:
        return None
    list_type = node.get("x-kubernetes-list-type")
    map_keys = node.get("x-kubernetes-list-map-keys")
    if isinstance(map_keys, list) and map_keys:
        return ListInfo("map", tuple(str(k) for k in map_keys))
    merge_key = node.get("x-kubernetes-patch-merge-key")
    if isinstance(merge_key, str) and merge_key:
        return ListInfo("map", (merge_key,))
    if list_type == "set":
        return ListInfo("set")
    return ATOMIC


@functools.cache
def is_atomic(group: str, version: str, kind: str, path: tuple[str, ...]) -> bool | None:
    """Whether the value at ``path`` is one atomic value (owned and replaced whole): a map or
    struct marked ``x-kubernetes-map-type: atomic`` (a Service's ``selector``, a
    ``LabelSelector``, a ``ConfigMapKeySelector``…), or a list without ``map``/``set`` list
    type (RBAC ``rules``). ``False`` for granular maps, structs and lists; ``None`` where
    the schema says nothing (custom resources, unknown paths)."""
    node = _schema_at(group, version, kind, path)
    if node is None:
        return None
    if node.get("x-kubernetes-map-type") == "atomic":
        return True
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    if "array" in types:
        info = _schema_list_info(group, version, kind, path)
        return info is not None and info.type == "atomic"
    if "object" in types or "properties" in node or "additionalProperties" in node:
        return False
    return None


def known_kind(group: str, version: str, kind: str) -> bool:
    """Whether the built-in schemas describe this kind (CRDs are not described)."""
    return _kind_definition(group, version, kind) is not None


def list_info(group: str, version: str, kind: str, path: tuple[str, ...],
              items: Iterable[Any] = ()) -> ListInfo:
    """How to compare the list at ``path`` (list items written ``"[]"`` in the path).

    For kinds and paths the schema does not describe, the list is matched by a fallback key
    (``name``) when every item in ``items`` (pass both sides' items) is an object carrying
    it, else compared whole.
    """
    found = _schema_list_info(group, version, kind, path)
    if found is not None:
        return found
    materialised = list(items)
    for key in FALLBACK_KEYS:
        if materialised and all(isinstance(i, dict) and key in i for i in materialised):
            return ListInfo("map", (key,))
    return ATOMIC


def merge_keys(group: str, version: str, kind: str, path: tuple[str, ...],
               items: Iterable[Any] = ()) -> tuple[str, ...] | None:
    """The merge keys of the list at ``path``, or ``None`` for a list compared as a whole
    (``atomic``) or as a set (``list-type: set``; see :func:`list_info` to tell them apart).

    >>> merge_keys("apps", "v1", "Deployment", ("spec", "template", "spec", "containers"))
    ('name',)
    """
    info = list_info(group, version, kind, path, items)
    return info.keys if info.type == "map" else None


def item_key(item: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    """The identity of a list item under ``keys``, with omitted keys taking their defaults."""
    return tuple(item.get(k, KEY_DEFAULTS.get(k)) for k in keys)


def clear_cache() -> None:
    """Forget loaded schemas (tests)."""
    for fn in (_table, _kinds, _kind_definition, _schema_list_info, is_atomic):
        fn.cache_clear()
