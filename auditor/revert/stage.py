"""Revert as a stage of the run: the live objects it needs kept while the run streams the
cluster past the comparison (:class:`LiveKeeper`), then, after every result is recorded and
before the run closes, plan, execute and record each attempt in the ledger
(:func:`after_compare`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from auditor.config import RevertConfig
from auditor.engine.records import ObjectResult, Problem, ResourceKey
from auditor.live.client import APIResource, Cluster
from auditor.revert.execute import Executor, Outcome
from auditor.revert.plan import Plan, plan

if TYPE_CHECKING:
    from auditor.engine.compare import CompareSettings
    from auditor.ledger import Run

log = logging.getLogger(__name__)


@dataclass
class RevertReport:
    """One run's revert: the plan, each outcome, and the problems to report."""

    mode: str
    plan: Plan = field(default_factory=Plan)
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        by = {r: sum(1 for o in self.outcomes if o.result == r)
              for r in ("reverted", "dry-run", "failed", "skipped")}
        return {"reverts_planned": len(self.plan.actions), "reverted": by["reverted"],
                "revert_dry_run": by["dry-run"], "revert_failed": by["failed"],
                "revert_skipped": len(self.plan.skipped) + by["skipped"],
                "revert_capped": int(self.plan.capped)}


class LiveKeeper:
    """Wraps the pipeline's live stream and keeps the objects :func:`after_compare` needs.

    An object waits in ``pending`` while the stream below compares it (only objects that
    may get a result: desired keys, and orphan candidates — in a namespace Git manages,
    without owner references); the pipeline notes each result before it asks for the next
    object, so when the stream moves on the object is dropped unless its result kept it.
    Drifted and orphan ones are kept: memory follows the drift count. With ``want=None``
    (revert off) it passes the stream through and keeps nothing.
    """

    def __init__(self, stream: Iterable[dict[str, Any]],
                 want: Mapping[ResourceKey, Any] | None = None) -> None:
        self._stream = stream
        self._want = want
        self._namespaces = frozenset(
            k.namespace or k.name for k in (want or {})
            if k.namespace or (k.group == "" and k.kind == "Namespace"))
        self.pending: dict[ResourceKey, dict[str, Any]] = {}
        self.kept: dict[ResourceKey, dict[str, Any]] = {}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._want is None:
            yield from self._stream
            return
        for obj in self._stream:
            key = ResourceKey.of(obj)
            if key in self._want or (key.namespace in self._namespaces
                                     and not (obj.get("metadata") or {}).get("ownerReferences")):
                self.pending[key] = obj
                yield obj
                self.pending.pop(key, None)  # its result, if any, was noted by now
            else:
                yield obj

    @property
    def active(self) -> bool:
        """Whether it keeps anything (revert is on): otherwise results need not be noted."""
        return self._want is not None

    def note(self, result: ObjectResult) -> None:
        obj = self.pending.pop(result.key, None)
        if obj is not None and result.status in ("drifted", "orphan"):
            self.kept[result.key] = obj


def after_compare(cfg: RevertConfig, cluster: Cluster, run: Run,
                  desired: Mapping[ResourceKey, dict[str, Any]],
                  results: Sequence[ObjectResult], live: Mapping[ResourceKey, dict[str, Any]],
                  resources: Iterable[APIResource], *, settings: CompareSettings,
                  now: datetime | None = None) -> RevertReport:
    """The pipeline's hook: after every result is recorded, before ``run.finish``.

    ``live`` holds the live objects of drifted and orphan keys; ``settings`` are the run's
    comparison settings (manager categories, normalisation with keyed Secret hashes, and
    the comparison that checks each applied object). Returns the report; its problems go
    into the run's problems, its counts into the run's counts.
    """
    from auditor.engine.compare import compare_object
    from auditor.ledger import content_hash as ledger_hash
    from auditor.ledger import lifecycle
    from auditor.ledger import reverts as ledger_reverts

    def content_hash(obj: dict[str, Any]) -> str:
        return ledger_hash(settings.normalise(obj))

    def remaining(key: ResourceKey, want: dict[str, Any], have: dict[str, Any]) -> list[str]:
        result = compare_object(key, want, have, settings=settings)
        return sorted({d.path for d in result.drifts}) if result.status == "drifted" else []

    report = RevertReport(cfg.mode)
    if cfg.mode == "off":
        return report
    moment = now or datetime.now(UTC)
    last = ledger_reverts.last_attempts(run.ledger.conn)
    report.plan = plan(cfg, results, desired, live, last=last, desired_hash=content_hash,
                       now=moment)
    dry_run = cfg.mode == "dry-run"
    if report.plan.capped:
        keys = [a.key for a in report.plan.actions]
        message = (f"{len(keys)} objects to revert exceed revert.max_objects "
                   f"({cfg.max_objects}): nothing was reverted; check the Git revision, then "
                   f"raise the cap or revert by hand")
        log.warning("revert: %s", message)
        ledger_reverts.record_capped(run, mode=cfg.mode, planned=keys, cap=cfg.max_objects)
        report.problems.append(Problem("revert", message, "revert-capped",
                                       (("planned", len(keys)), ("cap", cfg.max_objects))))
        return report
    executor = Executor(cluster, resources, cfg, classify=settings.classify, now=moment,
                        remaining=remaining)
    for action in report.plan.actions:
        outcome = executor.run(action, dry_run=dry_run)
        report.outcomes.append(outcome)
        log.info("revert %s %s: %s: %s", action.verb, action.key, outcome.result,
                 outcome.message)
        if outcome.result == "skipped":
            continue
        desired_hash = content_hash(action.desired) if action.desired is not None else ""
        live_hash = content_hash(action.live) if action.live is not None else ""
        previous = last.get(action.key)
        if outcome.result == "dry-run" and previous is not None \
                and previous.result == "dry-run" and previous.desired_hash == desired_hash \
                and previous.live_hash == live_hash:
            continue  # the same would-be revert as last run: recorded once, not every run
        ledger_reverts.record(
            run, action.key, action=action.verb, mode=cfg.mode, result=outcome.result,
            reason=action.reason, items=lifecycle.items_of(action.result),
            desired_hash=desired_hash, live_hash=live_hash,
            resource_version_before=outcome.resource_version_before,
            resource_version_after=outcome.resource_version_after,
            managers=outcome.managers,
            error=outcome.message if outcome.result == "failed" else "")
        if outcome.result == "reverted":
            run.reverted(action.key)
        elif outcome.result == "failed":
            report.problems.append(Problem(
                str(action.key), f"revert failed: {outcome.message} (next attempt after "
                f"{cfg.failure_backoff_minutes:g} minutes at the earliest)", "revert-failed",
                (("forbidden", outcome.forbidden),)))
    return report
