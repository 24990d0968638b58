"""Prometheus metrics from a real ledger: values checked through prometheus-client's own
parser, the exposition checked by ``promtool check metrics``, pushes read back from a real
Pushgateway, the textfile and the /metrics server."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from auditor.cli.common import Context
from auditor.cli.notify import metrics_cmd
from auditor.config import Config, MetricsConfig
from auditor.ledger import Ledger
from auditor.ledger.metricsquery import BREAKDOWN_KEY, breakdown
from auditor.outputs import metrics
from tests.alerts.ledgers import IMAGE, T0, at, drifted, in_sync, key

WEB, API, CFG = key("web"), key("api", ns="billing"), key("settings", kind="ConfigMap", group="")
NOW = T0.timestamp() + 5 * 3600


def _run(db: Path, hours: float, results: list, ack: bool = False) -> None:
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(hours))
        for r in results:
            run.record(r)
        counts = {"in-sync": sum(r.status == "in-sync" for r in results),
                  "drifted": sum(r.status == "drifted" for r in results),
                  BREAKDOWN_KEY: breakdown(results)}
        run.finish("complete", counts=counts)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Baseline; then a human image change (web) and an HPA-style change (api); then web
    fixed two hours later while api stays drifted."""
    path = tmp_path / "ledger.db"
    _run(path, 0, [in_sync(WEB), in_sync(API), in_sync(CFG)])
    _run(path, 1, [drifted(WEB, (IMAGE, "web:1", "web:2")),
                   drifted(API, ("spec.replicas", 2, 6), manager="horizontal-pod-autoscaler",
                           category="controller"),
                   in_sync(CFG)])
    _run(path, 3, [in_sync(WEB), drifted(API, ("spec.replicas", 2, 6),
                                          manager="horizontal-pod-autoscaler",
                                          category="controller"), in_sync(CFG)])
    return path


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str,
          /, **labels: str) -> float:
    return found[(metric, frozenset(labels.items()))]


def exposition(db: Path) -> str:
    reg, collector = metrics.registry(Config(), db)
    collector.clock = lambda: NOW
    from prometheus_client import generate_latest

    return generate_latest(reg).decode()


def test_values_from_the_ledger(db: Path) -> None:
    text = exposition(db)
    found = samples(text)
    v = lambda name, **labels: value(found, "drift_auditor_" + name, **labels)  # noqa: E731
    assert v("runs_total", status="complete") == 3 and v("runs_total", status="failed") == 0
    assert v("last_run_status", status="complete") == 1
    assert v("last_run_objects", status="in-sync") == 2
    assert v("last_run_objects", status="drifted") == 1
    # Per namespace and kind, in sync included (the runs stored their breakdown).
    assert v("objects", namespace="billing", kind="Deployment", group="apps",
             status="drifted") == 1
    assert v("objects", namespace="shop", kind="Deployment", group="apps", status="in-sync") == 1
    assert v("objects", namespace="shop", kind="ConfigMap", group="", status="in-sync") == 1
    # api drifted at 10:00; "now" is 14:00: 4 hours old.
    assert v("open_drifts", category="controller", age="1h_to_1d") == 1
    assert v("open_drifts", category="human", age="lt_1h") == 0
    assert v("oldest_open_drift_age_seconds", category="controller") == 4 * 3600
    assert v("drifts_opened_total", category="human") == 1
    assert v("drifts_opened_total", category="controller") == 1
    assert sum(val for (name, _), val in found.items()
               if name == "drift_auditor_drifts_resolved_total") == 1
    # web: opened by the 10:00 run, resolved by the 12:00 run.
    assert v("remediation_seconds_count", category="human") == 1
    assert v("remediation_seconds_sum", category="human") == 7200
    assert v("mean_time_to_remediation_seconds") == 7200
    assert v("ledger_verify_ok") == 1
    assert v("ledger_events") > 10
    assert v("alerts_pending") == 0
    # No object names anywhere in the labels.
    for (_, labels), _val in found.items():
        assert not {"web", "api", "settings"} & {lv for _, lv in labels}


