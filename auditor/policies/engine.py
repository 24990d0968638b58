"""Evaluating policies: CEL programs compiled once, matched and run per object.

With :mod:`.celext` (the extension functions), this is the only place that imports the CEL
library (``cel``, the cel-rust bindings). An engine holds one CEL context: use it from one
thread at a time.

Cost model, measured with cel 0.10: converting an object into a CEL value costs far more
than running a program over it (≈100 µs against ≈1–5 µs), so each object is converted once
into one reused :class:`cel.Context` and every applicable program runs against it; policies
sharing the same ``variables`` share one evaluation of them per object.

A steady-state run skips objects it has seen: results are cached per object under the
content hash of what the programs see (the object without ``managedFields`` and
``resourceVersion``) and each policy's digest (its file's content, plus the engine
revision), so only objects whose content changed, and policies that changed, are evaluated
again. The cache lives in the ledger (:mod:`auditor.ledger.policyresults`).

Variables in programs, as in ValidatingAdmissionPolicy: ``object``, ``oldObject`` (always
null: an audit has no update), ``namespaceObject``, ``params`` (the policy's inline
``params``), ``variables``; and one of ours, ``namespaceInventory``: for a ``Namespace``, a map
from ``Kind`` or ``Kind.group`` to how many objects of that kind the namespace holds, so a
policy can ask for a NetworkPolicy in every namespace. Policies that use ``request`` or
``authorizer`` (which exist only at admission time) are reported as skipped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cel
import orjson

from auditor.config import PoliciesConfig
from auditor.engine.records import ResourceKey, SourceInfo

from . import celext
from .exemptions import Exemptions
from .inline import NotInlinable, inline, inline_all
from .loader import load_policies
from .match import label_match, names_matter, static_match
from .model import LoadProblem, Policy, PolicyResult, Status, Validation

# cel logs every failing Python callback at ERROR on its own logger; we report those
# failures as `error` results, so its log lines would only repeat them.
logging.getLogger("cel").setLevel(logging.CRITICAL)

ADMISSION_ONLY = ("request", "authorizer")
KNOWN_VARIABLES = frozenset({"object", "oldObject", "namespaceObject", "params", "variables",
                             "namespaceInventory", *ADMISSION_ONLY})
SECRET_PLACEHOLDER = "(redacted)"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

Program = Any  # cel.Program (no stub type is exported for annotations)


@dataclass(frozen=True, slots=True)
class _Check:
    validation: Validation
    program: Program
    message_program: Program | None


@dataclass
class CompiledPolicy:
    """A policy with its programs; ``skip_reason`` set when it cannot run in an audit."""

    policy: Policy
    conditions: list[tuple[str, Program]]
    variables: list[tuple[str, Program]]
    checks: list[_Check]
    skip_reason: str = ""
    uses_namespace: bool = False
    uses_inventory: bool = False
    uses_params: bool = False
    uses_variables: bool = False

    @property
    def variables_signature(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, p.source) for name, p in self.variables)

    def cache_slot(self, namespace_hash: str) -> str:
        return f"{self.policy.digest}:{namespace_hash}" if self.uses_namespace else self.policy.digest


class _CompileError(Exception):
    pass


def _compile(expression: str, where: str) -> tuple[Program, set[str], set[str]]:
    try:
        program = cel.compile(expression)
    except Exception as exc:  # cel raises ValueError with the parser's report
        raise _CompileError(f"{where}: does not compile: {str(exc).strip()}") from None
    refs = program.references()
    functions = {f for f in refs.get("functions", []) if not (f.startswith(("_", "!", "@")))}
    unknown = sorted(f for f in functions if f not in celext.FUNCTIONS
                     and f not in celext.NATIVE)
    if unknown:
        raise _CompileError(f"{where}: unknown function {', '.join(unknown)}")
    return program, set(refs.get("variables", [])), functions


def _inliner(policy: Policy) -> Callable[[str], str] | None:
    """A function inlining the policy's variables, or ``None`` (no variables, or a use that
    cannot be inlined: then variables are evaluated eagerly per object)."""
    if not policy.variables:
        return None
    try:
        definitions = inline_all([(v.name, v.expression) for v in policy.variables])
        texts = [c.expression for c in policy.match_conditions]
        for v in policy.validations:
            texts.extend(t for t in (v.expression, v.message_expression) if t)
        for text in texts:
            inline(text, definitions)
    except NotInlinable:
        return None
    return lambda text: inline(text, definitions)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile every expression of ``policy``; raises :class:`ValueError` naming the one
    that fails (``spec.validations[2].expression: does not compile: ...``)."""
    names: set[str] = set()
    inliner = _inliner(policy)

    def build(text: str, where: str) -> tuple[Program, set[str]]:
        # The text as written is checked first, so errors quote what the author wrote.
        program, refs, _ = _compile(text, where)
        if inliner is not None:
            program, refs, _ = _compile(inliner(text), where)
        return program, refs

    try:
        conditions = []
        for i, c in enumerate(policy.match_conditions):
            program, refs = build(c.expression, f"spec.matchConditions[{i}] ({c.name})")
            conditions.append((c.name, program))
            names |= refs
        variables = []
        for i, v in enumerate(policy.variables):
            program, refs, _ = _compile(v.expression, f"spec.variables[{i}] ({v.name})")
            if inliner is None:
                variables.append((v.name, program))
            names |= refs
        checks = []
        for i, check in enumerate(policy.validations):
            program, refs = build(check.expression, f"spec.validations[{i}].expression")
            names |= refs
            message = None
            if check.message_expression:
                message, refs = build(check.message_expression,
                                      f"spec.validations[{i}].messageExpression")
                names |= refs
            checks.append(_Check(check, program, message))
    except _CompileError as exc:
        raise ValueError(str(exc)) from None
    if inliner is not None:
        names.discard("variables")
    admission = sorted(n for n in ADMISSION_ONLY if n in names)
    skip = (f"uses {' and '.join(admission)}, which exist only at admission time"
            if admission else "")
    return CompiledPolicy(policy, conditions, variables, checks, skip,
                          uses_namespace="namespaceObject" in names,
                          uses_inventory="namespaceInventory" in names,
                          uses_params="params" in names, uses_variables="variables" in names)


