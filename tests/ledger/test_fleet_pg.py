"""The fleet store: many clusters' ledgers in one PostgreSQL database, each cluster its own
schema and its own hash chain (:mod:`auditor.ledger.pgconn`), on a real server
(:mod:`tests.pgkit`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from auditor.errors import LedgerError, LedgerLockedError
from auditor.ledger import Ledger, pgconn, schema
from auditor.ledger import times as ledger_times
from auditor.ledger.dialect import BackendError
from tests.pgkit import PORT, PgDatabase

from .backends import LedgerTarget, pg_url
from .helpers import at, drifted, in_sync, key, obs

ROOT = Path(__file__).resolve().parents[2]


def _run(ledger: Ledger, hour: int, replicas: int) -> None:
    run = ledger.begin_run(started_at=at(hour))
    run.observe(obs(key("web"), {"replicas": replicas}, rv=str(hour)))
    run.observe(obs(key("api"), {"replicas": 1}))
    run.record(drifted(key("web"), ("spec.replicas", 2, replicas)) if replicas != 2
               else in_sync(key("web")))
    run.record(in_sync(key("api")))
    run.finish()


def test_two_clusters_in_one_database_keep_their_own_chains(pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    with Ledger.open(url, cluster="prod-eu") as eu, Ledger.open(url, cluster="prod-us") as us:
        for hour in range(3):
            _run(eu, hour, hour + 3)
        _run(us, 0, 2)
        assert eu.schema_version_found == 0  # created by this open
        assert eu.verify().ok and us.verify().ok
    with psycopg.connect(pg_database.conninfo) as admin:
        assert admin.execute("SELECT name, schema FROM da_fleet.clusters ORDER BY name"
                             ).fetchall() == [("prod-eu", "da_prod_eu"), ("prod-us", "da_prod_us")]
        runs = {schema: admin.execute(f"SELECT count(*) FROM {schema}.runs").fetchone()
                for schema in ("da_prod_eu", "da_prod_us")}
        assert runs == {"da_prod_eu": (3,), "da_prod_us": (1,)}
        # Each chain starts at 1: two independent chains, not one shared.
        firsts = [admin.execute(f"SELECT min(seq) FROM {s}.events").fetchone()
                  for s in ("da_prod_eu", "da_prod_us")]
        assert firsts == [(1,), (1,)]
    with Ledger.open(url, cluster="prod-eu") as eu:  # reopened: the head is read back
        assert eu.schema_version_found == schema.SCHEMA_VERSION and eu.verify().ok
        _run(eu, 3, 2)
        assert eu.verify().ok


def test_the_chain_is_the_same_on_both_backends(tmp_path: Path, pg_database: PgDatabase,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashing is backend independent: the same runs give the same head hash."""
    monkeypatch.setattr(ledger_times, "now", lambda: datetime.fromisoformat(
        "2026-11-21T00:00:00+00:00"))
    heads = []
    for target in (LedgerTarget("sqlite", tmp_path / "l.db"),
                   LedgerTarget("postgresql", pg_url(pg_database), "same", pg_database)):
        with target.open() as ledger:
            for hour in range(3):
                _run(ledger, hour, hour + 1)
            heads.append((ledger.head.seq, ledger.head.hash))
    assert heads[0] == heads[1]


