"""What is audited: the one decision, under ``ScopeConfig``, on whether a kind or an object is
in scope — shared by the live listing, the comparison and the revert scope so that they can
never disagree (a kind listed but not compared would report its Git objects missing).

Kinds are written ``Kind`` for any group or ``Kind.group`` (``Deployment.apps``), matched
without regard to case.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditor.config import ScopeConfig
from auditor.engine.records import ResourceKey


def kind_selected(group: str, kind: str, patterns: Iterable[str]) -> bool:
    """Whether ``Kind`` or ``Kind.group`` is among ``patterns``."""
    names = {kind.lower(), f"{kind}.{group}".lower() if group else kind.lower()}
    return any(p.lower() in names for p in patterns)


def kind_in_scope(group: str, kind: str, scope: ScopeConfig) -> bool:
    if scope.include_kinds:
        return kind_selected(group, kind, scope.include_kinds)
    return not kind_selected(group, kind, scope.exclude_kinds)


def namespace_in_scope(namespace: str, scope: ScopeConfig) -> bool:
    """Cluster-scoped objects (no namespace) are never excluded by namespace."""
    if not namespace:
        return True
    if scope.include_namespaces and namespace not in scope.include_namespaces:
        return False
    return namespace not in scope.exclude_namespaces


def key_in_scope(key: ResourceKey, scope: ScopeConfig) -> bool:
    return (kind_in_scope(key.group, key.kind, scope)
            and namespace_in_scope(key.namespace, scope))
