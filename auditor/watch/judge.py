"""One batch of watch events judged and recorded: the watch run.

For each object version an event carries: the version with its actor, recorded as ``run``
records it (:func:`auditor.pipeline.observation_of`); the object compared with Git on its
own; its drift opened, kept or resolved in the same transaction. A ``DELETED`` event, or a
relist (``LISTED``) that lacks an object the ledger holds as live, records the deletion.
Only the objects the batch named are judged (``undecided`` for every other key): a watch run
never resolves a drift it did not look at, never marks an object deleted because it was not
in the batch. Each kind's resume position is written by the run's ``finish``, in the same
transaction, so a watch killed at any point resumes after exactly what it committed.

Events whose object the ledger already holds at a later resourceVersion are stale (a
scheduled run listed the cluster while this batch waited for the ledger): they record
nothing and are not judged, so a change seen by both ``run`` and ``watch`` is one change
and one drift. An object whose resourceVersion is the one the ledger holds is not normalised
or compared again: a watch's first list over a cluster the ledger knows costs one indexed
read per object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.config import Config
from auditor.desired.state import DesiredState, Manifests
from auditor.engine.compare import CompareSettings, compare_all, managed_namespaces_of
from auditor.engine.records import ObjectResult, Problem, ResourceKey
from auditor.engine.scope import key_in_scope
from auditor.ledger import Ledger, Run
from auditor.ledger import times as ledger_times
from auditor.live.watch import WatchEvent
from auditor.pipeline import observation_of, wanted


@dataclass
class Judge:
    """What judging an object needs: the settings and Git as last read."""

    cfg: Config
    settings: CompareSettings
    desired: DesiredState
    want: Manifests = field(init=False)
    namespaces: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.want = wanted(self.desired, self.cfg)
        self.namespaces = managed_namespaces_of(self.want)

    def compare(self, key: ResourceKey, live: dict[str, Any] | None,
                problems: list[Problem]) -> ObjectResult | None:
        """``key``'s result against Git (``live`` None: it is gone), or None when there is
        nothing to say (neither declared nor an orphan, or undecided while Git is not known
        in full)."""
        desired = self.want.get(key)
        results = list(compare_all(
            {key: desired} if desired is not None else {},
            [live] if live is not None else [], settings=self.settings,
            sources=self.want.sources, managed_namespaces=self.namespaces,
            problems=problems, orphans=self.desired.complete))
        return results[0] if results else None


@dataclass
class BatchCounts:
    """What one batch did, for its run's counts and the log line."""

    events: int = 0
    versions: int = 0
    deletions: int = 0
    stale: int = 0
    unchanged: int = 0
    compared: int = 0
    relisted: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def record_batch(ledger: Ledger, run: Run, judge: Judge, events: Sequence[WatchEvent],
                 problems: list[Problem]) -> tuple[BatchCounts, set[ResourceKey],
                                                    dict[str, str | None]]:
    """Observe, compare and record ``events`` on ``run``; the keys judged and each kind's
    position after the batch (the caller finishes the run with them)."""
    counts = BatchCounts(events=len(events))
    judged: set[ResourceKey] = set()
    positions: dict[str, str | None] = {}
    scope = judge.cfg.scope
    for event in events:
        kind = event.type
        if kind in ("ADDED", "MODIFIED") and event.obj is not None:
            key = ResourceKey.of(event.obj)
            if key_in_scope(key, scope):
                _changed(ledger, run, judge, key, event.obj, counts, judged, problems)
        elif kind == "DELETED" and event.obj is not None:
            key = ResourceKey.of(event.obj)
            if key_in_scope(key, scope):
                _deleted(run, judge, key, event.resource_version, counts, judged, problems)
        elif kind == "LISTED" and event.keys is not None:
            res = event.resource
            for key in list(ledger.live_keys(res.group, res.kind,
                                             event.namespace or None)):
                if key not in event.keys and key_in_scope(key, scope):
                    counts.relisted += 1
                    _deleted(run, judge, key, "", counts, judged, problems)
        # A list's own objects carry the position before the list ("" for a first list):
        # killed mid-list, the watch lists again.
        positions[event.resource.group_kind] = event.resource_version or None
    return counts, judged, positions


def _changed(ledger: Ledger, run: Run, judge: Judge, key: ResourceKey, obj: dict[str, Any],
             counts: BatchCounts, judged: set[ResourceKey], problems: list[Problem]) -> None:
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    known = ledger.versions_of([key]).get(key)
    if known is not None and rv and known[0] == rv:
        counts.unchanged += 1
        return
    obs = observation_of(obj, key, judge.settings)
    if known is not None and known[1] == obs.content_hash:
        run.observe(obs)  # a status write: the ledger moves its resourceVersion on
        counts.unchanged += 1
        return
    if not run.observe(obs):
        counts.stale += 1
        return
    counts.versions += 1
    judged.add(key)
    result = judge.compare(key, obj, problems)
    counts.compared += 1
    if result is not None:
        run.record(result)
    else:
        run.settle(key)


def _deleted(run: Run, judge: Judge, key: ResourceKey, rv: str, counts: BatchCounts,
             judged: set[ResourceKey], problems: list[Problem]) -> None:
    # Who deleted it the watch cannot say (the audit events can); when: now, as seen.
    if not run.observe_deleted(key, time=ledger_times.stamp(ledger_times.now()),
                               resource_version=rv):
        counts.stale += 1
        return
    counts.deletions += 1
    judged.add(key)
    result = judge.compare(key, None, problems)
    if result is not None:
        run.record(result)
