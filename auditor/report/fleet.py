"""Fleet reports: one report over several ledgers (one per cluster, each written by that
cluster's own CronJob).

    model = load_fleet(["prod-eu.db", "prod-us.db"], start, end, cfg)
    html.render_html(model.report)            # fleet totals, breakdown, summary-form tables
    model.population_csv()                    # every change, rows qualified by cluster
    model.members                             # one FleetMember per ledger (breakdown row)

Each ledger is read on its own, read-only, by the single-ledger model (:func:`.period.build`,
which also verifies it), the ledgers shared out over the cores (:func:`~auditor.support.
parallel.fork_map`: a quarter of 20 clusters is 20 builds of about 2 s each), and the results
are merged in memory. Nothing is joined across
ledgers in SQL: IDs and sequence numbers are per ledger, so every merged row is qualified by
its cluster (``prod-eu:change-12``) in anchors, evidence links and the CSV exports, and each
cluster keeps its own checkpoint, verification, monitoring completeness and policy section.
A ledger that fails verification marks only its own cluster FAILED; the fleet's integrity is
failed when any member's is.

With a single path the model's report is exactly the single-ledger report (no fleet
columns), so a caller can always go through :func:`load_fleet`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from auditor.config import Config
from auditor.errors import ConfigError
from auditor.ledger import reportquery as q
from auditor.ledger.backend import StoreLedger, Target, parse_targets, reader
from auditor.support.parallel import fork_map, workers

from . import completeness, controls, export, gitops
from .definitions import definitions
from .model import (
    Bucket,
    FleetMember,
    Header,
    Integrity,
    Monitoring,
    Policies,
    Report,
    SourceScope,
)
from .monitoring import COVERING
from .period import Options, build, summarize
from .timeutil import seconds

FLEET_DEFINITION = (
    "Fleet",
    "A report over several ledgers, one per cluster. Each ledger is read and verified on its "
    "own with the single-cluster definitions above, then merged: fleet totals are computed "
    "from the merged rows exactly as for one cluster (the compliance score sums in-sync and "
    "checked objects over every cluster's runs; MTTR is the mean over every cluster's resolved "
    "occurrences), and the per-cluster table shows each cluster's own report. IDs and "
    "sequence numbers are per ledger, so rows are referenced as cluster:change-ID, "
    "cluster:drift-ID and cluster:run-ID. A cluster is named by the cluster name its runs "
    "recorded; two ledgers with the same name are told apart by the ledger file name "
    "(name@file). Monitoring completeness is counted per cluster: one cluster's runs never "
    "cover another's slots.")


@dataclass
class FleetModel:
    """The merged report and its per-ledger parts (what ``report`` and ``serve`` render)."""

    report: Report  # the fleet report (or the single-ledger report for one path)
    members: list[FleetMember]  # one per ledger, in the order given
    # The change population CSV of a fleet, built from the rows the workers wrote (None:
    # written from ``report`` when asked).
    population: str | None = None

    def population_csv(self) -> str:
        """The change population file (its SHA-256 is the one the report prints)."""
        if self.population is None:
            self.population = export.population_csv(self.report)
        return self.population

    @property
    def failed(self) -> list[FleetMember]:
        """Members whose ledger failed verification."""
        return [m for m in self.members if m.integrity.ok is False]


def _slug(name: str) -> str:
    # Anchors are HTML ids and URL fragments: no whitespace.
    return re.sub(r"\s+", "-", name.strip()) or "cluster"


def member_names(paths: Sequence[Target], ledger_names: Sequence[list[str]]) -> list[str]:
    """Qualified cluster names: the newest name the ledger's runs recorded (the file's stem,
    a store ledger's cluster, for a ledger without runs), ``name@file`` (``name@cluster``)
    when two ledgers share a name."""
    base = [_slug(names[0] if names else p.stem) for p, names in zip(paths, ledger_names,
                                                                      strict=True)]
    taken = Counter(base)
    out = [b if taken[b] == 1 else f"{b}@{_slug(p.name)}" for b, p in zip(base, paths,
                                                                          strict=True)]
    again = Counter(out)
    # Same cluster name and same file name in two folders: the whole path tells them apart.
    return [n if again[n] == 1 else f"{base[i]}@{_slug(str(paths[i]))}"
            for i, n in enumerate(out)]


def _qualify(report: Report, name: str, base: str) -> Report:
    """``report``'s rows with cluster-qualified names, anchors and references."""

    def cluster(recorded: str) -> str:
        # A ledger whose runs used another name too (a renamed cluster) keeps that name
        # visible beside the qualified one.
        return name if recorded in ("", base) else f"{name} ({recorded})"

    changes = [replace(c, cluster=name, anchor=f"{name}:change-{c.id}",
                       ref=f"{name}:change-{c.id}",
                       drift_anchor=f"{name}:{c.drift_anchor}" if c.drift_anchor else "")
               for c in report.changes]
    def q(anchor: str) -> str:
        return f"{name}:{anchor}" if anchor else ""

    drifts = [replace(d, cluster=name, anchor=f"{name}:{d.anchor}", ref=f"{name}:{d.anchor}",
                      revert_anchor=q(d.revert_anchor), adoption_anchor=q(d.adoption_anchor))
              for d in report.drifts]
    reverts = [replace(r, cluster=cluster(r.cluster), anchor=q(r.anchor), ref=q(r.anchor),
                       drift_anchor=q(r.drift_anchor)) for r in report.reverts]
    caps = [replace(c, cluster=cluster(c.cluster), anchor=q(c.anchor))
            for c in report.revert_caps]
    emergency = [replace(c, cluster=cluster(c.cluster), anchor=q(c.anchor), ref=q(c.anchor),
                         drift_anchor=q(c.drift_anchor)) for c in report.emergency]
    acceptances = [replace(a, cluster=name, anchor=f"{name}:{a.anchor}")
                   for a in report.acceptances]
    commits = [replace(c, cluster=name, anchor=f"{name}:commit-{c.sha[:12]}")
               for c in report.commits]
    mon = report.monitoring
    gaps = {id(g): replace(g, cluster=cluster(g.cluster), anchor=f"{name}:gap-{i}")
            for i, g in enumerate(mon.gaps)}
    monitoring = replace(
        mon, clusters=[replace(c, cluster=cluster(c.cluster),
                               gaps=[gaps[id(g)] for g in c.gaps if id(g) in gaps])
                       for c in mon.clusters],
        gaps=[gaps[id(g)] for g in mon.gaps],
        runs=[replace(r, cluster=cluster(r.cluster)) for r in mon.runs])
    pol = report.policies
    policies = replace(pol, failing=[replace(f, cluster=name, anchor=f"{name}:{f.anchor}")
                                     for f in pol.failing])
    comp = report.completeness
    completeness = replace(
        comp, sources=[replace(x, cluster=name) for x in comp.sources],
        exceptions=[replace(x, cluster=name, anchor=q(x.anchor), ref=q(x.anchor))
                    for x in comp.exceptions])
    return replace(report, changes=changes, drifts=drifts, acceptances=acceptances,
                   commits=commits, monitoring=monitoring, policies=policies, reverts=reverts,
                   revert_caps=caps, emergency=emergency, completeness=completeness,
                   gitops=gitops.qualify(report.gitops, name))


