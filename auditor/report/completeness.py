"""The report's change-completeness section: watch batches and transient changes, the
API-server audit writes matched against the ledger's changes, coverage per kind, and the
exceptions (unmatched writes, gaps of the audit stream, scheduled runs that skipped kinds).

The test itself is :func:`auditor.ledger.completeness.audit_completeness` (read-only, paged);
this module turns its result and the period's change population into the model's rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from auditor.ledger.completeness import AuditCompleteness, AuditWrite

from .episodes import object_label
from .model import (
    AuditSourceItem,
    ChangeItem,
    Completeness,
    CompletenessException,
    KindCoverageItem,
)
from .timeutil import human


def _write_label(w: AuditWrite) -> str:
    label = object_label(w.group, w.kind or w.resource, w.namespace, w.name)
    return f"{label} ({w.subresource})" if w.subresource else label


def _user(user: str, impersonated: str) -> str:
    return f"{user} as {impersonated}" if impersonated else user


def build(audit: AuditCompleteness, changes: Sequence[ChangeItem],
          partial_runs: Sequence[tuple[int, str, list[str]]],
          watch_runs: dict[str, int]) -> Completeness:
    """``partial_runs``: the period's scheduled runs that skipped kinds, as ``(run id,
    start, kinds)``; ``watch_runs``: the period's watch batches by status."""
    exceptions: list[CompletenessException] = []
    if audit.tested:
        for w in audit.unmatched:
            exceptions.append(CompletenessException(
                "", "unmatched-write", w.stage_at[:19] + "Z", "", _write_label(w), w.verb,
                _user(w.user, w.impersonated_user), w.source, w.transient, w.reason,
                audit_id=w.audit_id))
        for g in audit.gaps:
            exceptions.append(CompletenessException(
                "", "audit-gap", g.start, g.end, "", "", "", "", False,
                f"{human(g.seconds)} without an audit event: {g.reason}"))
    for run_id, started, skipped in partial_runs:
        exceptions.append(CompletenessException(
            "", "partial-run", started, "", ", ".join(skipped), "", "", f"run {run_id}", False,
            "the run could not list these kinds: their changes in the period may not have "
            "reached the ledger through it"))
    exceptions.sort(key=lambda x: (x.at, x.type, x.object))
    exceptions = [CompletenessException(f"cx-{i}", x.type, x.at, x.end, x.object, x.verb,
                                        x.user, x.source, x.transient, x.detail, x.audit_id)
                  for i, x in enumerate(exceptions)]
    ledger = Counter((c.api_group, c.kind) for c in changes)
    watched = Counter((c.api_group, c.kind) for c in changes if c.detected_by == "watch")
    transient = Counter((c.api_group, c.kind) for c in changes if c.transient)
    by_kind = {(k.group, k.kind): k for k in audit.kinds}
    kinds = []
    for group, kind in sorted(set(by_kind) | set(ledger)):
        a = by_kind.get((group, kind))
        writes = a.writes if a else 0
        matched = a.matched if a else 0
        kinds.append(KindCoverageItem(
            group, kind, writes, matched, a.unmatched if a else 0,
            round(100.0 * matched / writes, 2) if writes else None,
            a.transient if a else 0, ledger[(group, kind)], watched[(group, kind)],
            transient[(group, kind)]))
    return Completeness(
        audit_tested=audit.tested,
        watch_batches=sum(watch_runs.values()), watch_failed=watch_runs.get("failed", 0),
        watch_changes=sum(watched.values()), transient_changes=sum(transient.values()),
        audit_writes=audit.writes, matched=audit.matched, transient_writes=audit.transient,
        out_of_scope=audit.out_of_scope, collections=audit.collections,
        window_s=audit.window_s, gap_threshold_s=audit.gap_threshold_s,
        first_event=audit.first_event[:19] + "Z" if audit.first_event else "",
        kinds=kinds,
        sources=[AuditSourceItem(s.source, s.deliveries, s.events, s.recorded,
                                 s.first_event[:19] + "Z" if s.first_event else "",
                                 s.last_event[:19] + "Z" if s.last_event else "",
                                 s.last_heartbeat) for s in audit.sources],
        exceptions=exceptions)


def merge(parts: Sequence[Completeness]) -> Completeness:
    """A fleet's completeness: every member's (already cluster-qualified) rows, kinds
    summed over the clusters."""
    kinds: dict[tuple[str, str], list[int]] = {}
    for p in parts:
        for k in p.kinds:
            acc = kinds.setdefault((k.api_group, k.kind), [0] * 7)
            for i, v in enumerate((k.audit_writes, k.matched, k.unmatched, k.transient_writes,
                                   k.ledger_changes, k.watch_changes, k.transient_changes)):
                acc[i] += v
    first = sorted(p.first_event for p in parts if p.first_event)
    return Completeness(
        audit_tested=any(p.audit_tested for p in parts),
        watch_batches=sum(p.watch_batches for p in parts),
        watch_failed=sum(p.watch_failed for p in parts),
        watch_changes=sum(p.watch_changes for p in parts),
        transient_changes=sum(p.transient_changes for p in parts),
        audit_writes=sum(p.audit_writes for p in parts), matched=sum(p.matched for p in parts),
        transient_writes=sum(p.transient_writes for p in parts),
        out_of_scope=sum(p.out_of_scope for p in parts),
        collections=sum(p.collections for p in parts),
        window_s=max((p.window_s for p in parts), default=0),
        gap_threshold_s=max((p.gap_threshold_s for p in parts), default=0),
        first_event=first[0] if first else "",
        kinds=[KindCoverageItem(g, k, w, m, u, round(100.0 * m / w, 2) if w else None, t, lc,
                                wc, tc)
               for (g, k), (w, m, u, t, lc, wc, tc) in sorted(kinds.items())],
        sources=[s for p in parts for s in p.sources],
        exceptions=sorted((x for p in parts for x in p.exceptions),
                          key=lambda x: (x.at, x.cluster, x.type, x.object)))
