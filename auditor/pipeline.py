"""One audit: desired (Git) and live (cluster or snapshot file) through the comparison.

This is the only place that strings the steps together; the CLI's ``diff`` (and ``run``,
which adds the ledger) call :func:`audit`. Each step stays at its own edge: Git in
:mod:`auditor.desired`, the cluster in :mod:`auditor.cluster`, comparison in
:mod:`auditor.compare`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor import secretkey
from auditor.cluster import APIResource, Cluster, ListStats, in_scope, iter_live
from auditor.compare import CompareSettings, compare_all
from auditor.compare import in_scope as key_in_scope
from auditor.config import Config
from auditor.desired import DesiredState, load_desired, load_folder
from auditor.progress import Progress
from auditor.records import ObjectResult, Problem, ResourceKey
from auditor.snapshot import read_snapshot

log = logging.getLogger(__name__)


@dataclass
class AuditResult:
    """The outcome of one comparison, results sorted by key."""

    results: list[ObjectResult]
    problems: list[Problem]
    desired: DesiredState
    live_stats: ListStats = field(default_factory=ListStats)

    @property
    def skipped_kinds(self) -> list[str]:
        return sorted(self.live_stats.skipped_kinds)


def secret_key_for(cfg: Config) -> bytes:
    """The Secret hash key: the configured file, else the one beside the ledger if it
    exists (so hashes match snapshots taken by this installation), else one for this run."""
    if cfg.compare.secret_hash_key_file:
        return secretkey.load_key(cfg.compare.secret_hash_key_file)
    beside = Path(cfg.ledger.path).with_suffix(".key")
    if beside.exists():
        return secretkey.load_key(beside)
    return secretkey.ephemeral()


def load_desired_state(cfg: Config, *, desired_path: str | None = None,
                       revision: str | None = None, namespace: str | None = None,
                       discovered: dict[tuple[str, str], bool] | None = None,
                       tools_dir: str | None = None) -> DesiredState:
    """Desired state from ``--desired`` (a folder, or a Git URL/path with ``--revision``)
    or, without it, from the configured sources."""
    if desired_path:
        path = Path(desired_path).expanduser()
        if revision is None and path.exists() and not desired_path.endswith(".git"):
            return load_folder(path, namespace or "default", discovered=discovered,
                               tools_dir=tools_dir)
        from auditor.config import Source
        source = Source(url=desired_path, revision=revision or "HEAD",
                        namespace=namespace or "default")
        return load_desired([source], discovered=discovered, tools_dir=tools_dir)
    if not cfg.sources:
        from auditor.errors import ConfigError
        raise ConfigError("sources: no Git source configured (set `sources` in the config file, "
                          "DRIFT_AUDITOR_SOURCE_URL, or pass --desired PATH)")
    return load_desired(cfg.sources, discovered=discovered, tools_dir=tools_dir)


def _flatten(pages: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for page in pages:
        yield from page.items


def _filter_desired(desired: DesiredState, cfg: Config) -> dict[ResourceKey, dict[str, Any]]:
    return {key: obj.obj for key, obj in desired.objects.items()
            if key_in_scope(key, cfg.scope)}


def _drop_unknowable(results: Iterable[ObjectResult], stats: ListStats) -> Iterator[ObjectResult]:
    """A kind the cluster would not list says nothing about its objects: never 'missing'.

    ``stats.skipped_kinds`` is read as each result passes: 'missing' results come last,
    after every kind's list has finished or failed.
    """
    for result in results:
        if result.status == "missing" and result.key.group_kind in stats.skipped_kinds:
            continue
        yield result


def audit(cfg: Config, *, desired_path: str | None = None, revision: str | None = None,
          live_file: str | None = None, namespace: str | None = None,
          tools_dir: str | None = None, secret_key: bytes | None = None,
          policies_dir: str | None = None,
          progress: Callable[[str, int], Progress] | None = None) -> AuditResult:
    """Compare Git with the cluster (or ``live_file``) under ``cfg``."""
    key = secret_key or secret_key_for(cfg)
    policies = policies_dir if policies_dir is not None else (
        cfg.policies.directory if Path(cfg.policies.directory).is_dir() else None)
    settings = CompareSettings.from_config(cfg.compare, cfg.scope, secret_key=key,
                                           policies_dir=policies)
    problems: list[Problem] = []
    stats = ListStats()
    if live_file:
        desired = load_desired_state(cfg, desired_path=desired_path, revision=revision,
                                     namespace=namespace, tools_dir=tools_dir)
        want = _filter_desired(desired, cfg)
        live: Iterable[dict[str, Any]] = (
            o for o in read_snapshot(live_file) if key_in_scope(ResourceKey.of(o), cfg.scope))
        results = list(compare_all(want, live, settings=settings,
                                   sources={k: d.source for k, d in desired.objects.items()},
                                   problems=problems))
    else:
        with Cluster(cfg.cluster) as cluster:
            resources = cluster.discover()
            discovered = {(r.group, r.kind): r.namespaced for r in resources}
            desired = load_desired_state(cfg, desired_path=desired_path, revision=revision,
                                         namespace=namespace, discovered=discovered,
                                         tools_dir=tools_dir)
            want = _filter_desired(desired, cfg)
            scoped = [r for r in resources if in_scope(r, cfg.scope)]
            bar = progress("listing", len(scoped)) if progress else None
            pages = iter_live(cluster, cfg.scope, stats=stats, resources=scoped,
                              on_kind=(lambda r, n, ok: bar.advance(r.group_kind, n, ok))
                              if bar else None)
            compared = compare_all(want, _flatten(pages), settings=settings,
                                   sources={k: d.source for k, d in desired.objects.items()},
                                   problems=problems)
            results = list(_drop_unknowable(compared, stats))
            if bar:
                bar.finish()
            _note_absent_kinds(want, resources, problems)
    results.sort(key=lambda r: r.key)
    all_problems = [*desired.problems, *stats.problems, *problems]
    return AuditResult(results, all_problems, desired, stats)


def _note_absent_kinds(want: dict[ResourceKey, dict[str, Any]], resources: list[APIResource],
                       problems: list[Problem]) -> None:
    """A desired kind the API does not serve (a CRD not installed) is worth one clear line."""
    served = {(r.group, r.kind) for r in resources}
    absent = sorted({(k.group, k.kind) for k in want} - served)
    for group, kind in absent:
        name = f"{kind}.{group}" if group else kind
        problems.append(Problem(name, f"the cluster serves no kind {name}: its objects in Git "
                                      "are reported missing", "warning"))