def _integrity(members: Sequence[FleetMember]) -> Integrity:
    states = [m.integrity.ok for m in members]
    ok = False if False in states else None if None in states else True
    failed = [m.cluster for m in members if m.integrity.ok is False]
    lead = (f"{len(failed)} of {len(members)} ledgers FAILED verification "
            f"({', '.join(failed)}); " if failed else "")
    return Integrity(
        ok=ok, message=lead + "; ".join(f"{m.cluster}: {m.integrity.message}" for m in members),
        events_checked=sum(m.integrity.events_checked for m in members),
        # Heads and checkpoints are per ledger (shown per cluster); none is the fleet's.
        head_seq=0, head_hash="", checkpoint_seq=None, checkpoint_hash="", checkpoint_at="",
        checkpoint_signed=False)


def _monitoring(parts: Sequence[Report]) -> Monitoring:
    first = parts[0].monitoring
    expected = sum(p.monitoring.expected for p in parts)
    covered = sum(p.monitoring.covered for p in parts)
    return Monitoring(
        schedule_minutes=first.schedule_minutes, expected=expected,
        actual=sum(p.monitoring.actual for p in parts), covered=covered,
        coverage_pct=(100.0 * covered / expected) if expected else None,
        observed_until=first.observed_until,
        clusters=[c for p in parts for c in p.monitoring.clusters],
        measured_from=min((p.monitoring.measured_from for p in parts
                           if p.monitoring.measured_from), default=""),
        gaps=sorted((g for p in parts for g in p.monitoring.gaps),
                    key=lambda g: (g.start, g.cluster)),
        runs=sorted((r for p in parts for r in p.monitoring.runs),
                    key=lambda r: (r.started_at, r.cluster, r.id)))


