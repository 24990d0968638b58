"""Prometheus metrics from the ledger. The only module importing prometheus-client.

Metrics are computed from the ledger at collection time (never from a second pass over the
cluster) by :class:`LedgerCollector`, and delivered three ways: the exposition text
(``drift-auditor metrics --print``), a textfile for node-exporter's textfile collector
(written beside and renamed into place, so a scrape never reads half a file), a push to a
Pushgateway grouped by ``{job, cluster}`` (a CronJob lives too briefly to be scraped), and
``drift-auditor serve``'s ``/metrics`` (read again at each scrape).

Names carry the ``drift_auditor_`` prefix and base units (seconds); counters end in
``_total``. Labels are bounded: namespace, kind, group, status, category, age band, how —
never object names. Series that exist for a fixed set of values (run status, categories ×
age bands) are always emitted, zeros included, so that absent never means zero.

Metrics (name, type, labels):

    drift_auditor_build_info                          gauge      version
    drift_auditor_last_run_timestamp_seconds          gauge      (end of the last finished run)
    drift_auditor_last_run_duration_seconds           gauge
    drift_auditor_last_run_status                     gauge      status (1 for the last run's)
    drift_auditor_last_run_skipped_kinds              gauge
    drift_auditor_last_run_problems                   gauge
    drift_auditor_last_complete_run_timestamp_seconds gauge
    drift_auditor_last_run_objects                    gauge      status (whole run)
    drift_auditor_objects                             gauge      namespace, kind, group, status
    drift_auditor_runs_total                          counter    status
    drift_auditor_open_drifts                         gauge      category, age
    drift_auditor_oldest_open_drift_age_seconds       gauge      category
    drift_auditor_accepted_drifts                     gauge      category
    drift_auditor_open_drift_age_seconds              gauge      namespace, kind, group,
                                                                 name, category (opt-in:
                                                                 metrics.object-labels)
    drift_auditor_drifts_opened_total                 counter    category (opened + reopened)
    drift_auditor_drifts_resolved_total               counter    how
    drift_auditor_remediation_seconds                 summary    category (_count, _sum)
    drift_auditor_mean_time_to_remediation_seconds    gauge      (NaN before any remediation)
    drift_auditor_changes_total                       counter    category, authorized
    drift_auditor_policy_results                      gauge      policy, severity, status
    drift_auditor_policy_compliance_score             gauge      (newest run with policies)
    drift_auditor_alerts_pending                      gauge
    drift_auditor_alerts_delivered_total              counter
    drift_auditor_ledger_events                       gauge      (chain head sequence number)
    drift_auditor_ledger_verify_ok                    gauge      (1 chain verifies, 0 broken)
    drift_auditor_ledger_verify_duration_seconds      gauge
    drift_auditor_gitops_sources                      gauge      controller (argocd, flux)
    drift_auditor_gitops_skipped                      gauge
    drift_auditor_sync_lag_commits                    gauge      source, owner
    drift_auditor_sync_lag_seconds                    gauge      source, owner
    drift_auditor_namespaces_not_under_gitops         gauge


``drift_auditor_objects`` counts every compared object by status when the run stored its
per-namespace/kind breakdown (:func:`auditor.ledger.metricsquery.breakdown`); otherwise only
the not-in-sync ones (open and accepted drifts), and ``in-sync`` appears in
``drift_auditor_last_run_objects`` only.

The GitOps series exist when the newest complete run read its sources from Argo CD or Flux
(``sources: [{from: argocd}]``), with that run's figures: sources derived per
controller (both controllers always, zeros included), controller objects skipped, and per
source behind Git (``source`` is the derived source's name, ``owner`` the controller's
object, e.g. ``Application argocd/shop``) the commits Git is ahead of what the controller
applied (-1: the applied commit is not in the ref's history) and, when that count is known,
the seconds since the first commit not applied. A source in sync has no lag series.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder, write_to_textfile
from prometheus_client.registry import Collector

from auditor import __version__
from auditor.config import Config
from auditor.errors import AuditorError, DeliveryError, LedgerError
from auditor.ledger import HOWS, reading, readonly
from auditor.ledger import metricsquery as mq
from auditor.ledger.backend import StoreLedger, Target, is_url, one_reader
from auditor.ledger.gitopsquery import CONTROLLERS, GitopsRun, controller, epoch
from auditor.ledger.verify import verify as verify_ledger

log = logging.getLogger(__name__)

PREFIX = "drift_auditor_"
RUN_STATUSES = ("complete", "partial", "failed")
OBJECT_STATUSES = ("in-sync", "drifted", "missing", "orphan")


def _g(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


def _c(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, labels=list(labels))


def families(stats: mq.LedgerStats, *, verify_ok: bool | None,
             verify_seconds: float | None) -> list[Metric]:
    """The metric families of one ledger reading (pure: no I/O)."""
    out: list[Metric] = []
    info = _g("build_info", "Drift Auditor version.", ("version",))
    info.add_metric([__version__], 1)
    out.append(info)
    run = stats.last_run
    if run is not None:
        last = _g("last_run_timestamp_seconds", "End of the last finished run (Unix time).")
        last.add_metric([], run["ended"] or 0)
        duration = _g("last_run_duration_seconds", "Wall time of the last finished run.")
        duration.add_metric([], max(0.0, (run["ended"] or 0) - (run["started"] or 0)))
        status = _g("last_run_status", "1 for the status of the last finished run.", ("status",))
        for s in RUN_STATUSES:
            status.add_metric([s], 1 if run["status"] == s else 0)
        skipped = _g("last_run_skipped_kinds", "Kinds the last run could not list.")
        skipped.add_metric([], run["skipped_kinds"])
        problems = _g("last_run_problems", "Problems (warnings, errors) met by the last run.")
        problems.add_metric([], run["problems"])
        totals = _g("last_run_objects", "Objects compared by the last run, by status.",
                    ("status",))
        counts = run["counts"] if isinstance(run["counts"], Mapping) else {}
        for s in (*OBJECT_STATUSES, "ignored"):
            totals.add_metric([s], float(counts.get(s, 0) or 0))
        out += [last, duration, status, skipped, problems, totals]
    if stats.last_complete_at is not None:
        ok = _g("last_complete_run_timestamp_seconds", "End of the last complete run.")
        ok.add_metric([], stats.last_complete_at)
        out.append(ok)
    objects = _g("objects", "Objects by status, namespace and kind"
                 + ("" if stats.objects_breakdown_complete else
                    " (not in sync only: the last run stored no per-kind breakdown)") + ".",
                 ("namespace", "kind", "group", "status"))
    for (ns, kind, grp, s), n in sorted(stats.objects.items()):
        objects.add_metric([ns, kind, grp, s], n)
    out.append(objects)
    runs = _c("runs", "Finished runs by status.", ("status",))
    for s in RUN_STATUSES:
        runs.add_metric([s], stats.runs_by_status.get(s, 0))
    out.append(runs)
    open_ = _g("open_drifts", "Open (unaccepted) drifts by category and age band.",
               ("category", "age"))
    oldest = _g("oldest_open_drift_age_seconds", "Age of the oldest open drift per category.",
                ("category",))
    accepted = _g("accepted_drifts", "Drifts accepted with `drift-auditor ack`.", ("category",))
    categories = sorted(set(mq.CATEGORIES) | {c for c, _ in stats.open_by_category_age}
                        | set(stats.accepted_by_category))
    for cat in categories:
        for _, band in mq.AGE_BANDS:
            open_.add_metric([cat, band], stats.open_by_category_age.get((cat, band), 0))
        oldest.add_metric([cat], stats.oldest_open_by_category.get(cat, 0.0))
        accepted.add_metric([cat], stats.accepted_by_category.get(cat, 0))
    out += [open_, oldest, accepted]
    if stats.open_drift_ages:
        ages = _g("open_drift_age_seconds", "Age of each open drift (metrics.object-labels).",
                  ("namespace", "kind", "group", "name", "category"))
        for ident, age in sorted(stats.open_drift_ages.items()):
            ages.add_metric(list(ident), age)
        out.append(ages)
    opened = _c("drifts_opened", "Drifts opened or reopened.", ("category",))
    for cat in sorted(set(mq.CATEGORIES) | set(stats.opened_by_category)):
        opened.add_metric([cat], stats.opened_by_category.get(cat, 0))
    resolved = _c("drifts_resolved", "Drifts resolved, by how.", ("how",))
    for how in sorted(set(HOWS) | set(stats.resolved_by_how)):
        resolved.add_metric([how], stats.resolved_by_how.get(how, 0))
    out += [opened, resolved]
    remediation = SummaryMetricFamily(
        PREFIX + "remediation_seconds", "Time from a drift's opening to its resolution "
        "(superseded drifts excluded).", labels=["category"])
    total_n, total_s = 0, 0.0
    for cat in sorted(set(mq.CATEGORIES) | set(stats.remediation)):
        n, seconds = stats.remediation.get(cat, (0, 0.0))
        remediation.add_metric([cat], count_value=n, sum_value=seconds)
        total_n, total_s = total_n + n, total_s + seconds
    mttr = _g("mean_time_to_remediation_seconds", "Mean time to remediation over all resolved "
              "drifts (NaN before the first).")
    mttr.add_metric([], total_s / total_n if total_n else math.nan)
    out += [remediation, mttr]
    changes = _c("changes", "Live changes recorded, by actor category and whether they "
                 "matched Git.", ("category", "authorized"))
    # Every category's authorized and unauthorized counters exist from the first scrape, at
    # 0: increase() cannot see the first change of a series that appears with it.
    counted = {(cat, verdict): 0 for cat in mq.CATEGORIES for verdict in ("false", "true")}
    counted.update(stats.changes)
    for (cat, verdict), n in sorted(counted.items()):
        changes.add_metric([cat, verdict], n)
    out.append(changes)
    if stats.policies or stats.policy_score is not None:
        results = _g("policy_results", "Objects by current policy result.",
                     ("policy", "severity", "status"))
        for (policy, severity, result), n in sorted(stats.policies.items()):
            results.add_metric([policy, severity, result], n)
        out.append(results)
        if stats.policy_score is not None:
            score = _g("policy_compliance_score", "The newest run's severity-weighted "
                       "compliance score.")
            score.add_metric([], stats.policy_score)
            out.append(score)
    pending = _g("alerts_pending", "Slack messages queued in the outbox, not yet delivered.")
    pending.add_metric([], stats.outbox.get("pending", 0))
    delivered = _c("alerts_delivered", "Slack messages delivered.")
    delivered.add_metric([], stats.outbox.get("delivered", 0))
    events = _g("ledger_events", "Events in the ledger's hash chain (head sequence number).")
    events.add_metric([], stats.head_seq)
    out += [pending, delivered, events]
    if stats.gitops is not None:
        out += gitops_families(stats.gitops, stats.now)
    if verify_ok is not None:
        ok = _g("ledger_verify_ok", "1 when the ledger's hash chain verifies, 0 when broken.")
        ok.add_metric([], 1 if verify_ok else 0)
        took = _g("ledger_verify_duration_seconds", "Time the last verification took.")
        took.add_metric([], verify_seconds or 0.0)
        out += [ok, took]
    return out


def gitops_families(view: GitopsRun, now: float) -> list[Metric]:
    """The GitOps series of one run's view of the controllers (see the module docstring)."""
    sources = _g("gitops_sources", "Git sources derived from GitOps controllers' objects by "
                 "the last complete run, by controller.", ("controller",))
    per = Counter(controller(str(s.get("name") or "")) for s in view.sources)
    for name in sorted(set(CONTROLLERS) | set(per)):
        sources.add_metric([name], per.get(name, 0))
    skipped = _g("gitops_skipped", "GitOps controller objects the last complete run could not "
                 "audit (unsupported source type).")
    skipped.add_metric([], len(view.skipped))
    commits = _g("sync_lag_commits", "Commits Git is ahead of what the controller applied, per "
                 "source behind Git (-1: the applied commit is not in the ref's history).",
                 ("source", "owner"))
    seconds = _g("sync_lag_seconds", "Seconds since the first Git commit the controller has "
                 "not applied, per source behind Git.", ("source", "owner"))
    seen: set[tuple[str, str]] = set()
    for lag in sorted(view.lags, key=lambda x: (x.source, x.owner)):
        labels = (lag.source, lag.owner)
        if labels in seen:
            continue  # one series per source
        seen.add(labels)
        commits.add_metric(list(labels), lag.behind)
        since = epoch(lag.since)
        if lag.behind > 0 and since is not None:
            seconds.add_metric(list(labels), max(0.0, now - since))
    uncovered = _g("namespaces_not_under_gitops", "Namespaces in scope that no source derived "
                   "from the GitOps controllers claims (last complete run).")
    uncovered.add_metric([], len(view.not_under_gitops))
    return [sources, skipped, commits, seconds, uncovered]