def test_promtool_accepts_the_exposition(db: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    proc = subprocess.run([promtool, "check", "metrics"], input=exposition(db),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == ""


def test_textfile_is_written_atomically(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "drift_auditor.prom"
    report = metrics.deliver(Config(), db, textfile=str(target))
    assert report.textfile == str(target) and not report.errors
    found = samples(target.read_text())
    assert value(found, "drift_auditor_runs_total", status="complete") == 3
    assert [p.name for p in target.parent.iterdir()] == ["drift_auditor.prom"]  # no temp left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        pytest.skip("Pushgateway not installed (Debian package `prometheus-pushgateway`)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the Pushgateway did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _gateway_samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        return samples(resp.read().decode())


def test_push_to_a_real_pushgateway(db: Path, pushgateway: str) -> None:
    cfg = Config(metrics=MetricsConfig(job="drift-auditor-cron"))
    report = metrics.deliver(cfg, db, pushgateway=pushgateway)
    assert report.cluster == "prod-eu" and not report.errors
    found = _gateway_samples(pushgateway)
    group = {"job": "drift-auditor-cron", "cluster": "prod-eu", "instance": ""}
    assert value(found, "drift_auditor_runs_total", status="complete", **group) == 3
    open_controller = [v for (name, labels), v in found.items()
                       if name == "drift_auditor_open_drifts"
                       and ("category", "controller") in labels]
    assert sorted(open_controller) == [0, 0, 0, 1]  # one drift, in one age band
    assert value(found, "push_failure_time_seconds", **group) == 0
    # A later push replaces the group: the new run shows up, nothing is duplicated.
    _run(db, 4, [in_sync(WEB), in_sync(API), in_sync(CFG)])
    metrics.after_run(Config(metrics=MetricsConfig(job="drift-auditor-cron",
                                                   pushgateway=pushgateway)), db)
    found = _gateway_samples(pushgateway)
    assert value(found, "drift_auditor_runs_total", status="complete", **group) == 4
    assert value(found, "drift_auditor_drifts_resolved_total", how="no-longer-detected",
                 **group) + value(found, "drift_auditor_drifts_resolved_total",
                                  how="fixed-live", **group) == 2


def test_push_failure_is_reported_not_raised_after_a_run(db: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    report = metrics.after_run(Config(metrics=MetricsConfig(pushgateway=dead)), db)
    assert report.errors and "pushgateway" in report.errors[0]


def test_serve_exposes_metrics(db: Path) -> None:
    server = metrics.make_server(Config(), db, port=0, routes={
        "/reports/x": lambda: (b"<html></html>", "text/html")})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            found = samples(resp.read().decode())
        assert value(found, "drift_auditor_runs_total", status="complete") == 3
        with urllib.request.urlopen(base + "/reports/x", timeout=5) as resp:
            assert resp.read() == b"<html></html>"
        # A run lands between scrapes: the next scrape reads it.
        _run(db, 4, [in_sync(WEB), in_sync(API), in_sync(CFG)])
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            found = samples(resp.read().decode())
        assert value(found, "drift_auditor_runs_total", status="complete") == 4
        assert value(found, "drift_auditor_ledger_verify_ok") == 1
        # Someone edits a drift behind the ledger's back: the next scrape says so.
        conn = sqlite3.connect(db)
        conn.execute("DROP TRIGGER drifts_no_update")
        conn.execute("UPDATE drifts SET manager = 'argocd-controller'")
        conn.commit()
        conn.close()
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            assert value(samples(resp.read().decode()), "drift_auditor_ledger_verify_ok") == 0
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_command(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger: {{path: {db}}}\n")
    target = tmp_path / "out.prom"
    result = CliRunner().invoke(metrics_cmd, ["--print", "--textfile", str(target)],
                                obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    assert "drift_auditor_runs_total" in result.output and target.exists()
    missing = CliRunner().invoke(metrics_cmd, ["--ledger", str(tmp_path / "nope.db")],
                                 obj=Context(str(config)))
    assert missing.exit_code == 2 and "no ledger here" in missing.output


def test_policy_results_when_the_run_recorded_them(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from auditor.ledger import policyresults

    @dataclass(frozen=True)
    class Result:
        policy: str
        key: Any
        api_version: str
        status: str
        severity: str
        messages: tuple[str, ...] = ()
        exemption: Any = None

    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(0))
        run.record(in_sync(WEB))
        run.record(in_sync(API))
        policyresults.record(run, policyresults.PolicyRunRecord(results=[
            Result("no-latest-tag", WEB, "apps/v1", "fail", "high", ("image uses :latest",)),
            Result("no-latest-tag", API, "apps/v1", "pass", "high"),
            Result("resources-set", WEB, "apps/v1", "pass", "medium"),
            Result("resources-set", API, "apps/v1", "pass", "medium")], score=72.5, policies=2))
        run.finish("complete")
    found = samples(exposition(path))
    assert value(found, "drift_auditor_policy_results", policy="no-latest-tag", severity="high",
                 status="fail") == 1
    assert value(found, "drift_auditor_policy_results", policy="resources-set",
                 severity="medium", status="pass") == 2
    assert value(found, "drift_auditor_policy_compliance_score") == 72.5


def test_object_names_only_when_asked_for(db: Path) -> None:
    reg, collector = metrics.registry(Config(metrics=MetricsConfig(object_labels=True)), db)
    collector.clock = lambda: NOW
    from prometheus_client import generate_latest

    found = samples(generate_latest(reg).decode())
    assert value(found, "drift_auditor_open_drift_age_seconds", namespace="billing",
                 kind="Deployment", group="apps", name="api", category="controller") == 4 * 3600
    assert not any(name == "drift_auditor_open_drift_age_seconds"
                   for name, _ in samples(exposition(db)))


def test_push_request_shape_against_a_local_receiver(db: Path) -> None:
    """Always runs (no Pushgateway binary needed): what goes over the wire."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        cluster = metrics.push(Config(), metrics.snapshot(Config(), db),
                               f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert cluster == "prod-eu"
    [(method, path, body)] = seen
    assert method == "PUT"  # replaces the group: series that disappeared do not linger
    assert path == "/metrics/job/drift-auditor/cluster/prod-eu"
    assert value(samples(body.decode()), "drift_auditor_runs_total", status="complete") == 3