def test_a_tampered_row_is_named_by_its_clusters_verify_only(pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    for cluster in ("alpha", "beta"):
        with Ledger.open(url, cluster=cluster) as ledger:
            _run(ledger, 0, 3)
            _run(ledger, 1, 4)
    with psycopg.connect(pg_database.conninfo, autocommit=True) as admin:
        seq = admin.execute("SELECT seq FROM da_alpha.object_versions WHERE id = 1").fetchone()
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            admin.execute("UPDATE da_alpha.object_versions SET resource_version = 'x' "
                          "WHERE id = 1")
        admin.execute("ALTER TABLE da_alpha.object_versions DISABLE TRIGGER USER")
        admin.execute("UPDATE da_alpha.object_versions SET resource_version = 'x' WHERE id = 1")
    assert seq is not None
    with Ledger.open(url, cluster="alpha") as alpha:
        result = alpha.verify()
    assert not result.ok
    assert result.first_broken_seq == seq[0]
    assert f"first broken sequence number {seq[0]}" in result.message
    with Ledger.open(url, cluster="beta") as beta:
        assert beta.verify().ok


def test_the_append_only_guards_refuse_the_ledgers_own_connection(
        pg_database: PgDatabase) -> None:
    with Ledger.open(pg_url(pg_database), cluster="c1") as ledger:
        _run(ledger, 0, 3)
        with pytest.raises(BackendError, match=r"\(cluster c1\): ledger: events is append-only"):
            ledger.conn.execute("DELETE FROM events WHERE seq = ?", (1,))
        assert ledger.verify().ok


def test_writers_of_one_cluster_are_serialised_and_clusters_are_not(
        pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    with Ledger.open(url, cluster="shared") as first:
        _run(first, 0, 3)
        started = time.monotonic()
        with pytest.raises(LedgerLockedError) as err:
            Ledger.open(url, cluster="shared", lock_wait=0.3)
        assert time.monotonic() - started >= 0.3  # it waited before giving up
        message = str(err.value)
        assert f"drift-auditor {os.getpid()}@" in message  # the holder's application_name
        assert "cluster shared" in message and "\n" not in message
        with Ledger.open(url, cluster="other", lock_wait=0) as other:  # not blocked
            _run(other, 0, 3)
            assert other.verify().ok
    with Ledger.open(url, cluster="shared", lock_wait=0) as again:  # released on close
        assert again.verify().ok


WRITER = r"""
import sys, time
from auditor.ledger import Ledger
from tests.ledger.helpers import at, key, obs, drifted
with Ledger.open(sys.argv[1], cluster=sys.argv[2], batch_size=50) as ledger:
    run = ledger.begin_run(started_at=at(1))
    print("begun", flush=True)
    for i in range(5000):
        run.observe(obs(key(f"app-{i}"), {"replicas": i, "n": 2}, rv="2"))
        run.record(drifted(key(f"app-{i}"), ("spec.replicas", 1, i)))
        if i % 100 == 0:
            print(i, flush=True)
        time.sleep(0.001)
    run.finish()
    print("finished", flush=True)
"""


def test_sigkill_mid_run_leaves_a_verifying_chain_and_a_recovered_run(
        pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    with Ledger.open(url, cluster="crashy") as ledger:
        _run(ledger, 0, 3)
        baseline = ledger.head.seq
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, "crashy"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while (line := proc.stdout.readline().strip()) != "300":
            assert line or proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The server notices the dead session and drops its advisory lock; wait for that rather
    # than fail on the race.
    with Ledger.open(url, cluster="crashy", lock_wait=20) as ledger:
        assert ledger.recovered_runs == [2]
        assert ledger.head.seq > baseline + 100  # its committed batches stayed
        result = ledger.verify()
        assert result.ok, result.message
        status = ledger.conn.execute("SELECT status FROM runs WHERE id = 2").fetchone()
        assert status == ("failed",)
        _run(ledger, 2, 2)  # and the next run carries on
        assert ledger.verify().ok


def test_a_cluster_is_required_and_named_sanely(pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    with pytest.raises(LedgerError, match=r"ledger\.cluster"):
        Ledger.open(url)
    with pytest.raises(LedgerError, match=r"ledger\.cluster 'Prod_EU'"):
        Ledger.open(url, cluster="Prod_EU")
    with pytest.raises(LedgerError, match="at most 60 characters"):
        Ledger.open(url, cluster="a" * 61)
    assert pgconn.schema_name("a" * 60) == "da_" + "a" * 60


def test_errors_are_one_line_without_the_password(pg_database: PgDatabase) -> None:
    sock = pg_database.server.socket_dir
    url = f"postgresql://postgres:hunter2-secret@/no_such_db?host={sock}&port={PORT}"
    with pytest.raises(BackendError) as err:
        Ledger.open(url, cluster="x", password="hunter2-secret")
    message = str(err.value)
    assert "hunter2" not in message and "\n" not in message
    assert "cannot connect" in message and "no_such_db" in message


def test_a_foreign_schema_of_the_same_name_is_not_written_into(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.conninfo, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA da_taken")
        admin.execute("CREATE TABLE da_taken.payroll (id BIGINT)")
    with pytest.raises(LedgerError, match="not a drift-auditor ledger"):
        Ledger.open(pg_url(pg_database), cluster="taken")


def _verify_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config),
                           "verify", *args], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, timeout=120)


def test_the_verify_command_reads_a_clusters_ledger_from_the_store(
        tmp_path: Path, pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    for cluster in ("cli-a", "cli-b"):
        with Ledger.open(url, cluster=cluster) as ledger:
            _run(ledger, 0, 3)
    secret = tmp_path / "pgpass"
    secret.write_text("unused-with-trust-auth\n")
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger: {{url: '{url}', cluster: cli-a, password-file: '{secret}'}}\n")
    ok = _verify_cli(config)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ledger OK: ")
    with psycopg.connect(pg_database.conninfo, autocommit=True) as admin:
        admin.execute("ALTER TABLE da_cli_a.changes DISABLE TRIGGER USER")
        admin.execute("ALTER TABLE da_cli_a.objects DISABLE TRIGGER USER")
        admin.execute("UPDATE da_cli_a.objects SET name = 'renamed' WHERE id = 1")
    bad = _verify_cli(config)
    assert bad.returncode == 2
    # The cluster named as the store's ledger (``(cluster cli-a)``) or as ``--ledger`` names
    # it (``URL#cli-a``).
    assert "first broken sequence number" in bad.stderr
    assert "(cluster cli-a)" in bad.stderr or "#cli-a:" in bad.stderr
    other = tmp_path / "other.yaml"
    other.write_text(f"ledger: {{url: '{url}', cluster: cli-b}}\n")
    assert _verify_cli(other).returncode == 0
    nobody = tmp_path / "nobody.yaml"
    nobody.write_text(f"ledger: {{url: '{url}', cluster: never-ran}}\n")
    missing = _verify_cli(nobody)
    assert missing.returncode == 2 and "no ledger for this cluster here" in missing.stderr


def test_an_acknowledgement_on_the_store_verifies(pg_database: PgDatabase) -> None:
    with Ledger.open(pg_url(pg_database), cluster="acks") as ledger:
        _run(ledger, 0, 3)
        assert ledger.ack("shop/web", by="Bob Ops", reason="load test", at=at(1)) == 1
        _run(ledger, 2, 3)  # still drifted: stays accepted
        assert ledger.verify().ok
        assert ledger.conn.execute("SELECT state FROM drift_state WHERE drift_id = 1"
                                   ).fetchone() == ("accepted",)


def test_text_sorts_by_bytes_whatever_the_databases_collation(
        tmp_path: Path, pg_database: PgDatabase) -> None:
    """A store in a database whose collation is ICU's en-US (where "alpha" < "Beta") lists
    objects in SQLite's byte order ("Beta" < "alpha"), as the file with the same runs does:
    the store's text columns are created COLLATE "C"."""
    name = "icu_" + pg_database.name
    with psycopg.connect(pg_database.server.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                      "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    try:
        url = pg_url(PgDatabase(pg_database.server, name))
        with psycopg.connect(pg_database.server.conninfo(name)) as pg:
            assert pg.execute("SELECT 'alpha' < 'Beta'").fetchone() == (True,)
        names = ["beta", "Beta", "alpha", "Zeta", "_x", "Alpha", "web-2", "web-10", "é"]
        orders = []
        for where, extra in ((url, {"cluster": "prod"}), (tmp_path / "ledger.db", {})):
            with Ledger.open(where, **extra) as ledger:  # type: ignore[arg-type]
                run = ledger.begin_run(started_at=at(0))
                for n in names:
                    run.observe(obs(key(n), {"replicas": 1}))
                    run.record(in_sync(key(n)))
                run.finish()
                orders.append([k.name for k in ledger.live_keys("apps", "Deployment")])
        assert orders[0] == orders[1] == sorted(names, key=lambda n: n.encode())
    finally:
        pg_database.server.drop_database(name)


def test_kept_reader_sessions_are_reused_and_replaced_when_they_end(
        pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve keeps reader sessions (pgconn.keep_readers): reads reuse one; a session the
    server ended is replaced; a read that failed is not kept; a forked child connects on its
    own and leaves its parent's session working."""
    url = pg_url(pg_database)
    with Ledger.open(url, cluster="prod") as ledger:
        _run(ledger, 0, 2)
    monkeypatch.setattr(pgconn, "_POOL", None)
    pgconn.keep_readers()
    pids = []
    for _ in range(3):
        with pgconn.reading(url, "prod") as conn:
            pids.append(conn.backend_pid)
    assert len(set(pids)) == 1
    with psycopg.connect(pg_database.conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
    with pgconn.reading(url, "prod") as conn:
        kept = conn.backend_pid
        assert kept != pids[0] and conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    failed = kept
    with pytest.raises(RuntimeError), pgconn.reading(url, "prod") as conn:
        assert conn.backend_pid == failed
        raise RuntimeError("a failed read")
    with pgconn.reading(url, "prod") as conn:
        kept = conn.backend_pid
    assert kept != failed, "the failed read's session was kept"
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            with pgconn.reading(url, "prod") as conn:
                os.write(write_fd, str(conn.backend_pid).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    child_pid = int(os.read(read_fd, 64))
    os.close(read_fd)
    os.waitpid(child, 0)
    assert child_pid != kept
    with pgconn.reading(url, "prod") as conn:
        assert conn.backend_pid == kept and conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)