class LedgerCollector(Collector):
    """Reads the ledger at every ``collect`` (a scrape, a push, a textfile write)."""

    def __init__(self, cfg: Config, ledger_path: str | Path | StoreLedger, *,
                 clock: Callable[[], float] = time.time,
                 opener: Callable[[Any], AbstractContextManager[sqlite3.Connection]] | None = None,
                 ) -> None:
        self.cfg = cfg
        self.path: Target = ledger_target(cfg, ledger_path)
        self.clock = clock
        # How the ledger is opened: ``serve`` passes its read-only opener
        # (:func:`auditor.ledger.readonly.reading`). A store cluster is always read through
        # a read-only session, whichever opener (SQLite's reader cannot open a URL).
        self.opener: Callable[[Any], AbstractContextManager[sqlite3.Connection]] = (
            readonly.reading) if isinstance(self.path, StoreLedger) else (
            opener or reading)
        self.cluster = ""
        # Verification walks the whole chain (~0.3 s for 30,000 events): a scrape repeats it
        # only when the ledger files changed since (any write, tampering included, moves
        # their size or mtime).
        self._verified: tuple[tuple[int, ...], bool, float] | None = None

    def _signature(self) -> tuple[int, ...]:
        # Files: mtime, size, inode of database and WAL; the store: the newest event's seq.
        return readonly.signature(self.path)

    def _verify(self, conn: sqlite3.Connection, signature: tuple[int, ...]) -> tuple[bool, float]:
        if self._verified is not None and self._verified[0] == signature:
            return self._verified[1], self._verified[2]
        started = time.perf_counter()
        try:
            ok = verify_ledger(conn).ok
        except (sqlite3.Error, LedgerError) as exc:
            # A ledger that cannot even be walked does not verify.
            log.warning("ledger %s: verification failed: %s", self.path, exc)
            ok = False
        took = time.perf_counter() - started
        self._verified = (signature, ok, took)
        return ok, took

    def describe(self) -> list[Metric]:
        # Registering must not read the ledger: names are known only at collection.
        return []

    def read(self, verified: Callable[[tuple[int, ...]], tuple[bool | None, float | None]]
             | None = None) -> list[Metric]:
        """The families of one reading. ``verified``: who verifies the chain for this read
        (serve's fleet: a background walk's result, :mod:`auditor.web.chainstate`); by
        default this collector, on the read, once per change of the ledger."""
        # Taken before opening: our own connection creates (and on close removes) the WAL
        # file, and a write landing between this and the verification only makes the next
        # scrape verify again.
        signature = self._signature()
        with self.opener(self.path) as conn:
            stats = mq.read(conn, now=self.clock(),
                            object_labels=self.cfg.metrics.object_labels)
            verify_ok: bool | None = None
            took: float | None = None
            if self.cfg.metrics.verify:
                verify_ok, took = (verified(signature) if verified
                                   else self._verify(conn, signature))
        self.cluster = stats.cluster
        return families(stats, verify_ok=verify_ok, verify_seconds=took)

    def collect(self) -> Iterator[Metric]:
        yield from self.read()


