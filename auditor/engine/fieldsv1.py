"""Who owns which field: ``metadata.managedFields`` (FieldsV1) as an ownership index.

FieldsV1 is a trie of path elements written as keys: ``f:<name>`` a field, ``k:<json>`` a
list item by its keys, ``v:<json>`` a set item, ``i:<n>`` a list index, and ``.`` the node
itself (its existence) when its children are listed too. An empty mapping ``{}`` is a leaf:
the manager owns the whole value at that path (a scalar, or an atomic list or map).

Each ``managedFields`` entry names a manager, an operation (``Apply``/``Update``), a time
(optional) and a subresource (``""``, ``scale``, ``status``). The index answers, for a path
in the same representation the comparison uses (:mod:`auditor.engine.paths`), who owns it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from auditor.engine.paths import Element, Index, Key, Path, Value


@dataclass(frozen=True, slots=True)
class Owner:
    """One ``managedFields`` entry's identity."""

    manager: str
    operation: str
    time: str = ""
    subresource: str = ""
    api_version: str = ""


class _Node:
    __slots__ = ("children", "owners", "whole")

    def __init__(self) -> None:
        self.children: dict[Element, _Node] = {}
        self.owners: list[Owner] = []
        # Owners that own the value at this node entirely (a FieldsV1 leaf ``{}``).
        self.whole: list[Owner] = []


@functools.lru_cache(maxsize=8192)
def _element(token: str) -> Element | None:
    # Tokens repeat across objects of a kind (``f:spec``, ``k:{"name":"web"}``): parse once.
    prefix, _, rest = token.partition(":")
    if prefix == "f":
        return rest
    try:
        if prefix == "k":
            keys = orjson.loads(rest)
            if isinstance(keys, dict):
                return Key(keys.items())
            return None
        if prefix == "v":
            return Value(orjson.loads(rest))
        if prefix == "i":
            return Index(int(rest))
    except (orjson.JSONDecodeError, ValueError):
        return None
    return None


def walk(fields: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, bool]]:
    """Every path a FieldsV1 trie owns, with whether it is owned whole (a leaf).

    Unknown or malformed tokens are skipped: ownership of the rest still counts.
    """
    for token, child in fields.items():
        if token == ".":
            yield prefix, False
            continue
        element = _element(token)
        if element is None:
            continue
        path = (*prefix, element)
        if isinstance(child, Mapping) and child:
            yield from walk(child, path)
        else:
            yield path, True


def _insert(node: _Node, fields: Mapping[str, Any], owner: Owner) -> None:
    """Add one entry's FieldsV1 trie below ``node`` (what :func:`walk` yields, built in place)."""
    for token, child in fields.items():
        if token == ".":
            node.owners.append(owner)
            continue
        element = _element(token)
        if element is None:
            continue
        sub = node.children.get(element)
        if sub is None:
            sub = node.children[element] = _Node()
        if isinstance(child, Mapping) and child:
            _insert(sub, child, owner)
        else:
            sub.owners.append(owner)
            sub.whole.append(owner)


