"""Scope decisions: one function set decides for the listing, the comparison and revert, and
one pattern rule means the same in every section that names kinds or namespaces."""

from __future__ import annotations

import pytest

from auditor.config import IgnoreRule, RevertConfig, ScopeConfig, SlackConfig, SlackRoute
from auditor.engine.compare import in_scope as compared
from auditor.engine.ignore import IgnoreSet
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey
from auditor.engine.scope import (
    key_in_scope,
    kind_in_scope,
    kind_matches,
    kind_selected,
    namespace_in_scope,
    namespaces_to_list,
)
from auditor.live.client import APIResource
from auditor.live.client import in_scope as listed
from auditor.outputs import alerts
from auditor.revert.plan import plan


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


# ------------------------------------------------ one pattern rule, every section

NAMESPACES = ("shop", "shop-eu", "team-a", "team-b", "team-ab", "teams", "Team-a", "kube-system")


def _sections(namespace: str, patterns: tuple[str, ...]) -> dict[str, bool]:
    """Whether each section that names namespaces selects ``namespace`` with ``patterns``."""
    key = ResourceKey("", "ConfigMap", namespace, "settings")
    drift = ObjectResult(key, "v1", "drifted", (DriftItem("data.a", "changed", "1", "2",
                                                          "kubectl-edit", category="human"),))
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": namespace}}
    revert = plan(RevertConfig(mode="enforce", namespaces=patterns), [drift], {key: manifest},
                  {key: manifest})
    slack = SlackConfig(token_env="T", channel="#all",
                        routes=(SlackRoute(channel="#routed", namespaces=patterns),))
    return {
        "scope.include-namespaces": namespace_in_scope(
            namespace, ScopeConfig(include_namespaces=patterns)),
        "scope.exclude-namespaces": not namespace_in_scope(
            namespace, ScopeConfig(exclude_namespaces=patterns)),
        "revert.namespaces": [a.key for a in revert.actions] == [key],
        "compare.ignore namespace": IgnoreSet(
            IgnoreRule(namespace=p) for p in patterns).object_rule(key) is not None,
        "slack.routes namespaces": alerts.route(namespace, "high", slack) == [
            alerts.Target(channel="#routed")],
    }


@pytest.mark.parametrize(("patterns", "selected"), [
    (("shop", "team-*"), {"shop", "team-a", "team-b", "team-ab"}),
    (("shop-*",), {"shop-eu"}),
    (("team-?",), {"team-a", "team-b"}),
    (("team-[a]*",), {"team-a", "team-ab"}),
    (("kube-system",), {"kube-system"}),
    (("*",), set(NAMESPACES)),
])
def test_a_namespace_pattern_means_the_same_in_every_section(
        patterns: tuple[str, ...], selected: set[str]) -> None:
    for namespace in NAMESPACES:
        verdicts = _sections(namespace, patterns)
        assert set(verdicts.values()) == {namespace in selected}, (namespace, verdicts)


KINDS = (("apps", "Deployment"), ("apps", "StatefulSet"), ("", "ConfigMap"), ("", "Secret"),
         ("networking.k8s.io", "Ingress"), ("example.com", "Config"))


def _kind_sections(group: str, kind: str, pattern: str) -> dict[str, bool]:
    key = ResourceKey(group, kind, "shop", "x")
    drift = ObjectResult(key, "v1", "drifted", (DriftItem("spec.a", "changed", 1, 2,
                                                          "kubectl-edit", category="human"),))
    manifest = {"apiVersion": f"{group}/v1" if group else "v1", "kind": kind,
                "metadata": {"name": "x", "namespace": "shop"}}
    revert = plan(RevertConfig(mode="enforce", kinds=(pattern,)), [drift], {key: manifest},
                  {key: manifest})
    rule_kind, dot, rule_group = pattern.partition(".")
    return {
        "scope.include-kinds": kind_in_scope(group, kind, ScopeConfig(include_kinds=(pattern,))),
        "scope.exclude-kinds": not kind_in_scope(group, kind,
                                                 ScopeConfig(exclude_kinds=(pattern,))),
        "revert.kinds": [a.key for a in revert.actions] == [key],
        "compare.ignore kind/group": IgnoreSet([IgnoreRule(
            kind=rule_kind, group=rule_group if dot else "*")]).object_rule(key) is not None,
    }


@pytest.mark.parametrize(("pattern", "selected"), [
    ("Deployment", {"Deployment"}),
    ("deployment.apps", {"Deployment"}),
    ("*.apps", {"Deployment", "StatefulSet"}),
    ("Config*", {"ConfigMap", "Config"}),
    ("Config.*", {"Config"}),
    ("Ingress.networking.k8s.io", {"Ingress"}),
    ("*.*.k8s.io", {"Ingress"}),
])
def test_a_kind_pattern_means_the_same_in_every_section(pattern: str, selected: set[str]) -> None:
    for group, kind in KINDS:
        verdicts = _kind_sections(group, kind, pattern)
        assert set(verdicts.values()) == {kind in selected}, (kind, verdicts)


def test_a_kind_without_group_is_any_group_an_empty_group_the_core_only() -> None:
    assert kind_selected("example.com", "Secret", ("Secret",))
    assert kind_matches("", "Secret", "Secret", "")
    assert not kind_matches("example.com", "Secret", "Secret", "")


def test_namespaces_are_listed_one_by_one_only_when_each_is_a_name() -> None:
    assert namespaces_to_list(ScopeConfig(include_namespaces=("shop", "team-a"))) == \
        ("shop", "team-a")
    assert namespaces_to_list(ScopeConfig(include_namespaces=("shop", "team-*"))) == ()
    assert namespaces_to_list(ScopeConfig()) == ()
