"""A whole scheduled audit run on the fleet store: ``run_once`` and ``drift-auditor run``
against a sandbox API server, recorded in one cluster's schema of a real PostgreSQL server
(:mod:`tests.pgkit`), and the same runs on an SQLite ledger giving the same verdicts; what a
run writes besides object versions (the alert outbox, Git-host verdicts, reverts, adoptions,
responses) read back alike on both backends."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from auditfixtures import as_user, write_log
from gitopsfixtures import sync_from_git

from auditor import config as config_mod
from auditor.ledger import backend
from auditor.ledger.outbox import Outbox
from auditor.ledger.times import stamp
from auditor.ledger.verify import verify
from auditor.outputs import alerts
from auditor.pipeline import RunOutcome, run_once
from auditor.support import secretkey
from tests.alerts.ledgers import IMAGE, at, drifted, in_sync, key, webhook_config
from tests.faults.ledgershop import APPS as SHOP_APPS
from tests.pgkit import PgDatabase

from .backends import LedgerTarget, pg_url
from .helpers import obs

WEB, API = key("web"), key("api", ns="billing")

POLICIES = Path(__file__).resolve().parents[2] / "policies"

# The shop of the ledger fault tests, and one more ConfigMap no one edits.
APPS = SHOP_APPS + """---
apiVersion: v1
kind: ConfigMap
metadata: {name: flags, namespace: shop}
data: {BETA: "off"}
"""

# A human's edit: what `kubectl edit` sends, as a server-side apply under its manager name.
EDIT = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: debug}
"""


