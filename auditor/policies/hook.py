"""Policies riding along one audit run (``pipeline.run_once``): every live object the run
streams is evaluated as it passes, and the results go into the run's ledger batch.

    policy_run = PolicyRun.start(cfg, ledger)          # None when policies are off/absent
    ... for each live object:  policy_run.add(obj)
    ... before run.finish():   outcome = policy_run.finish(run, skipped_kinds=...)
                               problems += outcome.problems

A failure inside policy evaluation never fails the audit: it becomes a run problem and
policy evaluation stops for that run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.config import Config
from auditor.engine.records import Problem, ResourceKey, SourceInfo
from auditor.errors import PolicyError

from .engine import CacheEntry, Evaluation, PolicyEngine, PolicySession
from .outputs import compliance_score

if TYPE_CHECKING:
    from auditor.ledger import Ledger, Run
    from auditor.ledger.policyresults import PolicyRunSummary

log = logging.getLogger(__name__)


@dataclass
class PolicyOutcome:
    """What one run's policy pass produced."""

    evaluation: Evaluation
    score: float
    problems: list[Problem] = field(default_factory=list)
    ledger: PolicyRunSummary | None = None
    seconds: float = 0.0


class PolicyRun:
    """One run's policy session: objects in, results (and cache) to the ledger."""

    def __init__(self, engine: PolicyEngine, previous: Mapping[str, CacheEntry],
                 sources: Mapping[ResourceKey, SourceInfo] | None = None) -> None:
        self.engine = engine
        self.session: PolicySession = engine.session(previous, sources)
        self.problems: list[Problem] = [Problem(f"policy {p.policy or '?'}", str(p))
                                        for p in engine.problems]
        self.failed = False
        self.seconds = 0.0

    @classmethod
    def start(cls, cfg: Config, ledger: Ledger | None = None, *,
              directory: str | Path | None = None) -> PolicyRun | None:
        """Load the policies (``policies.directory``) and the ledger's cache; ``None`` when
        policies are disabled or the folder does not exist. Raises :class:`PolicyError` for
        invalid exemptions in the configuration (a config error, reported before the run)."""
        folder = Path(directory or cfg.policies.directory)
        if not cfg.policies.enabled or not folder.exists():
            return None
        engine = PolicyEngine.load(folder, cfg.policies)
        if not engine.compiled and not engine.problems:
            return None
        previous: dict[str, CacheEntry] = {}
        if ledger is not None:
            from auditor.ledger.policyresults import load_cache

            previous = {ref: CacheEntry(digest, outcomes)
                        for ref, (digest, outcomes) in load_cache(ledger.conn).items()}
        return cls(engine, previous)

    def add(self, obj: Mapping[str, Any]) -> None:
        if self.failed:
            return
        started = time.perf_counter()
        try:
            self.session.add(obj)
        except Exception as exc:  # never let a policy bug fail the audit itself
            self._fail(exc)
        self.seconds += time.perf_counter() - started

    def _fail(self, exc: BaseException) -> None:
        log.exception("policy evaluation failed")
        self.failed = True
        self.problems.append(Problem("policies", f"policy evaluation stopped: "
                                                 f"{type(exc).__name__}: {exc}"))

    def finish(self, run: Run | None = None, *, skipped_kinds: Collection[str] = (),
               complete: bool = True) -> PolicyOutcome:
        """Evaluate what waited for the whole stream, then stage the results in ``run``
        (before ``run.finish``). ``complete``: every in-scope kind was listed, so a result
        that disappeared means its object is gone."""
        started = time.perf_counter()
        try:
            evaluation = self.session.finish()
        except Exception as exc:
            self._fail(exc)
            evaluation = Evaluation([], self.engine.policies, self.engine.problems)
        self.seconds += time.perf_counter() - started
        score = compliance_score(evaluation.results)
        outcome = PolicyOutcome(evaluation, score, self.problems, seconds=self.seconds)
        if run is not None:
            from auditor.ledger.policyresults import PolicyRunRecord, record

            outcome.ledger = record(run, PolicyRunRecord(
                results=evaluation.results, score=score, policies=len(evaluation.policies),
                evaluated=evaluation.evaluated, reused=evaluation.reused,
                problems=[f"{p.where}: {p.message}" for p in self.problems],
                cache={ref: (e.content_hash, e.outcomes)
                       for ref, e in evaluation.changed_cache.items()},
                seen=set(evaluation.cache), skipped_kinds=skipped_kinds,
                complete=complete and not self.failed,
                catalog={p.name: {"title": p.title or p.name, "severity": p.severity,
                                  "category": p.category, "controls": list(p.controls),
                                  "description": p.description,
                                  "remediation": p.remediation}
                         for p in evaluation.policies}))
        return outcome


def start_or_problem(cfg: Config, ledger: Ledger | None) -> tuple[PolicyRun | None,
                                                                  list[Problem]]:
    """:meth:`PolicyRun.start`, with bad exemptions turned into a run problem instead of an
    exception (for callers that prefer the audit to go on without policies)."""
    try:
        return PolicyRun.start(cfg, ledger), []
    except PolicyError as exc:
        return None, [Problem("policies", str(exc))]
