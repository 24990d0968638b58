"""The report as CSV and JSON.

The change population CSV is the auditor's population file: its bytes depend only on the
ledger and the period (no generation time in it), so the SHA-256 printed in the HTML report
identifies it and a re-run over the same ledger and period reproduces it byte for byte.
Lists inside a cell are joined with ``;``; durations are whole seconds; an empty cell means
"not applicable" or "unknown" as the appendix defines per column.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .model import (
    ApprovalItem,
    ChangeItem,
    CompletenessException,
    ConfigVersionItem,
    DriftEpisode,
    EmergencyChange,
    KindCoverageItem,
    ManagementResponse,
    Report,
    RevertAttempt,
    RunItem,
    SyncLagItem,
)

CHANGE_COLUMNS: tuple[tuple[str, Callable[[ChangeItem], Any]], ...] = (
    ("change_id", lambda c: c.id),
    ("ledger_seq", lambda c: c.seq),
    ("run_id", lambda c: c.run_id),
    ("detected_at", lambda c: c.detected_at),
    ("change_time", lambda c: c.change_time),
    ("cluster", lambda c: c.cluster),
    ("api_group", lambda c: c.api_group),
    ("kind", lambda c: c.kind),
    ("namespace", lambda c: c.namespace),
    ("name", lambda c: c.name),
    ("change", lambda c: c.change),
    ("fields", lambda c: c.fields),
    ("actor_manager", lambda c: c.manager),
    ("actor_user", lambda c: c.user),
    ("identity_source", lambda c: c.identity_source),
    ("actor_category", lambda c: c.category),
    ("git_repo", lambda c: c.git_repo),
    ("git_commit", lambda c: c.git_commit),
    ("pull_request", lambda c: c.pr),
    ("approvers", lambda c: c.approvers),
    ("authorization", lambda c: c.authorization),
    ("drift_id", lambda c: c.drift_id),
    ("remediation", lambda c: c.remediation),
    ("remediated_at", lambda c: c.remediated_at),
    ("time_to_remediate_s", lambda c: c.time_to_remediate_s),
    ("time_to_detect_s", lambda c: c.time_to_detect_s),
    # Last, so that readers of the earlier columns by position are not disturbed.
    ("spoofed_manager", lambda c: c.spoofed),
    ("detected_by", lambda c: c.detected_by),
    ("transient", lambda c: c.transient),
    # The approval of the merge that brought the file in, and where its evidence came from.
    ("approval", lambda c: c.approval),
    ("approval_source", lambda c: c.approval_source),
)

DRIFT_COLUMNS: tuple[tuple[str, Callable[[DriftEpisode], Any]], ...] = (
    ("drift_id", lambda d: d.drift_id),
    ("occurrence", lambda d: d.occurrence),
    ("api_group", lambda d: d.api_group),
    ("kind", lambda d: d.kind),
    ("namespace", lambda d: d.namespace),
    ("name", lambda d: d.name),
    ("status", lambda d: d.status),
    ("paths", lambda d: [v.path for v in d.values]),
    ("actor_manager", lambda d: d.manager),
    ("actor_category", lambda d: d.category),
    ("source_file", lambda d: d.source_file),
    ("source_commit", lambda d: d.source_commit),
    ("changed_at", lambda d: d.changed_at),
    ("detected_at", lambda d: d.detected_at),
    ("time_to_detect_s", lambda d: d.time_to_detect_s),
    ("state_at_period_end", lambda d: d.state_at_end),
    ("resolved_at", lambda d: d.resolved_at),
    ("resolution", lambda d: d.how),
    ("time_to_remediate_s", lambda d: d.time_to_remediate_s),
    ("exposure_s", lambda d: d.exposure_s),
    ("sla_breach", lambda d: d.sla_breach),
    ("accepted_by", lambda d: d.accepted_by),
    ("accepted_reason", lambda d: d.accepted_reason),
    ("accepted_at", lambda d: d.accepted_at),
    ("accepted_until", lambda d: d.accepted_until),
    ("actor_user", lambda d: d.user),
    ("spoofed_manager", lambda d: d.spoofed),
)

RUN_COLUMNS: tuple[tuple[str, Callable[[RunItem], Any]], ...] = tuple(
    (f.name, (lambda name: lambda r: getattr(r, name))(f.name))
    for f in dataclasses.fields(RunItem))

REVERT_COLUMNS: tuple[tuple[str, Callable[[RevertAttempt], Any]], ...] = (
    ("ref", lambda r: r.ref or r.anchor),
    ("revert_id", lambda r: r.id),
    ("run_id", lambda r: r.run_id),
    ("at", lambda r: r.at),
    ("cluster", lambda r: r.cluster),
    ("api_group", lambda r: r.api_group),
    ("kind", lambda r: r.kind),
    ("namespace", lambda r: r.namespace),
    ("name", lambda r: r.name),
    ("action", lambda r: r.action),
    ("mode", lambda r: r.mode),
    ("result", lambda r: r.result),
    ("paths", lambda r: [v.path for v in r.values]),
    # Values are omitted for Secrets (empty), like every other output.
    ("previous_live", lambda r: [v.live for v in r.values] if not r.secret else []),
    ("desired", lambda r: [v.desired for v in r.values] if not r.secret else []),
    ("reason", lambda r: r.reason),
    ("error", lambda r: r.error),
    ("managers_taken_over", lambda r: r.managers),
    ("resource_version_before", lambda r: r.resource_version_before),
    ("resource_version_after", lambda r: r.resource_version_after),
    ("desired_hash", lambda r: r.desired_hash),
    ("live_hash", lambda r: r.live_hash),
    ("drift", lambda r: r.drift_anchor),
)

EMERGENCY_COLUMNS: tuple[tuple[str, Callable[[EmergencyChange], Any]], ...] = (
    ("ref", lambda c: c.ref or c.anchor),
    ("adoption_id", lambda c: c.id),
    ("cluster", lambda c: c.cluster),
    ("drift_id", lambda c: c.drift_id),
    ("object", lambda c: c.object),
    ("paths", lambda c: c.paths),
    ("files", lambda c: c.files),
    ("changed_by", lambda c: c.changed_by),
    ("users", lambda c: c.users),
    ("changed_at", lambda c: c.changed_at),
    ("detected_at", lambda c: c.detected_at),
    ("adopted_at", lambda c: c.adopted_at),
    ("adopted_by", lambda c: c.adopted_by),
    ("repo", lambda c: c.repo),
    ("branch", lambda c: c.branch),
    ("commit", lambda c: c.commit),
    ("merged", lambda c: c.merged),
    ("merged_commit", lambda c: c.merged_commit),
    ("merge_head", lambda c: c.merge_head),
    ("pull_request", lambda c: c.pr),
    ("approvers", lambda c: c.approvers),
    ("approved_at", lambda c: c.approved_at),
    ("state", lambda c: c.state),
    ("outcome", lambda c: c.outcome),
    ("time_to_approval_s", lambda c: c.time_to_approval_s),
)

EXCEPTION_COLUMNS: tuple[tuple[str, Callable[[CompletenessException], Any]], ...] = (
    ("ref", lambda x: x.ref or x.anchor),
    ("cluster", lambda x: x.cluster),
    ("type", lambda x: x.type),
    ("at", lambda x: x.at),
    ("end", lambda x: x.end),
    ("object", lambda x: x.object),
    ("verb", lambda x: x.verb),
    ("user", lambda x: x.user),
    ("source", lambda x: x.source),
    ("transient", lambda x: x.transient),
    ("audit_id", lambda x: x.audit_id),
    ("detail", lambda x: x.detail),
)

COVERAGE_COLUMNS: tuple[tuple[str, Callable[[KindCoverageItem], Any]], ...] = tuple(
    (f.name, (lambda name: lambda k: getattr(k, name))(f.name))
    for f in dataclasses.fields(KindCoverageItem))

# The tool's own configuration versions: in force at the period's start, then its changes.
CONFIG_COLUMNS: tuple[tuple[str, Callable[[ConfigVersionItem], Any]], ...] = (
    ("ref", lambda c: c.anchor),
    ("version_id", lambda c: c.id),
    ("run_id", lambda c: c.run_id),
    ("recorded_at", lambda c: c.at),
    ("mode", lambda c: c.mode),
    ("in_period", lambda c: c.in_period),
    ("baseline", lambda c: c.baseline),
    ("digest", lambda c: c.digest),
    ("previous_digest", lambda c: c.previous_digest),
    ("config_file", lambda c: c.config_file),
    ("tool_version", lambda c: c.tool_version),
    ("changed", lambda c: c.changed),
    ("who", lambda c: c.who),
    ("commits", lambda c: c.commits),
    ("approvers", lambda c: c.approvers),
    ("approved", lambda c: c.approved),
    ("exception", lambda c: c.exception),
    ("diff", lambda c: c.diff),
)

# The first-parent changes of the period and their approvals (segregation of duties).
APPROVAL_COLUMNS: tuple[tuple[str, Callable[[ApprovalItem], Any]], ...] = (
    ("source", lambda a: a.source),
    ("repo", lambda a: a.repo),
    ("commit", lambda a: a.sha),
    ("subject", lambda a: a.subject),
    ("pull_request", lambda a: a.pr),
    ("verdict", lambda a: a.verdict),
    ("reason", lambda a: a.reason),
    ("evidence", lambda a: a.evidence),
    ("author", lambda a: a.author),
    ("last_pusher", lambda a: a.last_pusher),
    ("merged_by", lambda a: a.merged_by),
    ("approvers", lambda a: a.approvers),
    ("reviews", lambda a: [f"{r.reviewer} {r.state} {r.submitted_at} {r.commit[:12]}"
                           for r in a.reviews]),
    ("checks", lambda a: a.checks),
    ("head", lambda a: a.head),
    ("fetched_at", lambda a: a.fetched_at),
    ("cached", lambda a: a.cached),
    ("first_run_id", lambda a: a.first_run_id),
    ("run_id", lambda a: a.run_id),
    ("objects", lambda a: a.objects),
)

# Management's responses to the report's exceptions (``drift-auditor respond``).
RESPONSE_COLUMNS: tuple[tuple[str, Callable[[ManagementResponse], Any]], ...] = (
    ("response_id", lambda r: r.id),
    ("exception", lambda r: r.ref),
    ("at", lambda r: r.at),
    ("by", lambda r: r.by),
    ("identity", lambda r: r.identity),
    ("identity_source", lambda r: r.identity_source),
    ("response", lambda r: r.text),
)

# Sources from GitOps controllers: how long Git was ahead of what each controller applied.
SYNC_LAG_COLUMNS: tuple[tuple[str, Callable[[SyncLagItem], Any]], ...] = (
    ("cluster", lambda x: x.cluster),
    ("owner", lambda x: x.owner),
    ("source", lambda x: x.source),
    ("controller", lambda x: x.controller),
    ("ref", lambda x: x.ref),
    ("runs_seen", lambda x: x.runs_seen),
    ("runs_behind", lambda x: x.runs_behind),
    ("max_commits_behind", lambda x: x.max_behind),
    ("longest_lag_s", lambda x: x.longest_s),
    ("longest_lag_since", lambda x: x.longest_since),
    ("longest_lag_seen_at", lambda x: x.longest_seen_at),
    ("first_behind_at", lambda x: x.first_behind_at),
    ("last_behind_at", lambda x: x.last_behind_at),
    ("behind_at_period_end", lambda x: x.behind_at_end),
    ("commits_behind_at_period_end", lambda x: x.behind_at_end_commits),
    ("diverged", lambda x: x.diverged),
)

TABLES = ("changes", "drifts", "runs", "reverts", "emergency", "exceptions", "coverage",
          "config", "approvals", "responses", "sync-lag")

# A fleet report merges ledgers whose IDs and sequence numbers are per ledger: each row leads
# with a cluster-qualified reference (``prod-eu:change-12``), the same text as the HTML
# anchor, so a row cannot be mistaken for another cluster's row with the same ID.
FLEET_CHANGE_COLUMNS: tuple[tuple[str, Callable[[ChangeItem], Any]], ...] = (
    ("ref", lambda c: c.ref), *CHANGE_COLUMNS)
FLEET_DRIFT_COLUMNS: tuple[tuple[str, Callable[[DriftEpisode], Any]], ...] = (
    ("ref", lambda d: d.ref), ("cluster", lambda d: d.cluster), *DRIFT_COLUMNS)
FLEET_RUN_COLUMNS: tuple[tuple[str, Callable[[RunItem], Any]], ...] = (
    ("ref", lambda r: f"{r.cluster}:run-{r.id}"), *RUN_COLUMNS)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value)


def _cells(columns: Sequence[tuple[str, Callable[[Any], Any]]], row: Any) -> list[str]:
    return [cell(get(row)) for _, get in columns]


def _csv(columns: Sequence[tuple[str, Callable[[Any], Any]]], rows: Sequence[Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    writer.writerows([_cells(columns, row) for row in rows])
    return buf.getvalue()


def changes_csv(changes: Sequence[ChangeItem]) -> str:
    return _csv(CHANGE_COLUMNS, changes)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fleet_changes_csv(changes: Sequence[ChangeItem]) -> str:
    return _csv(FLEET_CHANGE_COLUMNS, changes)


def fleet_changes_header() -> str:
    """The first line of :func:`fleet_changes_csv`."""
    return _csv(FLEET_CHANGE_COLUMNS, [])


def fleet_change_lines(changes: Sequence[ChangeItem]) -> dict[int, str]:
    """Each change's row of :func:`fleet_changes_csv` by change ID (one ledger's changes:
    IDs are per ledger): the header and the rows in order make that file."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    out = {}
    for c in changes:
        writer.writerow(_cells(FLEET_CHANGE_COLUMNS, c))
        out[c.id] = buf.getvalue()
        buf.seek(0)
        buf.truncate()
    return out