def _config(folder: Path, kubeconfig: Path, ledger: str) -> Path:
    """A config auditing the sandbox into ``ledger`` (a YAML fragment of ``ledger:``); the
    caches and keys stay in ``folder`` (beside ``ledger.path``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "drift-auditor.yaml"
    # A store's writers need a configured Secret hash key (auditor/support/secretkey.py:
    # none is made beside a URL); the SQLite twin gets one too, so both hash alike.
    hash_key = folder / "secret-hash.key"
    secretkey.load_or_create(hash_key)
    path.write_text(f"cluster: {{name: test, kubeconfig: {kubeconfig}, retries: 1}}\n"
                    f"ledger: {{path: {folder / 'ledger.db'}{ledger}}}\n"
                    f"compare: {{secret-hash-key-file: {hash_key}}}\n"
                    f"policies: {{directory: {POLICIES}}}\n")
    return path


def _pg_ledger(database: PgDatabase, folder: Path, cluster: str) -> str:
    password = folder / "pg-password"
    folder.mkdir(parents=True, exist_ok=True)
    password.write_text("anything: the kit's server trusts its socket\n")
    return (f", url: '{pg_url(database)}', cluster: {cluster}, "
            f"password-file: {password}")


def _counts(outcome: RunOutcome) -> dict[str, Any]:
    return {"status": outcome.status, "counts": outcome.audit.counts,
            "changes": outcome.ledger["changes"], "versions": outcome.ledger["versions"],
            "opened": outcome.ledger["drifts_opened"],
            "still_open": outcome.ledger["drifts_still_open"]}


def _target(where: str | Path, cluster: str | None) -> backend.Target:
    return backend.StoreLedger(str(where), cluster) if cluster else Path(where)


def _fingerprints(target: str | Path, cluster: str | None) -> list[tuple[Any, ...]]:
    with backend.reader(_target(target, cluster)) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT d.fingerprint, d.status, s.state FROM drifts d JOIN drift_state s "
            "ON s.drift_id = d.id ORDER BY d.fingerprint, d.id").fetchall()]


@pytest.mark.kubectl
def test_a_scheduled_run_on_postgresql_matches_the_same_run_on_sqlite(
        tmp_path: Path, kubeconfig: Path, kubectl: Any, pg_database: PgDatabase) -> None:
    """Two runs with the shipped policy pack and, for the second, the audit log naming who
    edited: each cluster state is audited into both ledgers, which must agree."""
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, APPS)
    pg_folder, lite_folder = tmp_path / "pg", tmp_path / "lite"
    on_pg = config_mod.load(_config(pg_folder, kubeconfig,
                                     _pg_ledger(pg_database, pg_folder, "shop-eu")))
    on_lite = config_mod.load(_config(lite_folder, kubeconfig, ""))
    outcomes: dict[str, list[RunOutcome]] = {"pg": [], "lite": []}

    def both(audit_log: str | None = None) -> None:
        for name, cfg in (("pg", on_pg), ("lite", on_lite)):
            outcomes[name].append(run_once(cfg, desired_path=str(apps), audit_log=audit_log))

    both()
    edit = tmp_path / "edit.yaml"
    edit.write_text(EDIT)
    events = as_user(kubectl, "alice@example.com", ("sre", "system:authenticated"), "apply",
                     "--server-side", "--force-conflicts", "--field-manager=kubectl-edit",
                     "-f", str(edit))
    both(str(write_log(tmp_path / "audit.jsonl", events)))

    pg_runs, lite_runs = outcomes["pg"], outcomes["lite"]
    assert [o.status for o in pg_runs] == ["complete", "complete"]
    assert {r.status for r in pg_runs[0].audit.results} == {"in-sync"}
    assert pg_runs[0].audit.counts["in-sync"] == 5
    assert pg_runs[1].audit.counts["drifted"] == 1
    assert pg_runs[1].ledger["drifts_opened"] == 1 and pg_runs[1].ledger["changes"] == 1
    assert [_counts(o) for o in pg_runs] == [_counts(o) for o in lite_runs]
    # The policy pack ran and recorded its results on both.
    assert pg_runs[0].counters.get("policy")
    assert pg_runs[0].counters["policy"] == lite_runs[0].counters["policy"]

    url = pg_url(pg_database)
    pg_prints = _fingerprints(url, "shop-eu")
    assert len(pg_prints) == 1 and pg_prints == _fingerprints(lite_folder / "ledger.db", None)
    queries = ("SELECT count(*) FROM policy_results",
               "SELECT count(*) FROM policy_state",
               "SELECT count(*) FROM audit_events",
               "SELECT c.user, c.category FROM changes c ORDER BY c.id",
               "SELECT count(*) FROM config_versions")
    found: dict[str, list[Any]] = {}
    for name, target, cluster in (("pg", url, "shop-eu"),
                                  ("lite", lite_folder / "ledger.db", None)):
        with backend.reader(_target(target, cluster)) as conn:
            checked = verify(conn)
            assert checked.ok, (name, checked.problems)
            found[name] = [[tuple(r) for r in conn.execute(q).fetchall()] for q in queries]
            runs = conn.execute("SELECT status FROM runs ORDER BY id").fetchall()
            assert [r[0] for r in runs] == ["complete", "complete"]
    assert found["pg"] == found["lite"]
    assert found["pg"][0][0][0] > 0, "policy results recorded"
    assert ("alice@example.com", "human") in found["pg"][3]
    assert not (pg_folder / "ledger.db").exists(), "a PostgreSQL run writes no SQLite file"


@pytest.mark.kubectl
def test_the_cli_runs_and_verifies_on_postgresql(
        tmp_path: Path, kubeconfig: Path, kubectl: Any, pg_database: PgDatabase) -> None:
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, APPS)
    cfg_file = _config(tmp_path, kubeconfig, _pg_ledger(pg_database, tmp_path, "cli"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(cfg_file),
                               *args], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, timeout=300)

    first = cli("run", "--desired", str(apps))
    assert first.returncode == 0, first.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=kubectl-edit",
            "-f", "-", input=EDIT)
    second = cli("run", "--desired", str(apps))
    assert second.returncode == 1, second.stderr  # drift
    assert "1 drifted" in second.stdout
    checked = cli("verify")
    assert checked.returncode == 0, checked.stderr
    assert "ledger OK" in checked.stdout
    assert not (tmp_path / "ledger.db").exists()
    with backend.reader(_target(pg_url(pg_database), "cli")) as conn:
        stored = repr(conn.execute("SELECT content FROM contents").fetchall())
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    assert "s3cr3t-value-never-shown" not in stored and "MODE" in stored


def _queue(box: Any, cfg: Any, hours: float, run_id: int | None = None) -> list[int]:
    """What ``alerts.send`` does before delivering: decide and queue in one transaction."""
    with box.locked():
        decided = alerts.plan(box, cfg, now=at(hours), run_id=run_id)
        return list(box.enqueue(decided.messages, decided.marks, at=stamp(at(hours)),
                                run_id=run_id, meta=decided.meta,
                                news_runs=decided.news_runs))


def test_the_alert_outbox_queues_delivers_and_prunes_alike(ledger_target: LedgerTarget) -> None:
    """The outbox a run's alert pass writes (:mod:`auditor.ledger.outbox`), on each backend:
    the first summary, one message per new drift, a resolution, leases, pruning."""
    cfg = webhook_config(outbox_retention_days=30)

    def record(hours: float, *results: Any) -> int:
        with ledger_target.open() as ledger:
            run = ledger.begin_run(cluster="prod-eu", started_at=at(hours))
            for result in results:
                run.record(result)
            return run.finish("complete", counts={"in-sync": 1}).run_id

    def deliver_all(box: Any, hours: float) -> None:
        for msg in box.pending():
            assert box.claim(msg.id, now=stamp(at(hours)), until=stamp(at(hours + 0.1)))
            assert not box.claim(msg.id, now=stamp(at(hours)), until=stamp(at(hours + 0.1)))
            box.delivered(msg.id, at=stamp(at(hours)), ts=f"{msg.id}.0", channel="C1")

    web_drift = drifted(WEB, (IMAGE, "shop/web:1.4.2", "shop/web:1.5.0-rc1"))
    first = record(0, in_sync(WEB), in_sync(API))
    with Outbox.open(ledger_target.location, cluster=ledger_target.cluster) as box:
        assert len(_queue(box, cfg, 0.5, first)) == 1  # the first summary
        deliver_all(box, 0.5)
    second = record(1, web_drift, drifted(API, ("spec.replicas", 2, 4)))
    with Outbox.open(ledger_target.location, cluster=ledger_target.cluster) as box:
        ids = _queue(box, cfg, 1.5, second)
        assert len(ids) == 2 and ids == sorted(ids) and ids[0] > 1  # RETURNING id
        deliver_all(box, 1.5)
        drift_ids = [d for (d,) in ledger_target.rows("SELECT id FROM drifts ORDER BY id")]
        # Each drift found through its own message's JSON list of drift ids.
        assert sorted([m.id for m in box.announcements(d, "")] for d in drift_ids) == [
            [ids[0]], [ids[1]]]
        assert _queue(box, cfg, 1.6, second) == [], "nothing is queued twice"
    third = record(2, web_drift, in_sync(API))  # api resolved
    with Outbox.open(ledger_target.location, cluster=ledger_target.cluster) as box:
        assert len(_queue(box, cfg, 2.5, third)) == 1
        deliver_all(box, 2.5)
        box.failed(10**6, at=stamp(at(2.6)), error="no such message: nothing changes")
        assert box.counts() == {"pending": 0, "delivered": 4, "skipped": 0}
        dropped = box.prune(stamp(at(24 * 40)))
        # Only the still-open drift's announcement stays.
        assert dropped == 3 and box.counts()["delivered"] == 1
    with ledger_target.open() as ledger:  # the alert tables are outside the chain
        assert ledger.verify().ok


def _side_records(target: LedgerTarget) -> list[Any]:
    """A run's other writes (Git-host verdicts, reverts, a capped revert, an adoption, a
    response), then what the ledger's modules read back from them."""
    from auditor.githost.model import Approval, Change, Review
    from auditor.ledger import adoptions, approvals, gitopsquery, reverts

    repo = "https://github.com/acme/gitops"

    def change(sha: str) -> Change:
        return Change("shop", repo, sha, "Merge pull request #7", "GitHub <noreply@github.com>",
                      pr_hint=7, objects=(("apps", "Deployment", "shop", "web"),))

    with target.open() as ledger:
        run = ledger.begin_run(cluster="prod-eu", started_at=at(0))
        run.record(drifted(WEB, ("spec.replicas", 2, 5)))
        approvals.record(run, [
            Approval(change("a" * 40), "authorized", "approved by bob", "git host (github)",
                     provider="github", pr=7, approvers=("bob",),
                     reviews=(Review("bob", "APPROVED", "2026-11-20T08:00:00Z", "h" * 40),),
                     fetched_at="2026-11-20T09:00:00Z"),
            Approval(change("b" * 40), "unknown", "rate limited", "git host (github)")])
        reverts.record(run, WEB, action="apply", mode="enforce", result="failed",
                       reason="drifted: human change", error="forbidden")
        reverts.record_capped(run, mode="enforce", planned=[WEB, API], cap=1)
        run.finish()
        run = ledger.begin_run(cluster="prod-eu", started_at=at(1))
        run.record(drifted(WEB, ("spec.replicas", 2, 5)))
        reverts.record(run, WEB, action="apply", mode="enforce", result="reverted",
                       reason="drifted: human change", managers=["kubectl-edit"])
        run.finish()
        adopted = adoptions.record(ledger, adoptions.Adoption(
            key=WEB, paths=("spec.replicas",), files=("apps/web.yaml",), branch="adopt-1",
            commit_sha="c" * 40, drift_id=1, by="Bob", actor="kubectl-edit"))
        ledger.respond("drift:1", by="CISO", text="accepted risk")
        assert ledger.verify().ok
        conn = ledger.conn
        return [adopted,
                approvals.rows_until(conn, "9999"), approvals.pending(conn),
                sorted(reverts.last_attempts(conn).items()), reverts.history(conn),
                adoptions.adoptions(conn), adoptions.open_drift_keys(conn),
                gitopsquery.latest(conn), gitopsquery.newly_lagging(conn, 2)]


