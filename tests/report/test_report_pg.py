"""Reading the fleet store (PostgreSQL): ``report``, ``history``, ``metrics`` and ``serve``
give the same answers whichever back end holds the same runs. The ledger written by real runs
(tests/report/conftest.py) is copied into a real PostgreSQL server (:mod:`tests.pgkit`) with
``ledger copy``'s code (:mod:`auditor.ledger.transfer`), which re-hashes nothing; every
reader is then run on the file and on the store cluster and the outputs compared, modulo
where the ledger is (its path or URL) and when the report was generated."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditor.ledger import Ledger
from auditor.ledger.transfer import copy_to_store
from tests.ledger.backends import pg_url
from tests.ledger.helpers import at, drifted, in_sync, key, obs
from tests.pgkit import PgDatabase, pg_database, pg_server  # noqa: F401 (fixtures)

from .conftest import RealLedger

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "test-cluster"


def _stamp(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def _report_json(real: RealLedger, *ledgers: str) -> dict[str, Any]:
    args = ["report", "--from", _stamp(real.start), "--to", _stamp(real.end),
            "--format", "json"]
    for ledger in ledgers:
        args += ["--ledger", ledger]
    proc = _cli(real.config, *args)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = orjson.loads(proc.stdout)
    return doc


def _where_free(doc: Any) -> Any:
    """``doc`` without where the ledgers are (a path, a URL) and when it was generated: the
    only things that differ between back ends. (Only those fields: the recorded configuration
    names the ledger file too, and is the same on both.)"""
    out = orjson.loads(orjson.dumps(doc))
    out["header"]["generated_at"] = ""
    out["header"]["ledger_path"] = ""
    for member in out.get("fleet") or []:
        member["ledger_path"] = ""
    return out


@pytest.fixture
def store(real_ledger: RealLedger, pg_database: PgDatabase) -> str:  # noqa: F811
    """The real ledger copied into the store as cluster ``test-cluster``; the store's URL."""
    url = pg_url(pg_database)
    copy_to_store(real_ledger.path, url, CLUSTER)
    # Reports observe up to min(--to, now): past the period's end both back ends' reports,
    # generated a moment apart, see the same period.
    while datetime.now(UTC) <= real_ledger.end + timedelta(seconds=1):
        time.sleep(0.2)
    return url


def test_the_single_cluster_report_is_the_same_from_the_store(real_ledger: RealLedger,
                                                              store: str) -> None:
    lite = _report_json(real_ledger, str(real_ledger.path))
    pg = _report_json(real_ledger, f"{store}#{CLUSTER}")
    assert pg["header"]["integrity"]["ok"] is True
    assert pg["header"]["ledger_path"] == f"{store}#{CLUSTER}"
    got, want = _where_free(pg), _where_free(lite)
    assert {k for k in want if got[k] != want[k]} == set()
    assert got == want


@pytest.mark.parametrize("kind", ["all", "config"])
def test_history_is_the_same_from_the_store(real_ledger: RealLedger, store: str,
                                            kind: str) -> None:
    outputs = []
    for ledger in (str(real_ledger.path), f"{store}#{CLUSTER}"):
        proc = _cli(real_ledger.config, "history", "--ledger", ledger, "--type", kind,
                    "-o", "json")
        assert proc.returncode == 0, proc.stderr
        outputs.append(orjson.loads(proc.stdout))
    assert outputs[0] and outputs[1] == outputs[0]


def _timeless(text: str) -> str:
    """The exposition without the series that depend on the moment of reading: the open
    drifts' age (from now) and how long verification took."""
    return "\n".join(line for line in text.splitlines() if not re.match(
        r"drift_auditor_(oldest_open_drift_age|ledger_verify_duration)_seconds\b", line))


