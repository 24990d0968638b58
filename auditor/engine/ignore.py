"""Ignore rules: which objects, field paths and managers' changes are not drift.

Rules come from ``compare.ignore`` in the configuration and from ``DriftIgnore`` documents
in the policies folder::

    apiVersion: drift-auditor.io/v1
    kind: DriftIgnore
    metadata: {name: hpa-replicas}
    spec:
      match: {group: apps, kind: Deployment, namespace: "shop-*", name: "*"}
      paths: ["spec.replicas", 'metadata.annotations["example.com/*"]']
      managers: ["keda-operator"]
      reason: KEDA owns the replica count

Selectors are globs, matched as every scope setting is (:mod:`auditor.engine.scope`: the
kind without regard to case). Paths use the text form of :mod:`auditor.engine.paths` with
``*`` (within one element) and ``**`` (across elements) and cover everything below them.
``managers`` are trusted: their changes are dropped. A rule with neither paths nor managers
ignores the whole object.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.config import IgnoreRule
from auditor.engine.paths import glob_regex
from auditor.engine.records import DriftItem, ResourceKey
from auditor.engine.scope import kind_matches, matches
from auditor.errors import PolicyError
from auditor.support import yamlsafe

API_VERSION = "drift-auditor.io/v1"
KIND = "DriftIgnore"
_MATCH_FIELDS = ("group", "kind", "namespace", "name")
_SPEC_FIELDS = ("match", "paths", "managers", "reason")


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: IgnoreRule
    paths: tuple[re.Pattern[str], ...]

    def selects(self, key: ResourceKey) -> bool:
        r = self.rule
        # The scope's pattern rule, so that a rule selects what `scope` or `revert` would.
        return (kind_matches(key.group, key.kind, r.kind, r.group)
                and matches(key.namespace, r.namespace) and matches(key.name, r.name))

    @property
    def whole_object(self) -> bool:
        return not self.rule.paths and not self.rule.managers


class IgnoreSet:
    """Compiled ignore rules."""

    __slots__ = ("_rules",)

    def __init__(self, rules: Iterable[IgnoreRule] = ()) -> None:
        compiled = []
        for rule in rules:
            try:
                patterns = tuple(glob_regex(p) for p in rule.paths)
            except re.error as exc:  # pragma: no cover - glob_regex escapes everything
                raise PolicyError(f"ignore rule {rule}: bad path pattern: {exc}") from None
            compiled.append(_Compiled(rule, patterns))
        self._rules: tuple[_Compiled, ...] = tuple(compiled)

    def __repr__(self) -> str:
        # Stable across processes: the compare cache is stamped with it.
        return f"IgnoreSet({tuple(c.rule for c in self._rules)!r})"

    def __bool__(self) -> bool:
        return bool(self._rules)

    @property
    def rules(self) -> tuple[IgnoreRule, ...]:
        return tuple(c.rule for c in self._rules)

    def object_rule(self, key: ResourceKey) -> IgnoreRule | None:
        """The rule ignoring the whole object, if any."""
        for c in self._rules:
            if c.whole_object and c.selects(key):
                return c.rule
        return None

    def for_object(self, key: ResourceKey) -> ObjectIgnores:
        """The path and manager rules applying to one object."""
        selected = [c for c in self._rules if not c.whole_object and c.selects(key)]
        return ObjectIgnores(tuple(p for c in selected for p in c.paths),
                             tuple(m for c in selected for m in c.rule.managers))


@dataclass(frozen=True, slots=True)
class ObjectIgnores:
    """Ignore rules bound to one object."""

    paths: tuple[re.Pattern[str], ...] = ()
    managers: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.paths or self.managers)

    def drops(self, drift: DriftItem) -> bool:
        """Whether this drift is ignored (its path is ignored, or a trusted manager owns it)."""
        if any(p.match(drift.path) for p in self.paths):
            return True
        return bool(drift.manager) and any(
            fnmatch.fnmatchcase(drift.manager, m) for m in self.managers)


# --------------------------------------------------------------------------- policy files


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: expected a list of non-empty strings, got {yamlsafe.excerpt(value)}")
    return tuple(value)


def rule_from_document(doc: Mapping[str, Any], where: str) -> IgnoreRule:
    """An :class:`IgnoreRule` from one ``DriftIgnore`` document; ``where`` names it in errors."""
    if doc.get("apiVersion") != API_VERSION:
        raise PolicyError(f"{where}: apiVersion: expected {API_VERSION!r}, got {yamlsafe.excerpt(doc.get('apiVersion'))}")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise PolicyError(f"{where}: spec: expected a mapping, got {yamlsafe.excerpt(spec)}")
    for name in spec:
        if name not in _SPEC_FIELDS:
            raise PolicyError(f"{where}: spec.{name}: unknown key (expected one of: {', '.join(_SPEC_FIELDS)})")
    match = spec.get("match") or {}
    if not isinstance(match, Mapping):
        raise PolicyError(f"{where}: spec.match: expected a mapping, got {yamlsafe.excerpt(match)}")
    selector: dict[str, str] = {}
    for name, value in match.items():
        if name not in _MATCH_FIELDS:
            raise PolicyError(f"{where}: spec.match.{name}: unknown key (expected one of: {', '.join(_MATCH_FIELDS)})")
        if not isinstance(value, str):
            raise PolicyError(f"{where}: spec.match.{name}: expected a string, got {yamlsafe.excerpt(value)}")
        selector[name] = value
    reason = spec.get("reason", "")
    if not isinstance(reason, str):
        raise PolicyError(f"{where}: spec.reason: expected a string, got {yamlsafe.excerpt(reason)}")
    return IgnoreRule(paths=_str_list(spec.get("paths"), f"{where}: spec.paths"),
                      managers=_str_list(spec.get("managers"), f"{where}: spec.managers"),
                      reason=reason, **selector)


def load_policies(directory: str | Path) -> tuple[IgnoreRule, ...]:
    """The ``DriftIgnore`` rules of every ``*.yaml``/``*.yml`` file under ``directory``.

    Documents of other kinds are left to their own readers. A missing folder has no rules.
    """
    root = Path(directory)
    if not root.is_dir():
        return ()
    rules: list[IgnoreRule] = []
    for file in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        try:
            docs = list(yamlsafe.load_all(yamlsafe.read_text(file), yamlsafe.PLAIN))
        except yamlsafe.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}:" if mark is not None else ""
            what = (str(exc) if isinstance(exc, yamlsafe.LimitError)
                    else f"invalid YAML: {getattr(exc, 'problem', exc)}")
            raise PolicyError(f"{file}:{line} {what}") from None
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{file} (document {index + 1})"
            if not isinstance(doc, Mapping):
                raise PolicyError(f"{where}: expected a mapping, got {type(doc).__name__}")
            if doc.get("kind") != KIND:
                continue
            rules.append(rule_from_document(doc, where))
    return tuple(rules)
