"""The records of the policy feature: a loaded policy, its match rules, one result.

A policy file is shaped like a Kubernetes ``ValidatingAdmissionPolicy`` (``matchConstraints``,
``matchConditions``, ``variables``, ``validations``) plus what an auditor needs: severity,
category, SOC 2 criteria, description and remediation. These records carry no library
objects: compiled CEL programs live in :mod:`.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from auditor.engine.records import ResourceKey, SourceInfo

API_VERSION = "drift-auditor.io/v1"
KIND = "CompliancePolicy"

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
# Weights of a failing object in the compliance score (critical counts ten times a low).
SEVERITY_WEIGHT: dict[str, int] = {"critical": 10, "high": 5, "medium": 2, "low": 1}

Status = Literal["pass", "fail", "skip", "error"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "skip", "error")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A ``metav1.LabelSelector``: ``matchLabels`` and ``matchExpressions`` (In, NotIn,
    Exists, DoesNotExist). An empty selector selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.match_labels or self.match_expressions)


@dataclass(frozen=True, slots=True)
class ResourceRule:
    """One ``resourceRules`` entry: API groups and resources (plural, lower case, as in
    ValidatingAdmissionPolicy) or kinds (our shorthand), optionally object names."""

    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """Which objects a policy applies to (``spec.matchConstraints``)."""

    rules: tuple[ResourceRule, ...] = ()
    exclude_rules: tuple[ResourceRule, ...] = ()
    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector = field(default_factory=LabelSelector)
    object_selector: LabelSelector = field(default_factory=LabelSelector)


@dataclass(frozen=True, slots=True)
class Validation:
    expression: str
    message: str = ""
    message_expression: str = ""


@dataclass(frozen=True, slots=True)
class NamedExpression:
    """A ``variables`` or ``matchConditions`` entry."""

    name: str
    expression: str


@dataclass(frozen=True, slots=True)
class Policy:
    """One compliance policy as written in its file (not yet compiled)."""

    name: str
    file: str
    severity: Severity
    category: str
    controls: tuple[str, ...]
    description: str
    remediation: str
    match: Match
    validations: tuple[Validation, ...]
    match_conditions: tuple[NamedExpression, ...] = ()
    variables: tuple[NamedExpression, ...] = ()
    params: Any = None
    title: str = ""
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Exemption:
    """Why a result does not count: an annotation on the object or a config entry."""

    source: Literal["annotation", "config"]
    justification: str
    approver: str = ""
    expires: str = ""
    expired: bool = False


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The outcome of one policy for one object.

    ``status`` is what counts: an exempted failure is ``skip`` with its exemption; a failure
    whose exemption has expired is ``fail`` and carries the expired exemption so outputs can
    say so. ``messages`` never hold Secret values (policies name keys, not values).
    """

    policy: str
    key: ResourceKey
    api_version: str
    status: Status
    severity: Severity
    messages: tuple[str, ...] = ()
    exemption: Exemption | None = None
    source: SourceInfo | None = None

    @property
    def message(self) -> str:
        return "; ".join(self.messages)


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """A policy that could not be loaded or compiled: the others still run."""

    file: str
    policy: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: policy {self.policy or '?'}: {self.message}"
