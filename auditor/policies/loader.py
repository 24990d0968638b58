"""Reading policy files: ``CompliancePolicy`` documents in ``*.yaml``/``*.yml`` files.

The folder may also hold ``DriftIgnore`` documents (read by :mod:`auditor.engine.ignore`); every
kind other than ours is skipped. A document that is not a valid policy becomes a
:class:`~.model.LoadProblem` naming the file, the policy and the error: the other policies
still load. Unknown keys are errors (a typo in ``validations`` must not pass silently).

    apiVersion: drift-auditor.io/v1
    kind: CompliancePolicy
    metadata: {name: disallow-privileged}
    spec:
      severity: critical                 # critical | high | medium | low
      category: Pod security
      controls: [CC6.1, CC6.8]           # SOC 2 criteria
      description: ...
      remediation: ...
      matchConstraints:                  # as in ValidatingAdmissionPolicy, plus shorthands
        resourceRules:
        - apiGroups: ["", apps]
          resources: [pods, deployments] # or kinds: [Pod, Deployment]
        excludeResourceRules: [...]
        namespaceSelector: {matchLabels: {...}, matchExpressions: [...]}
        objectSelector: {...}
        namespaces: ["shop-*"]           # globs
        excludeNamespaces: [kube-system]
      matchConditions: [{name, expression}]
      variables: [{name, expression}]    # variables.<name>
      params: {...}                      # params (inline; there is no binding object)
      validations:
      - expression: "..."
        message: "..."                   # or messageExpression: "..."
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from auditor.support import yamlsafe

from .model import (
    API_VERSION,
    KIND,
    SEVERITIES,
    LabelSelector,
    LoadProblem,
    Match,
    NamedExpression,
    Policy,
    ResourceRule,
    Validation,
)

# Bumped when evaluation semantics change, so cached results computed by an older engine
# are not reused (the digest of every policy includes it).
ENGINE_REVISION = "1"

_SPEC_KEYS = ("severity", "category", "controls", "description", "remediation", "title",
              "matchConstraints", "matchConditions", "variables", "validations", "params",
              "failurePolicy", "auditAnnotations", "paramKind")
_MATCH_KEYS = ("resourceRules", "excludeResourceRules", "namespaceSelector", "objectSelector",
               "namespaces", "excludeNamespaces", "matchPolicy")
_RULE_KEYS = ("apiGroups", "apiVersions", "resources", "kinds", "resourceNames", "operations",
              "scope")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


class _Bad(Exception):
    """A document is not a valid policy (message says where and why)."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Bad(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _keys(value: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            raise _Bad(f"{where}.{key}: unknown key (expected one of: {', '.join(allowed)})")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(f"{where}: expected a list of strings, got {yamlsafe.excerpt(value)}")
    return tuple(value)


