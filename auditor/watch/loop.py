"""``drift-auditor watch``: the long-running loop that records every change as it happens.

    discover    the kinds the cluster serves (once; a kind added later waits for a restart)
    desired     Git, read at start and again every ``watch.git-refresh-seconds``
    watch       every in-scope kind listed then watched from the ledger's positions
                (:class:`auditor.live.watch.Watcher`)
    batches     events gathered for at most ``watch.batch-seconds`` (:mod:`.batches`)
    record      each batch one watch run: versions, deletions, drifts, positions
                (:mod:`.judge`), under the ledger's writer lock
    alerts      Slack told by a thread of its own, so a slow Slack never delays the ledger
    anchor      the newest checkpoint copied to the evidence repository, at most every
                ``ledger.anchor-interval-minutes``, by a thread of its own
    audit       API audit events from a tailed log and the audit webhook, recorded beside
                (:mod:`.auditsources`)

The scheduled ``run`` stays the full reconciliation: it holds the ledger's writer lock for its
whole run, and watch batches wait for it (``ledger.lock-wait-seconds``), then find what it
already recorded (stale events record nothing). Within this process one writer at a time
holds the ledger (a thread lock in front of the file lock, so the batch writer, the tailer
and the webhook never poll for each other).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditor.config import Config
from auditor.desired.parsecache import ParseCache
from auditor.desired.state import DesiredState, load_desired_state
from auditor.desired.statecache import StateCache
from auditor.engine.records import Problem
from auditor.errors import AuditorError
from auditor.gitops import controller_objects
from auditor.ledger import keyfile
from auditor.live.client import APIResource, Cluster, ListStats
from auditor.live.watch import Watcher
from auditor.outputs.anchoring import Anchorer
from auditor.pipeline import (
    cache_folder,
    compare_settings,
    configuration,
    discovered_kinds,
    gitops_sources,
    ledger_secret_key,
    record_configuration,
)

from .auditsources import AuditSources
from .batches import Batches
from .judge import BatchCounts, Judge, record_batch
from .writer import LedgerWriter

if TYPE_CHECKING:
    from auditor.ledger.configlog import Origin, Snapshot

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """One recorded batch, as the loop's observers see it."""

    run_id: int
    counts: BatchCounts
    opened: int
    resolved: int
    seconds: float


@dataclass
class WatchOutcome:
    """What a watch did until it stopped."""

    batches: int = 0
    events: int = 0
    versions: int = 0
    deletions: int = 0
    opened: int = 0
    resolved: int = 0
    skipped_kinds: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Alerter:
    """Slack delivery off the recording path: poked after a batch that opened or resolved a
    drift, it plans and sends from the ledger (the outbox keeps what fails)."""

    def __init__(self, cfg: Config, env: Mapping[str, str]) -> None:
        from auditor.outputs import alerts

        self._cfg = cfg
        self._env = env
        self._enabled = bool(alerts.transport_of(cfg.slack))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._run_id: int | None = None
        self._thread = threading.Thread(target=self._loop, name="watch-alerts", daemon=True)

    def start(self) -> None:
        if self._enabled:
            self._thread.start()

    def poke(self, run_id: int) -> None:
        self._run_id = run_id
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)

    def _loop(self) -> None:
        from auditor.outputs import alerts

        while True:
            self._wake.wait()
            self._wake.clear()
            if self._run_id is not None:
                try:
                    # None: the configured ledger, the store's with ledger.url.
                    report = alerts.send(self._cfg, None, env=self._env,
                                         run_id=self._run_id)
                    if report.line():
                        log.info("watch: %s", report.line())
                except AuditorError as exc:
                    log.warning("watch: alerts not sent: %s", exc)
            if self._stop.is_set():
                return