def ledger_target(cfg: Config, ledger_path: str | Path | StoreLedger) -> Target:
    """The ledger the metrics read: a file; a store cluster (``URL#CLUSTER``, or the URL of
    ``ledger.url`` with ``ledger.cluster``). Callers name the configured ledger with
    :func:`auditor.ledger.backend.configured_ledger`."""
    if isinstance(ledger_path, StoreLedger):
        return ledger_path
    if is_url(str(ledger_path)):
        return one_reader(str(ledger_path), cfg.ledger)
    return Path(ledger_path)


def registry(cfg: Config, ledger_path: str | Path | StoreLedger
             ) -> tuple[CollectorRegistry, LedgerCollector]:
    reg = CollectorRegistry(auto_describe=False)
    collector = LedgerCollector(cfg, ledger_path)
    reg.register(collector)
    return reg, collector


def exposition(cfg: Config, ledger_path: str | Path | StoreLedger, snap: Snapshot | None = None) -> str:
    """The metrics in the Prometheus text format (version 0.0.4)."""
    reg = snap.registry if snap is not None else registry(cfg, ledger_path)[0]
    return generate_latest(reg).decode()


@dataclass(frozen=True)
class Snapshot:
    """One reading of the ledger as a registry, for writing and pushing the same values."""

    registry: CollectorRegistry
    cluster: str