def test_metrics_are_the_same_from_the_store(real_ledger: RealLedger, store: str,
                                             tmp_path: Path) -> None:
    texts = []
    for ledger in (str(real_ledger.path), f"{store}#{CLUSTER}"):
        proc = _cli(real_ledger.config, "metrics", "--ledger", ledger, "--print")
        assert proc.returncode == 0, proc.stderr
        texts.append(proc.stdout)
    assert "drift_auditor_ledger_verify_ok 1.0" in texts[1]
    assert _timeless(texts[1]) == _timeless(texts[0])
    # ledger.url + ledger.cluster in the configuration: the store, without --ledger.
    config = tmp_path / "store.yaml"
    config.write_text(real_ledger.config.read_text().replace(
        "ledger: {path:", f"ledger: {{url: '{store}', cluster: {CLUSTER}, path:"))
    proc = _cli(config, "metrics", "--print")
    assert proc.returncode == 0, proc.stderr
    assert _timeless(proc.stdout) == _timeless(texts[0])


def _pages(cfg: Any, ledgers: list[str], paths: list[str]) -> list[tuple[int, str]]:
    from tests.serve.conftest import http, serving

    with serving(cfg, None, ledger_paths=ledgers) as base:
        get = http(base)
        return [(r.status, r.body) for r in (get(p) for p in paths)]


def _same_moment(body: str) -> str:
    # The page's "now" (to the second) and ages computed from it.
    body = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "T", body)
    return re.sub(r"\b\d+(\.\d+)?\s*(s|m|h|d|min|seconds?|minutes?|hours?|days?)\b", "AGE", body)


def test_serve_shows_the_same_pages_for_a_store_cluster(real_ledger: RealLedger,
                                                        store: str) -> None:
    from auditor import config as config_mod

    cfg = config_mod.load(real_ledger.config)
    # The filters go through the dialect: drift items' JSON (actor, category), the text
    # search (instr → strpos), NULLs ordered first.
    paths = ["/", "/objects/apps/Deployment/shop/web", "/drifts", "/changes", "/healthz",
             "/drifts?actor=kubectl-set", "/drifts?category=human&q=WEB", "/objects?q=Web",
             "/changes?actor=kubectl-set&q=shop", "/api/v1/drifts?category=human",
             "/api/v1/runs", "/api/v1/objects/apps/Deployment/shop/web", "/metrics",
             "/objects/apps/Deployment/shop/nothing"]
    lite = _pages(cfg, [str(real_ledger.path)], paths)
    pg = _pages(cfg, [f"{store}#{CLUSTER}"], paths)
    assert [s for s, _ in pg] == [s for s, _ in lite] == [200] * (len(paths) - 1) + [404]
    assert "shop/web:6.6.6-hotfix" in pg[1][1]
    assert "/objects/apps/Deployment/shop/web" in pg[paths.index("/drifts?actor=kubectl-set")][1]
    for (_, want), (_, got), path in zip(lite, pg, paths, strict=True):
        if path == "/metrics":
            want, got = _timeless(want), _timeless(got)
        assert _same_moment(got) == _same_moment(want), path


def _second_cluster(db: Path) -> None:
    """Another cluster's ledger (``prod-us``), written through the ledger API: a drift that
    opens and resolves, one left open."""
    with Ledger.open(db) as ledger:
        for hour in range(4):
            run = ledger.begin_run(cluster="prod-us", started_at=at(hour))
            run.observe(obs(key("web"), {"replicas": hour}, rv=str(hour)))
            run.observe(obs(key("api"), {"replicas": 1}))
            run.record(drifted(key("web"), ("spec.replicas", 2, hour)) if hour in (1, 2)
                       else in_sync(key("web")))
            run.record(drifted(key("api"), ("spec.image", "a", "b")))
            run.finish()


