"""What is audited, and what a pattern in any scope setting selects: the one decision, under
``ScopeConfig``, on whether a kind or an object is in scope — shared by the live listing, the
comparison and the revert scope so that they can never disagree (a kind listed but not
compared would report its Git objects missing) — and the one pattern rule that every section
naming kinds, namespaces or names uses (``scope``, ``revert.kinds``/``namespaces``, ignore
rules, Slack routes), so that ``shop-*`` means the same wherever it is written.

Patterns are shell globs matched against the whole name: ``*`` (any run of characters),
``?`` (one character), ``[abc]``/``[!abc]`` (a character class); a pattern without those
characters is the exact name. Namespaces and names are matched as written (Kubernetes names
are case-sensitive). Kinds are written ``Kind`` for any group or ``Kind.group``
(``Deployment.apps``, ``*.apps``, ``Ingress.networking.k8s.io``), each part a glob, matched
without regard to case.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache

from auditor.config import ScopeConfig
from auditor.engine.records import ResourceKey

_GLOB_CHARS = frozenset("*?[")


def is_pattern(text: str) -> bool:
    """Whether ``text`` holds glob characters (else it names exactly one thing)."""
    return not _GLOB_CHARS.isdisjoint(text)


class _Names:
    """Compiled patterns: literal names in a set, globs in one regular expression. Scope is
    asked per object (the listing's namespace filter, the ledger's deletion check), so a
    plain list of names must stay a set lookup."""

    __slots__ = ("_exact", "_globs")

    def __init__(self, patterns: Iterable[str]) -> None:
        listed = list(patterns)
        self._exact = frozenset(p for p in listed if not is_pattern(p))
        globs = [fnmatch.translate(p) for p in listed if is_pattern(p)]
        self._globs = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

    def __call__(self, value: str) -> bool:
        return value in self._exact or (self._globs is not None
                                        and self._globs.match(value) is not None)


@lru_cache(maxsize=512)
def _names(patterns: tuple[str, ...]) -> _Names:
    return _Names(patterns)


def name_selected(value: str, patterns: Iterable[str]) -> bool:
    """Whether a namespace or an object name is selected by any of ``patterns``."""
    return _names(tuple(patterns))(value)


def matches(value: str, pattern: str) -> bool:
    """Whether a namespace or an object name matches one pattern."""
    return _names((pattern,))(value)


def _split_kind(pattern: str) -> tuple[str, str | None]:
    """``Kind.group`` → (kind, group); ``Kind`` → (kind, None: any group). Kinds hold no
    dot, so the first one separates the group."""
    kind, dot, group = pattern.lower().partition(".")
    return kind, (group if dot else None)


class _Kinds:
    """Compiled kind patterns, as :class:`_Names`, each part folded to lower case."""

    __slots__ = ("_any_group", "_globs", "_pairs")

    def __init__(self, patterns: Iterable[str]) -> None:
        any_group: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        globs: list[tuple[_Names, _Names | None]] = []
        for pattern in patterns:
            kind, group = _split_kind(pattern)
            if is_pattern(pattern):
                globs.append((_names((kind,)), None if group is None else _names((group,))))
            elif group is None:
                any_group.add(kind)
            else:
                pairs.add((kind, group))
        self._any_group = frozenset(any_group)
        self._pairs = frozenset(pairs)
        self._globs = tuple(globs)

    def __call__(self, group: str, kind: str) -> bool:
        kind, group = kind.lower(), group.lower()
        if kind in self._any_group or (kind, group) in self._pairs:
            return True
        return any(k(kind) and (g is None or g(group)) for k, g in self._globs)


@lru_cache(maxsize=512)
def _kinds(patterns: tuple[str, ...]) -> _Kinds:
    return _Kinds(patterns)


def kind_selected(group: str, kind: str, patterns: Iterable[str]) -> bool:
    """Whether ``Kind`` or ``Kind.group`` patterns select the kind ``kind`` of ``group``."""
    return _kinds(tuple(patterns))(group, kind)


def kind_matches(group: str, kind: str, kind_pattern: str, group_pattern: str) -> bool:
    """The same rule with kind and group given apart (ignore rules, exemptions): an empty
    ``group_pattern`` is the core group only."""
    return _kinds((f"{kind_pattern}.{group_pattern}" if group_pattern
                   else f"{kind_pattern}.",))(group, kind)


def kind_in_scope(group: str, kind: str, scope: ScopeConfig) -> bool:
    if scope.include_kinds:
        return kind_selected(group, kind, scope.include_kinds)
    return not kind_selected(group, kind, scope.exclude_kinds)


def namespace_in_scope(namespace: str, scope: ScopeConfig) -> bool:
    """Cluster-scoped objects (no namespace) are never excluded by namespace."""
    if not namespace:
        return True
    if scope.include_namespaces and not name_selected(namespace, scope.include_namespaces):
        return False
    return not name_selected(namespace, scope.exclude_namespaces)


def namespaces_to_list(scope: ScopeConfig) -> tuple[str, ...]:
    """The namespaces a namespaced kind may be listed in one by one: the included ones when
    each names exactly one namespace; empty (list across the cluster, then filter by
    :func:`namespace_in_scope`) when there are none or a pattern among them."""
    names = scope.include_namespaces
    return () if any(is_pattern(n) for n in names) else tuple(names)


def key_in_scope(key: ResourceKey, scope: ScopeConfig) -> bool:
    return (kind_in_scope(key.group, key.kind, scope)
            and namespace_in_scope(key.namespace, scope))