def _buckets(parts: Sequence[Report], monitoring: Monitoring, end: str) -> list[Bucket]:
    """The members' chart points added up. Every member was built for the same period and
    moment, so bucket ``i`` spans the same interval in each; the score is recomputed from the
    merged run log (a ratio of sums, not a mean of ratios)."""
    first = parts[0].buckets
    starts = [seconds(b.start) for b in first] + [seconds(end)]
    in_sync, checked = [0] * len(first), [0] * len(first)
    for run in monitoring.runs:
        if run.status not in COVERING:
            continue
        t = seconds(run.started_at)
        for i in range(len(first)):
            if starts[i] <= t < starts[i + 1]:
                in_sync[i] += run.in_sync
                checked[i] += run.in_sync + run.drifted + run.missing + run.orphan
                break
    out = []
    for i, b in enumerate(first):
        same = [p.buckets[i] for p in parts]
        out.append(Bucket(
            b.start, round(100.0 * in_sync[i] / checked[i], 2) if checked[i] else None,
            sum(x.authorized for x in same), sum(x.unauthorized for x in same),
            sum(x.unverified for x in same), sum(x.open_drifts for x in same),
            sum(x.expected_runs for x in same), sum(x.covered_runs for x in same)))
    return out


def _policies(parts: Sequence[Report]) -> Policies:
    """All clusters' policy rows and failures, for the control matrix only: the HTML shows a
    policy section per cluster, because a fleet-wide policy score would mix populations."""
    pols = [p.policies for p in parts]
    return Policies(
        evaluated_runs=sum(p.evaluated_runs for p in pols), score_end=None, score_min=None,
        as_of_run=None, rows=[r for p in pols for r in p.rows],
        failing=[f for p in pols for f in p.failing],
        newly_failing=sum(p.newly_failing for p in pols), fixed=sum(p.fixed for p in pols))


def _actors_note(members: Sequence[FleetMember], parts: Sequence[Report]) -> str:
    """The members whose actors are declared names (see :func:`.period.actors_note`)."""
    blind = [m.cluster for m, p in zip(members, parts, strict=True) if p.header.actors_note]
    if not blind:
        return ""
    return ("Actors are field managers, the names clients declare, not authenticated "
            f"identities, where runs had no API-server audit log to name the users "
            f"(clusters: {', '.join(blind)}).")


def _sources(parts: Sequence[Report]) -> list[SourceScope]:
    seen: dict[SourceScope, None] = {}
    for p in parts:
        for s in p.header.sources:
            seen.setdefault(s, None)
    return list(seen)


