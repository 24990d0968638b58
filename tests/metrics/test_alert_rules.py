"""The shipped alert rules (``deploy/helm/drift-auditor/files/drift-auditor-rules.yaml``) under the real
``promtool test rules``, fed with series the project's own exporter produced from real
ledgers: a stale auditor with old drift, a failed run over a tampered ledger, a human
change outside Git, and Git ahead of what a GitOps controller applied.

promtool's clock starts at 0; the exporter's ``*_timestamp_seconds`` values are moved by the
same offset (promtool time 0 is the exposition's "now"), so ``time() - timestamp`` reads the
same age it would in production. A run's end is the wall clock when it finished; the tests
read it from the ledger and place "now" after it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from auditor.config import Config
from auditor.ledger import Ledger
from auditor.outputs import metrics
from tests.alerts.gitopsledgers import SHOP, lag, record_gitops, view
from tests.alerts.gitopsledgers import WEB as WEB_APP
from tests.alerts.ledgers import at, drifted, in_sync, key
from tests.ledger.helpers import obs

RULES = (Path(__file__).resolve().parents[2] / "deploy" / "helm" / "drift-auditor" / "files"
         / "drift-auditor-rules.yaml")
WEB, API = key("web"), key("api", ns="billing")
HOUR = 3600.0

Series = dict[str, list[float]]


def _run(db: Path, hours: float, results: Sequence[Any], status: str = "complete",
         observed: Sequence[Any] = ()) -> None:
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(hours))
        for o in observed:
            run.observe(o)
        for r in results:
            run.record(r)
        run.finish(status)


def _exposition(db: Path, now: float) -> dict[str, float]:
    """The exporter's samples at epoch ``now``: series text → value, timestamps moved to
    promtool's clock."""
    reg, collector = metrics.registry(Config(), db)
    collector.clock = lambda: now
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            value = s.value - now if s.name.endswith("_timestamp_seconds") else s.value
            out[f"{s.name}{{{labels}}}"] = value
    return out


