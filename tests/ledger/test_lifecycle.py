"""The drift lifecycle across runs, on each backend (``ledger_target``: an SQLite file and
one cluster's schema on PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.errors import LedgerError
from auditor.ledger import lifecycle

from .backends import LedgerTarget
from .helpers import at, drifted, in_sync, key, obs, status

WEB = key("web")


def _events(db: LedgerTarget, name: str = "web") -> list[tuple[Any, ...]]:
    return db.rows(
        "SELECT de.drift_id, de.event, de.how FROM drift_events de JOIN drifts d ON d.id = de.drift_id "
        "JOIN objects o ON o.id = d.object_id WHERE o.name = ? ORDER BY de.seq", (name,))


def _state(db: LedgerTarget, drift_id: int) -> str:
    return str(db.rows("SELECT state FROM drift_state WHERE drift_id = ?", (drift_id,))[0][0])


def test_open_still_open_then_fixed_live(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"image": "web:1.5"}))
        run.record(drifted(WEB, ("spec.image", "web:1.4", "web:1.5")))
        assert run.finish().opened == 1
        # Run 2: unchanged, the drift is still open and nothing is written for it.
        run = ledger.begin_run(started_at=at(1))
        run.record(drifted(WEB, ("spec.image", "web:1.4", "web:1.5")))
        summary = run.finish()
        assert (summary.opened, summary.still_open, summary.resolved) == (0, 1, {})
        # Run 3: someone set the image back live; Git did not move.
        run = ledger.begin_run(started_at=at(2))
        run.observe(obs(WEB, {"image": "web:1.4"}, rv="2"))
        run.record(in_sync(WEB))
        assert run.finish().resolved == {"fixed-live": 1}
        assert ledger.verify().ok
    assert _events(db) == [(1, "opened", None), (1, "resolved", "fixed-live")]
    assert _state(db, 1) == "resolved"


def test_git_changed_to_match(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"replicas": 5}))
        run.record(drifted(WEB, ("spec.replicas", 3, 5), commit="c1"))
        run.finish()
        # A new commit declares 5 replicas: live untouched, the desired side moved.
        run = ledger.begin_run(started_at=at(1))
        run.record(in_sync(WEB, commit="c2"))
        assert run.finish().resolved == {"git-changed": 1}
    assert _events(db)[-1] == (1, "resolved", "git-changed")


def test_pipeline_hint_wins_and_revert_is_recorded(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    api, worker = key("api"), key("worker")
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        for k in (api, worker):
            run.observe(obs(k, {"replicas": 5}))
            run.record(drifted(k, ("spec.replicas", 3, 5)))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        run.record(drifted(worker, ("spec.replicas", 3, 5)))
        run.reverted(worker)
        run.record(in_sync(api), desired_changed=True)
        assert run.finish().resolved == {"git-changed": 1, "reverted": 1}
        # The revert did not take: the same drift comes back and is reopened, not duplicated.
        run = ledger.begin_run(started_at=at(2))
        run.record(in_sync(api))
        run.record(drifted(worker, ("spec.replicas", 3, 5)))
        assert run.finish().reopened == 1
    assert _events(db, "worker") == [(2, "opened", None), (2, "resolved", "reverted"),
                                     (2, "reopened", None)]
    assert _state(db, 2) == "open"


def test_a_different_drift_supersedes_the_old_one(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.record(drifted(WEB, ("spec.image", "web:1.4", "web:1.5-rc1")))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        run.record(drifted(WEB, ("spec.image", "web:1.4", "web:1.5-rc2")))
        summary = run.finish()
        assert (summary.opened, summary.resolved) == (1, {"superseded": 1})
    assert db.rows("SELECT drift_id, event, how, related_drift_id FROM drift_events "
                   "ORDER BY seq") == [
        (1, "opened", None, None), (2, "opened", None, None), (1, "resolved", "superseded", 2)]


def test_ack_with_expiry_then_expired_reopens(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        run.finish()
        drift_id = ledger.ack("Deployment.apps shop/web", by="ann@example.com",
                              reason="load test until Friday", expires="2d", at=at(0.5))
        assert drift_id == 1
        assert _state(db, 1) == "accepted"
        run = ledger.begin_run(started_at=at(24))  # within the acknowledgement
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        summary = run.finish()
        assert (summary.accepted, summary.still_open, summary.expired) == (1, 0, 0)
        assert _state(db, 1) == "accepted"
        run = ledger.begin_run(started_at=at(49))  # past the expiry
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        summary = run.finish()
        assert (summary.accepted, summary.expired, summary.still_open) == (0, 1, 1)
        assert ledger.verify().ok
    assert _state(db, 1) == "open"
    assert db.rows("SELECT event, by, reason, expires FROM drift_events WHERE drift_id = 1 "
                   "ORDER BY seq") == [
        ("opened", None, None, None),
        ("accepted", "ann@example.com", "load test until Friday", "2026-11-22T09:30:00Z"),
        ("expired", None, None, None)]


def test_ack_errors_are_clear(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        run.record(drifted(key("web", ns="other"), ("spec.replicas", 3, 5)))
        run.finish()
        with pytest.raises(LedgerError, match="matches several open drifts"):
            ledger.ack("web", by="ann", reason="x")
        with pytest.raises(LedgerError, match="no such drift"):
            ledger.ack(99, by="ann", reason="x")
        with pytest.raises(LedgerError, match=r"who .* and why"):
            ledger.ack(1, by="", reason="x")
        with pytest.raises(LedgerError, match="not in the future"):
            ledger.ack(1, by="ann", reason="x", expires="2020-01-01")
        # Drifts open in object-key order: namespace 'other' sorts before 'shop'.
        assert ledger.ack("other/web", by="ann", reason="x") == 1


def test_skipped_kind_never_resolves_or_opens(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    cm = key("settings", kind="ConfigMap", group="")
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"replicas": 5}))
        run.observe(obs(cm, {"data": {"a": "1"}}))
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        run.record(drifted(cm, ("data.a", "0", "1")))
        run.finish()
        # Listing Deployments failed: the compare saw them as missing. Nothing may change for
        # them — no resolution, no 'missing' drift, no deletion. ConfigMaps were listed.
        run = ledger.begin_run(started_at=at(1))
        run.observe(obs(cm, {"data": {"a": "0"}}, rv="2"))
        run.record(status(WEB, "missing"))
        run.record(in_sync(cm))
        summary = run.finish("partial", skipped_kinds=["Deployment.apps"])
        assert summary.resolved == {"fixed-live": 1}
        assert (summary.opened, summary.deletions) == (0, 0)
        assert WEB in ledger.known_versions()
        # Listed again and still drifted: the same drift, still open.
        run = ledger.begin_run(started_at=at(2))
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        assert run.finish().still_open == 1
    # Drift 1 is the ConfigMap's (core group sorts first); the Deployment's was never touched.
    assert _events(db) == [(2, "opened", None)]


def test_failed_run_changes_no_drift(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        run.record(status(WEB, "missing"))
        summary = run.finish("failed")
        assert (summary.opened, summary.resolved) == (0, {})
    assert _events(db) == [(1, "opened", None)]


def test_missing_object_is_a_deletion_and_a_drift(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"replicas": 3}))
        run.record(in_sync(WEB))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        run.record(status(WEB, "missing"))
        summary = run.finish()
        assert (summary.opened, summary.deletions) == (1, 1)
        assert WEB not in ledger.known_versions()
        # Recreated live: the 'missing' drift resolves as fixed live, a 'created' change.
        run = ledger.begin_run(started_at=at(2))
        run.observe(obs(WEB, {"replicas": 3}, rv="9"))
        run.record(in_sync(WEB))
        assert run.finish().resolved == {"fixed-live": 1}
    assert [r[0] for r in db.rows("SELECT change FROM changes ORDER BY id")] == [
        "deleted", "created"]


def _drift(status: str = "drifted", commit: str = "c1", live_hash: str = "h1") -> lifecycle.OpenDrift:
    return lifecycle.OpenDrift(1, 1, WEB, "fp", status, "open", None, commit, live_hash)


@pytest.mark.parametrize("drift, now_status, kwargs, how", [
    (_drift(), "in-sync", {"reverted": True}, "reverted"),
    (_drift(), "ignored", {}, "ignored"),
    (_drift(), "in-sync", {"desired_changed": False, "source_commit_now": "c2"}, "fixed-live"),
    (_drift(), "in-sync", {"source_commit_now": "c2"}, "git-changed"),
    (_drift(), "in-sync", {"live_hash_now": "h2"}, "fixed-live"),
    (_drift(), "in-sync", {"source_commit_now": "c2", "live_hash_now": "h2",
                           "gitops_change": True}, "git-changed"),
    (_drift(), "in-sync", {"source_commit_now": "c2", "live_hash_now": "h2"}, "fixed-live"),
    (_drift(), "in-sync", {}, "no-longer-detected"),
    (_drift(), None, {}, "git-changed"),
    (_drift("orphan"), None, {}, "fixed-live"),
    (_drift("orphan"), "in-sync", {}, "git-changed"),
    (_drift("missing"), "in-sync", {}, "fixed-live"),
    (_drift("missing"), None, {}, "git-changed"),
])
def test_resolution_how(drift: lifecycle.OpenDrift, now_status: str | None,
                        kwargs: dict[str, Any], how: str) -> None:
    args: dict[str, Any] = {"desired_changed": None, "reverted": False, "source_commit_now": "c1",
                            "live_hash_now": "h1", "gitops_change": False, **kwargs}
    assert lifecycle.resolution(drift, now_status=now_status, **args) == how
    assert how in lifecycle.HOWS


def test_fingerprint_ignores_order_and_owner_but_not_values() -> None:
    a = drifted(WEB, ("spec.a", 1, 2), ("spec.b", "x", "y"))
    b = drifted(WEB, ("spec.b", "x", "y"), ("spec.a", 1, 2), manager="k9s")
    c = drifted(WEB, ("spec.a", 1, 3), ("spec.b", "x", "y"))
    assert lifecycle.seen(a).fingerprint == lifecycle.seen(b).fingerprint
    assert lifecycle.seen(a).fingerprint != lifecycle.seen(c).fingerprint
