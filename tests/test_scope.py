"""Scope decisions: one function set decides for the listing, the comparison and revert."""

from __future__ import annotations

import pytest

from auditor.config import ScopeConfig
from auditor.engine.compare import in_scope as compared
from auditor.engine.records import ResourceKey
from auditor.engine.scope import key_in_scope, kind_selected, namespace_in_scope
from auditor.live.client import APIResource
from auditor.live.client import in_scope as listed


@pytest.mark.parametrize(("group", "kind", "patterns", "selected"), [
    ("apps", "Deployment", ("Deployment",), True),
    ("apps", "Deployment", ("deployment.apps",), True),
    ("apps", "Deployment", ("Deployment.batch",), False),
    ("", "Secret", ("Secret",), True),
    ("", "Secret", ("Secret.apps",), False),
    ("coordination.k8s.io", "Lease", ("Lease.coordination.k8s.io",), True),
    ("apps", "ReplicaSet", ("Deployment.apps",), False),
])
def test_kind_patterns(group: str, kind: str, patterns: tuple[str, ...], selected: bool) -> None:
    assert kind_selected(group, kind, patterns) is selected


@pytest.mark.parametrize("scope", [
    ScopeConfig(),
    ScopeConfig(exclude_kinds=("Secret", "Deployment.apps")),
    ScopeConfig(include_kinds=("ConfigMap", "StatefulSet.apps")),
])
def test_listing_and_comparison_agree(scope: ScopeConfig) -> None:
    kinds = [("", "Secret", "secrets"), ("", "ConfigMap", "configmaps"), ("", "Event", "events"),
             ("apps", "Deployment", "deployments"), ("apps", "StatefulSet", "statefulsets"),
             ("coordination.k8s.io", "Lease", "leases")]
    for group, kind, plural in kinds:
        resource = APIResource(group, "v1", kind, plural, True)
        key = ResourceKey(group, kind, "shop", "x")
        assert listed(resource, scope) is compared(key, scope) is key_in_scope(key, scope), kind


def test_namespaces() -> None:
    scope = ScopeConfig(include_namespaces=("shop",), exclude_namespaces=("kube-system",))
    assert namespace_in_scope("shop", scope)
    assert not namespace_in_scope("other", scope)
    assert namespace_in_scope("", scope), "cluster-scoped objects are not excluded by namespace"
    assert not key_in_scope(ResourceKey("", "ConfigMap", "other", "x"), scope)