def _ended(db: Path) -> float:
    """When the ledger's last run ended (epoch seconds)."""
    with sqlite3.connect(db) as conn:
        (ended,) = conn.execute("SELECT max(ended_at) FROM runs").fetchone()
    return datetime.strptime(str(ended), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _humanized(seconds: float) -> str:
    """Prometheus' ``humanizeDuration`` of a duration of a minute or more."""
    whole = int(seconds)
    d, rest = divmod(whole, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d {h}h {m}m {s}s"
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def _timeline(*parts: tuple[dict[str, float], int]) -> list[dict[str, Any]]:
    """promtool input series: each exposition held for its number of minutes, in order."""
    names = sorted({name for expo, _ in parts for name in expo})
    series = []
    for name in names:
        values: list[str] = []
        for expo, minutes in parts:
            v = expo.get(name)
            values += ["_" if v is None else ("NaN" if v != v else repr(v))] * minutes
        series.append({"series": name, "values": " ".join(values)})
    return series


def _promtool(tmp: Path, series: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    test = tmp / "rules-test.yaml"
    test.write_text(yaml.safe_dump({
        "rule_files": [str(RULES)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": alerts}]},
        sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_file_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_stale_auditor_with_old_drift_pages(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _run(db, 0, [in_sync(WEB), in_sync(API)])
    _run(db, 1, [in_sync(WEB), drifted(API, ("spec.replicas", 2, 6),
                                        manager="horizontal-pod-autoscaler",
                                        category="controller")])
    # 29 hours after the last run ended, nothing has run since.
    now = _ended(db) + 29 * HOUR
    stale = _exposition(db, now)
    drift_age = now - at(1).timestamp()  # opened by the run at T0 + 1 h
    none: list[dict[str, Any]] = []
    _promtool(tmp_path, _timeline((stale, 40)), [
        {"eval_time": "20m", "alertname": "DriftAuditorNotRunning", "exp_alerts": [{
            "exp_labels": {"severity": "critical"},
            "exp_annotations": {
                "summary": "Drift Auditor has not completed a run for 1d 5h 20m 0s",
                "description": "No complete audit in two schedule periods: drift and changes "
                               "go unrecorded. Check the CronJob's Jobs and their logs."}}]},
        {"eval_time": "20m", "alertname": "DriftAuditorDriftOpenTooLong", "exp_alerts": [{
            "exp_labels": {"severity": "warning", "category": "controller"},
            "exp_annotations": {
                "summary": f"controller drift open for {_humanized(drift_age)}",
                "description": "A drift has been open longer than a day: revert it, adopt it "
                               "into Git, or acknowledge it with a reason."}}]},
        {"eval_time": "20m", "alertname": "DriftAuditorRunNotComplete", "exp_alerts": none},
        {"eval_time": "20m", "alertname": "DriftAuditorLedgerVerifyFailed", "exp_alerts": none},
        {"eval_time": "20m", "alertname": "DriftAuditorMetricsAbsent", "exp_alerts": none},
    ])


def test_a_fresh_healthy_auditor_pages_nobody(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _run(db, 0, [in_sync(WEB), in_sync(API)])
    _run(db, 1, [in_sync(WEB), in_sync(API)])
    fresh = _exposition(db, _ended(db) + 60)
    alerts = [{"eval_time": "30m", "alertname": name, "exp_alerts": []} for name in (
        "DriftAuditorNotRunning", "DriftAuditorMetricsAbsent", "DriftAuditorRunNotComplete",
        "DriftAuditorLedgerVerifyFailed", "DriftAuditorDriftOpenTooLong",
        "DriftAuditorUnauthorisedChange", "DriftAuditorAlertsBackingUp", "DriftAuditorSyncLag")]
    _promtool(tmp_path, _timeline((fresh, 40)), alerts)


def test_a_failed_run_over_a_tampered_ledger_pages(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _run(db, 0, [in_sync(WEB), in_sync(API)])
    _run(db, 1, [], status="failed")
    # Someone with write access to the volume edits the chain by hand.
    conn = sqlite3.connect(db)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                "AND tbl_name = 'events'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE events SET payload = replace(payload, 'prod-eu', 'forged') "
                 "WHERE seq = 1")
    conn.commit()
    conn.close()
    broken = _exposition(db, _ended(db) + 60)
    assert broken['drift_auditor_ledger_verify_ok{}'] == 0
    _promtool(tmp_path, _timeline((broken, 20)), [
        {"eval_time": "5m", "alertname": "DriftAuditorRunNotComplete", "exp_alerts": [{
            "exp_labels": {"severity": "warning", "status": "failed"},
            "exp_annotations": {
                "summary": "The last Drift Auditor run was failed",
                "description": "failed: nothing was audited; partial: some kinds could not "
                               "be listed (see drift_auditor_last_run_skipped_kinds and the "
                               "run's problems)."}}]},
        {"eval_time": "5m", "alertname": "DriftAuditorLedgerVerifyFailed", "exp_alerts": [{
            "exp_labels": {"severity": "critical"},
            "exp_annotations": {
                "summary": "The Drift Auditor ledger no longer verifies",
                "description": "The hash chain is broken: the audit record was altered. Run "
                               "`drift-auditor verify` for the first broken sequence number; "
                               "keep the file as evidence."}}]},
        {"eval_time": "5m", "alertname": "DriftAuditorNotRunning", "exp_alerts": []},
    ])


def test_a_human_change_outside_git_pages_once_it_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    _run(db, 0, [in_sync(WEB), in_sync(API)], observed=[obs(WEB, {"image": "web:1"}, rv="1")])
    before = _exposition(db, _ended(db) + 60)
    _run(db, 1, [drifted(WEB, ("spec.template.spec.containers[name=web].image", "web:1",
                               "web:2"))],
         observed=[obs(WEB, {"image": "web:2"}, rv="2", manager="kubectl-set")])
    after = _exposition(db, _ended(db) + 120)
    assert after['drift_auditor_changes_total{authorized="false",category="human"}'] == 1
    _promtool(tmp_path, _timeline((before, 10), (after, 20)), [
        {"eval_time": "5m", "alertname": "DriftAuditorUnauthorisedChange", "exp_alerts": []},
        {"eval_time": "15m", "alertname": "DriftAuditorUnauthorisedChange", "exp_alerts": [{
            "exp_labels": {"severity": "high"},
            "exp_annotations": {
                "summary": "1 unauthorised change(s) in the last hour",
                "description": "A person changed the cluster outside Git. `drift-auditor "
                               "history --category human --since 1h` names who and what."}}]},
    ])


def _since(entry: dict[str, Any], epoch: float) -> dict[str, Any]:
    """``entry`` with its first unapplied commit at ``epoch`` (as git's %cI writes it)."""
    moment = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return {**entry, "since": moment}


SYNC_LAG_DESCRIPTION = (
    "The GitOps controller has not applied the newest commits of the ref it follows for over "
    "an hour: approved changes are not live. Check its sync status and errors; "
    "`drift-auditor sources` shows the commit it applied.")


def test_git_ahead_of_the_controller_for_over_an_hour_warns(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    # web: 3 commits behind since an hour and a half before the run (runs end on the wall
    # clock, so "since" is taken from it too); shop: diverged (-1,
    # no "since"), which the seconds series (and so this alert) leaves out.
    since = time.time() - 1.5 * HOUR
    record_gitops(db, 2, view([_since(lag(WEB_APP, 3, 0), since), lag(SHOP, -1, None)]))
    now = _ended(db) + 60
    lagging = _exposition(db, now)
    seconds = now - int(since)
    key_ = f'drift_auditor_sync_lag_seconds{{owner="{WEB_APP}",source="argocd:argocd/web"}}'
    assert lagging[key_] == seconds
    assert not any(k.startswith("drift_auditor_sync_lag_seconds") and SHOP in k
                   for k in lagging)
    _promtool(tmp_path, _timeline((lagging, 40)), [
        # "for: 15m": pending at first, firing after.
        {"eval_time": "10m", "alertname": "DriftAuditorSyncLag", "exp_alerts": []},
        {"eval_time": "20m", "alertname": "DriftAuditorSyncLag", "exp_alerts": [{
            "exp_labels": {"severity": "warning", "owner": WEB_APP},
            "exp_annotations": {
                "summary": f"{WEB_APP}: Git ahead of the cluster for {_humanized(seconds)}",
                "description": SYNC_LAG_DESCRIPTION}}]},
    ])


def test_a_short_sync_lag_or_none_pages_nobody(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    # Behind for twenty minutes: a controller's normal sync interval, not an alert.
    record_gitops(db, 2, view([_since(lag(WEB_APP, 1, 0), time.time() - 1200)]))
    short = _exposition(db, _ended(db) + 60)
    assert 1200 <= short[
        f'drift_auditor_sync_lag_seconds{{owner="{WEB_APP}",source="argocd:argocd/web"}}'] < 3600
    # Then in sync again: the series goes away.
    record_gitops(db, 3, view())
    synced = _exposition(db, _ended(db) + 60)
    assert not any(k.startswith("drift_auditor_sync_lag") for k in synced)
    _promtool(tmp_path, _timeline((short, 30), (synced, 30)), [
        {"eval_time": "25m", "alertname": "DriftAuditorSyncLag", "exp_alerts": []},
        {"eval_time": "55m", "alertname": "DriftAuditorSyncLag", "exp_alerts": []},
    ])
