"""Which objects a policy applies to: ``matchConstraints`` as ValidatingAdmissionPolicy
defines them (resource rules, exclusions, namespace and object label selectors) plus
namespace-name globs.

As upstream: the namespace selector of a ``Namespace`` object is matched against its own
labels; cluster-scoped objects other than namespaces are never filtered by namespace.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from auditor.engine.records import ResourceKey

from .model import LabelSelector, Match, ResourceRule

# Kinds whose resource name the generic rule gets wrong.
_IRREGULAR = {"Endpoints": "endpoints"}


def resource_of(kind: str) -> str:
    """The plural resource name of a kind, as Kubernetes' ``UnsafeGuessKindToResource``
    computes it (``NetworkPolicy`` → ``networkpolicies``, ``Ingress`` → ``ingresses``)."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def selects(selector: LabelSelector, labels: Mapping[str, Any]) -> bool:
    for key, value in selector.match_labels:
        if labels.get(key) != value:
            return False
    for key, op, values in selector.match_expressions:
        present = key in labels
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
    return True


def _rule_matches(rule: ResourceRule, key: ResourceKey, resource: str) -> bool:
    if "*" not in rule.api_groups and key.group not in rule.api_groups:
        return False
    if not ("*" in rule.resources or resource in rule.resources
            or "*" in rule.kinds or key.kind in rule.kinds):
        return False
    return not rule.resource_names or key.name in rule.resource_names


def _globbed(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def names_matter(match: Match) -> bool:
    """Whether ``match`` looks at object names (``resourceNames``)."""
    return any(r.resource_names for r in (*match.rules, *match.exclude_rules))


def static_match(match: Match, key: ResourceKey) -> bool:
    """The part of :func:`matches` that depends on the key alone (rules, namespace names):
    the same for every object of one kind in one namespace unless names matter."""
    resource = resource_of(key.kind)
    if not any(_rule_matches(r, key, resource) for r in match.rules):
        return False
    if any(_rule_matches(r, key, resource) for r in match.exclude_rules):
        return False
    is_namespace = key.kind == "Namespace" and key.group == ""
    namespace = key.name if is_namespace else key.namespace
    if namespace:
        if match.namespaces and not _globbed(namespace, match.namespaces):
            return False
        if match.exclude_namespaces and _globbed(namespace, match.exclude_namespaces):
            return False
    return True


def label_match(match: Match, key: ResourceKey, labels: Mapping[str, Any],
                namespace_labels: Mapping[str, Any] | None) -> bool:
    """The label-selector part of :func:`matches`."""
    has_namespace = bool(key.namespace) or (key.kind == "Namespace" and key.group == "")
    if has_namespace and match.namespace_selector and not selects(
            match.namespace_selector, namespace_labels or {}):
        return False
    return not match.object_selector or selects(match.object_selector, labels)


def matches(match: Match, key: ResourceKey, labels: Mapping[str, Any],
            namespace_labels: Mapping[str, Any] | None) -> bool:
    """Whether an object with ``key`` and ``labels`` is in scope of ``match``.

    ``namespace_labels`` are the labels of the object's namespace (for a ``Namespace``,
    its own); ``None`` when unknown (then only an empty namespace selector matches).
    """
    return static_match(match, key) and label_match(match, key, labels, namespace_labels)