def _text(spec: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = spec.get(key)
    if value is None or value == "":
        if required:
            raise _Bad(f"spec.{key}: required")
        return ""
    if not isinstance(value, str):
        raise _Bad(f"spec.{key}: expected a string, got {yamlsafe.excerpt(value)}")
    return value.strip()


def _selector(value: Any, where: str) -> LabelSelector:
    sel = _mapping(value, where)
    _keys(sel, ("matchLabels", "matchExpressions"), where)
    labels = _mapping(sel.get("matchLabels"), f"{where}.matchLabels")
    exprs = []
    for i, expr in enumerate(sel.get("matchExpressions") or ()):
        at = f"{where}.matchExpressions[{i}]"
        expr = _mapping(expr, at)
        _keys(expr, ("key", "operator", "values"), at)
        op = expr.get("operator")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise _Bad(f"{at}.operator: expected In, NotIn, Exists or DoesNotExist, got {yamlsafe.excerpt(op)}")
        values = _strings(expr.get("values"), f"{at}.values")
        if op in ("In", "NotIn") and not values:
            raise _Bad(f"{at}.values: required for operator {op}")
        exprs.append((str(expr.get("key") or ""), str(op), values))
    return LabelSelector(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(exprs))


def _rules(value: Any, where: str) -> tuple[ResourceRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(f"{where}: expected a list, got {yamlsafe.excerpt(value)}")
    out = []
    for i, rule in enumerate(value):
        at = f"{where}[{i}]"
        rule = _mapping(rule, at)
        _keys(rule, _RULE_KEYS, at)
        resources = _strings(rule.get("resources"), f"{at}.resources")
        kinds = _strings(rule.get("kinds"), f"{at}.kinds")
        if not resources and not kinds:
            raise _Bad(f"{at}: needs resources or kinds")
        out.append(ResourceRule(_strings(rule.get("apiGroups"), f"{at}.apiGroups") or ("*",),
                                tuple(r.lower() for r in resources), kinds,
                                _strings(rule.get("resourceNames"), f"{at}.resourceNames")))
    return tuple(out)


def _named(value: Any, where: str) -> tuple[NamedExpression, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(f"{where}: expected a list, got {yamlsafe.excerpt(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        item = _mapping(item, at)
        _keys(item, ("name", "expression"), at)
        name, expression = item.get("name"), item.get("expression")
        if not isinstance(name, str) or not name:
            raise _Bad(f"{at}.name: required")
        if not isinstance(expression, str) or not expression.strip():
            raise _Bad(f"{at}.expression: required")
        out.append(NamedExpression(name, expression))
    return tuple(out)


def _validations(value: Any) -> tuple[Validation, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad("spec.validations: at least one validation is required")
    out = []
    for i, item in enumerate(value):
        at = f"spec.validations[{i}]"
        item = _mapping(item, at)
        _keys(item, ("expression", "message", "messageExpression", "reason"), at)
        expression = item.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise _Bad(f"{at}.expression: required")
        message = item.get("message") or ""
        message_expression = item.get("messageExpression") or ""
        if not isinstance(message, str) or not isinstance(message_expression, str):
            raise _Bad(f"{at}: message and messageExpression must be strings")
        out.append(Validation(expression, message.strip(), message_expression))
    return tuple(out)


def policy_from_document(doc: Mapping[str, Any], file: str) -> Policy:
    """A :class:`Policy` from one ``CompliancePolicy`` document.

    Raises :class:`ValueError` with the offending key in its message.
    """
    try:
        return _policy(doc, file)
    except _Bad as exc:
        raise ValueError(str(exc)) from None


def _policy(doc: Mapping[str, Any], file: str) -> Policy:
    if doc.get("apiVersion") != API_VERSION:
        raise _Bad(f"apiVersion: expected {API_VERSION!r}, got {yamlsafe.excerpt(doc.get('apiVersion'))}")
    name = _mapping(doc.get("metadata"), "metadata").get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _Bad(f"metadata.name: expected a lower-case DNS name, got {yamlsafe.excerpt(name)}")
    spec = _mapping(doc.get("spec"), "spec")
    _keys(spec, _SPEC_KEYS, "spec")
    severity = spec.get("severity")
    if severity not in SEVERITIES:
        raise _Bad(f"spec.severity: expected one of {', '.join(SEVERITIES)}, got {yamlsafe.excerpt(severity)}")
    match_doc = _mapping(spec.get("matchConstraints"), "spec.matchConstraints")
    _keys(match_doc, _MATCH_KEYS, "spec.matchConstraints")
    rules = _rules(match_doc.get("resourceRules"), "spec.matchConstraints.resourceRules")
    if not rules:
        raise _Bad("spec.matchConstraints.resourceRules: at least one rule is required")
    match = Match(
        rules=rules,
        exclude_rules=_rules(match_doc.get("excludeResourceRules"),
                             "spec.matchConstraints.excludeResourceRules"),
        namespaces=_strings(match_doc.get("namespaces"), "spec.matchConstraints.namespaces"),
        exclude_namespaces=_strings(match_doc.get("excludeNamespaces"),
                                    "spec.matchConstraints.excludeNamespaces"),
        namespace_selector=_selector(match_doc.get("namespaceSelector"),
                                     "spec.matchConstraints.namespaceSelector"),
        object_selector=_selector(match_doc.get("objectSelector"),
                                  "spec.matchConstraints.objectSelector"))
    controls = _strings(spec.get("controls"), "spec.controls")
    policy = Policy(
        name=name, file=file, severity=severity, category=_text(spec, "category", required=True),
        controls=controls, description=_text(spec, "description", required=True),
        remediation=_text(spec, "remediation", required=True), match=match,
        validations=_validations(spec.get("validations")),
        match_conditions=_named(spec.get("matchConditions"), "spec.matchConditions"),
        variables=_named(spec.get("variables"), "spec.variables"),
        params=spec.get("params"), title=_text(spec, "title"))
    digest = hashlib.sha256(ENGINE_REVISION.encode() + orjson.dumps(
        {"name": name, "spec": spec}, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str)).hexdigest()
    return dataclasses.replace(policy, digest=digest)


def policy_files(directory: str | Path) -> list[Path]:
    root = Path(directory)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _documents(file: Path) -> Iterable[tuple[int, Any]]:
    yield from enumerate(yamlsafe.load_all(yamlsafe.read_text(file), yamlsafe.FAST), 1)


def load_policies(directory: str | Path) -> tuple[list[Policy], list[LoadProblem]]:
    """Every ``CompliancePolicy`` under ``directory`` (a folder or one file), and a problem
    for each document that is not a valid one. Names must be unique across the folder."""
    policies: list[Policy] = []
    problems: list[LoadProblem] = []
    seen: dict[str, str] = {}
    for file in policy_files(directory):
        try:
            docs = list(_documents(file))
        except (yamlsafe.YAMLError, OSError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark is not None else ""
            what = (str(exc) if isinstance(exc, yamlsafe.LimitError) else
                    f"invalid YAML: {getattr(exc, 'problem', None) or exc}")
            problems.append(LoadProblem(str(file), "", f"{line}{what}"))
            continue
        for number, doc in docs:
            if doc is None or (isinstance(doc, Mapping) and doc.get("kind") != KIND):
                continue  # another reader's kind (DriftIgnore) or an empty document
            meta = doc.get("metadata") if isinstance(doc, Mapping) else None
            name = str(meta.get("name") or "") if isinstance(meta, Mapping) else ""
            where = f"{file} (document {number})" if len(docs) > 1 else str(file)
            if not isinstance(doc, Mapping):
                problems.append(LoadProblem(where, "", f"expected a mapping, got "
                                                       f"{type(doc).__name__}"))
                continue
            try:
                policy = _policy(doc, str(file))
            except _Bad as exc:
                problems.append(LoadProblem(where, name, str(exc)))
                continue
            if policy.name in seen:
                problems.append(LoadProblem(where, policy.name,
                                            f"duplicate policy name (also in {seen[policy.name]})"))
                continue
            seen[policy.name] = where
            policies.append(policy)
    return policies, problems