def _context() -> cel.Context:
    ctx = cel.Context()
    for name, fn in celext.FUNCTIONS.items():
        ctx.add_function(name, fn)
    # Constant across objects: an audit has no old object.
    ctx.add_variable("oldObject", None)
    for name in ("namespaceObject", "params", "namespaceInventory"):
        ctx.add_variable(name, None)
    ctx.add_variable("variables", {})
    return ctx


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0] if exc.args else exc}"
    text = str(exc).strip()
    # cel wraps callback failures in boilerplate; keep the part that says what went wrong.
    for marker in ("Python function call failed: ", "error: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.removesuffix(" Check function arguments and their types.").strip() or \
        type(exc).__name__


def _redact_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret with its values replaced: a messageExpression can never print one."""
    out = dict(obj)
    for name in ("data", "stringData"):
        if isinstance(obj.get(name), dict):
            out[name] = {k: SECRET_PLACEHOLDER if v else "" for k, v in obj[name].items()}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and LAST_APPLIED in (meta.get("annotations") or {}):
        out["metadata"] = {**meta, "annotations": {**meta["annotations"],
                                                   LAST_APPLIED: SECRET_PLACEHOLDER}}
    return out


def prepare(obj: Mapping[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """What programs see: the object without ``managedFields`` and ``resourceVersion`` (they
    change on every write and no policy is about them), Secret values redacted, and the
    top-level fields in ``drop`` removed."""
    out = {k: v for k, v in obj.items() if k not in drop} if drop else dict(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and ("managedFields" in meta or "resourceVersion" in meta):
        out["metadata"] = {k: v for k, v in meta.items()
                           if k not in ("managedFields", "resourceVersion")}
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1":
        out = _redact_secret(out)
    return out


def content_hash(prepared: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(prepared, option=orjson.OPT_SORT_KEYS)).hexdigest()


# A cached outcome: (status, messages) per policy cache slot.
Outcome = tuple[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What the ledger keeps per object between runs."""

    content_hash: str
    outcomes: Mapping[str, Outcome]


@dataclass
class Evaluation:
    """All results of one pass over a set of objects."""

    results: list[PolicyResult]
    policies: list[Policy]
    problems: list[LoadProblem]
    objects: int = 0
    evaluated: int = 0
    reused: int = 0
    cache: dict[str, CacheEntry] = field(default_factory=dict)
    changed_cache: dict[str, CacheEntry] = field(default_factory=dict)


def object_ref(key: ResourceKey) -> str:
    """The cache key of an object: ``group/kind/namespace/name``."""
    return f"{key.group}/{key.kind}/{key.namespace}/{key.name}"


class PolicyEngine:
    """Compiled policies plus exemptions. Build with :meth:`load` or :meth:`from_policies`."""

    def __init__(self, compiled: Sequence[CompiledPolicy], problems: Sequence[LoadProblem] = (),
                 exemptions: Exemptions | None = None) -> None:
        # Policies sharing ``variables`` sit together: each group evaluates them once.
        self.compiled = sorted(compiled, key=lambda c: (c.variables_signature, c.policy.name))
        self.problems = list(problems)
        self.exemptions = exemptions or Exemptions()
        self._ctx = _context()
        self.needs_namespace = any(
            c.uses_namespace or c.policy.match.namespace_selector for c in self.compiled)
        # Resource rules depend on the kind alone: the candidates per (group, kind) are
        # computed once, so each object is matched against only the policies for its kind.
        self._candidates: dict[tuple[str, str, str], list[CompiledPolicy]] = {}
        # Converting a value into CEL costs ~2.5 µs per string: a live object's status is
        # left out when no loaded policy mentions it (so status churn also re-evaluates
        # nothing in steady state).
        texts = [t for c in self.compiled for t in _texts(c.policy)]
        self.drop: tuple[str, ...] = () if any(
            re.search(r"\bstatus\b", t) for t in texts) else ("status",)

    @property
    def policies(self) -> list[Policy]:
        return [c.policy for c in self.compiled]

    @classmethod
    def from_policies(cls, policies: Iterable[Policy], problems: Iterable[LoadProblem] = (),
                      exemptions: Exemptions | None = None,
                      disabled: Sequence[str] = ()) -> PolicyEngine:
        compiled: list[CompiledPolicy] = []
        found = list(problems)
        for policy in policies:
            if any(fnmatch.fnmatchcase(policy.name, d) for d in disabled):
                continue
            try:
                compiled.append(compile_policy(policy))
            except ValueError as exc:
                found.append(LoadProblem(policy.file, policy.name, str(exc)))
        return cls(compiled, found, exemptions)

    @classmethod
    def load(cls, directory: str | Path, config: PoliciesConfig | None = None, *,
             now: datetime | None = None) -> PolicyEngine:
        """Every policy under ``directory``; bad ones become :attr:`problems`.

        Raises :class:`~auditor.errors.PolicyError` for invalid config exemptions.
        """
        cfg = config or PoliciesConfig()
        policies, problems = load_policies(directory)
        return cls.from_policies(policies, problems, Exemptions(cfg.exemptions, now=now),
                                 cfg.disabled)

    # ------------------------------------------------------------------ one object

    def session(self, previous: Mapping[str, CacheEntry] | None = None,
                sources: Mapping[ResourceKey, SourceInfo] | None = None) -> PolicySession:
        return PolicySession(self, previous or {}, sources or {})

    def evaluate(self, obj: Mapping[str, Any], namespace_obj: Mapping[str, Any] | None = None,
                 inventory: Mapping[str, int] | None = None) -> list[PolicyResult]:
        """Every applicable policy over one object (no cache), exemptions applied."""
        results, _entry, _n = self._evaluate(obj, namespace_obj, inventory, None, None)
        return results

    def _evaluate(self, obj: Mapping[str, Any], namespace_obj: Mapping[str, Any] | None,
                  inventory: Mapping[str, int] | None, previous: CacheEntry | None,
                  source: SourceInfo | None
                  ) -> tuple[list[PolicyResult], CacheEntry | None, int]:
        key = ResourceKey.of(dict(obj))
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        is_namespace = key.kind == "Namespace" and key.group == ""
        ns_obj = obj if is_namespace else namespace_obj
        ns_labels = ((ns_obj.get("metadata") or {}).get("labels") or {}) if ns_obj else None
        # Rules and namespace names depend on (group, kind, namespace) alone: computed once
        # per combination; only label selectors (and resourceNames) are checked per object.
        where = key.name if is_namespace else key.namespace
        kind_slot = (key.group, key.kind, where)
        candidates = self._candidates.get(kind_slot)
        if candidates is None:
            candidates = [c for c in self.compiled
                          if names_matter(c.policy.match) or static_match(c.policy.match, key)]
            self._candidates[kind_slot] = candidates
        applicable = [c for c in candidates
                      if (not c.uses_inventory or inventory is not None)
                      and (not names_matter(c.policy.match)
                           or static_match(c.policy.match, key))
                      and label_match(c.policy.match, key, labels, ns_labels)]
        if not applicable:
            return [], None, 0
        prepared = prepare(obj, self.drop)
        digest = content_hash(prepared)
        ns_hash = content_hash(prepare(ns_obj, self.drop))[:16] if ns_obj is not None and \
            self.needs_namespace else ""
        reuse = previous.outcomes if previous is not None and \
            previous.content_hash == digest else {}
        outcomes: dict[str, Outcome] = {}
        state = _ObjectState(self._ctx, prepared, ns_obj, inventory,
                             any(c.uses_namespace for c in applicable))
        evaluated = 0
        results = []
        api_version = str(obj.get("apiVersion") or "")
        annotations = meta.get("annotations") or {}
        for compiled in applicable:
            slot = compiled.cache_slot(ns_hash)
            # Inventory policies depend on other objects: never cached.
            outcome = None if compiled.uses_inventory else reuse.get(slot)
            if outcome is None:
                outcome = state.run(compiled)
                evaluated += 1
            if outcome[0] == "n/a":
                if not compiled.uses_inventory:
                    outcomes[slot] = outcome
                continue
            if not compiled.uses_inventory:
                outcomes[slot] = outcome
            result = PolicyResult(compiled.policy.name, key, api_version,
                                  _status(outcome[0]), compiled.policy.severity,
                                  tuple(outcome[1]), None, source)
            results.append(self.exemptions.apply(result, annotations))
        return results, CacheEntry(digest, outcomes), evaluated


def _texts(policy: Policy) -> list[str]:
    texts = [c.expression for c in (*policy.match_conditions, *policy.variables)]
    for v in policy.validations:
        texts.extend(t for t in (v.expression, v.message_expression) if t)
    return texts


def _status(text: str) -> Status:
    return text if text in ("pass", "fail", "skip", "error") else "error"  # type: ignore[return-value]


class _ObjectState:
    """One object loaded into the shared context, converted lazily and once."""

    def __init__(self, ctx: cel.Context, prepared: dict[str, Any],
                 namespace_obj: Mapping[str, Any] | None,
                 inventory: Mapping[str, int] | None, with_namespace: bool) -> None:
        self.ctx = ctx
        self.prepared = prepared
        self.namespace_obj = namespace_obj
        self.inventory = inventory
        self.with_namespace = with_namespace
        self.loaded = False
        self.variables_for: tuple[tuple[str, str], ...] | None = None
        self.variables_error = ""

    def _load(self) -> None:
        # Each add_variable converts its value into CEL, the dominant cost: only what the
        # applicable policies read is set (the rest keeps the engine's constants).
        if self.loaded:
            return
        ctx = self.ctx
        ctx.add_variable("object", self.prepared)
        if self.with_namespace:
            ctx.add_variable("namespaceObject", prepare(self.namespace_obj)
                             if self.namespace_obj is not None else None)
        if self.inventory is not None:
            ctx.add_variable("namespaceInventory", dict(self.inventory))
        self.loaded = True

    def _variables(self, compiled: CompiledPolicy) -> str:
        signature = compiled.variables_signature
        if signature == self.variables_for:
            return self.variables_error
        values: dict[str, Any] = {}
        self.variables_error = ""
        self.ctx.add_variable("variables", values)
        for name, program in compiled.variables:
            try:
                values[name] = program.execute(self.ctx)
            except Exception as exc:
                self.variables_error = f"variable {name}: {_error_text(exc)}"
                break
            # Later variables may use earlier ones.
            self.ctx.add_variable("variables", values)
        self.variables_for = signature
        return self.variables_error

    def run(self, compiled: CompiledPolicy) -> Outcome:
        """``(status, messages)``; status ``n/a`` when a match condition excludes the object."""
        if compiled.skip_reason:
            return "skip", (compiled.skip_reason,)
        self._load()
        policy = compiled.policy
        if compiled.uses_params:
            self.ctx.add_variable("params", policy.params)
        if compiled.uses_variables:
            error = self._variables(compiled)
            if error:
                return "error", (error,)
        for name, program in compiled.conditions:
            try:
                value = program.execute(self.ctx)
            except Exception as exc:
                return "error", (f"matchCondition {name}: {_error_text(exc)}",)
            if value is not True:
                if value is not False:
                    return "error", (f"matchCondition {name}: expected a bool, got {value!r}",)
                return "n/a", ()
        failed: list[str] = []
        errors: list[str] = []
        for check in compiled.checks:
            try:
                value = check.program.execute(self.ctx)
            except Exception as exc:
                errors.append(f"{check.validation.expression}: {_error_text(exc)}")
                continue
            if value is True:
                continue
            if value is not False:
                errors.append(f"{check.validation.expression}: expected a bool, got "
                              f"{type(value).__name__}")
                continue
            failed.append(self._message(check))
        if failed:
            return "fail", tuple(failed + errors)
        if errors:
            return "error", tuple(errors)
        return "pass", ()

    def _message(self, check: _Check) -> str:
        if check.message_program is not None:
            try:
                text = check.message_program.execute(self.ctx)
                if isinstance(text, str) and text.strip():
                    return text.strip()
            except Exception:  # as upstream: a failing messageExpression falls back
                pass
        return check.validation.message or f"failed expression: {check.validation.expression}"


class PolicySession:
    """One pass over a stream of objects (a run, or a ``check`` of files).

    Objects whose namespace is not known yet wait (when a policy needs namespace labels)
    until :meth:`finish`; so do ``Namespace`` objects for policies that read
    ``namespaceInventory``, which needs every object first.
    """

    def __init__(self, engine: PolicyEngine, previous: Mapping[str, CacheEntry],
                 sources: Mapping[ResourceKey, SourceInfo]) -> None:
        self.engine = engine
        self.previous = previous
        self.sources = sources
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.inventory: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.waiting: list[dict[str, Any]] = []
        self.results: list[PolicyResult] = []
        self.cache: dict[str, CacheEntry] = {}
        self.changed: dict[str, CacheEntry] = {}
        self.objects = 0
        self.evaluated = 0
        self.reused = 0
        self._inventory_policies = [c for c in engine.compiled if c.uses_inventory]

    def add(self, obj: Mapping[str, Any]) -> None:
        key = ResourceKey.of(dict(obj))
        self.objects += 1
        if key.namespace:
            counts = self.inventory[key.namespace]
            counts[key.group_kind] += 1
            if key.group_kind != key.kind:
                counts[key.kind] += 1
        if key.kind == "Namespace" and key.group == "":
            self.namespaces[key.name] = dict(obj)
        elif (self.engine.needs_namespace and key.namespace
              and key.namespace not in self.namespaces):
            self.waiting.append(dict(obj))
            return
        self._one(obj, key, None)

    def _one(self, obj: Mapping[str, Any], key: ResourceKey,
             inventory: Mapping[str, int] | None) -> None:
        ref = object_ref(key)
        ns_obj = self.namespaces.get(key.namespace) if key.namespace else None
        results, entry, evaluated = self.engine._evaluate(
            obj, ns_obj, inventory, self.previous.get(ref), self.sources.get(key))
        self.results.extend(results)
        self.evaluated += evaluated
        if entry is None:
            return
        if inventory is None:
            self.reused += len(entry.outcomes) - evaluated
            self.cache[ref] = entry
            old = self.previous.get(ref)
            if old is None or old != entry:
                self.changed[ref] = entry

    def finish(self) -> Evaluation:
        for obj in self.waiting:
            self._one(obj, ResourceKey.of(obj), None)
        self.waiting.clear()
        if self._inventory_policies:
            only = PolicyEngine(self._inventory_policies, (), self.engine.exemptions)
            names = set(self.namespaces) | set(self.inventory)
            for name in sorted(names):
                # A namespace that holds objects but is not itself declared (a Git folder
                # without its Namespace manifest) is still checked for coverage.
                ns = self.namespaces.get(name) or {
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                results, _e, n = only._evaluate(ns, None, dict(self.inventory.get(name, {})),
                                                None, self.sources.get(ResourceKey.of(ns)))
                self.results.extend(results)
                self.evaluated += n
        self.results.sort(key=lambda r: (r.key.group, r.key.kind, r.key.namespace,
                                         r.key.name, r.policy))
        return Evaluation(self.results, self.engine.policies, self.engine.problems,
                          self.objects, self.evaluated, self.reused, self.cache, self.changed)


def evaluate_objects(engine: PolicyEngine, objects: Iterable[Mapping[str, Any]], *,
                     previous: Mapping[str, CacheEntry] | None = None,
                     sources: Mapping[ResourceKey, SourceInfo] | None = None,
                     on_object: Callable[[Mapping[str, Any]], None] | None = None) -> Evaluation:
    """Evaluate every object of ``objects`` (a list, a snapshot, a live stream)."""
    session = engine.session(previous, sources)
    for obj in objects:
        if on_object is not None:
            on_object(obj)
        session.add(obj)
    return session.finish()
