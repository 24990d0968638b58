"""Policy compliance for the period, from the policy feature's ledger tables: the score at
the period's end and its low, each policy's counts at the last evaluation of the period (with
its title, severity and the SOC 2 criteria it supports), and the (policy, object) pairs
failing at the period's end, replayed from the recorded result transitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .episodes import object_label
from .model import Policies, PolicyFailure, PolicyRow

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def build(runs: Sequence[dict[str, Any]], transitions: Sequence[dict[str, Any]], *,
          start: str) -> Policies:
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
    if not runs:
        # No evaluation in the period: say nothing about the end state from older runs.
        failing = []
    return Policies(
        evaluated_runs=len(runs), score_end=scores[-1][1] if scores else None,
        score_min=min(s for _, s in scores) if scores else None,
        as_of_run=int(last["run_id"]) if last else None, rows=rows, failing=failing,
        newly_failing=newly, fixed=fixed, scores=scores)