def population_csv(report: Report) -> str:
    """The change population file of ``report`` (its SHA-256 is the one the report prints)."""
    return fleet_changes_csv(report.changes) if report.fleet else changes_csv(report.changes)


def config_csv(items: Sequence[ConfigVersionItem]) -> str:
    """Configuration versions (``--table config``, ``history --type config -o csv``)."""
    return _csv(CONFIG_COLUMNS, items)


def to_csv(report: Report, table: str = "changes") -> str:
    fleet = bool(report.fleet)
    if table == "drifts":
        return _csv(FLEET_DRIFT_COLUMNS if fleet else DRIFT_COLUMNS, report.drifts)
    if table == "reverts":
        return _csv(REVERT_COLUMNS, report.reverts)
    if table == "emergency":
        return _csv(EMERGENCY_COLUMNS, report.emergency)
    if table == "runs":
        return _csv(FLEET_RUN_COLUMNS if fleet else RUN_COLUMNS, report.monitoring.runs)
    if table == "exceptions":  # change completeness
        return _csv(EXCEPTION_COLUMNS, report.completeness.exceptions)
    if table == "coverage":
        return _csv(COVERAGE_COLUMNS, report.completeness.kinds)
    if table == "config":
        tc = report.configuration
        return config_csv([*tc.in_force, *tc.changes])
    if table == "approvals":
        return _csv(APPROVAL_COLUMNS, report.approvals)
    if table == "responses":
        return _csv(RESPONSE_COLUMNS, report.responses)
    if table == "sync-lag":
        # Header only when no run of the period read the GitOps controllers (the JSON and
        # the HTML say "not applicable").
        return _csv(SYNC_LAG_COLUMNS, report.gitops.sync_lag)
    return population_csv(report)


def to_json(report: Report) -> bytes:
    """Everything the HTML shows, as data (orjson serialises the dataclasses)."""
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
                        | orjson.OPT_NON_STR_KEYS)
