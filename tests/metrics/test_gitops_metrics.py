"""The GitOps series of the exporter (sources derived from Argo CD / Flux, sync lag, namespaces
not under GitOps) from real ledgers: the newest complete run's view, not a failed run's after
it; none at all without controller sources (or once they are no longer the sources); the fleet's cluster label; and
promtool's checks of the exposition."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from auditor.config import Config
from auditor.outputs import metrics
from auditor.web.serve import Fleet, FleetCollector
from tests.alerts.gitopsledgers import API, SHOP, WEB, lag, record_gitops, view
from tests.alerts.ledgers import T0

from .test_metrics import samples, value

NOW = T0.timestamp() + 5 * 3600
HOUR = 3600.0


def _exposition(db: Path, now: float = NOW) -> str:
    reg, collector = metrics.registry(Config(), db)
    collector.clock = lambda: now
    return generate_latest(reg).decode()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A run before the controllers were read; one with web 3 commits behind since 09:30
    and shop diverged (-1), a skipped object and two namespaces unclaimed; then a failed run
    whose (different) view must not count."""
    path = tmp_path / "ledger.db"
    record_gitops(path, 0, None)
    record_gitops(path, 1, view([lag(WEB, 3, 0.5), lag(SHOP, -1, None)],
                                skipped=[("Application argocd/legacy", "plugin source")],
                                uncovered=["legacy", "tools"]))
    record_gitops(path, 2, view([lag(API, 9, 1.5)]), status="failed")
    return path


def test_gitops_series_of_the_newest_complete_run(db: Path) -> None:
    found = samples(_exposition(db))
    v = lambda name, **labels: value(found, "drift_auditor_" + name, **labels)  # noqa: E731
    assert v("gitops_sources", controller="argocd") == 2
    assert v("gitops_sources", controller="flux") == 1
    assert v("gitops_skipped") == 1
    assert v("namespaces_not_under_gitops") == 2
    assert v("sync_lag_commits", source="argocd:argocd/web", owner=WEB) == 3
    assert v("sync_lag_commits", source="argocd:argocd/shop", owner=SHOP) == -1
    # Since 09:30, now 14:00: four and a half hours.
    assert v("sync_lag_seconds", source="argocd:argocd/web", owner=WEB) == 4.5 * HOUR
    # A diverged source has no count of commits, hence no "since": no seconds series.
    lagging = {dict(labels)["owner"] for (name, labels) in found
               if name == "drift_auditor_sync_lag_seconds"}
    assert lagging == {WEB}
    # The failed run's view (api behind) is not the cluster's state.
    assert not any(dict(labels).get("owner") == API for _, labels in found)
    # The repository URL (credentials in it) is never a label.
    assert not any("s3cr3t" in lv or "git.example.com" in lv
                   for _, labels in found for _, lv in labels)


def test_a_source_in_sync_again_has_no_lag_series(db: Path) -> None:
    record_gitops(db, 3, view(uncovered=["legacy"]))
    text = _exposition(db)
    assert "drift_auditor_sync_lag_commits{" not in text
    assert "# TYPE drift_auditor_sync_lag_seconds gauge" in text  # the family, empty
    found = samples(text)
    assert value(found, "drift_auditor_namespaces_not_under_gitops") == 1
    assert value(found, "drift_auditor_gitops_skipped") == 0


def test_no_gitops_series_without_controller_sources(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    record_gitops(path, 0, None)
    record_gitops(path, 1, None)
    text = _exposition(path)
    assert "drift_auditor_gitops_" not in text and "sync_lag" not in text
    assert "not_under_gitops" not in text


def test_help_and_type_and_promtool(db: Path) -> None:
    text = _exposition(db)
    for name in ("gitops_sources", "gitops_skipped", "sync_lag_commits", "sync_lag_seconds",
                 "namespaces_not_under_gitops"):
        assert f"# HELP drift_auditor_{name} " in text
        assert f"# TYPE drift_auditor_{name} gauge" in text
        assert f"drift_auditor_{name}" in (metrics.__doc__ or "")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_fleet_labels_each_cluster(tmp_path: Path) -> None:
    eu, us = tmp_path / "eu" / "ledger.db", tmp_path / "us" / "ledger.db"
    eu.parent.mkdir()
    us.parent.mkdir()
    record_gitops(eu, 1, view([lag(WEB, 2, 0.5)]), cluster="prod-eu")
    record_gitops(us, 1, view([lag(WEB, 5, 0.0)], owners=[WEB]), cluster="prod-us")
    fleet = Fleet(Config(), [eu, us])
    for member in fleet.members:
        member.collector.clock = lambda: NOW
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(fleet))
    found = samples(generate_latest(reg).decode())
    names = sorted({dict(labels)["cluster"] for (name, labels) in found
                    if name == "drift_auditor_sync_lag_commits"})
    assert len(names) == 2
    by_cluster = {dict(labels)["cluster"]: v for (name, labels), v in found.items()
                  if name == "drift_auditor_sync_lag_commits"}
    assert sorted(by_cluster.values()) == [2, 5]
    sources = {(dict(labels)["cluster"], dict(labels)["controller"]): v
               for (name, labels), v in found.items() if name == "drift_auditor_gitops_sources"}
    assert sorted(sources.values()) == [0, 1, 1, 2]


def test_controllers_no_longer_the_sources_leave_no_gitops_series(db: Path) -> None:
    record_gitops(db, 3, None)  # the configuration went back to sources of its own
    text = _exposition(db)
    assert "drift_auditor_gitops_" not in text and "sync_lag" not in text
