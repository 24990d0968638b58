"""The report's GitOps completeness: with sources from Argo CD or Flux (``sources: [{from:
argocd}]``), each run recorded the controllers' view (:mod:`auditor.ledger.gitopsquery`).
This module turns the period's runs into the namespaces no source claims (not under GitOps:
neither in sync nor drifted, so outside the audit's evidence) and the sync lag per controller
source — how long approved changes in Git were not live: the longest lag seen (commits, and
the time from the first commit not applied to the run that saw it), how many runs found Git
ahead, and whether it still was at the period's end.

A period whose runs never read the controllers gets :data:`~.model.NOT_APPLICABLE_GITOPS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from auditor.ledger import gitopsquery
from auditor.ledger import reportquery as q

from .model import GitopsCoverage, SyncLagItem
from .timeutil import stamp


@dataclass
class _Acc:
    owner: str
    source: str = ""
    ref: str = ""
    runs_seen: int = 0
    runs_behind: int = 0
    behinds: list[int] = field(default_factory=list)
    longest_s: int | None = None
    longest_since: str = ""
    longest_seen_at: str = ""
    first_behind_at: str = ""
    last_behind_at: str = ""


def build(runs: Sequence[q.RunRow]) -> GitopsCoverage:
    """From the period's scheduled runs, oldest first."""
    views = [v for v in (gitopsquery.parse(r.id, r.cluster, r.started_at, r.status, r.counts)
                         for r in runs) if v is not None]
    if not views:
        return GitopsCoverage()
    acc: dict[str, _Acc] = {}
    for view in views:
        for s in view.sources:
            a = acc.setdefault(s["owner"], _Acc(s["owner"]))
            a.runs_seen += 1
            a.source, a.ref = s["name"] or a.source, s["ref"] or a.ref
        at = gitopsquery.epoch(view.started_at)
        for lag in {lag.owner: lag for lag in view.lags}.values():
            a = acc.setdefault(lag.owner, _Acc(lag.owner))
            a.source, a.ref = a.source or lag.source, a.ref or lag.ref
            a.runs_behind += 1
            a.behinds.append(lag.behind)
            a.first_behind_at = a.first_behind_at or view.started_at
            a.last_behind_at = view.started_at
            since = gitopsquery.epoch(lag.since)
            if lag.behind > 0 and since is not None and at is not None:
                took = max(0, int(at - since))
                if a.longest_s is None or took > a.longest_s:
                    a.longest_s, a.longest_since = took, stamp(since)
                    a.longest_seen_at = view.started_at
    last = views[-1]
    at_end = {lag.owner: lag.behind for lag in last.lags}
    rows = [SyncLagItem(
        owner=a.owner, source=a.source, controller=gitopsquery.controller(a.source), ref=a.ref,
        runs_seen=a.runs_seen, runs_behind=a.runs_behind,
        max_behind=max(a.behinds, default=0), longest_s=a.longest_s,
        longest_since=a.longest_since, longest_seen_at=a.longest_seen_at,
        first_behind_at=a.first_behind_at, last_behind_at=a.last_behind_at,
        behind_at_end=a.owner in at_end, behind_at_end_commits=at_end.get(a.owner),
        diverged=any(b < 0 for b in a.behinds)) for a in acc.values()]
    rows.sort(key=lambda x: (not x.behind_at_end, -(x.longest_s or 0), -x.runs_behind,
                             x.owner))
    return GitopsCoverage(
        applicable=True, note="", runs=len(views), as_of_run=last.run_id, as_of=last.started_at,
        sources_at_end=len(last.sources),
        skipped_at_end=[f"{s['owner']}: {s['reason']}" for s in last.skipped],
        not_under_gitops=list(last.not_under_gitops),
        runs_with_uncovered=sum(1 for v in views if v.not_under_gitops), sync_lag=rows)


def qualify(part: GitopsCoverage, cluster: str) -> GitopsCoverage:
    """One fleet member's section, its rows and namespaces named by its cluster."""
    return replace(part, skipped_at_end=[f"{cluster}: {s}" for s in part.skipped_at_end],
                   not_under_gitops=[f"{cluster}: {ns}" for ns in part.not_under_gitops],
                   sync_lag=[replace(x, cluster=cluster) for x in part.sync_lag])


def merge(parts: Sequence[GitopsCoverage]) -> GitopsCoverage:
    """A fleet's section from its members' (already qualified) sections."""
    used = [p for p in parts if p.applicable]
    if not used:
        return GitopsCoverage()
    last = max(used, key=lambda p: p.as_of)
    return GitopsCoverage(
        applicable=True, note="", runs=sum(p.runs for p in used), as_of_run=None,
        as_of=last.as_of, sources_at_end=sum(p.sources_at_end for p in used),
        skipped_at_end=[s for p in used for s in p.skipped_at_end],
        not_under_gitops=[ns for p in used for ns in p.not_under_gitops],
        runs_with_uncovered=sum(p.runs_with_uncovered for p in used),
        sync_lag=sorted((x for p in used for x in p.sync_lag),
                        key=lambda x: (not x.behind_at_end, -(x.longest_s or 0),
                                       -x.runs_behind, x.cluster, x.owner)))
