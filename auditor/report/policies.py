"""Policy compliance for the period, from the policy feature's ledger tables: the score at
the period's end and its low, each policy's counts at the last evaluation of the period (with
its title, severity and the SOC 2 criteria it supports), and the (policy, object) pairs
failing at the period's end, replayed from the recorded result transitions.

A critical or high failure (not exempted) that has been failing longer than the policy SLA
at some moment of the period is an SLA breach, an exception of the policy control whether
or not it was fixed by the period's end: a failure fixed a week late was still a week late.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .episodes import object_label
from .model import Policies, PolicyFailure, PolicyRow
from .timeutil import seconds

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
SLA_SEVERITIES = frozenset({"critical", "high"})


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


Ident = tuple[str, str, str, str, str]


def _breaches(transitions: Sequence[dict[str, Any]], start: str, until: str,
              sla_hours: float) -> list[PolicyFailure]:
    """The (policy, object) failures of critical or high severity, not exempted, that were
    failing longer than ``sla_hours`` at some moment of ``[start, until]``: one per failure
    interval, the longest-running first."""
    if not until or sla_hours <= 0:
        return []
    limit = sla_hours * 3600
    began: dict[Ident, dict[str, Any]] = {}  # the transition that started each failure
    found: list[tuple[Ident, dict[str, Any], str]] = []

    def close(ident: Ident, first: dict[str, Any], end: str) -> None:
        end = min(end, until)
        if end >= start and first["severity"] in SLA_SEVERITIES and not first["exemption"] \
                and seconds(end) - seconds(first["at"]) > limit:
            found.append((ident, first, end))

    for t in transitions:
        ident = (t["policy"], t["group"], t["kind"], t["namespace"], t["name"])
        failing = t["status"] == "fail" and not t["exemption"]
        if failing and ident not in began:
            began[ident] = t
        elif not failing and ident in began:
            close(ident, began.pop(ident), t["at"])
    for ident, first in began.items():
        close(ident, first, until)
    found.sort(key=lambda x: (x[1]["at"], _rank(x[1]["severity"]), x[0]))
    return [PolicyFailure(f"pol-sla-{i}", ident[0], first["severity"],
                          object_label(ident[1], ident[2], ident[3], ident[4]), first["at"],
                          [str(m) for m in first["messages"]] + [f"failing until {end}"])
            for i, (ident, first, end) in enumerate(found)]


def build(runs: Sequence[dict[str, Any]], transitions: Sequence[dict[str, Any]], *,
          start: str, until: str = "", sla_hours: float = 0.0) -> Policies:
    """The policy section; ``until`` (the period's end, or now) and ``sla_hours`` (the
    policy SLA; 0: none) find the SLA breaches."""
    scores = [(str(r["at"]), float(r["score"])) for r in runs if r.get("score") is not None]
    last = runs[-1] if runs else None
    rows: list[PolicyRow] = []
    for policy, c in sorted((last or {}).get("counts", {}).items()):
        if not isinstance(c, dict):
            continue
        rows.append(PolicyRow(
            policy, str(c.get("title") or policy), str(c.get("severity") or ""),
            str(c.get("category") or ""), [str(x) for x in c.get("controls") or ()],
            int(c.get("pass", 0) or 0), int(c.get("fail", 0) or 0), int(c.get("skip", 0) or 0),
            int(c.get("error", 0) or 0), int(c.get("exempted", 0) or 0),
            str(c.get("remediation") or "")))
    rows.sort(key=lambda r: (-r.failed, _rank(r.severity), r.policy))
    state: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    since: dict[tuple[str, str, str, str, str], str] = {}
    newly = fixed = 0
    for t in transitions:
        ident = (t["policy"], t["group"], t["kind"], t["namespace"], t["name"])
        previous = state.get(ident, {}).get("status")
        if t["status"] != previous:
            since[ident] = t["at"]
        state[ident] = t
        if t["at"] >= start:
            if t["status"] == "fail" and t["prev_status"] != "fail":
                newly += 1
            elif t["prev_status"] == "fail" and t["status"] != "fail":
                fixed += 1
    failing = []
    for i, (ident, t) in enumerate(sorted(
            ((k, v) for k, v in state.items() if v["status"] == "fail" and not v["exemption"]),
            key=lambda kv: (_rank(kv[1]["severity"]), kv[0]))):
        failing.append(PolicyFailure(
            f"pol-{i}", ident[0], t["severity"],
            object_label(ident[1], ident[2], ident[3], ident[4]), since.get(ident, t["at"]),
            [str(m) for m in t["messages"]]))
    breaches = _breaches(transitions, start, until, sla_hours)
    if not runs:
        # No evaluation in the period: say nothing about the end state from older runs.
        failing = []
        breaches = []
    return Policies(
        evaluated_runs=len(runs), score_end=scores[-1][1] if scores else None,
        score_min=min(s for _, s in scores) if scores else None,
        as_of_run=int(last["run_id"]) if last else None, rows=rows, failing=failing,
        newly_failing=newly, fixed=fixed, scores=scores, sla_breaches=breaches,
        sla_hours=sla_hours)