def test_a_fleet_report_is_the_same_from_two_files_and_from_the_store(
        real_ledger: RealLedger, store: str, tmp_path: Path) -> None:
    other = tmp_path / "prod-us.db"
    _second_cluster(other)
    copy_to_store(other, store, "prod-us")
    since = "2026-11-01"

    def report(*ledgers: str) -> dict[str, Any]:
        args = ["report", "--from", since, "--to", _stamp(real_ledger.end), "--format", "json"]
        for ledger in ledgers:
            args += ["--ledger", ledger]
        proc = _cli(real_ledger.config, *args)
        assert proc.returncode == 0, proc.stderr
        doc: dict[str, Any] = orjson.loads(proc.stdout)
        return doc

    files = report(str(other), str(real_ledger.path))
    whole = report(store)  # the URL alone: every cluster of the store, by name
    named = report(f"{store}#prod-us", f"{store}#{CLUSTER}")
    assert [m["cluster"] for m in whole["fleet"]] == ["prod-us", CLUSTER]
    assert [m["ledger_path"] for m in whole["fleet"]] == [f"{store}#prod-us",
                                                          f"{store}#{CLUSTER}"]
    assert whole["header"]["integrity"]["ok"] is True and files["changes"]
    want = _where_free(files)
    assert _where_free(whole) == want
    assert _where_free(named) == want
    # serve's fleet view over the store (the URL alone) names and shows the same clusters.
    from auditor import config as config_mod

    cfg = config_mod.load(real_ledger.config)
    paths = ["/", "/c/prod-us/", "/c/prod-us/objects/apps/Deployment/shop/api",
             f"/c/{CLUSTER}/objects/apps/Deployment/shop/web", "/healthz"]
    lite = _pages(cfg, [str(other), str(real_ledger.path)], paths)
    pg = _pages(cfg, [store], paths)
    assert [s for s, _ in pg] == [s for s, _ in lite] == [200] * len(paths)
    for (_, lite_body), (_, pg_body), path in zip(lite, pg, paths, strict=True):
        if path == "/":  # the overview names each cluster's ledger (path or URL)
            lite_body = lite_body.replace(str(other), "L1").replace(str(real_ledger.path), "L2")
            pg_body = pg_body.replace(html.escape(f"{store}#prod-us"), "L1").replace(
                html.escape(f"{store}#{CLUSTER}"), "L2")
        assert _same_moment(pg_body) == _same_moment(lite_body), path


def test_store_ledgers_are_named_with_one_line_errors(real_ledger: RealLedger,
                                                     store: str) -> None:
    def error(*ledgers: str) -> str:
        args = ["report", "--from", "2026-11-01", "--format", "json"]
        for ledger in ledgers:
            args += ["--ledger", ledger]
        proc = _cli(real_ledger.config, *args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        return lines[0]

    assert "'Prod_EU' is not a cluster name" in error(f"{store}#Prod_EU")
    assert "no ledger for this cluster here" in error(f"{store}#nowhere")
    assert "the same ledger is given twice" in error(f"{store}#{CLUSTER}", store)
    assert "carries a password" in error(store.replace("postgres@", "postgres:pw@"))
    assert "pw" not in error(store.replace("postgres@", "postgres:pw@"))


def test_an_audit_sample_is_the_same_from_the_store(real_ledger: RealLedger, store: str,
                                                    tmp_path: Path) -> None:
    items = []
    for name, ledger in (("lite", str(real_ledger.path)), ("pg", f"{store}#{CLUSTER}")):
        out = tmp_path / name
        proc = _cli(real_ledger.config, "report", "sample", "--from", _stamp(real_ledger.start),
                    "--to", _stamp(real_ledger.end), "--seed", "7", "--size", "3",
                    "--ledger", ledger, "--output-dir", str(out))
        assert proc.returncode == 0, proc.stderr
        items.append({p.name: p.read_bytes() for p in sorted((out / "items").glob("*.json"))})
    assert items[0] and items[1] == items[0]


def test_a_store_reader_cannot_write_and_reads_one_snapshot(store: str) -> None:
    from auditor.errors import LedgerError
    from auditor.ledger import backend, readonly
    from auditor.ledger.dialect import dialect_of

    target = backend.StoreLedger(store, CLUSTER)
    with readonly.reading(target) as conn, pytest.raises(LedgerError, match="read-only"):
        conn.execute("DELETE FROM contents")
    with backend.reader(target) as conn:
        conn.execute(dialect_of(conn).begin_read)
        before = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        with Ledger.open(store, cluster=CLUSTER) as ledger:  # a run lands meanwhile
            run = ledger.begin_run(cluster=CLUSTER, started_at=at(500))
            run.observe(obs(key("web"), {"replicas": 5}, rv="500"))
            run.record(in_sync(key("web")))
            run.finish()
        # The reader's snapshot still ends where it began (REPEATABLE READ).
        assert conn.execute("SELECT max(seq) FROM events").fetchone()[0] == before
        conn.execute("COMMIT")
    # The change detection of serve and metrics sees the run.
    assert readonly.signature(target)[0] > before
