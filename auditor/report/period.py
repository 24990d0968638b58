"""The period model: everything a report shows, computed once from the ledger with read-only
queries (:mod:`auditor.ledger.reportquery`).

``build(ledger_path, start, end, ...)`` returns a :class:`~.model.Report`; the renderers only
format it. Nothing here reads the cluster or Git: the ledger is the evidence.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from auditor import __version__
from auditor.config import Config
from auditor.errors import AuditorError, LedgerError, LedgerTamperedError
from auditor.ledger import accountability
from auditor.ledger import reportquery as q
from auditor.ledger.auditlog import ACTORS_AUDITED, identity_source, is_spoofed
from auditor.ledger.backend import StoreLedger, reader
from auditor.ledger.completeness import (
    GAP_THRESHOLD_SECONDS,
    MATCH_WINDOW_SECONDS,
    audit_completeness,
    watch_runs,
)
from auditor.ledger.dialect import dialect_of
from auditor.ledger.verify import VerifyResult

from . import (
    approvals,
    completeness,
    configchanges,
    controls,
    export,
    fields,
    gitops,
    policies,
    remediation,
    responses,
)
from .definitions import definitions
from .episodes import object_label, replay
from .images import images_of
from .model import (
    Bucket,
    ChangeItem,
    CommitItem,
    Completeness,
    DriftEpisode,
    EmergencyChange,
    Header,
    Integrity,
    Monitoring,
    Report,
    RevertAttempt,
    RevertCap,
    SourceScope,
    Summary,
)
from .monitoring import COVERING, coverage, covered_slots
from .timeutil import between, seconds, stamp

APPROVER_TRAILERS = ("reviewed-by", "approved-by", "acked-by")
COUNTED = ("in-sync", "drifted", "missing", "orphan")


@dataclass(frozen=True)
class Options:
    title: str = "Drift Auditor compliance report"
    changes_csv_name: str = ""
    verify: bool = True
    # The cluster named when the period has no run (default: cluster.name of the
    # configuration). A fleet report passes the ledger's own cluster: one configuration
    # reads many clusters' ledgers.
    cluster: str = ""
    # A stretch without any API-server audit event longer than this is a gap of the audit
    # stream (an exception of change completeness).
    audit_gap_minutes: int = GAP_THRESHOLD_SECONDS // 60
    # The sign-off block's "prepared by" (``report --prepared-by``); '' leaves it blank.
    prepared_by: str = ""


def _approvers(commit: q.CommitRow | None) -> list[str]:
    if commit is None:
        return []
    return [v for k, v in commit.trailers if k.lower() in APPROVER_TRAILERS]


def _known_time(c: q.ChangeRow) -> str:
    """The change's own time, or '' when the ledger only had the run's start to record (no
    managedFields entry: a deletion or a removal)."""
    if not c.manager and not c.user and c.time == c.detected_at:
        return ""
    return c.time


def _identity_source(c: q.ChangeRow) -> str:
    if c.user_source:
        return identity_source(c.user_source)
    return "managedFields" if c.manager else "none"


def actors_note(runs: Sequence[q.RunRow]) -> str:
    """One sentence when runs of the period had no API-server audit source, else ''."""
    blind = sum(1 for r in runs if r.counts.get("actors") != ACTORS_AUDITED)
    if not blind:
        return ""
    which = "the runs of this period" if blind == len(runs) else f"{blind} of {len(runs)} runs"
    return (f"Actors are field managers, the names clients declare, not authenticated "
            f"identities: {which} had no API-server audit log to name the users.")


def _authorization(value: bool | None) -> str:
    return "unverified" if value is None else "authorized" if value else "unauthorized"


class _ChangeBuilder:
    def __init__(self, rows: Sequence[q.ChangeRow], episodes: Sequence[DriftEpisode],
                 runs: dict[int, q.RunRow], commits: dict[str, q.CommitRow],
                 repos: dict[str, str]) -> None:
        self.rows = rows
        self.runs = runs
        self.commits = commits
        self.repos = repos
        self.opened: dict[tuple[int | None, int], DriftEpisode] = {}
        self.resolved: dict[tuple[int | None, int], DriftEpisode] = {}
        for ep in episodes:
            self.opened.setdefault((ep.opened_run_id, ep.object_id), ep)
            if ep.resolved_run_id is not None:
                self.resolved.setdefault((ep.resolved_run_id, ep.object_id), ep)

    def needed_versions(self) -> set[int]:
        out: set[int] = set()
        for c in self.rows:
            if c.change == "updated" and c.prev_version_id is not None \
                    and (c.run_id, c.object_id) not in self.opened:
                out.update((c.version_id, c.prev_version_id))
            if c.kind in controls.WORKLOAD_KINDS and c.change != "deleted":
                # DA-3 says how the images it calls reviewed were pinned.
                out.add(c.version_id)
        return out

    def _git(self, c: q.ChangeRow, ep: DriftEpisode | None) -> tuple[str, str]:
        if ep is not None and ep.source_commit:
            sha = ep.source_commit
        else:
            run = self.runs.get(c.run_id)
            heads = sorted(set((run.git_commits if run else {}).values()))
            sha = ";".join(heads)
        commit = self.commits.get(sha)
        repo = commit.repo if commit else ""
        if not repo and ";" not in sha:
            run = self.runs.get(c.run_id)
            for name, head in (run.git_commits if run else {}).items():
                if head == sha:
                    repo = self.repos.get(name, name)
        return repo, sha

    def build(self, content: dict[int, bytes]) -> list[ChangeItem]:
        out = []
        for c in self.rows:
            key = (c.run_id, c.object_id)
            ep = self.opened.get(key)
            changed = _known_time(c)
            raw = content.get(c.version_id)
            doc = orjson.loads(raw) if raw else None
            if ep is not None:
                paths = [v.path for v in ep.values]
            elif c.change == "updated" and c.prev_version_id is not None:
                old = content.get(c.prev_version_id)
                paths = fields.changed_paths(orjson.loads(old) if old else None, doc)
            else:
                paths = []
            images = images_of(doc) if doc and c.kind in controls.WORKLOAD_KINDS else []
            repo, sha = self._git(c, ep)
            commit = self.commits.get(sha)
            remediation, remediated_at, ttr = "", "", None
            drift_id = None
            if ep is not None:
                drift_id = ep.drift_id
                if ep.state_at_end == "resolved":
                    remediation = f"drift {ep.drift_id} resolved ({ep.how})"
                    remediated_at = ep.resolved_at
                    ttr = between(changed or c.detected_at, ep.resolved_at)
                elif ep.state_at_end == "accepted":
                    until = ep.accepted_until or "the drift changes"
                    remediation = (f"drift {ep.drift_id} accepted by {ep.accepted_by} until "
                                   f"{until}: {ep.accepted_reason}")
                else:
                    remediation = f"drift {ep.drift_id} open"
            elif key in self.resolved:
                fixed = self.resolved[key]
                remediation = f"remediates drift {fixed.drift_id} ({fixed.how})"
            elif c.authorized is False:
                remediation = "no drift opened"
            out.append(ChangeItem(
                id=c.id, seq=c.seq, run_id=c.run_id, detected_at=c.detected_at,
                change_time=changed, cluster=c.cluster, api_group=c.group, kind=c.kind,
                namespace=c.namespace, name=c.name,
                object=object_label(c.group, c.kind, c.namespace, c.name), change=c.change,
                fields=paths, manager=c.manager, user=c.user,
                identity_source=_identity_source(c), category=c.category, git_repo=repo,
                git_commit=sha,
                # A PR and its approvers vouch only for a change that carried Git's content;
                # beside an unauthorized change they would read as an approval it never had.
                pr=commit.pr if commit and c.authorized else None,
                approvers=_approvers(commit) if c.authorized else [],
                authorization=_authorization(c.authorized), drift_id=drift_id,
                remediation=remediation, remediated_at=remediated_at, time_to_remediate_s=ttr,
                time_to_detect_s=between(changed, c.detected_at), anchor=f"chg-{c.id}",
                spoofed=is_spoofed(c.user_source),
                # The occurrence this change opened (a reopened drift has its own anchor).
                drift_anchor=ep.anchor if ep is not None else "",
                detected_by=c.mode, transient=c.transient, images=images))
        return out


def _bucket_size(start: datetime, end: datetime) -> tuple[timedelta, str]:
    span = end - start
    if span <= timedelta(days=3):
        return timedelta(hours=1), "hour"
    if span <= timedelta(days=120):
        return timedelta(days=1), "day"
    return timedelta(days=7), "week"


def _buckets(start: datetime, end: datetime, until: str, runs: Sequence[q.RunRow],
             changes: Sequence[ChangeItem], episodes: Sequence[DriftEpisode],
             clusters: Sequence[str], schedule_minutes: int) -> tuple[list[Bucket], str]:
    size, label = _bucket_size(start, end)
    t0, t_end = seconds(stamp(start.timestamp())), seconds(stamp(end.timestamp()))
    width = int(size.total_seconds())
    n = max(1, -(-(t_end - t0) // width))
    in_sync, checked = [0] * n, [0] * n
    auth: list[Counter[str]] = [Counter() for _ in range(n)]
    for run in runs:
        i = (seconds(run.started_at) - t0) // width
        if run.status in COVERING and 0 <= i < n:
            in_sync[i] += int(run.counts.get("in-sync", 0) or 0)
            checked[i] += sum(int(run.counts.get(k, 0) or 0) for k in COUNTED)
    for c in changes:
        i = (seconds(c.detected_at) - t0) // width
        if 0 <= i < n:
            auth[i][c.authorization] += 1
    # Unresolved drifts at each bucket's end: +1 at detection, −1 at resolution.
    delta = [0] * (n + 1)
    for ep in episodes:
        a = max(0, (seconds(ep.detected_at) - t0) // width) if ep.detected_at >= stamp(t0) else 0
        delta[a] += 1
        if ep.resolved_at:
            b = (seconds(ep.resolved_at) - t0) // width
            if b < n:
                delta[max(0, b)] -= 1
    schedule_s = max(60, schedule_minutes * 60)
    covered = covered_slots(runs, start=stamp(t0), schedule_minutes=schedule_minutes)
    slots_total = max(0, (seconds(until) - t0) // schedule_s)
    expected, got = [0] * n, [0] * n
    for slot in range(slots_total + 1):
        i = (slot * schedule_s) // width
        if i < n:
            hits = sum(1 for cl in clusters if covered.get((cl, slot)))
            # The slot still running is expected only where a run already covered it (as in
            # the monitoring table).
            expected[i] += hits if slot == slots_total else len(clusters)
            got[i] += hits
    out, running = [], 0
    for i in range(n):
        running += delta[i]
        out.append(Bucket(stamp(t0 + i * width),
                          round(100.0 * in_sync[i] / checked[i], 2) if checked[i] else None,
                          auth[i]["authorized"], auth[i]["unauthorized"], auth[i]["unverified"],
                          running, expected[i], got[i]))
    return out, label


def _sources(runs: Sequence[q.RunRow], cfg: Config, commits: dict[str, q.CommitRow],
             ) -> list[SourceScope]:
    heads: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        for name, sha in sorted(run.git_commits.items()):
            if not heads[name] or heads[name][-1] != sha:
                heads[name].append(sha)
    configured = {s.name or s.url: s for s in cfg.sources}
    out = []
    for name, shas in sorted(heads.items()):
        source = configured.get(name)
        repo = source.url if source else (commits[shas[-1]].repo if shas[-1] in commits else "")
        out.append(SourceScope(name, repo, source.revision if source else "", shas[0], shas[-1],
                               len(set(shas))))
    return out


def summarize(monitoring: Monitoring, changes: Sequence[ChangeItem],
              episodes: Sequence[DriftEpisode], *, start: str, end: str,
              reverts: Sequence[RevertAttempt] = (), caps: Sequence[RevertCap] = (),
              emergency: Sequence[EmergencyChange] = (),
              completeness: Completeness | None = None) -> Summary:
    """The executive summary from the model's own rows (the run log, the change population,
    the drift occurrences), so a fleet's totals are computed exactly as one cluster's."""
    scored = [r for r in monitoring.runs if r.status in COVERING]
    in_sync = sum(r.in_sync for r in scored)
    checked = sum(r.in_sync + r.drifted + r.missing + r.orphan for r in scored)
    resolved = [ep for ep in episodes if ep.resolved_at and start <= ep.resolved_at < end]
    ttrs = [ep.time_to_remediate_s for ep in resolved
            if ep.how != "superseded" and ep.time_to_remediate_s is not None]
    detected = [ep for ep in episodes if start <= ep.detected_at < end]
    ttds = [ep.time_to_detect_s for ep in detected if ep.time_to_detect_s is not None]
    auth = Counter(c.authorization for c in changes)
    return Summary(
        compliance_score=round(100.0 * in_sync / checked, 2) if checked else None,
        score_in_sync=in_sync, score_checked=checked, changes=len(changes),
        authorized=auth["authorized"], unauthorized=auth["unauthorized"],
        unverified=auth["unverified"],
        open_drifts_at_end=sum(1 for ep in episodes if ep.state_at_end == "open"),
        accepted_at_end=sum(1 for ep in episodes if ep.state_at_end == "accepted"),
        opened_in_period=len(detected), resolved_in_period=len(resolved),
        mttr_s=round(statistics.fmean(ttrs)) if ttrs else None, mttr_count=len(ttrs),
        median_ttr_s=round(statistics.median(ttrs)) if ttrs else None,
        mttd_s=round(statistics.fmean(ttds)) if ttds else None,
        sla_breaches=sum(1 for ep in episodes if ep.sla_breach),
        runs_expected=monitoring.expected, runs_covered=monitoring.covered,
        gaps=len(monitoring.gaps),
        reverts_reverted=sum(1 for r in reverts if r.result == "reverted"),
        reverts_failed=sum(1 for r in reverts if r.result == "failed"),
        reverts_dry_run=sum(1 for r in reverts if r.result == "dry-run"),
        revert_caps=len(caps), emergency_changes=len(emergency),
        emergency_approved=sum(1 for c in emergency if c.state == "approved"),
        transient_changes=sum(1 for c in changes if c.transient),
        watch_changes=sum(1 for c in changes if c.detected_by == "watch"),
        audit_writes=completeness.audit_writes if completeness else 0,
        audit_matched=completeness.matched if completeness else 0,
        completeness_exceptions=(len(completeness.exceptions)
                                 if completeness and completeness.audit_tested else 0))


def build(ledger_path: str | Path | StoreLedger, start: datetime, end: datetime, cfg: Config, *,
          now: datetime | None = None, options: Options | None = None) -> Report:
    """The report for ``[start, end)`` from the ledger at ``ledger_path``.

    Verification and every read of the report share one read transaction: what the report
    shows is what was verified, even while a run writes. A ledger that fails verification
    still gets its report, marked FAILED; if its altered rows cannot even be read into one,
    the failure is one :class:`LedgerTamperedError` naming the file.
    """
    opts = options or Options()
    with reader(ledger_path) as conn:
        # One snapshot (PostgreSQL: REPEATABLE READ READ ONLY) for verification and report.
        conn.execute(dialect_of(conn).begin_read)
        try:
            verified, verify_error = None, ""
            if opts.verify:
                try:
                    verified = q.verify_ledger(conn)
                except (sqlite3.Error, LedgerError) as exc:
                    # The file cannot be walked (a damaged page): nothing in it is vouched
                    # for, and the report says so as a failed verification.
                    verify_error = f"ledger verification FAILED: {exc}"
            try:
                return _build(conn, ledger_path, start, end, cfg, now, opts, verified,
                              verify_error)
            except AuditorError:
                raise
            except Exception as exc:
                if (verified is None and not verify_error) or (verified and verified.ok):
                    raise  # a verified (or unchecked) ledger: a bug, with its traceback
                message = verify_error or (verified.message if verified else "")
                raise LedgerTamperedError(
                    f"{ledger_path}: {message}; no report can be built from its altered rows "
                    f"({type(exc).__name__}: {exc})") from exc
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")


def _build(conn: sqlite3.Connection, ledger_path: str | Path | StoreLedger, start: datetime, end: datetime,
           cfg: Config, now: datetime | None, opts: Options, verified: VerifyResult | None,
           verify_error: str) -> Report:
    moment = now or datetime.now(start.tzinfo)
    s, e = stamp(start.timestamp()), stamp(end.timestamp())
    generated = stamp(moment.timestamp())
    until = min(e, generated)
    sla_s = cfg.reports.remediation_sla_hours * 3600
    runs = q.runs_between(conn, s, e)  # scheduled runs: the watch's batches are no audits
    rows = q.changes_between(conn, s, e)
    drift_rows, events = q.drift_history(conn, e)
    commit_rows = q.commits(conn)
    checkpoint = q.checkpoint_at(conn, e)
    namespaces = q.namespaces_until(conn, e)
    objects = q.object_count_until(conn, e)
    first_runs = q.first_runs(conn)
    policy_runs = q.policy_runs_between(conn, s, e)
    policy_transitions = q.policy_transitions_until(conn, e)
    revert_rows = q.reverts_between(conn, s, e)
    cap_rows = q.revert_caps_between(conn, s, e)
    adoption_rows = q.adoptions_between(conn, s, e)
    change_times = {(c.run_id, c.object_id): _known_time(c) for c in rows}
    episodes, acceptances = replay(
        drift_rows, events, start=s, end=e, until=until, sla_seconds=sla_s,
        change_time=lambda run_id, oid: change_times.get((run_id, oid), "") if run_id else "",
        acks=accountability.acknowledgements(conn))
    by_sha = {c.sha: c for c in commit_rows}
    attempts = remediation.reverts(revert_rows, episodes)
    capped = remediation.caps(cap_rows)
    emergency = remediation.emergency(adoption_rows, episodes,
                                      {d.id: d for d in drift_rows}, by_sha)
    episodes = remediation.link(episodes, attempts, emergency)
    repos = {src.name or src.url: src.url for src in cfg.sources}
    run_rows = {r.id: r for r in runs}
    # The watch batches that recorded a change of the period (their Git heads).
    run_rows.update(q.runs_by_id(conn, {c.run_id for c in rows} - set(run_rows)))
    builder = _ChangeBuilder(rows, episodes, run_rows, by_sha, repos)
    content = dict(q.contents(conn, builder.needed_versions()))
    # Authorized changes name the merge that brought their file in, with its approval.
    approved = approvals.build(conn, {r.id for r in runs}, e)
    changes = approvals.link(builder.build(content), approved)
    del content
    clusters = sorted({r.cluster for r in runs}) or [opts.cluster or cfg.cluster.name]
    per_run = Counter(c.run_id for c in rows)
    monitoring = coverage(runs, clusters, start=s, until=until,
                          schedule_minutes=cfg.reports.schedule_minutes,
                          changes_per_run=dict(per_run), first_runs=first_runs)
    period_runs = {r.id for r in runs}
    # First-parent changes where the runs judged approvals; the recorded commits elsewhere.
    commits = approvals.commits(approved, [
        CommitItem(c.repo, c.sha, c.author, c.date, c.subject, c.pr, _approvers(c),
                   c.run_id, anchor=f"commit-{c.sha[:12]}")
        for c in commit_rows if c.run_id in period_runs])
    integrity = Integrity(
        ok=verified.ok if verified else (False if verify_error else None),
        message=verified.message if verified else (verify_error or "not verified (--skip-verify)"),
        events_checked=verified.checked if verified else 0,
        head_seq=verified.head_seq if verified else 0,
        head_hash=verified.head_hash if verified else "",
        checkpoint_seq=checkpoint.seq if checkpoint else None,
        checkpoint_hash=checkpoint.head_hash if checkpoint else "",
        checkpoint_at=checkpoint.at if checkpoint else "",
        checkpoint_signed=checkpoint.signed if checkpoint else False)
    csv_text = export.changes_csv(changes)
    header = Header(
        title=opts.title, period_start=s, period_end=e, generated_at=generated,
        tool_version=__version__, run_tool_versions=sorted({r.tool_version for r in runs}),
        config_hash=cfg.digest(), run_config_hashes=sorted({r.config_hash for r in runs}),
        clusters=clusters, namespaces=namespaces, objects=objects,
        sources=_sources(runs, cfg, by_sha), ledger_path=str(ledger_path), integrity=integrity,
        schedule_minutes=cfg.reports.schedule_minutes, sla_hours=cfg.reports.remediation_sla_hours,
        changes_csv_name=opts.changes_csv_name, changes_csv_sha256=export.sha256(csv_text),
        changes_csv_rows=len(changes), actors_note=actors_note(runs),
        prepared_by=opts.prepared_by)
    audit = audit_completeness(conn, s, e, until=until,
                               gap_threshold_s=opts.audit_gap_minutes * 60)
    complete = completeness.build(
        audit, changes, [(r.id, r.started_at, r.skipped_kinds) for r in runs
                         if r.skipped_kinds and r.status in COVERING],
        watch_runs(conn, s, e))
    summary = summarize(monitoring, changes, episodes, start=s, end=e, reverts=attempts,
                        caps=capped, emergency=emergency, completeness=complete)
    policy_section = policies.build(policy_runs, policy_transitions, start=s, until=until,
                                    sla_hours=cfg.reports.policy_sla_hours)
    buckets, label = _buckets(start, end, until, runs, changes, episodes, clusters,
                              cfg.reports.schedule_minutes)
    # The tool's own configuration versions (a ledger before schema step 7 has none: no DA-15).
    tool_config = configchanges.build(conn, s, e)
    return Report(
        header=header, summary=summary,
        controls=[*controls.build(changes, episodes, monitoring, integrity, commits,
                                  cfg.reports.remediation_sla_hours, policy_section,
                                  reverts=attempts, caps=capped, emergency=emergency,
                                  completeness=complete),
                  *([configchanges.control(tool_config)] if tool_config.recorded else [])],
        monitoring=monitoring, changes=changes, drifts=episodes, acceptances=acceptances,
        commits=commits, buckets=buckets, bucket_label=label,
        policies=policy_section, reverts=attempts, revert_caps=capped, emergency=emergency,
        definitions=definitions(cfg.reports.schedule_minutes,
                                cfg.reports.remediation_sla_hours,
                                match_window_s=complete.window_s or MATCH_WINDOW_SECONDS,
                                gap_threshold_s=opts.audit_gap_minutes * 60),
        completeness=complete, configuration=tool_config, approvals=approved.items,
        protections=approved.protections,
        responses=responses.build(conn, changes, episodes), gitops=gitops.build(runs))
