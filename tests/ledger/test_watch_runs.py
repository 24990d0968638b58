"""Watch-mode runs (:mod:`auditor.ledger.watch`): one run of mode ``watch`` per batch of watch
events. Resume positions are committed only with a batch that did not fail; stale events
(an older resourceVersion than the ledger holds) record nothing; several versions of one
object in a batch each become a version; a batch judges only its own objects' drift; a
scheduled run after the watch records nothing twice; ``verify`` covers the run's mode.

Tests take ``ledger_target`` and run on SQLite and PostgreSQL, except those that drop the
append-only triggers through raw ``sqlite3`` (SQLite only)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditor.engine.records import ResourceKey
from auditor.errors import LedgerError
from auditor.ledger import Ledger
from auditor.ledger.watch import older

from .backends import LedgerTarget
from .helpers import at, content_hash, drifted, in_sync, key, obs, status

WEB, API, WORKER = key("web"), key("api"), key("worker")
SETTINGS = key("settings", kind="ConfigMap", group="")


def _untriggered(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def _baseline(ledger: Ledger, *keys: ResourceKey, rv: str = "10", hours: float = 0) -> None:
    """A scheduled run that lists ``keys`` in sync (every object ``{"v": 1}``)."""
    run = ledger.begin_run(started_at=at(hours))
    for k in keys:
        run.observe(obs(k, {"v": 1}, rv=rv))
        run.record(in_sync(k))
    run.finish()


def _versions(db: LedgerTarget, name: str) -> list[tuple[str, int, str]]:
    """``(resourceVersion, deleted, run mode)`` of every version of ``name``, in order."""
    with db.connect() as conn:
        return conn.execute(
            "SELECT v.resource_version, v.deleted, r.mode FROM object_versions v "
            "JOIN objects o ON o.id = v.object_id JOIN runs r ON r.id = v.run_id "
            "WHERE o.name = ? ORDER BY v.id", (name,)).fetchall()


# ------------------------------------------------------------------------- positions


def test_positions_are_committed_only_by_a_batch_that_did_not_fail(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        assert ledger.watch_positions() == {}
        run = ledger.begin_run(started_at=at(0), mode="watch")
        run.set_watch_positions({"Deployment.apps": "100", "ConfigMap": 50})  # type: ignore[dict-item]
        assert ledger.watch_positions() == {}  # nothing before the batch is judged
        run.finish()
        assert ledger.watch_positions() == {"ConfigMap": "50", "Deployment.apps": "100"}

        # A partial batch moves them too; None forgets a kind (410 Gone: relist); kinds not
        # named keep theirs.
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.set_watch_positions({"Deployment.apps": "120"})
        run.set_watch_positions({"ConfigMap": None, "Secret": "7"})
        run.finish("partial")
        assert ledger.watch_positions() == {"Deployment.apps": "120", "Secret": "7"}
        with pytest.raises(LedgerError, match="already finished"):
            run.set_watch_positions({"Secret": "8"})

        # A failed batch judged nothing: its events must be delivered again.
        run = ledger.begin_run(started_at=at(0.2), mode="watch")
        run.set_watch_positions({"Deployment.apps": "999", "Secret": None})
        run.finish("failed")
        assert ledger.watch_positions() == {"Deployment.apps": "120", "Secret": "7"}

    # A batch aborted by an exception is recorded failed on the way out: no position moves.
    with pytest.raises(RuntimeError, match="stream broke"), db.open() as ledger:
        run = ledger.begin_run(started_at=at(0.3), mode="watch")
        run.set_watch_positions({"Deployment.apps": "555"})
        raise RuntimeError("stream broke")

    # A watch killed mid-batch (no finish, no context exit): recovery marks the run failed,
    # and the positions are still those of the last batch that finished.
    ledger = db.open()
    run = ledger.begin_run(started_at=at(0.4), mode="watch")
    run.set_watch_positions({"Deployment.apps": "777"})
    run.observe(obs(WEB, {"v": 1}, rv="700"))
    ledger.close()
    with db.open() as ledger:
        assert ledger.recovered_runs == [run.id]
        assert ledger.watch_positions() == {"Deployment.apps": "120", "Secret": "7"}
        statuses = ledger.conn.execute(
            "SELECT status, mode FROM runs ORDER BY id").fetchall()
        assert statuses == [("complete", "watch"), ("partial", "watch"), ("failed", "watch"),
                            ("failed", "watch"), ("failed", "watch")]
        assert ledger.verify().ok


def test_positions_are_a_cursor_outside_the_chain(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0), mode="watch")
        run.set_watch_positions({"Deployment.apps": "100"})
        run.finish()
    with db.connect() as conn:
        conn.execute("UPDATE watch_positions SET resource_version = '1'")
        conn.commit()
    with db.open() as ledger:
        # Moved back: the watch replays (and records nothing twice); no evidence was altered.
        assert ledger.watch_positions() == {"Deployment.apps": "1"}
        assert ledger.verify().ok


def test_older_compares_etcd_revisions_only() -> None:
    assert older("9", "10") and older("10", "10")
    assert not older("11", "10")
    assert not older("100", "99")  # numeric, not string order
    # Opaque or missing resourceVersions are never called older.
    assert not older("", "10") and not older("10", "") and not older("abc", "10")
    assert not older("9", "v10")


# ------------------------------------------------------------------------ observations


def test_a_stale_event_records_nothing(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB, rv="20")
        known = ledger.known_versions()
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        # Delivered after a scheduled run listed rv 20: older content, older revision.
        run.observe(obs(WEB, {"v": "old"}, rv="15"))
        run.observe(obs(WEB, {"v": "old"}, rv="20"))  # a repeated event: not newer either
        summary = run.finish(undecided=lambda k: k != WEB)
        assert (summary.versions, summary.changes) == (0, 0)
        assert ledger.known_versions() == known
    assert _versions(db, "web") == [("20", 0, "run")]


def test_an_opaque_resource_version_is_never_called_stale(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB, rv="b7")
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe(obs(WEB, {"v": 2}, rv="a1"))
        assert run.finish(undecided=lambda k: k != WEB).changes == 1
    assert _versions(db, "web") == [("b7", 0, "run"), ("a1", 0, "watch")]


@pytest.mark.parametrize("batch_size", [2000, 1])  # 1: every staged row written at once
def test_several_versions_of_one_object_in_one_batch(ledger_target: LedgerTarget, batch_size: int) -> None:
    db = ledger_target
    with db.open(batch_size=batch_size) as ledger:
        _baseline(ledger, WEB)
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe(obs(WEB, {"v": 2}, rv="11", time="2026-11-20T09:05:00Z"))
        run.observe(obs(WEB, {"v": 3}, rv="12", time="2026-11-20T09:05:30Z"))
        run.observe(obs(WEB, {"v": 3, "status": "same spec"}, rv="14",
                        time="2026-11-20T09:05:50Z"))
        run.observe(obs(WEB, {"v": 9}, rv="13"))  # out of order within the batch: stale
        run.record(in_sync(WEB))
        summary = run.finish(undecided=lambda k: k != WEB)
        assert (summary.versions, summary.changes) == (3, 3)
        assert ledger.known_versions()[WEB] == ("14", content_hash({"v": 3, "status": "same spec"}))
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT c.change, c.time, v.resource_version, c.prev_version_id, c.version_id "
            "FROM changes c JOIN object_versions v ON v.id = c.version_id ORDER BY c.id").fetchall()
    assert [(c, t, rv) for c, t, rv, _, _ in rows] == [
        ("updated", "2026-11-20T09:05:00Z", "11"), ("updated", "2026-11-20T09:05:30Z", "12"),
        ("updated", "2026-11-20T09:05:50Z", "14")]
    # Each version follows the one before it.
    assert [prev for _, _, _, prev, _ in rows[1:]] == [vid for _, _, _, _, vid in rows[:-1]]


def test_a_stale_deletion_is_ignored_and_a_deletion_stops_older_events(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB, rv="30")
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe_deleted(WEB, resource_version="29", time="2026-11-20T09:06:00Z")
        assert run.finish(undecided=lambda k: k != WEB).deletions == 0
        assert WEB in ledger.known_versions()

        run = ledger.begin_run(started_at=at(0.2), mode="watch")
        run.observe_deleted(WEB, resource_version="31", time="2026-11-20T09:12:00Z")
        # A MODIFIED event from before the deletion, delivered late: the object stays gone.
        run.observe(obs(WEB, {"v": 5}, rv="30"))
        summary = run.finish(undecided=lambda k: k != WEB)
        assert (summary.deletions, summary.versions) == (1, 1)
        assert WEB not in ledger.known_versions()

        run = ledger.begin_run(started_at=at(0.3), mode="watch")
        run.observe(obs(WEB, {"v": 6}, rv="35", time="2026-11-20T09:17:00Z"))  # re-created
        run.finish(undecided=lambda k: k != WEB)
    assert _versions(db, "web") == [("30", 0, "run"), ("31", 1, "watch"), ("35", 0, "watch")]
    with db.connect() as conn:
        assert conn.execute("SELECT change, time FROM changes ORDER BY id").fetchall() == [
            ("deleted", "2026-11-20T09:12:00Z"), ("created", "2026-11-20T09:17:00Z")]


def test_created_then_deleted_in_one_batch(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB)
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe(obs(WORKER, {"v": 1}, rv="40"))
        run.observe_deleted(WORKER, resource_version="41")
        summary = run.finish(undecided=lambda k: k != WORKER)
        assert (summary.versions, summary.changes, summary.deletions) == (2, 2, 1)
    assert _versions(db, "worker") == [("40", 0, "watch"), ("41", 1, "watch")]


def test_a_watch_before_any_scheduled_run_is_the_baseline(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0), mode="watch")
        run.observe(obs(WEB, {"v": 1}, rv="10"))
        summary = run.finish()
        assert (summary.versions, summary.changes) == (1, 0)
        # A watch run is no listing of the cluster: the next sighting is still a baseline.
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe(obs(API, {"v": 1}, rv="11"))
        assert run.finish().changes == 0
        _baseline(ledger, WORKER, hours=1)
        run = ledger.begin_run(started_at=at(1.1), mode="watch")
        run.observe(obs(SETTINGS, {"v": 1}, rv="12"))
        assert run.finish(undecided=lambda k: k != SETTINGS).changes == 1


# ----------------------------------------------------------------------------- drifts


def _drift_states(ledger: Ledger) -> dict[str, str]:
    return {str(name): str(state) for name, state in ledger.conn.execute(
        "SELECT o.name, s.state FROM drift_state s JOIN drifts d ON d.id = s.drift_id "
        "JOIN objects o ON o.id = d.object_id")}


def test_a_batch_judges_only_its_own_objects(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB, API, WORKER, SETTINGS)
        run = ledger.begin_run(started_at=at(1))
        for k in (WEB, WORKER, SETTINGS):
            run.record(in_sync(k))
        run.observe(obs(API, {"v": 2}, rv="20"))
        run.record(drifted(API, ("spec.replicas", 1, 2)))
        run.finish()
        assert _drift_states(ledger) == {"api": "open"}

        batch = {WEB}
        run = ledger.begin_run(started_at=at(1.1), mode="watch")
        run.observe(obs(WEB, {"v": 3}, rv="21", time="2026-11-20T10:05:00Z"))
        run.record(drifted(WEB, ("spec.template.spec.containers[name=web].image", "1.0", "6.6")))
        run.set_watch_positions({"Deployment.apps": "21"})
        summary = run.finish(undecided=lambda k: k not in batch, listed_kinds=())
        # The batch's object: its drift opened. The others: api's drift neither resolved
        # nor counted, and no object the batch did not carry is taken for deleted.
        assert (summary.opened, summary.resolved, summary.still_open) == (1, {}, 0)
        assert summary.deletions == 0
        assert _drift_states(ledger) == {"api": "open", "web": "open"}
        assert set(ledger.known_versions()) == {WEB, API, WORKER, SETTINGS}

        # A later batch carries web back in sync: only its drift resolves.
        run = ledger.begin_run(started_at=at(1.2), mode="watch")
        run.observe(obs(WEB, {"v": 1}, rv="22", time="2026-11-20T10:15:00Z"))
        run.record(in_sync(WEB), desired_changed=False)
        summary = run.finish(undecided=lambda k: k not in batch, listed_kinds=())
        assert summary.resolved == {"fixed-live": 1}
        assert _drift_states(ledger) == {"api": "open", "web": "resolved"}
        assert ledger.verify().ok


def test_a_watch_run_never_resolves_a_drift_of_an_object_it_did_not_look_at(
        ledger_target: LedgerTarget) -> None:
    """A watch run reads only the open drifts of the objects its events name: even finished
    like a scheduled run (no ``undecided``), it cannot take the others as gone."""
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB, API)
        run = ledger.begin_run(started_at=at(1))
        run.observe(obs(API, {"v": 2}, rv="20"))
        run.record(drifted(API, ("spec.replicas", 1, 2)))
        run.record(in_sync(WEB))
        run.finish()
        run = ledger.begin_run(started_at=at(1.1), mode="watch")
        run.observe(obs(WEB, {"v": 3}, rv="21"))
        run.record(in_sync(WEB))
        assert sum(run.finish().resolved.values()) == 0
        assert _drift_states(ledger) == {"api": "open"}


def test_an_object_drifted_and_put_back_within_one_batch_opens_no_drift(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB)
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe(obs(WEB, {"v": 2}, rv="11"))
        run.record(drifted(WEB, ("spec.replicas", 1, 2)))
        run.observe(obs(WEB, {"v": 1}, rv="12"))
        run.record(in_sync(WEB))  # the batch ends with web as Git declares it
        summary = run.finish(undecided=lambda k: k != WEB)
        assert summary.versions == 2
        assert summary.opened == 0
        assert _drift_states(ledger) == {}


def test_an_object_deleted_and_recreated_within_one_batch_stays_live(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB)
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe_deleted(WEB, resource_version="11")
        run.record(status(WEB, "missing"))  # Git declares it: the comparison says missing
        run.observe(obs(WEB, {"v": 1}, rv="12"))  # re-created as declared
        run.record(in_sync(WEB))
        summary = run.finish(undecided=lambda k: k != WEB)
        assert WEB in ledger.known_versions()
        assert (summary.deletions, summary.opened) == (1, 0)
    assert _versions(db, "web") == [("10", 0, "run"), ("11", 1, "watch"), ("12", 0, "watch")]


# ------------------------------------------------------------- watch, then scheduled


def test_a_scheduled_run_after_the_watch_records_nothing_twice(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        _baseline(ledger, WEB, API, SETTINGS)
        run = ledger.begin_run(started_at=at(0.1), mode="watch")
        run.observe(obs(WEB, {"v": 2}, rv="11", time="2026-11-20T09:05:00Z"))
        run.observe_deleted(SETTINGS, resource_version="12", time="2026-11-20T09:05:10Z")
        run.observe(obs(WORKER, {"v": 1}, rv="13", time="2026-11-20T09:05:20Z"))
        for k in (WEB, WORKER):
            run.record(in_sync(k))
        batch = {WEB, SETTINGS, WORKER}
        run.finish(undecided=lambda k: k not in batch)
        before = ledger.conn.execute("SELECT (SELECT count(*) FROM object_versions), "
                                     "(SELECT count(*) FROM changes)").fetchone()

        # The scheduled run lists the cluster as the watch left it: every pair known.
        run = ledger.begin_run(started_at=at(1))
        live = {WEB: obs(WEB, {"v": 2}, rv="11"), API: obs(API, {"v": 1}, rv="10"),
                WORKER: obs(WORKER, {"v": 1}, rv="13")}
        deployments = sorted(live)
        known = run.listed(deployments)
        assert {k: known[k][0] for k in deployments} == {WEB: "11", API: "10", WORKER: "13"}
        for k in deployments:
            if known.get(k) != (live[k].resource_version, live[k].content_hash):
                run.observe(live[k])
            run.record(in_sync(k))
        summary = run.finish(listed_kinds=[("apps", "Deployment"), ("", "ConfigMap")])
        assert (summary.versions, summary.changes, summary.deletions) == (0, 0, 0)
        after = ledger.conn.execute("SELECT (SELECT count(*) FROM object_versions), "
                                    "(SELECT count(*) FROM changes)").fetchone()
        assert after == before
        # Even observed again regardless, the same content is no new version.
        run = ledger.begin_run(started_at=at(2))
        for k in deployments:
            run.observe(live[k])
            run.record(in_sync(k))
        assert run.finish().versions == 0
        assert ledger.verify().ok


# ------------------------------------------------------------------------------ verify


def _mixed(db: LedgerTarget) -> None:
    with db.open() as ledger:
        _baseline(ledger, WEB, API)
        for i in range(3):
            run = ledger.begin_run(started_at=at(0.1 * (i + 1)), mode="watch")
            run.observe(obs(WEB, {"v": i + 2}, rv=str(20 + i)))
            run.record(drifted(WEB, ("spec.replicas", 1, i + 2)) if i < 2 else in_sync(WEB))
            run.set_watch_positions({"Deployment.apps": str(20 + i)})
            run.finish(undecided=lambda k: k != WEB)
        run = ledger.begin_run(started_at=at(1))
        for k in (WEB, API):
            run.record(in_sync(k))
        run.finish(skipped_kinds=["ConfigMap"], status="partial")
        run = ledger.begin_run(started_at=at(1.1), mode="watch")
        run.finish("failed")


def test_verify_passes_after_mixed_runs(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    _mixed(db)
    with db.open() as ledger:
        result = ledger.verify()
        assert result.ok, result.message
        modes = [m for (m,) in ledger.conn.execute("SELECT mode FROM runs ORDER BY id")]
        assert modes == ["run", "watch", "watch", "watch", "run", "watch"]
        # The mode is chained in the watch run's run_begin payload, a scheduled run's has none.
        payloads = [p for (p,) in ledger.conn.execute(
            "SELECT e.payload FROM runs r JOIN events e ON e.seq = r.seq_begin ORDER BY r.id")]
        assert ['"mode":"watch"' in p for p in payloads] == [m == "watch" for m in modes]


@pytest.mark.parametrize("run_id, mode", [(2, "run"), (1, "watch"), (6, "run")])
def test_a_changed_run_mode_is_detected(tmp_path: Path, run_id: int, mode: str) -> None:
    db = LedgerTarget("sqlite", tmp_path / "l.db")  # SQLite only: drops triggers via sqlite3
    _mixed(db)
    conn = _untriggered(db.location)
    conn.execute("UPDATE runs SET mode = ? WHERE id = ?", (mode, run_id))
    seq_begin = conn.execute("SELECT seq_begin FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    conn.close()
    with db.open() as ledger:
        result = ledger.verify()
    assert not result.ok
    assert result.first_broken_seq == seq_begin
    assert f"run {run_id} differs from its run_begin event" in result.message


def test_an_unknown_mode_is_refused(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger, \
            pytest.raises(LedgerError, match="run mode 'tail'"):
        ledger.begin_run(mode="tail")