def test_the_rest_of_what_a_run_writes_reads_back_alike(
        tmp_path: Path, pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    # The adoption and the response are stamped "now": one clock for both backends, else the
    # two sides differ whenever a second boundary falls between them.
    from auditor.ledger import times as ledger_times

    monkeypatch.setattr(ledger_times, "now", lambda: at(3))
    on_pg = _side_records(LedgerTarget("postgresql", pg_url(pg_database), "side", pg_database))
    on_lite = _side_records(LedgerTarget("sqlite", tmp_path / "l.db"))
    assert on_pg == on_lite
    assert on_pg[2] and on_pg[5] and on_pg[4]  # a pending verdict, the adoption, 2 reverts


def test_two_outbox_passes_take_turns(ledger_target: LedgerTarget) -> None:
    """Deciding and queueing is one transaction that a second pass waits for (SQLite's write
    lock; on PostgreSQL an advisory lock per cluster's outbox), so no news is queued twice."""
    with ledger_target.open() as ledger:
        ledger.begin_run(started_at=at(0)).finish()
    where = {"cluster": ledger_target.cluster}
    done = threading.Event()

    def second_pass() -> None:
        with Outbox.open(ledger_target.location, **where) as other, other.locked():
            other.enqueue([], [], at=stamp(at(1)), meta={"second": "queued"})
        done.set()

    with Outbox.open(ledger_target.location, **where) as box:
        with box.locked():
            # Rows the second pass does not touch: only the lock can hold it back.
            box.enqueue([], [], at=stamp(at(1)), meta={"first": "queued"})
            waiting = threading.Thread(target=second_pass)
            waiting.start()
            assert not done.wait(0.5), "the second pass went ahead inside the first's"
        assert done.wait(30)
        waiting.join()
        assert (box.meta("first"), box.meta("second")) == ("queued", "queued")


def test_the_watch_writer_opens_the_store(tmp_path: Path, pg_database: PgDatabase) -> None:
    """``watch`` writes its batches through :class:`auditor.watch.writer.LedgerWriter`, which
    opens ``ledger.url``'s cluster like a scheduled run does."""
    from auditor.config import Config, LedgerConfig
    from auditor.watch.writer import LedgerWriter

    password = tmp_path / "pg-password"
    password.write_text("trusted\n")
    cfg = Config(ledger=LedgerConfig(path=str(tmp_path / "ledger.db"), url=pg_url(pg_database),
                                     cluster="watched", password_file=str(password)))
    writer = LedgerWriter(cfg)
    for batch in range(2):
        with writer.open() as ledger:
            run = ledger.begin_run(started_at=at(batch), mode="watch")
            run.observe(obs(WEB, {"v": batch}, rv=str(10 + batch)))
            run.set_watch_positions({"Deployment.apps": str(10 + batch)})
            run.finish()
    target = LedgerTarget("postgresql", pg_url(pg_database), "watched", pg_database)
    assert target.rows("SELECT mode, status FROM runs ORDER BY id") == [("watch", "complete")] * 2
    with target.open() as ledger:
        assert ledger.watch_positions() == {"Deployment.apps": "11"}
        assert ledger.verify().ok
    assert not (tmp_path / "ledger.db").exists()
