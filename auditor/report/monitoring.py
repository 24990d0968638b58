"""Monitoring completeness: every scheduled run expected in the period against the runs the
ledger holds, per cluster, with the gaps named.

The schedule is divided into *slots* of ``schedule_minutes`` from the period's start. A slot
is *covered* when a run that finished ``complete`` or ``partial`` started in it; a slot with
only failed (or never finished) runs is a gap too, because no comparison came out of it.
Only whole slots before the end of observation count as expected, so a report for a period
that is still running does not blame the future.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from auditor.ledger.reportquery import RunRow

from .model import ClusterCoverage, Gap, Monitoring, RunItem
from .timeutil import seconds, stamp

COVERING = ("complete", "partial")


def _run_item(run: RunRow, changes: int) -> RunItem:
    counts = run.counts
    return RunItem(run.id, run.cluster, run.started_at, run.ended_at, run.status,
                   int(counts.get("in-sync", 0) or 0), int(counts.get("drifted", 0) or 0),
                   int(counts.get("missing", 0) or 0), int(counts.get("orphan", 0) or 0),
                   changes, len(run.problems))


def slot_count(start: str, until: str, schedule_s: int) -> int:
    return max(0, (seconds(until) - seconds(start)) // schedule_s)


def coverage(runs: Sequence[RunRow], clusters: Sequence[str], *, start: str, until: str,
             schedule_minutes: int, changes_per_run: dict[int, int],
             first_runs: dict[str, str] | None = None) -> Monitoring:
    """``first_runs`` maps a cluster to the start of its first run in the whole ledger.

    A period that starts before it (``--from 2026-03-01`` with the ledger's first run at
    10:05 that day) is measured from that first run (from its slot, 10:00, so slots keep the
    period's grid): the slots before it are not runs the tool missed but time before the
    monitoring existed, and the cluster's coverage says so (``measured_from``). A period wholly before the first run keeps its slots, each gap
    named as before the ledger's first run."""
    schedule_s = max(60, schedule_minutes * 60)
    per_cluster: list[ClusterCoverage] = []
    all_gaps: list[Gap] = []
    for cluster in clusters:
        first = (first_runs or {}).get(cluster, "")
        measured_from = first if start < first < until else ""
        t0 = seconds(start)
        if measured_from:
            # From the slot the first run started in: slots stay on the period's grid.
            t0 += (seconds(measured_from) - t0) // schedule_s * schedule_s
        begin = stamp(t0)
        whole = slot_count(begin, until, schedule_s)
        # The slot still running at ``until`` is expected only once a run covered it: its
        # run may simply not be due yet.
        slots = whole + 1
        mine = [r for r in runs if r.cluster == cluster]
        covered = [False] * slots
        failed_only = [False] * slots
        for run in mine:
            index = (seconds(run.started_at) - t0) // schedule_s
            if not 0 <= index < slots:
                continue
            if run.status in COVERING:
                covered[index] = True
            else:
                failed_only[index] = True
        expected = whole + (1 if covered[whole] else 0)
        gaps: list[Gap] = []
        i = 0
        while i < expected:
            if covered[i]:
                i += 1
                continue
            j = i
            failed = 0
            while j < expected and not covered[j]:
                failed += failed_only[j]
                j += 1
            missed = j - i
            reason = ("no run" if not failed else
                      "run failed" if failed == missed else
                      f"no run in {missed - failed}, failed run in {failed}")
            if not first or stamp(t0 + j * schedule_s) <= first:
                reason += " (before the ledger's first run of this cluster)"
            gaps.append(Gap(cluster, stamp(t0 + i * schedule_s), stamp(t0 + j * schedule_s),
                            missed, reason))
            i = j
        per_cluster.append(ClusterCoverage(cluster, expected, len(mine), sum(covered),
                                           dict(sorted(Counter(r.status for r in mine).items())),
                                           gaps, measured_from))
        all_gaps.extend(gaps)
    expected = sum(c.expected for c in per_cluster)
    covered_total = sum(c.covered for c in per_cluster)
    return Monitoring(
        schedule_minutes=schedule_minutes, expected=expected, actual=len(runs),
        covered=covered_total,
        coverage_pct=(100.0 * covered_total / expected) if expected else None,
        observed_until=until, clusters=per_cluster,
        measured_from=min((c.measured_from for c in per_cluster if c.measured_from), default=""),
        gaps=sorted(all_gaps, key=lambda g: (g.start, g.cluster)),
        runs=[_run_item(r, changes_per_run.get(r.id, 0)) for r in runs])


def covered_slots(runs: Sequence[RunRow], *, start: str, schedule_minutes: int
                  ) -> dict[tuple[str, int], bool]:
    """``{(cluster, slot index): True}`` for covered slots (for the trend chart)."""
    schedule_s = max(60, schedule_minutes * 60)
    t0 = seconds(start)
    out: dict[tuple[str, int], bool] = {}
    for run in runs:
        if run.status in COVERING:
            out[(run.cluster, (seconds(run.started_at) - t0) // schedule_s)] = True
    return out
