"""What a run writes: versions only on change, changes with actors and authorization, the
audit-log join, Git commits, Secret values never, retention. Tests taking ``ledger_target``
run on SQLite and on PostgreSQL (tests/ledger/conftest.py); those reading the file's bytes
or SQLite's pages stay SQLite-only."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from auditor.engine.records import SourceInfo
from auditor.errors import LedgerError
from auditor.ledger import AuditLog, Ledger, Observation

from .backends import LedgerTarget
from .helpers import at, content_hash, drifted, in_sync, key, obs

WEB = key("web")


def test_versions_only_when_content_changes(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"replicas": 3}, rv="10"))
        summary = run.finish()
        assert (summary.versions, summary.changes) == (1, 0)  # the first run is the baseline
        assert ledger.known_versions() == {WEB: ("10", content_hash({"replicas": 3}))}
        run = ledger.begin_run(started_at=at(1))
        run.observe(obs(WEB, {"replicas": 3}, rv="11"))  # status write: same content
        run.observe(obs(key("new"), {"replicas": 1}, rv="12", manager="argocd-application-controller",
                        category="gitops"))
        summary = run.finish()
        assert (summary.versions, summary.changes) == (1, 1)
        assert ledger.known_versions()[WEB] == ("11", content_hash({"replicas": 3}))
        run = ledger.begin_run(started_at=at(2))
        run.observe(obs(WEB, {"replicas": 5}, rv="13", time="2026-11-20T10:59:30Z"))
        run.observe(obs(key("api"), {"replicas": 5}, rv="14", authorized=False))
        run.finish()
    rows = ledger_target.rows(
        "SELECT o.name, c.change, c.manager, c.category, c.authorized, c.time, c.prev_version_id "
        "FROM changes c JOIN objects o ON o.id = c.object_id ORDER BY c.id")
    # Never compared (no result recorded): written at finish in key order; authorized only
    # when declared or from a GitOps manager.
    assert rows == [
        ("new", "created", "argocd-application-controller", "gitops", 1, "2026-11-20T08:59:00Z", None),
        ("api", "created", "kubectl-edit", "human", 0, "2026-11-20T08:59:00Z", None),
        ("web", "updated", "kubectl-edit", "human", None, "2026-11-20T10:59:30Z", 1)]
    assert ledger_target.rows("SELECT count(*) FROM object_versions") == [(4,)]


def test_audit_log_names_the_user(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    lines = [
        # Same object, read-only verb: ignored.
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
         "verb": "get", "user": {"username": "reader"}, "objectRef": {
             "resource": "deployments", "namespace": "shop", "name": "web", "apiGroup": "apps"},
         "stageTimestamp": "2026-11-20T10:59:30.100000Z", "responseStatus": {"code": 200}},
        # Failed request: ignored.
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
         "verb": "patch", "user": {"username": "denied"}, "objectRef": {
             "resource": "deployments", "namespace": "shop", "name": "web", "apiGroup": "apps"},
         "stageTimestamp": "2026-11-20T10:59:30.200000Z", "responseStatus": {"code": 403}},
        # The change: kubectl edit by alice, within the second managedFields records.
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
         "verb": "update", "user": {"username": "alice@example.com"},
         "userAgent": "kubectl-edit/v1.35.0 (linux/amd64)", "objectRef": {
             "resource": "deployments", "namespace": "shop", "name": "web", "apiGroup": "apps"},
         "requestReceivedTimestamp": "2026-11-20T10:59:30.512345678Z",
         "stageTimestamp": "2026-11-20T10:59:30.523456789Z", "responseStatus": {"code": 200}},
        # A different object with the same name (a Service): ignored for the Deployment.
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
         "verb": "patch", "user": {"username": "bob"}, "objectRef": {
             "resource": "services", "namespace": "shop", "name": "web"},
         "stageTimestamp": "2026-11-20T10:59:30.600000Z", "responseStatus": {"code": 200}},
    ]
    path = tmp_path / "audit.log"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\nnot json\n")
    log = AuditLog.load(path)
    assert log.skipped_lines == 1
    assert log.user_for(WEB, "2026-11-20T10:59:30Z", "kubectl-edit") == "alice@example.com"
    assert log.user_for(WEB, "2026-11-20T11:30:00Z", "kubectl-edit") is None
    assert log.user_for(key("web", kind="Service", group=""), "2026-11-20T10:59:30Z") == "bob"
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"replicas": 3}))
        run.finish()
        run = ledger.begin_run(started_at=at(2), audit_log=path)
        run.observe(obs(WEB, {"replicas": 5}, rv="2", time="2026-11-20T10:59:30Z"))
        run.finish()
    assert ledger_target.rows("SELECT user, user_source FROM changes") == [
        ("alice@example.com", "audit-log")]


def test_commits_are_recorded_once(ledger_target: LedgerTarget) -> None:
    commit = SourceInfo("apps/web.yaml", repo="apps", commit="3f2c", author="Ann",
                        author_email="ann@example.com", date="2026-11-19T12:00:00+01:00",
                        subject="Bump web (#42)", pr=42, trailers=(("Reviewed-by", "Bob"),))
    with ledger_target.open() as ledger:
        for hour in range(2):
            run = ledger.begin_run(started_at=at(hour))
            assert run.record_commits([commit, commit]) == (1 if hour == 0 else 0)
            run.finish()
    assert ledger_target.rows("SELECT repo, sha, author, date, pr, trailers FROM commits") == [
        ("apps", "3f2c", "Ann", "2026-11-19T11:00:00Z", 42, '[["Reviewed-by","Bob"]]')]


SECRET = key("db-credentials", kind="Secret", group="")
RAW = ["hunter2-raw-password", "aHVudGVyMi1yYXctcGFzc3dvcmQ=", "s3cr3t-string-data"]


def test_no_raw_secret_value_reaches_the_file(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    leaky = {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "db-credentials", "namespace": "shop", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"' + RAW[1] + '"}}'}},
        "data": {"password": RAW[1], "hashed": "hmac-sha256:0123456789abcdef0123456789abcdef"},
        "stringData": {"token": RAW[2]}}
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(Observation(SECRET, "v1", "1", content_hash(leaky), leaky))
        result = drifted(SECRET, ("data.password", RAW[0], RAW[1]), ("stringData.token", None, RAW[2]))
        run.record(result)
        run.finish()
        stored = orjson.loads(ledger.conn.execute("SELECT content FROM contents").fetchone()[0])
    assert stored["data"] == {"password": "<redacted>",
                              "hashed": "hmac-sha256:0123456789abcdef0123456789abcdef"}
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("l.db"))
    assert b"hmac-sha256:0123456789abcdef" in blob  # the grep does see the file's content
    for raw in RAW:
        assert raw.encode() not in blob, raw


def test_prune_keeps_the_chain_verifiable(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        for day in range(5):
            run = ledger.begin_run(started_at=at(24 * day))
            run.observe(obs(WEB, {"replicas": day}, rv=str(day)))
            run.observe(obs(key("stable"), {"replicas": 1}))
            run.record(drifted(WEB, ("spec.replicas", 1, day)) if day else in_sync(WEB))
            run.finish()
        before = ledger.conn.execute("SELECT count(*) FROM contents").fetchone()[0]
        assert before == 6
        pruned = ledger.prune(2, now=at(24 * 4 + 1), vacuum=True)
        # Days 0..2 of web go (observed before day 2 + 1h); stable's only version is its latest.
        assert pruned == 3
        result = ledger.verify()
        assert result.ok, result.message
        conn = ledger.conn
        assert conn.execute("SELECT count(*) FROM object_versions").fetchone()[0] == 6
        assert conn.execute("SELECT count(*) FROM changes").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM drift_events").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM contents").fetchone()[0] == 3
        prune_event = conn.execute("SELECT payload FROM events WHERE type = 'prune'").fetchone()[0]
        assert orjson.loads(prune_event)["contents_deleted"] == 3


def test_a_run_that_recorded_no_result_resolves_nothing(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.record(drifted(WEB, ("spec.replicas", 1, 2)))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        run.observe(obs(WEB, {"replicas": 2}))
        assert run.finish().resolved == {}
        with pytest.raises(LedgerError, match="already finished"):
            run.record(in_sync(WEB))


def _steady_growth(tmp_path: Path, objects: int, changes: int) -> int:
    db = tmp_path / f"growth-{objects}.db"
    with Ledger.open(db) as ledger:
        for step in range(3):
            run = ledger.begin_run(started_at=at(step))
            known = ledger.known_versions()
            for i in range(objects):
                k = key(f"app-{i:05d}")
                content = {"replicas": step if i < changes else 0, "pad": "x" * 600}
                o = obs(k, content, rv=content_hash(content)[:8])
                if known.get(k) != (o.resource_version, o.content_hash):
                    run.observe(o)
                run.record(drifted(k, ("spec.replicas", 1, 0)) if i % 20 == 0 else in_sync(k))
            run.finish()
            if step == 1:
                pages_before = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages_after = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
    return int(pages_after - pages_before) * 4096


def test_steady_state_growth_follows_changes_not_cluster_size(tmp_path: Path) -> None:
    small = _steady_growth(tmp_path, 500, 20)
    large = _steady_growth(tmp_path, 5000, 20)
    # Ten times the objects, the same 20 changes: the same growth, give or take a few pages.
    assert large <= small + 8 * 4096, (small, large)
    assert large < 100 * 1024


def test_authorization_is_judged_by_the_comparison(ledger_target: LedgerTarget) -> None:
    names = ("synced", "edited", "scaled", "early")
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        for name in names:
            run.observe(obs(key(name), {"v": 0}))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        # Live now matches Git: the change carried Git's content.
        run.observe(obs(key("synced"), {"v": 1}, rv="2", manager="kubectl-client-side-apply"))
        run.record(in_sync(key("synced")))
        # A human edit that leaves the object drifted: out-of-band.
        run.observe(obs(key("edited"), {"v": 1}, rv="2"))
        run.record(drifted(key("edited"), ("spec.x", 1, 2)))
        # A controller moved something while a human's drift persists elsewhere: unknown.
        run.observe(obs(key("scaled"), {"v": 1}, rv="2", manager="hpa", category="controller"))
        run.record(drifted(key("scaled"), ("spec.x", 1, 2), manager="kubectl-edit"))
        # The result came before the observation: still judged.
        run.record(drifted(key("early"), ("spec.x", 1, 2)))
        run.observe(obs(key("early"), {"v": 1}, rv="2"))
        run.finish()
    verdicts = dict(ledger_target.rows("SELECT o.name, c.authorized FROM changes c "
                                     "JOIN objects o ON o.id = c.object_id"))
    assert verdicts == {"synced": 1, "edited": 0, "scaled": None, "early": 0}


def test_versions_of_a_page_read_from_the_file_and_from_what_is_staged(ledger_target: LedgerTarget) -> None:
    """The pipeline asks page by page; a reopened ledger answers from SQLite alone, and
    versions staged in a batch not yet written win over the table."""
    other_ns = key("web", ns="zz-other")
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        for k, rv in ((WEB, "10"), (key("api"), "11"), (other_ns, "12"),
                      (key("cm", kind="ConfigMap", group=""), "13")):
            run.observe(obs(k, {"v": rv}, rv=rv))
        run.finish()
    with ledger_target.open(batch_size=10_000) as ledger:
        page = [WEB, key("api"), key("absent"), other_ns]
        assert ledger.versions_of(page) == {
            WEB: ("10", content_hash({"v": "10"})), key("api"): ("11", content_hash({"v": "11"})),
            other_ns: ("12", content_hash({"v": "12"}))}
        assert ledger.versions_of([key("cm", kind="ConfigMap", group="")]) == {
            key("cm", kind="ConfigMap", group=""): ("13", content_hash({"v": "13"}))}
        assert ledger.versions_of([]) == {}
        run = ledger.begin_run(started_at=at(1))
        run.observe(obs(WEB, {"v": "20"}, rv="20"))   # staged; the batch is not written yet
        run.record(in_sync(WEB))
        assert ledger.versions_of(page)[WEB] == ("20", content_hash({"v": "20"}))
        assert ledger.known_versions()[WEB] == ("20", content_hash({"v": "20"}))
        run.finish()
    with ledger_target.open() as ledger:
        assert ledger.versions_of([WEB])[WEB] == ("20", content_hash({"v": "20"}))
        assert len(ledger.known_versions()) == 4


def test_versions_of_a_large_unsorted_page(ledger_target: LedgerTarget) -> None:
    """More names than SQLite takes in one statement, in no particular order."""
    names = [f"app-{i:04d}" for i in range(1200)]
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        for i, name in enumerate(names):
            run.observe(obs(key(name, ns=f"ns-{i % 3}"), {"i": i}, rv=str(i)))
        run.finish()
    with ledger_target.open() as ledger:
        page = [key(name, ns=f"ns-{i % 3}") for i, name in enumerate(names)][::-1]
        got = ledger.versions_of([*page, key("gone")])
        assert len(got) == 1200 and got[key("app-0007", ns="ns-1")][0] == "7"


@pytest.mark.parametrize("batch_size", [2000, 2], ids=["one-batch", "flushed-often"])
def test_objects_a_complete_list_no_longer_holds_are_recorded_deleted(
        ledger_target: LedgerTarget, batch_size: int) -> None:
    cm = key("cm", kind="ConfigMap", group="")
    elsewhere = key("other", ns="kube-system")
    with ledger_target.open(batch_size=batch_size) as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.listed([WEB, key("api"), elsewhere, cm])
        for k in (WEB, key("api"), elsewhere, cm):
            run.observe(obs(k, {"v": 1}))
            run.settle(k)
        run.finish()
        # api is gone from the Deployments list; ConfigMaps were not listed at all; the
        # kube-system Deployment is outside the scope of this run.
        run = ledger.begin_run(started_at=at(1))
        assert run.listed([WEB]) == {WEB: ("1", content_hash({"v": 1}))}
        run.record(in_sync(WEB))
        summary = run.finish(listed_kinds=[("apps", "Deployment")],
                             in_scope=lambda k: k.namespace == "shop")
        assert summary.deletions == 1
        assert set(ledger.known_versions()) == {WEB, elsewhere, cm}
        # A failed run, or a kind whose list failed, deletes nothing.
        run = ledger.begin_run(started_at=at(2))
        run.listed([])
        run.record(in_sync(WEB))
        assert run.finish("failed", listed_kinds=[("apps", "Deployment")]).deletions == 0
        run = ledger.begin_run(started_at=at(3))
        run.listed([])
        run.record(in_sync(WEB))
        assert run.finish("partial", skipped_kinds=["Deployment.apps"],
                          listed_kinds=[("apps", "Deployment")]).deletions == 0
    assert ledger_target.rows("SELECT c.change, c.manager FROM changes c JOIN objects o "
                           "ON o.id = c.object_id WHERE o.name = 'api'") == [
        ("deleted", "")]


def test_settle_writes_an_observation_without_waiting_for_the_end(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"v": 1}))
        assert WEB in run._pending
        run.settle(WEB)
        run.settle(WEB)  # twice is harmless
        assert WEB not in run._pending and run.summary.versions == 1
        run.finish()


def test_a_first_run_past_its_batches_finds_what_it_created_without_duplicates(
        ledger_target: LedgerTarget) -> None:
    """An empty ledger's first run forgets each written batch; objects it created before are
    still found (one object each), and unknown keys are known to be unknown."""
    with ledger_target.open(batch_size=3) as ledger:
        run = ledger.begin_run(started_at=at(0))
        for i in range(10):
            run.observe(obs(key(f"app-{i}"), {"replicas": 1}, rv=str(i)))
        run.finish()
        run = ledger.begin_run(started_at=at(1))
        for i in (0, 9):
            run.observe(obs(key(f"app-{i}"), {"replicas": 2}, rv=str(100 + i)))
        run.observe(obs(key("late"), {"replicas": 1}, rv="200"))
        summary = run.finish()
        assert (summary.versions, summary.changes) == (3, 3)
        assert ledger.verify().ok
    assert ledger_target.rows("SELECT count(*), count(DISTINCT name) FROM objects") == [(11, 11)]
    assert ledger_target.rows(
        "SELECT c.change FROM changes c JOIN objects o ON o.id = c.object_id "
        "WHERE o.name IN ('app-0', 'app-9') ORDER BY o.name") == [
        ("updated",), ("updated",)]
