"""The audit policy: which requests are audited, at which level, with which stages.

An ``audit.k8s.io/v1`` ``Policy`` (staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go)
evaluated as kube-apiserver's checker does (staging/src/k8s.io/apiserver/pkg/audit/policy/
checker.go, ``EvaluatePolicyRule``): the first rule whose ``users``, ``userGroups`` and
``verbs`` match and then either ``namespaces``/``resources`` (``*``, ``res/sub``, ``*/sub``,
``res/*`` — which the code matches against the resource alone, so it covers the resource
itself too — and ``resourceNames``) or ``nonResourceURLs`` (exact, ``*``, ``prefix*``) gives
the level, its ``omitStages`` united with the policy's, and ``omitManagedFields`` (the rule's,
else the policy's); no match is level None. The policy sees the *authenticated* user (audit
runs before impersonation) and, when authentication failed, no user at all: user and group
conditions then do not exclude (``len(r.Users) > 0 && attrs.GetUser() != nil``). Loading
refuses what the reader and validation refuse: another apiVersion, no rules, an unknown level
or stage, a rule naming both resources and non-resource URLs.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from auditor.sandbox.rbac import UserInfo
from auditor.sandbox.requestinfo import RequestInfo

API_VERSION = "audit.k8s.io/v1"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_RANK = {level: n for n, level in enumerate(LEVELS)}


def level_at_least(level: str, floor: str) -> bool:
    return _RANK[level] >= _RANK[floor]


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    def matches(self, info: RequestInfo, user: UserInfo | None) -> bool:
        """``ruleMatches``."""
        if self.users and user is not None and user.name not in self.users:
            return False
        if self.user_groups and user is not None and \
                not any(g in self.user_groups for g in user.groups):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(info)
        if self.non_resource_urls:
            return not info.resource_request and any(
                _path_matches(info.path, spec) for spec in self.non_resource_urls)
        return True

    def _matches_resource(self, info: RequestInfo) -> bool:
        if not info.resource_request:
            return False
        if self.namespaces and info.namespace not in self.namespaces:
            return False  # non-namespaced resources have the namespace ""
        if not self.resources:
            return True
        combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        for gr in self.resources:
            if gr.group != info.api_group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and info.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res in (combined, "*"):
                    return True
                if info.subresource and res.startswith("*/") and \
                        info.subresource == res.removeprefix("*/"):
                    return True
                if res.endswith("/*") and info.resource == res.removesuffix("/*"):
                    return True
        return False


def _path_matches(path: str, spec: str) -> bool:
    if spec in ("*", path):
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


@dataclass(frozen=True, slots=True)
class RequestAuditConfig:
    """What the policy decided for one request."""

    level: str
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False


@dataclass(frozen=True)
class Policy:
    """An ``audit.k8s.io/v1`` ``Policy``."""

    rules: tuple[PolicyRule, ...]
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any], source: str = "policy") -> Policy:
        """Decode and validate a Policy (policy/reader.go and the audit validation)."""
        if obj.get("apiVersion") != API_VERSION or obj.get("kind") != "Policy":
            raise ValueError(f"{source}: not an {API_VERSION} Policy "
                             f"(apiVersion {obj.get('apiVersion')!r}, kind {obj.get('kind')!r})")
        omit = tuple(obj.get("omitStages") or ())
        _check_stages(omit, f"{source}: omitStages")
        rules = []
        for n, raw in enumerate(obj.get("rules") or []):
            where = f"{source}: rules[{n}]"
            level = raw.get("level")
            if level not in LEVELS:
                raise ValueError(f"{where}.level: Unsupported value: {level!r}: supported "
                                 f"values: {', '.join(LEVELS)}")
            resources = tuple(
                GroupResources(str(gr.get("group") or ""), tuple(gr.get("resources") or ()),
                               tuple(gr.get("resourceNames") or ()))
                for gr in raw.get("resources") or [])
            urls = tuple(raw.get("nonResourceURLs") or ())
            if urls and (resources or raw.get("namespaces")):
                raise ValueError(f"{where}: rules cannot apply to both regular resources and "
                                 "non-resource URLs")
            for url in urls:
                if "*" in url.rstrip("*") or (not url.startswith("/") and url != "*"):
                    raise ValueError(f"{where}.nonResourceURLs: Invalid value: {url!r}")
            stages = tuple(raw.get("omitStages") or ())
            _check_stages(stages, f"{where}.omitStages")
            managed = raw.get("omitManagedFields")
            rules.append(PolicyRule(
                level=level, users=tuple(raw.get("users") or ()),
                user_groups=tuple(raw.get("userGroups") or ()),
                verbs=tuple(raw.get("verbs") or ()), resources=resources,
                namespaces=tuple(raw.get("namespaces") or ()), non_resource_urls=urls,
                # NewPolicyRuleEvaluator: each rule's stages united with the policy's.
                omit_stages=tuple(dict.fromkeys((*omit, *stages))),
                omit_managed_fields=None if managed is None else bool(managed)))
        if not rules:
            raise ValueError(f"loaded illegal policy with 0 rules from {source}")
        return cls(tuple(rules), omit, bool(obj.get("omitManagedFields")))

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Policy:
        """A Policy from a YAML or JSON file (``--audit-policy-file``)."""
        obj = yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: not an {API_VERSION} Policy")
        return cls.from_object(obj, str(path))

    def evaluate(self, info: RequestInfo, user: UserInfo | None) -> RequestAuditConfig:
        """``EvaluatePolicyRule``: the first matching rule decides; else level None."""
        for rule in self.rules:
            if rule.matches(info, user):
                managed = self.omit_managed_fields if rule.omit_managed_fields is None \
                    else rule.omit_managed_fields
                return RequestAuditConfig(rule.level, rule.omit_stages, managed)
        return RequestAuditConfig("None", self.omit_stages, self.omit_managed_fields)


def _check_stages(stages: Iterable[str], where: str) -> None:
    for stage in stages:
        if stage not in STAGES:
            raise ValueError(f"{where}: Unsupported value: {stage!r}: supported values: "
                             f"{', '.join(STAGES)}")