class OwnershipIndex:
    """Ownership of field paths, built from one object's ``managedFields``."""

    __slots__ = ("_root", "entries")

    def __init__(self, managed_fields: Any) -> None:
        self._root = _Node()
        self.entries: tuple[Owner, ...] = ()
        if not isinstance(managed_fields, list):
            return
        entries: list[Owner] = []
        for entry in managed_fields:
            if not isinstance(entry, Mapping):
                continue
            owner = Owner(
                manager=str(entry.get("manager") or ""),
                operation=str(entry.get("operation") or ""),
                time=str(entry.get("time") or ""),
                subresource=str(entry.get("subresource") or ""),
                api_version=str(entry.get("apiVersion") or ""),
            )
            entries.append(owner)
            fields = entry.get("fieldsV1")
            if isinstance(fields, Mapping):
                _insert(self._root, fields, owner)
        self.entries = tuple(entries)

    def _node(self, path: Path, *, create: bool = False) -> _Node | None:
        node = self._root
        for element in path:
            child = node.children.get(element)
            if child is None:
                if not create:
                    return None
                child = node.children[element] = _Node()
            node = child
        return node

    def __bool__(self) -> bool:
        return bool(self.entries)

    def owners(self, path: Path) -> tuple[Owner, ...]:
        """The managers that own exactly ``path`` (its value, or its existence with ``.``)."""
        node = self._node(path)
        return tuple(node.owners) if node is not None else ()

    def owners_of_value(self, path: Path) -> tuple[Owner, ...]:
        """Who owns the value at ``path``: its own owners, else the owners of the nearest
        ancestor owned whole (an atomic list or map includes everything inside it)."""
        node = self._root
        inherited: list[Owner] = []
        for element in path:
            if node.whole:
                inherited = node.whole
            child = node.children.get(element)
            if child is None:
                return tuple(inherited)
            node = child
        return tuple(node.owners) if node.owners else tuple(inherited)

    def whole_above(self, path: Path) -> Iterator[tuple[Path, tuple[Owner, ...]]]:
        """The ancestors of ``path`` that some manager owns whole (a FieldsV1 leaf ``{}``),
        nearest first, with those owners: who owns an atomic value owns what is inside it,
        a removal included."""
        node = self._root
        found: list[tuple[Path, tuple[Owner, ...]]] = []
        for depth, element in enumerate(path):
            if node.whole:
                found.append((path[:depth], tuple(node.whole)))
            child = node.children.get(element)
            if child is None:
                break
            node = child
        return reversed(found)

    def owners_within(self, path: Path) -> tuple[Owner, ...]:
        """The managers owning ``path`` or anything below it (deduplicated, in entry order)."""
        node = self._node(path)
        if node is None:
            return self.owners_of_value(path)
        seen: dict[Owner, None] = {}
        stack = [node]
        while stack:
            current = stack.pop()
            for owner in current.owners:
                seen.setdefault(owner, None)
            stack.extend(current.children.values())
        return tuple(o for o in self.entries if o in seen)

    def reach(self, pick: Callable[[Owner], bool]) -> tuple[frozenset[Path], frozenset[Path]]:
        """Where the owners ``pick`` selects reach: every path they own and every ancestor of
        one (so ``path in reached`` says whether they own something at or below ``path``),
        and the paths they own whole (whose descendants they own too)."""
        chosen = frozenset(o for o in self.entries if pick(o))
        reached: set[Path] = set()
        whole: set[Path] = set()
        if not chosen:
            return frozenset(), frozenset()
        stack: list[tuple[Path, _Node]] = [((), self._root)]
        while stack:
            path, node = stack.pop()
            if node.owners and not chosen.isdisjoint(node.owners):
                for i in range(len(path), -1, -1):
                    prefix = path[:i]
                    if prefix in reached:
                        break
                    reached.add(prefix)
                if node.whole and not chosen.isdisjoint(node.whole):
                    whole.add(path)
            for element, child in node.children.items():
                stack.append(((*path, element), child))
        return frozenset(reached), frozenset(whole)

    def paths(self) -> Iterator[tuple[Path, tuple[Owner, ...]]]:
        """Every owned path with its owners (depth first; for debugging and tests)."""
        stack: list[tuple[Path, _Node]] = [((), self._root)]
        while stack:
            path, node = stack.pop()
            if node.owners:
                yield path, tuple(node.owners)
            for element, child in reversed(node.children.items()):
                stack.append(((*path, element), child))


def ownership(obj: Mapping[str, Any]) -> OwnershipIndex:
    """The ownership index of a live object (empty when it carries no managedFields)."""
    meta = obj.get("metadata")
    return OwnershipIndex(meta.get("managedFields") if isinstance(meta, Mapping) else None)
