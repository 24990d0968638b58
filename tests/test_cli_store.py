"""The ledger's commands on the PostgreSQL fleet store (a real server, :mod:`tests.pgkit`)
through real CLI subprocesses: ``verify`` of one cluster and ``--all``, ``ack``, ``respond``,
``prune``, ``public-key``, ``alerts status``, ``metrics --print``, ``compare-clusters`` over
store clusters (equal to the same ledgers as files), the audit webhook's sink writing a store
cluster, and the Secret-hash key a store writer requires."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from gitfixtures import git

from auditor import config as config_mod
from auditor.errors import ConfigError
from auditor.ledger import Ledger, backend, signing
from auditor.ledger.backend import StoreLedger
from auditor.ledger.transfer import copy_to_store
from auditor.ledger.verify import verify
from auditor.outputs import anchoring
from auditor.pipeline import ledger_secret_key
from auditor.watch.loop import _Alerter
from auditor.web.access import BearerToken
from auditor.web.auditwebhook import AuditWebhook, LedgerSink
from tests.alerts.conftest import SlackServer, slack_server  # noqa: F401 (fixture)
from tests.ledger.backends import pg_url
from tests.ledger.helpers import at, drifted, in_sync, key, obs
from tests.pgkit import PgDatabase, pg_database, pg_server  # noqa: F401 (fixtures)
from tests.watch.test_audit_webhook import TOKEN, event_list, post

WEB, API = key("web"), key("api")


def _run(ledger: Ledger, hour: float, replicas: int, *, cluster: str = "") -> int:
    """One run: web at ``replicas`` (drifted unless 2), api in sync."""
    run = ledger.begin_run(cluster=cluster, started_at=at(hour))
    run.observe(obs(WEB, {"spec": {"replicas": replicas}}, rv=str(hour)))
    run.observe(obs(API, {"spec": {"replicas": 1}}))
    run.record(drifted(WEB, ("spec.replicas", 2, replicas)) if replicas != 2 else in_sync(WEB))
    run.record(in_sync(API))
    return run.finish().run_id


def _config(folder: Path, url: str, cluster: str, extra: str = "") -> Path:
    password = folder / "pg-password"
    password.write_text("unused: the kit's server trusts its socket\n")
    path = folder / f"{cluster}.yaml"
    path.write_text(f"ledger: {{path: {folder / 'unused.db'}, url: '{url}', cluster: {cluster}, "
                    f"password-file: {password}}}\n{extra}")
    return path


def _cli(config: Path | None, *args: str, home: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    head = ["--config", str(config)] if config else []
    env = {"PATH": "/usr/bin:/bin", **({"HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, "-m", "auditor.cli", *head, *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _tamper(database: PgDatabase, cluster: str) -> None:
    """What someone with write access to the server does: the append-only guards off, a
    recorded row changed."""
    schema = "da_" + cluster.replace("-", "_")
    with psycopg.connect(database.conninfo, autocommit=True) as admin:
        admin.execute(f"ALTER TABLE {schema}.object_versions DISABLE TRIGGER USER")
        admin.execute(f"UPDATE {schema}.object_versions SET resource_version = 'x' "
                      "WHERE id = 1")


# ----------------------------------------------------------------------------------- verify

def test_verify_all_names_only_the_tampered_cluster(tmp_path: Path,
                                                    pg_database: PgDatabase) -> None:  # noqa: F811
    url = pg_url(pg_database)
    for cluster in ("alpha", "beta", "gamma"):
        with Ledger.open(url, cluster=cluster) as ledger:
            _run(ledger, 0, 3)
            _run(ledger, 1, 4)
    config = _config(tmp_path, url, "alpha")
    ok = _cli(config, "verify", "--all")
    assert ok.returncode == 0, ok.stderr
    assert [line.split(":")[0] for line in ok.stdout.splitlines()] == ["alpha", "beta", "gamma"]
    assert all("ledger OK" in line for line in ok.stdout.splitlines())

    _tamper(pg_database, "beta")
    bad = _cli(config, "verify", "--all")
    assert bad.returncode == 1, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "1 of 3 clusters" in bad.stderr and "beta: " in bad.stderr
    assert "first broken sequence number" in bad.stderr
    assert "alpha:" not in bad.stderr and "gamma:" not in bad.stderr
    assert [line.split(":")[0] for line in bad.stdout.splitlines()] == ["alpha", "gamma"]
    doc = orjson.loads(_cli(config, "verify", "--all", "--json").stdout)
    assert doc["ok"] is False
    assert {name: c["ok"] for name, c in doc["clusters"].items()} == {
        "alpha": True, "beta": False, "gamma": True}
    # The store named on the command line (no ledger.url needed), and one of its clusters.
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"ledger: {{path: {tmp_path / 'unused.db'}}}\n")
    assert _cli(plain, "verify", "--all", "--ledger", url).returncode == 1
    one = _cli(plain, "verify", "--ledger", f"{url}#gamma")
    assert one.returncode == 0 and "ledger OK" in one.stdout, one.stderr
    broken = _cli(plain, "verify", "--ledger", f"{url}#beta")
    assert broken.returncode == 2 and "(cluster beta): ledger tampered" in broken.stderr
    # The configured cluster alone, as before.
    assert _cli(config, "verify").returncode == 0
    # --all is about a store: a file is one line, exit 2.
    on_file = _cli(plain, "verify", "--all")
    assert on_file.returncode == 2
    assert "verify --all: every cluster of a PostgreSQL fleet store" in on_file.stderr


# ------------------------------------------------------------------- ack, respond, prune

def test_ack_respond_prune_and_public_key_on_the_store(tmp_path: Path,
                                                       pg_database: PgDatabase) -> None:  # noqa: F811
    url = pg_url(pg_database)
    with Ledger.open(url, cluster="shop") as ledger:
        for hour in range(3):
            _run(ledger, hour, 3 + hour)  # a new drift fingerprint each hour
    config = _config(tmp_path, url, "shop")
    acked = _cli(config, "ack", "deploy/web", "-n", "shop", "--by", "Bob Ops",
                 "--reason", "load test", home=tmp_path)
    assert acked.returncode == 0, acked.stderr
    assert "accepted by Bob Ops" in acked.stdout
    responded = _cli(config, "respond", "drift:3", "--by", "CISO", "--text", "noted",
                     home=tmp_path)
    assert responded.returncode == 0, responded.stderr
    pruned = _cli(config, "prune", "--days", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned the content of ")
    target = StoreLedger(url, "shop")
    with backend.reader(target) as conn:
        assert conn.execute("SELECT state FROM drift_state WHERE drift_id = 3").fetchone() \
            == ("accepted",)
        assert conn.execute("SELECT count(*) FROM responses").fetchone() == (1,)
        assert verify(conn).ok
    # --ledger URL#CLUSTER names a store cluster for a writer too.
    other = tmp_path / "other.yaml"
    other.write_text(f"ledger: {{path: {tmp_path / 'unused.db'}}}\n")
    again = _cli(other, "prune", "--days", "1", "--ledger", f"{url}#shop")
    assert again.returncode == 0, again.stderr
    lone = _cli(other, "prune", "--days", "1", "--ledger", url)
    assert lone.returncode == 2 and "name the cluster to write as URL#CLUSTER" in lone.stderr
    assert not (tmp_path / "unused.db").exists(), "no SQLite file is written"
    # No key beside a URL: public-key says so in one line.
    shown = _cli(config, "public-key")
    assert shown.returncode == 2
    assert "signed only with ledger.signing-key-file" in shown.stderr


# ------------------------------------------------------------------- alerts and metrics

def test_alerts_status_and_metrics_read_the_configured_store_cluster(
        tmp_path: Path, pg_database: PgDatabase) -> None:  # noqa: F811
    url = pg_url(pg_database)
    lite = tmp_path / "lite.db"
    for where, store in ((url, {"cluster": "shop"}), (lite, {})):
        with Ledger.open(where, **store) as ledger:  # type: ignore[arg-type]
            _run(ledger, 0, 2, cluster="shop")
            _run(ledger, 1, 4, cluster="shop")
    on_store = _config(tmp_path, url, "shop")
    on_file = tmp_path / "file.yaml"
    on_file.write_text(f"ledger: {{path: {lite}}}\n")
    for config in (on_store, on_file):
        status = _cli(config, "alerts", "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout == ("outbox: 0 pending, 0 delivered, 0 skipped (first summary "
                                 "not yet queued)\n")

    def series(config: Path, *args: str) -> list[str]:
        proc = _cli(config, "metrics", "--print", *args)
        assert proc.returncode == 0, proc.stderr
        # Durations and clock-relative ages differ between two readings.
        return [line for line in proc.stdout.splitlines()
                if not line.startswith("#") and "duration" not in line
                and "age" not in line and "build_info" not in line]

    from_store = series(on_store)
    assert 'drift_auditor_runs_total{status="complete"} 2.0' in from_store
    assert "drift_auditor_ledger_verify_ok 1.0" in from_store
    assert from_store == series(on_file)
    assert from_store == series(on_file, "--ledger", f"{url}#shop")


# --------------------------------------------------------------------- compare-clusters

def _cluster_ledger(path: Path, name: str, image: str, extra: bool) -> None:
    with Ledger.open(path) as ledger:
        run = ledger.begin_run(cluster=name, started_at=at(0))
        content = {"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": image}]}}}}
        run.observe(obs(WEB, content))
        run.observe(obs(API, {"spec": {"replicas": 1 if name == "staging" else 3}}))
        run.record(in_sync(API))
        if extra:
            run.observe(obs(key("by-hand", kind="ConfigMap", group=""), {"data": {"a": "b"}},
                            manager="kubectl-create"))
            run.record(drifted(WEB, ("spec.template.spec.containers[name=web].image",
                                     "shop/web:1.0.0", image)))
        else:
            run.record(in_sync(WEB))
        run.finish()


def test_compare_clusters_over_the_store_equals_the_files(tmp_path: Path,
                                                         pg_database: PgDatabase) -> None:  # noqa: F811
    staging, prod = tmp_path / "staging.db", tmp_path / "prod.db"
    _cluster_ledger(staging, "staging", "shop/web:1.0.0", extra=False)
    _cluster_ledger(prod, "prod", "shop/web:2.0.0-hotfix", extra=True)
    url = pg_url(pg_database)
    copy_to_store(staging, url, "staging")
    copy_to_store(prod, url, "prod")

    def compare(*ledgers: str) -> tuple[int, dict[str, Any]]:
        proc = _cli(None, "compare-clusters", "staging", "prod", "-o", "json", "--all",
                    *[a for ledger in ledgers for a in ("--ledger", ledger)])
        assert proc.returncode in (0, 1), proc.stderr
        return proc.returncode, orjson.loads(proc.stdout)

    code, files = compare(str(staging), str(prod))
    assert code == 1 and files["objects"], files
    assert compare(url) == (code, files)  # both clusters from the store
    assert compare(f"{url}#staging", f"{url}#prod") == (code, files)
    assert compare(f"{url}#staging", str(prod)) == (code, files)  # a file and a store cluster
    text = _cli(None, "compare-clusters", "staging", "prod", "--ledger", url)
    assert text.stdout == _cli(None, "compare-clusters", "staging", "prod", "--ledger",
                               str(staging), "--ledger", str(prod)).stdout
    twice = _cli(None, "compare-clusters", "staging", "prod", "--ledger", url, "--ledger",
                 f"{url}#prod")
    assert twice.returncode == 2 and "the same ledger is given twice" in twice.stderr


# ------------------------------------------------------------------------ audit webhook

def test_the_audit_webhook_sink_writes_the_configured_store_cluster(
        tmp_path: Path, pg_database: PgDatabase) -> None:  # noqa: F811
    url = pg_url(pg_database)
    cfg = config_mod.load(_config(tmp_path, url, "hooked"))
    sink = LedgerSink.configured(cfg, tool_version="test")
    assert sink.ledger_path == StoreLedger(url, "hooked")
    hook = AuditWebhook(sink, host="127.0.0.1", port=0, token=BearerToken(TOKEN))
    hook.start()
    try:
        status, _body, _headers = post(hook, event_list(1, 3))
        assert status == 200
        again, _body, _headers = post(hook, event_list(1, 3))  # idempotent by auditID
        assert again == 200
    finally:
        hook.stop()
    with backend.reader(StoreLedger(url, "hooked")) as conn:
        rows = conn.execute("SELECT a.user, a.source FROM audit_events a ORDER BY a.id").fetchall()
        assert [tuple(r) for r in rows] == [("alice", "webhook")] * 3
        assert verify(conn).ok
    assert not (tmp_path / "unused.db").exists()


# ------------------------------------------------------------------- the Secret-hash key

def test_a_store_writer_requires_the_fleets_secret_hash_key(tmp_path: Path) -> None:
    url = "postgresql://auditor@db.example/audit"
    cfg = config_mod.load(_config(tmp_path, url, "prod"))
    with pytest.raises(ConfigError) as caught:
        ledger_secret_key(cfg, create=True)
    message = str(caught.value)
    assert message.startswith("compare.secret-hash-key-file: required with a PostgreSQL "
                              "ledger") and "\n" not in message
    assert not list(tmp_path.glob("*.key")), "no key made on this pod's disk"
    assert len(ledger_secret_key(cfg)) == 32, "a diff hashes with a key of its own"
    key_file = tmp_path / "fleet.key"
    key_file.write_text("k" * 64)
    keyed = config_mod.load(_config(tmp_path, url, "prod",
                                    f"compare: {{secret-hash-key-file: {key_file}}}\n"))
    assert ledger_secret_key(keyed, create=True) == b"k" * 64


# ---------------------------------------------------------- anchoring, watch's alert pass

def test_anchoring_reads_the_configured_store_cluster(tmp_path: Path,
                                                      pg_database: PgDatabase) -> None:  # noqa: F811
    url = pg_url(pg_database)
    key_file = tmp_path / "signing-key"
    signing.generate(key_file)
    with Ledger.open(url, cluster="anchored", signing_key_file=key_file) as ledger:
        _run(ledger, 0, 2, cluster="anchored")
    evidence = tmp_path / "evidence.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(evidence))
    cfg = config_mod.load(_config(tmp_path, url, "anchored", "cluster: {name: anchored}\n"))
    cfg = dataclasses.replace(cfg, ledger=dataclasses.replace(
        cfg.ledger, anchor_repo=str(evidence), signing_key_file=str(key_file)))
    done = anchoring.anchor(cfg, tmp_path / "cache", env={})
    assert done.status == "anchored", done.problem
    assert done.record is not None and done.record.cluster == "anchored"
    with backend.reader(StoreLedger(url, "anchored")) as conn:
        head = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    assert done.record.seq <= head


def test_the_watch_alert_pass_uses_the_configured_store_cluster(
        tmp_path: Path, pg_database: PgDatabase,  # noqa: F811
        slack_server: SlackServer) -> None:  # noqa: F811
    url = pg_url(pg_database)
    with Ledger.open(url, cluster="watched") as ledger:
        run_id = _run(ledger, 0, 3, cluster="watched")
    cfg = config_mod.load(_config(
        tmp_path, url, "watched",
        f"slack: {{token-env: SLACK_TOKEN, channel: '#drift', base-url: '{slack_server.api}', "
        "backoff-seconds: 0.05}\n"))
    alerter = _Alerter(cfg, {"SLACK_TOKEN": "xoxb-watch"})
    alerter.start()
    alerter.poke(run_id)
    alerter.stop()
    assert len(slack_server.delivered()) == 1  # the first summary, from the store's outbox
    assert "drift" in slack_server.requests[0].text()
    with backend.reader(StoreLedger(url, "watched")) as conn:
        assert conn.execute("SELECT count(*) FROM alert_outbox WHERE status = 'delivered'"
                            ).fetchone() == (1,)


# ------------------------------------------------------------------ password authentication

def test_a_store_requiring_a_password_takes_it_from_the_file_or_libpq(
        tmp_path: Path, pg_database: PgDatabase) -> None:  # noqa: F811
    """A server that asks a role for its password (scram-sha-256): ``ledger.password-file``
    gives it, so does libpq's own ``PGPASSWORD``; a wrong one is one line without it, and
    the URL never carries it."""
    server = pg_database.server
    role, secret = "da_writer", "pw-Xq7-never-shown"
    hba = server.datadir / "pg_hba.conf"
    before = hba.read_text()
    with psycopg.connect(server.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
        admin.execute(f"GRANT CREATE ON DATABASE {pg_database.name} TO {role}")
        try:
            # First match wins: this role over the socket must give its password.
            hba.write_text(f"local all {role} scram-sha-256\n{before}")
            admin.execute("SELECT pg_reload_conf()")
            url = (f"postgresql://{role}@/{pg_database.name}?host={server.socket_dir}"
                   f"&port={pg_url(pg_database).rsplit('port=', 1)[1]}")
            config = _config(tmp_path, url, "shop")
            (tmp_path / "pg-password").write_text(secret + "\n")
            cfg = config_mod.load(config, env={})
            with Ledger.open(url, cluster="shop", password=cfg.ledger.read_password()) as led:
                _run(led, 0, 3)
            shown = _cli(config, "verify")
            assert shown.returncode == 0, shown.stderr
            # libpq's environment: no password file configured, PGPASSWORD set.
            plain = tmp_path / "plain.yaml"
            plain.write_text(f"ledger: {{path: {tmp_path / 'unused.db'}, url: '{url}', "
                             "cluster: shop}\n")
            env_ok = subprocess.run(
                [sys.executable, "-m", "auditor.cli", "--config", str(plain), "verify"],
                capture_output=True, text=True, timeout=120,
                env={"PATH": "/usr/bin:/bin", "PGPASSWORD": secret})
            assert env_ok.returncode == 0, env_ok.stderr
            # A wrong password: one line, exit 2, the password not in it.
            (tmp_path / "pg-password").write_text("wrong-password-also-hidden\n")
            bad = _cli(config, "verify")
            assert bad.returncode == 2
            assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
            assert "password authentication failed" in bad.stderr
            assert "wrong-password-also-hidden" not in bad.stderr + bad.stdout
            assert secret not in bad.stderr + bad.stdout + shown.stdout + env_ok.stdout
        finally:
            hba.write_text(before)
            admin.execute("SELECT pg_reload_conf()")
            with psycopg.connect(pg_database.conninfo, autocommit=True) as there:
                there.execute(f"DROP OWNED BY {role}")
            admin.execute(f"REVOKE ALL ON DATABASE {pg_database.name} FROM {role}")
            admin.execute(f"DROP ROLE {role}")


# ------------------------------------------------------------------------------------ TLS

def test_the_store_over_tls_verifies_the_servers_certificate(tmp_path: Path) -> None:
    """A server speaking TLS on loopback, as a managed PostgreSQL does: with the CA given as
    the URL's ``sslrootcert`` (what the chart's ``caSecret`` becomes) and ``sslmode=verify-
    full``, runs and ``verify`` go over TLS; another CA is refused in one line."""
    import shutil

    from tests.metrics.test_metrics import _free_port
    from tests.pgkit import SERVER_USER, PgServer, _as_root
    from tests.serve.test_hardened import make_certificate

    port = _free_port()
    with PgServer() as server:
        tls = server.datadir / "tls"
        tls.mkdir()
        cert, key = make_certificate(tls)
        key.chmod(0o600)
        if _as_root():
            for path in (tls, cert, key):
                shutil.chown(path, SERVER_USER, SERVER_USER)
        with psycopg.connect(server.conninfo(), autocommit=True) as admin:
            for name, value in (("ssl", "on"), ("ssl_cert_file", str(cert)),
                                ("ssl_key_file", str(key)), ("listen_addresses", "127.0.0.1"),
                                ("port", str(port))):
                admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        server._run(["pg_ctl", "-D", str(server.datadir), "-l", str(server.logfile), "-w",
                     "-t", "60", "restart"])
        with psycopg.connect(f"host={server.socket_dir} port={port} user=postgres",
                             autocommit=True) as admin:
            admin.execute("CREATE DATABASE fleet TEMPLATE template0 ENCODING 'UTF8'")
        ca = tmp_path / "ca.crt"
        shutil.copy(cert, ca)
        url = f"postgresql://postgres@127.0.0.1:{port}/fleet?sslmode=verify-full&sslrootcert={ca}"
        with Ledger.open(url, cluster="shop") as ledger:
            _run(ledger, 0, 3)
            over = ledger.conn.execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert over == (True,)
        config = _config(tmp_path, url, "shop")
        shown = _cli(config, "verify")
        assert shown.returncode == 0, shown.stderr
        elsewhere = tmp_path / "other"
        elsewhere.mkdir()
        other, _ = make_certificate(elsewhere)  # a CA that did not sign the server's cert
        wrong = _config(elsewhere, url.replace(str(ca), str(other)), "shop")
        refused = _cli(wrong, "verify")
        assert refused.returncode == 2
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "certificate verify failed" in refused.stderr, refused.stderr