def snapshot(cfg: Config, ledger_path: str | Path | StoreLedger) -> Snapshot:
    _, collector = registry(cfg, ledger_path)
    families_read = collector.read()

    class _Frozen(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from families_read

    frozen = CollectorRegistry(auto_describe=False)
    frozen.register(_Frozen())
    return Snapshot(frozen, collector.cluster or cfg.cluster.name)


def write_textfile(snap: Snapshot, path: str | Path) -> None:
    """Write for node-exporter's textfile collector: a temporary file renamed into place."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(target), snap.registry)
    except OSError as exc:
        raise DeliveryError(f"{target}: cannot write the metrics textfile: {exc}") from None


def push(cfg: Config, snap: Snapshot, gateway: str) -> str:
    """Replace this job's and cluster's group on the Pushgateway (HTTP PUT); returns the
    cluster of the grouping key."""
    try:
        push_to_gateway(gateway, job=cfg.metrics.job, registry=snap.registry,
                        grouping_key={"cluster": snap.cluster}, timeout=30)
    except OSError as exc:
        raise DeliveryError(f"pushgateway {gateway}: {exc}") from None
    return snap.cluster


@dataclass
class MetricsReport:
    """What :func:`after_run`/:func:`deliver` did."""

    textfile: str = ""
    pushgateway: str = ""
    cluster: str = ""
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For ``run --output json``."""
        return {"textfile": self.textfile or None, "pushgateway": self.pushgateway or None,
                "cluster": self.cluster or None, "errors": list(self.errors)}

    def lines(self) -> list[str]:
        out = []
        if self.textfile:
            out.append(f"metrics: wrote {self.textfile}")
        if self.pushgateway:
            out.append(f"metrics: pushed to {self.pushgateway} "
                       f"(cluster={self.cluster})")
        out += [f"metrics: error: {e}" for e in self.errors]
        return out


def deliver(cfg: Config, ledger_path: str | Path | StoreLedger, *, textfile: str = "",
            pushgateway: str = "", strict: bool = True,
            snap: Snapshot | None = None) -> MetricsReport:
    """Write the textfile and/or push (``snap``: an existing reading to use). ``strict``:
    raise the failures as :class:`DeliveryError` after trying both; otherwise only report
    them."""
    report = MetricsReport()
    if not (textfile or pushgateway):
        return report
    snap = snap or snapshot(cfg, ledger_path)  # one reading (and verification) for both
    if textfile:
        try:
            write_textfile(snap, textfile)
            report.textfile = textfile
        except AuditorError as exc:
            report.errors.append(str(exc))
    if pushgateway:
        try:
            report.cluster = push(cfg, snap, pushgateway)
            report.pushgateway = pushgateway
        except AuditorError as exc:
            report.errors.append(str(exc))
    if strict and report.errors:
        raise DeliveryError("; ".join(report.errors))
    return report


def after_run(cfg: Config, ledger_path: str | Path | StoreLedger) -> MetricsReport:
    """The end of ``drift-auditor run``: the configured textfile and Pushgateway, if any.
    Never raises for delivery problems (they are in the report)."""
    return deliver(cfg, ledger_path, textfile=cfg.metrics.textfile,
                   pushgateway=cfg.metrics.pushgateway, strict=False)


Route = Callable[[], tuple[bytes, str]]


def make_server(cfg: Config, ledger_path: str | Path | StoreLedger, *, host: str = "127.0.0.1",
                port: int = 0, routes: Mapping[str, Route] | None = None) -> ThreadingHTTPServer:
    """An HTTP server for ``/metrics`` (and ``/healthz``; ``routes`` adds more, e.g. reports:
    ``{"/reports/latest.html": lambda: (body, content_type)}``). Call ``serve_forever``."""
    reg, _ = registry(cfg, ledger_path)
    extra = dict(routes or {})

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        server_version = "drift-auditor"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                    self._reply(200, encoder(reg), ctype)
                elif path == "/healthz":
                    self._reply(200, b"ok\n", "text/plain")
                elif path in extra:
                    body, ctype = extra[path]()
                    self._reply(200, body, ctype)
                else:
                    self._reply(404, b"not found\n", "text/plain")
            except (LedgerError, AuditorError) as exc:
                self._reply(503, f"{exc}\n".encode(), "text/plain")

        do_HEAD = do_GET

    return ThreadingHTTPServer((host, port), Handler)