def watch(cfg: Config, *, stop: threading.Event, env: Mapping[str, str],
          desired_path: str | None = None, revision: str | None = None,
          tools_dir: str | None = None,
          on_batch: Callable[[BatchReport], None] | None = None,
          config_origin: Origin | None = None) -> WatchOutcome:
    """Watch until ``stop`` is set; see the module docstring. Returns what it recorded."""
    settings = compare_settings(cfg, ledger_secret_key(cfg, create=True))
    # Read once with the settings: the watch judges with them until it stops, and each batch
    # run records them as a configuration version when the last watch version differs.
    configured = configuration(cfg, config_origin)
    writer = LedgerWriter(cfg, config_hash=configured.digest)
    outcome = WatchOutcome()
    with Cluster(cfg.cluster) as cluster:
        resources = cluster.discover()
        caches = cache_folder(cfg)
        parse_cache, state_cache = ParseCache(caches / "manifests"), StateCache(caches / "state")

        def read_git() -> DesiredState:
            effective = cfg
            if cfg.controllers and not desired_path:
                # The controllers' sources as they stand now, at the commits they applied.
                effective, view = gitops_sources(
                    cfg, controller_objects(cluster, resources, cfg.controllers),
                    cluster=cluster, resources=resources, env=env, lag=False)
                _log_problems(view.problems)
            return load_desired_state(effective, desired_path=desired_path, revision=revision,
                                      discovered=discovered_kinds(resources),
                                      tools_dir=tools_dir, parse_cache=parse_cache,
                                      state_cache=state_cache)

        judge = Judge(cfg, settings, read_git())
        _log_problems(judge.desired.problems)
        with writer.open() as ledger:
            resume = ledger.watch_positions()
        stats = ListStats()
        watcher = Watcher(cluster, resources, cfg.scope, resume=resume, stats=stats,
                          backoff_max=cfg.watch.backoff_max_seconds)
        log.info("watch: %d kinds, resuming %d from the ledger; Git: %d objects",
                 stats.kinds, len(resume), len(judge.want))
        alerter = _Alerter(cfg, env)
        audit = AuditSources(cfg, writer, _audit_kinds(resources), stop)
        # The newest checkpoint outside the cluster, every ledger.anchor-interval-minutes.
        anchorer = Anchorer(cfg, caches, env)
        alerter.start()
        audit.start()
        anchorer.start()
        refreshed = time.monotonic()
        told: set[str] = set()
        try:
            for batch in Batches(watcher.events(stop), seconds=cfg.watch.batch_seconds,
                                 max_size=cfg.watch.batch_max, stop=stop):
                if time.monotonic() - refreshed >= cfg.watch.git_refresh_seconds:
                    judge = _refreshed(judge, cfg, settings, read_git)
                    refreshed = time.monotonic()
                new_problems = [p for p in stats.problems if p.message not in told]
                told.update(p.message for p in new_problems)
                if not batch and not new_problems:
                    continue
                report = _record(writer, judge, batch, stats, new_problems, configured)
                outcome.batches += 1
                outcome.events += report.counts.events
                outcome.versions += report.counts.versions
                outcome.deletions += report.counts.deletions
                outcome.opened += report.opened
                outcome.resolved += report.resolved
                if report.opened or report.resolved:
                    alerter.poke(report.run_id)
                anchorer.poke()
                if on_batch is not None:
                    on_batch(report)
        finally:
            audit.stop()
            alerter.stop()
            anchorer.stop()
    outcome.skipped_kinds = sorted(stats.skipped_kinds)
    outcome.problems = [f"{p.where}: {p.message}" for p in stats.problems] + audit.problems
    return outcome


def _record(writer: LedgerWriter, judge: Judge, batch: list[Any], stats: ListStats,
            problems: list[Problem], configured: Snapshot) -> BatchReport:
    started = time.perf_counter()
    batch_problems: list[Problem] = list(problems)
    with writer.open() as ledger:
        run = ledger.begin_run(cluster=judge.cfg.cluster.name,
                               git_commits=judge.desired.commits, mode="watch")
        try:
            record_configuration(run, configured)
            counts, judged, positions = record_batch(ledger, run, judge, batch, batch_problems)
            run.set_watch_positions(positions)
            summary = run.finish("complete", counts={"watch": counts.to_dict()},
                                 skipped_kinds=sorted(stats.skipped_kinds),
                                 problems=batch_problems, listed_kinds=(),
                                 undecided=lambda key: key not in judged)
        except BaseException as exc:
            if not run.finished:
                run.finish("failed", problems=[Problem("watch", f"{type(exc).__name__}: {exc}")])
            raise
    seconds = time.perf_counter() - started
    keyfile.announce_created()  # the first batch of a new ledger made its signing key
    resolved = sum(summary.resolved.values())
    if counts.versions or counts.deletions or summary.opened or resolved:
        log.info("watch: run %d: %d events, %d versions, %d deletions, %d drifts opened, "
                 "%d resolved (%.3f s)", summary.run_id, counts.events, counts.versions,
                 counts.deletions, summary.opened, resolved, seconds)
    for problem in problems:
        log.warning("watch: %s: %s", problem.where, problem.message)
    return BatchReport(summary.run_id, counts, summary.opened, resolved, seconds)


def _refreshed(judge: Judge, cfg: Config, settings: Any,
               read_git: Callable[[], DesiredState]) -> Judge:
    """Git read again; on failure the last Git stays (logged, the watch goes on)."""
    try:
        desired = read_git()
    except AuditorError as exc:
        log.warning("watch: Git not read again, judging against the last read: %s", exc)
        return judge
    if desired.commits == judge.desired.commits and desired.complete == judge.desired.complete:
        return judge
    _log_problems(desired.problems)
    log.info("watch: Git moved (%s): %d objects", ", ".join(
        f"{name}@{sha[:12]}" for name, sha in sorted(desired.commits.items())), len(desired.objects))
    return Judge(cfg, settings, desired)


def _log_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        log.warning("watch: %s: %s", problem.where, problem.message)


def _audit_kinds(resources: list[APIResource]) -> dict[tuple[str, str], str]:
    """``(apiGroup, resource) → kind`` from discovery, for audit events naming no object."""
    return {(r.group, r.plural): r.kind for r in resources}
