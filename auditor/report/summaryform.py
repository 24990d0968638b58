"""The fleet report's summary form: which rows of each table a fleet report's HTML lists.

A fleet's quarter is hundreds of thousands of rows: 20 clusters of hourly runs with 21,000
changes each made a 520 MiB page that took over a minute to write and that no browser opens.
A fleet report's HTML therefore lists, per cluster and per table, the first
:data:`FLEET_HTML_ROWS` rows that need attention (an unauthorized or unverified change, a
drift open at the end or past its SLA, a run that covered no slot, …), in the table's own
order, plus every row the control matrix or a management response cites. Everything
counted — the executive summary, the control matrix, the per-cluster breakdown, the change
mix — still counts every row, and every row is in the change population CSV (whose SHA-256
the report prints), the ``--format all`` tables and the JSON. Each shortened table says how
many rows it lists of how many, and a link to a row not listed leads to its table.

A single-ledger report lists every row (:func:`shown` returns the lists themselves).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Report
from .monitoring import COVERING

# Rows needing attention listed per cluster and table in a fleet report's HTML. Fifty keep a
# 20-cluster page near a few MiB however long the period, and cover the control matrix's
# own citations (at most 12 per control, cited besides).
FLEET_HTML_ROWS = 50


@dataclass(frozen=True)
class Listed:
    """One table's rows as the HTML lists them, and how many it has in all."""

    rows: Sequence[Any]
    total: int

    @property
    def shortened(self) -> bool:
        return len(self.rows) < self.total


@dataclass(frozen=True)
class Shown:
    """Each row table of the report as its HTML lists it (see the module docstring)."""

    changes: Listed
    drifts: Listed
    runs: Listed
    commits: Listed
    acceptances: Listed
    exceptions: Listed
    reverts: Listed
    emergency: Listed
    # The anchors of listed rows; None: every row is listed (a single-ledger report).
    anchors: frozenset[str] | None = field(default=None)

    def href(self, anchor: str, table: str) -> str:
        """The link to the row ``anchor``, or to its table (``#table``) when the summary
        form does not list it."""
        if self.anchors is None or anchor in self.anchors:
            return f"#{anchor}"
        return f"#{table}"


def _attention() -> dict[str, Callable[[Any], bool]]:
    return {
        "changes": lambda c: c.authorization != "authorized" or c.spoofed or c.transient,
        "drifts": lambda d: d.state_at_end == "open" or d.sla_breach or d.accepted_self,
        "runs": lambda r: r.status not in COVERING,
        "commits": lambda c: not c.pr or not c.approvers or c.approval not in ("", "authorized"),
        "acceptances": lambda a: True,
        "exceptions": lambda x: True,
        "reverts": lambda r: r.result == "failed",
        "emergency": lambda e: e.state != "approved",
    }


def _tables(report: Report) -> dict[str, Sequence[Any]]:
    return {"changes": report.changes, "drifts": report.drifts, "runs": report.monitoring.runs,
            "commits": report.commits, "acceptances": report.acceptances,
            "exceptions": report.completeness.exceptions, "reverts": report.reverts,
            "emergency": report.emergency}


def _cited(report: Report) -> set[str]:
    """The anchors the report links to from outside the tables: the control matrix's
    evidence and the management responses."""
    out = {e.href[1:] for c in report.controls for e in c.evidence if e.href.startswith("#")}
    out.update(r.anchor for r in report.responses if r.anchor)
    return out


def _anchor(row: Any) -> str:
    return getattr(row, "anchor", "") or ""


def _pick(rows: Sequence[Any], needs: Callable[[Any], bool], cited: set[str],
          limit: int) -> list[Any]:
    taken: Counter[str] = Counter()
    out = []
    for row in rows:
        if _anchor(row) in cited:
            out.append(row)
        elif needs(row) and taken[row.cluster] < limit:
            taken[row.cluster] += 1
            out.append(row)
    return out


def shown(report: Report, limit: int | None = None) -> Shown:
    """What ``report``'s HTML lists: every row of a single-ledger report; a fleet report's
    summary form (the module docstring), ``limit`` rows needing attention per cluster and
    table (default :data:`FLEET_HTML_ROWS`)."""
    limit = FLEET_HTML_ROWS if limit is None else limit
    tables = _tables(report)
    if not report.fleet:
        return _shown({name: Listed(rows, len(rows)) for name, rows in tables.items()}, None)
    cited = _cited(report)
    needs = _attention()
    listed = {name: Listed(_pick(rows, needs[name], cited, limit), len(rows))
              for name, rows in tables.items()}
    # An acceptance's anchor is its drift's (the row links there; it has no id of its own).
    return _shown(listed, frozenset(a for name, t in listed.items() if name != "acceptances"
                                    for row in t.rows if (a := _anchor(row))))


def _shown(t: dict[str, Listed], anchors: frozenset[str] | None) -> Shown:
    return Shown(changes=t["changes"], drifts=t["drifts"], runs=t["runs"], commits=t["commits"],
                 acceptances=t["acceptances"], exceptions=t["exceptions"],
                 reverts=t["reverts"], emergency=t["emergency"], anchors=anchors)