def load_fleet(paths: Sequence[str | Path | StoreLedger], start: datetime, end: datetime, cfg: Config, *,
               now: datetime | None = None, options: Options | None = None) -> FleetModel:
    """The report for ``[start, end)`` over the ledgers at ``paths`` (one per cluster): files,
    store clusters (:class:`~auditor.ledger.backend.StoreLedger`), or ``--ledger`` texts
    (:func:`~auditor.ledger.backend.parse_target`: a store URL alone is all its clusters).

    Every ledger is opened read-only and verified unless ``options.verify`` is false.
    ``cfg`` supplies the schedule, the SLA and the Git sources' names; it is the reader's
    configuration, not the clusters'.
    """
    if not paths:
        raise ConfigError("no ledger given")
    # A store URL alone stands for every cluster of the store (auditor.ledger.backend).
    files: list[Target] = [t for p in paths
                           for t in ([p] if isinstance(p, StoreLedger) else parse_targets([p]))]
    resolved = [f if isinstance(f, StoreLedger) else f.resolve() for f in files]
    if len(set(resolved)) != len(resolved):
        dup = next(f for f, r in zip(files, resolved, strict=True) if resolved.count(r) > 1)
        raise ConfigError(f"--ledger {dup}: the same ledger is given twice")
    opts = options or Options()
    moment = now or datetime.now(start.tzinfo)
    if len(files) == 1:
        single = build(files[0], start, end, cfg, now=moment, options=opts)
        with reader(files[0]) as conn:
            names = q.cluster_names(conn)
        member = _member(single, single.header.clusters[0] if single.header.clusters else "",
                         names, files[0])
        return FleetModel(single, [member])
    ledger_names = []
    for f in files:
        with reader(f) as conn:
            ledger_names.append(q.cluster_names(conn))
    qualified = member_names(files, ledger_names)
    todo = list(zip(files, ledger_names, qualified, strict=True))
    parts_n = min(workers(), len(todo))

    def job(index: int) -> list[_Built]:
        # Worker ``index`` builds every parts_n-th ledger: each reads and verifies its own
        # ledger on its own connection, so the ledgers' builds share the cores.
        return [_build_member(f, names, name, start, end, cfg, moment, opts)
                for f, names, name in todo[index::parts_n]]

    done = fork_map(job, parts_n)
    built = [done[i % parts_n][i // parts_n] for i in range(len(todo))]
    parts = [b.part for b in built]
    members = [b.member for b in built]
    report, population = _merge(parts, members, cfg, opts, [b.lines for b in built])
    return FleetModel(report, members, population)


@dataclass(frozen=True)
class _Built:
    """One ledger's part of a fleet report, as a worker hands it back."""

    part: Report  # its own report, rows qualified by cluster
    member: FleetMember
    lines: dict[int, str]  # change ID → its row of the fleet change population CSV


def _build_member(f: Target, names: list[str], name: str, start: datetime, end: datetime,
                  cfg: Config, moment: datetime, opts: Options) -> _Built:
    base = names[0] if names else f.stem
    # The member's own population file is not written: its name stays empty.
    own = build(f, start, end, cfg, now=moment,
                options=replace(opts, changes_csv_name="", cluster=base))
    part = _qualify(own, name, base)
    return _Built(part, _member(part, name, names, f, own.header.changes_csv_sha256),
                  export.fleet_change_lines(part.changes))


def _member(report: Report, name: str, names: list[str], path: Target,
            sha256: str | None = None) -> FleetMember:
    return FleetMember(
        cluster=name, ledger_clusters=names or [name], ledger_path=str(path),
        integrity=report.header.integrity, summary=report.summary,
        coverage_pct=report.monitoring.coverage_pct, runs_actual=report.monitoring.actual,
        policies=report.policies,
        changes_csv_sha256=sha256 or report.header.changes_csv_sha256)


def _merge(parts: Sequence[Report], members: list[FleetMember], cfg: Config,
           opts: Options, lines: Sequence[dict[int, str]]) -> tuple[Report, str]:
    """The fleet report, and its change population CSV (``lines``: each member's CSV row
    per change ID, in ``members``' order)."""
    head = parts[0].header
    s, e = head.period_start, head.period_end
    changes = sorted((c for p in parts for c in p.changes),
                     key=lambda c: (c.detected_at, c.cluster, c.seq))
    drifts = sorted((d for p in parts for d in p.drifts),
                    key=lambda d: (d.detected_at, d.cluster, d.drift_id, d.occurrence))
    acceptances = sorted((a for p in parts for a in p.acceptances),
                         key=lambda a: (a.at, a.cluster, a.drift_id))
    commits = [c for p in parts for c in p.commits]
    reverts = sorted((r for p in parts for r in p.reverts), key=lambda r: (r.at, r.cluster, r.id))
    caps = sorted((c for p in parts for c in p.revert_caps), key=lambda c: (c.at, c.cluster))
    emergency = sorted((c for p in parts for c in p.emergency),
                       key=lambda c: (c.adopted_at, c.cluster, c.id))
    monitoring = _monitoring(parts)
    integrity = _integrity(members)
    by_cluster = {m.cluster: rows for m, rows in zip(members, lines, strict=True)}
    csv_text = "".join([export.fleet_changes_header(),
                        *(by_cluster[c.cluster][c.id] for c in changes)])
    header = Header(
        title=opts.title, period_start=s, period_end=e, generated_at=head.generated_at,
        tool_version=head.tool_version,
        run_tool_versions=sorted({v for p in parts for v in p.header.run_tool_versions}),
        config_hash=head.config_hash,
        run_config_hashes=sorted({h for p in parts for h in p.header.run_config_hashes}),
        clusters=[m.cluster for m in members],
        namespaces=sorted({n for p in parts for n in p.header.namespaces}),
        objects=sum(p.header.objects for p in parts), sources=_sources(parts),
        ledger_path=", ".join(m.ledger_path for m in members), integrity=integrity,
        schedule_minutes=head.schedule_minutes, sla_hours=head.sla_hours,
        changes_csv_name=opts.changes_csv_name, changes_csv_sha256=export.sha256(csv_text),
        changes_csv_rows=len(changes), actors_note=_actors_note(members, parts),
        prepared_by=opts.prepared_by)
    policies = _policies(parts)
    merged = completeness.merge([p.completeness for p in parts])
    return Report(
        header=header, summary=summarize(monitoring, changes, drifts, start=s, end=e,
                                         reverts=reverts, caps=caps, emergency=emergency,
                                         completeness=merged),
        controls=controls.build(changes, drifts, monitoring, integrity, commits,
                                head.sla_hours, policies, reverts=reverts, caps=caps,
                                emergency=emergency, completeness=merged),
        monitoring=monitoring, changes=changes, drifts=drifts, acceptances=acceptances,
        commits=commits, buckets=_buckets(parts, monitoring, e),
        bucket_label=parts[0].bucket_label, policies=policies, reverts=reverts,
        revert_caps=caps, emergency=emergency,
        definitions=[*definitions(cfg.reports.schedule_minutes,
                                  cfg.reports.remediation_sla_hours,
                                  match_window_s=merged.window_s or 120,
                                  gap_threshold_s=opts.audit_gap_minutes * 60),
                     FLEET_DEFINITION],
        fleet=members, completeness=merged,
        gitops=gitops.merge([p.gitops for p in parts])), csv_text

