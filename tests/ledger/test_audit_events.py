"""API-server audit events in the ledger (:mod:`auditor.ledger.auditevents`): which events are
kept, dedup by auditID, EventLists, Secret values never stored (by hand-built events in every
shape, and by real kubectl 1.35 writes logged by the authenticating sandbox), kinds, the
request URI's query, deliveries and heartbeats, resume positions, chunks, and ``verify``.

Tests taking ``ledger_target`` run on SQLite and PostgreSQL; those that read the SQLite file's
bytes (Secret values never stored) or tamper with rows through raw ``sqlite3`` stay
SQLite-only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditor.errors import LedgerError
from auditor.ledger import Ledger, auditevents

from .backends import LedgerTarget
from .helpers import at, in_sync, key, obs

T = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
FILE = "file:/var/log/kubernetes/audit.log"


def stamp(seconds: float) -> str:
    """An audit timestamp ``seconds`` after :data:`T`, as kube-apiserver writes it."""
    return (T + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(audit_id: str, verb: str = "update", *, resource: str = "deployments",
          group: str = "apps", namespace: str = "shop", name: str = "web", subresource: str = "",
          code: int = 200, stage: str = "ResponseComplete", t: float = 0.0, user: str = "alice",
          uri: str | None = None, level: str = "Metadata", request: Any = None,
          response: Any = None, **extra: Any) -> dict[str, Any]:
    """One ``audit.k8s.io/v1`` Event as a log file carries it."""
    ref: dict[str, Any] = {"resource": resource, "namespace": namespace, "name": name,
                           "apiGroup": group, "apiVersion": "v1"}
    if subresource:
        ref["subresource"] = subresource
    ref = {k: v for k, v in ref.items() if v != ""}
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    path = f"{prefix}/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "") \
        + (f"/{subresource}" if subresource else "")
    out: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": audit_id,
        "stage": stage, "requestURI": path if uri is None else uri, "verb": verb,
        "user": {"username": user, "groups": ["sre", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.35.0 (linux/amd64) kubernetes/abc",
        "objectRef": ref, "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp(t - 0.01), "stageTimestamp": stamp(t)}
    if request is not None:
        out["requestObject"] = request
    if response is not None:
        out["responseObject"] = response
    out.update(extra)
    return out


def audit_ids(db: LedgerTarget | Path) -> list[str]:
    target = db if isinstance(db, LedgerTarget) else LedgerTarget("sqlite", db)
    return [str(a) for (a,) in target.rows("SELECT audit_id FROM audit_events ORDER BY id")]


def _untriggered(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


# ----------------------------------------------------------------------- what is kept


def test_only_successful_completed_writes_are_kept(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    events = [
        event("read-get", "get"), event("read-list", "list", name=""),
        event("read-watch", "watch", name=""),
        event("w-update", "update", t=1), event("w-patch", "patch", t=2, code=201),
        event("w-create", "create", t=3, code=201),
        event("w-delete", "delete", t=4),
        event("w-collection", "deletecollection", name="", t=5),
        event("w-scale", "update", subresource="scale", t=5.5),
        event("denied", "update", code=403, t=6), event("conflict", "update", code=409, t=7),
        event("invalid", "patch", code=422, t=8), event("error", "create", code=500, t=8.5),
        event("dry", "patch", uri="/apis/apps/v1/namespaces/shop/deployments/web?dryRun=All",
              t=9),
        event("received", "update", stage="RequestReceived", t=10),
        event("started", "update", stage="ResponseStarted", t=11),
        event("panic", "update", stage="Panic", t=12),
        event("", "update", t=13),  # no auditID
        {**event("no-ref", "update", t=14), "objectRef": None},  # a non-resource request
        {**event("no-code", "update", t=14.5), "responseStatus": {}},
        event("other-kind", "update", t=15, kind="Policy"),
        event("other-version", "update", t=16, apiVersion="audit.k8s.io/v1beta1"),
        {k: v for k, v in event("no-time", "update").items() if k != "stageTimestamp"},
    ]
    with db.open() as ledger:
        assert ledger.record_audit_events(events, source=FILE, at=T) == 6
    assert audit_ids(db) == ["w-update", "w-patch", "w-create", "w-delete", "w-collection",
                             "w-scale"]
    with db.connect() as conn:
        row = conn.execute(
            "SELECT source, level, stage, verb, user, groups, impersonated_user, user_agent, "
            "manager, source_ips, grp, version, resource, namespace, name, code, received_at, "
            "stage_at FROM audit_events WHERE audit_id = 'w-update'").fetchone()
        # Every event with a time is evidence of a live stream (reads and failures too); the
        # two without a time or of another kind or apiVersion are not counted.
        delivered = conn.execute("SELECT sum(events), sum(recorded) FROM audit_deliveries"
                                 ).fetchone()
    assert row == (FILE, "Metadata", "ResponseComplete", "update", "alice",
                   '["sre","system:authenticated"]', "", "kubectl/v1.35.0 (linux/amd64) "
                   "kubernetes/abc", "kubectl", '["10.0.0.7"]', "apps", "v1", "deployments",
                   "shop", "web", 200, "2026-11-20T10:00:00.990000Z",
                   "2026-11-20T10:00:01.000000Z")
    # Every audit event with a time evidences a live stream — reads, failures, other stages,
    # the one without an auditID — all but the two of another kind or apiVersion.
    assert delivered == (len(events) - 2, 6)


def test_timestamps_are_kept_to_the_microsecond(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    nanos = {**event("ns", "patch"), "requestReceivedTimestamp": "2026-11-20T10:00:00.123456789Z",
             "stageTimestamp": "2026-11-20T11:00:00.5+01:00"}
    with db.open() as ledger:
        ledger.record_audit_events([nanos], source=FILE, at=T)
        assert ledger.conn.execute("SELECT received_at, stage_at FROM audit_events").fetchone() \
            == ("2026-11-20T10:00:00.123456Z", "2026-11-20T10:00:00.500000Z")


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00.000000Z"),
    ("2026-11-20T10:00:00.123456Z", "2026-11-20T10:00:00.123456Z"),
    ("2026-11-20T10:00:00.123456789Z", "2026-11-20T10:00:00.123456Z"),  # nanoseconds
    ("2026-11-20T10:00:00.1z", "2026-11-20T10:00:00.100000Z"),
    ("2026-11-20T11:00:00.25+01:00", "2026-11-20T10:00:00.250000Z"),
    ("2026-11-20T07:30:00.000001-02:30", "2026-11-20T10:00:00.000001Z"),
    ("2026-11-20T10:00:00", "2026-11-20T10:00:00.000000Z"),  # no zone: UTC
])
def test_audit_timestamps(text: str, expected: str) -> None:
    found = auditevents.moment(text)
    assert found is not None and auditevents.micro(found) == expected


def test_unreadable_timestamps() -> None:
    assert [auditevents.moment(t) for t in ("", "  ", None, 7, "yesterday",
                                             "2026-13-01T00:00:00Z")] == [None] * 6


def test_the_same_audit_id_is_recorded_once(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        assert ledger.record_audit_events([event("a1", t=1), event("a2", t=2)], source=FILE,
                                          at=T) == 2
        # The webhook delivers a batch overlapping the file's: only a3 is new.
        batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [
            event("a2", t=2, user="mallory"), event("a3", t=3)]}
        assert ledger.record_audit_events([batch], source="webhook", at=T) == 1
        # The file replayed from an older position, and a duplicate within one call.
        assert ledger.record_audit_events([event("a1", t=1), event("a3", t=3)], source=FILE,
                                          at=T) == 0
        assert ledger.record_audit_events([event("a4", t=4), event("a4", t=4, user="eve")],
                                          source="webhook", at=T) == 1
        rows = ledger.conn.execute(
            "SELECT audit_id, source, user FROM audit_events ORDER BY id").fetchall()
        deliveries = ledger.conn.execute(
            "SELECT source, events, recorded FROM audit_deliveries ORDER BY id").fetchall()
        assert ledger.verify().ok
    # Recorded under the source that delivered it first, as it delivered it.
    assert rows == [("a1", FILE, "alice"), ("a2", FILE, "alice"), ("a3", "webhook", "alice"),
                    ("a4", "webhook", "alice")]
    assert deliveries == [(FILE, 2, 2), ("webhook", 2, 1), (FILE, 2, 0), ("webhook", 2, 1)]


def test_event_lists_are_taken_apart(ledger_target: LedgerTarget) -> None:
    db = ledger_target

    def bare(audit_id: str, t: float) -> dict[str, Any]:
        # A webhook's items may carry neither kind nor apiVersion.
        e = event(audit_id, t=t)
        del e["kind"], e["apiVersion"]
        return e

    lists: list[Any] = [
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
         "items": [bare("l1", 1), bare("l2", 2), "not an event", None]},
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": [bare("old", 3)]},
        {"kind": "EventList", "items": [bare("l3", 4)]},
        "junk", 42,
    ]
    with db.open() as ledger:
        assert ledger.record_audit_events(lists, source="webhook", at=T) == 3
    assert audit_ids(db) == ["l1", "l2", "l3"]


def test_kinds_names_and_resource_versions(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": "shop", "uid": "u-web", "resourceVersion": "501"}}
    generated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "job-x7k2p", "generateName": "job-", "namespace": "shop", "uid": "u-cm",
        "resourceVersion": "502"}}
    events = [
        # Metadata level: no object; only discovery can say the kind.
        event("meta", "update", t=1),
        event("meta-pdb", "patch", resource="poddisruptionbudgets", group="policy", t=1.5),
        # RequestResponse: the kind and resourceVersion from the response object.
        event("full", "update", level="RequestResponse", response=deployment, t=2),
        # A create with generateName: the name only in the response.
        event("gen", "create", resource="configmaps", group="", name="", code=201, t=3,
              level="RequestResponse", request={"kind": "ConfigMap", "apiVersion": "v1",
                                                "metadata": {"generateName": "job-"}},
              response=generated),
        # A delete answered with a Status: no kind from it.
        event("del", "delete", level="RequestResponse", t=4,
              response={"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        # The scale subresource: a Scale is not the object's kind, nor its resourceVersion.
        event("scale", "patch", subresource="scale", level="RequestResponse", t=5,
              response={"kind": "Scale", "apiVersion": "autoscaling/v1",
                        "metadata": {"name": "web", "resourceVersion": "777"}}),
    ]
    with db.open() as ledger:
        ledger.record_audit_events(events, source=FILE, at=T,
                                   kinds={("policy", "poddisruptionbudgets"):
                                          "PodDisruptionBudget"})
        rows = {a: r for a, *r in ledger.conn.execute(
            "SELECT audit_id, kind, name, uid, resource_version, subresource FROM audit_events")}
    assert rows == {
        "meta": ["", "web", "", "", ""],
        "meta-pdb": ["PodDisruptionBudget", "web", "", "", ""],
        "full": ["Deployment", "web", "u-web", "501", ""],
        "gen": ["ConfigMap", "job-x7k2p", "u-cm", "502", ""],
        "del": ["", "web", "", "", ""],
        "scale": ["", "web", "", "", "scale"]}
    # With discovery, the subresource write names its object's kind.
    with db.open() as ledger:
        ledger.record_audit_events([event("scale2", "patch", subresource="scale", t=6)],
                                   source=FILE, at=T,
                                   kinds={("apps", "deployments"): "Deployment"})
        assert ledger.conn.execute("SELECT kind FROM audit_events WHERE audit_id = 'scale2'"
                                   ).fetchone() == ("Deployment",)


def test_impersonation_and_the_field_manager(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    imp = event("imp", "patch", uri="/apis/apps/v1/namespaces/shop/deployments/web"
                "?fieldManager=argocd-controller", t=1,
                impersonatedUser={"username": "bob", "groups": ["dev"]})
    with db.open() as ledger:
        ledger.record_audit_events([imp], source=FILE, at=T)
        assert ledger.conn.execute(
            "SELECT user, impersonated_user, impersonated_groups, manager FROM audit_events"
        ).fetchone() == ("alice", "bob", '["dev"]', "argocd-controller")


def test_only_how_a_write_was_made_is_kept_of_the_query(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    token = "tkn-8c1f77-never-stored"
    events = [
        event("q1", "patch", t=1, uri="/apis/apps/v1/namespaces/shop/deployments/web?"
              f"fieldManager=kubectl-edit&access_token={token}&fieldValidation=Strict&force=true"),
        event("q2", "create", resource="pods", group="", subresource="exec", name="p", t=2,
              uri=f"/api/v1/namespaces/shop/pods/p/exec?command=cat&command={token}&stdout=1"),
        event("q3", "delete", t=3, uri="/apis/apps/v1/namespaces/shop/deployments/web?"
              "propagationPolicy=Foreground&gracePeriodSeconds=0"),
    ]
    with db.open() as ledger:
        ledger.record_audit_events(events, source=FILE, at=T)
        uris = [u for (u,) in ledger.conn.execute(
            "SELECT request_uri FROM audit_events ORDER BY id")]
    assert uris == [
        "/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=kubectl-edit"
        "&fieldValidation=Strict&force=true",
        "/api/v1/namespaces/shop/pods/p/exec",
        "/apis/apps/v1/namespaces/shop/deployments/web?propagationPolicy=Foreground"
        "&gracePeriodSeconds=0"]
    assert token not in repr(db.rows("SELECT * FROM audit_events"))
    if not db.postgresql:  # every byte of the file too
        assert isinstance(db.location, Path) and token.encode() not in _file_bytes(db.location)


# --------------------------------------------------------------------- Secret values


MARK = "Zq7-s3cr3t-marker"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _file_bytes(db: Path) -> bytes:
    """Every byte SQLite keeps for the ledger: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


def _leaks(data: bytes, *values: str) -> list[str]:
    """Which of ``values`` (or their base64, or their SHA-256) appear in ``data``."""
    found = []
    for value in values:
        forms = (value, _b64(value), hashlib.sha256(value.encode()).hexdigest(),
                 hashlib.sha256(_b64(value).encode()).hexdigest())
        found += [f"{value} as {form[:12]}…" for form in forms if form.encode() in data]
    return found


def _secret(values: dict[str, str], last_applied: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "db", "namespace": "shop", "uid": "u-db",
                            "resourceVersion": "900"}
    if last_applied is not None:
        meta["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": last_applied}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": {k: _b64(v) for k, v in values.items()}}


def test_secret_values_never_reach_the_file(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    values = [f"{MARK}-{n}" for n in range(12)]
    applied = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                          "stringData": {"password": values[0]}})
    secret_ev: dict[str, Any] = dict(resource="secrets", group="", name="db",
                                     level="RequestResponse")
    events = [
        # kubectl apply (client side): the body and its last-applied annotation.
        event("s-create", "create", code=201, t=1, **secret_ev,
              request={**_secret({}, applied), "stringData": {"password": values[0]}},
              response=_secret({"password": values[0]}, applied)),
        # A merge patch of stringData, and of data.
        event("s-merge", "patch", t=2, **secret_ev,
              request={"stringData": {"password": values[1]}, "data": {"k": _b64(values[2])}},
              response=_secret({"password": values[1], "k": values[2]})),
        # A JSON patch, op by op.
        event("s-json", "patch", t=3, **secret_ev, request=[
            {"op": "replace", "path": "/data/password", "value": _b64(values[3])},
            {"op": "test", "path": "/stringData/x", "value": values[4]},
            {"op": "add", "path": "/data", "value": {"k": _b64(values[5])}},
            {"op": "add", "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-"
                                  "configuration", "value": json.dumps({"data": values[6]})},
            {"op": "replace", "path": "", "value": _secret({"whole": values[7]})},
            {"op": "add", "path": "/metadata/labels/tier", "value": "db"}],
              response=_secret({"password": values[3]})),
        # A server-side apply body that is no JSON (YAML kept as text).
        event("s-apply", "patch", t=4, **secret_ev,
              uri="/api/v1/namespaces/shop/secrets/db?fieldManager=kubectl",
              request=f"stringData:\n  password: {values[8]}\n",
              response=_secret({"password": values[8]})),
        # An update at Request level: the whole Secret, no response.
        event("s-update", "update", t=5, **{**secret_ev, "level": "Request"},
              request={**_secret({"password": values[9]}), "stringData": values[9]}),
        # deletecollection: the deleted Secrets as a SecretList.
        event("s-collection", "deletecollection", t=6, **{**secret_ev, "name": ""},
              response={"kind": "SecretList", "apiVersion": "v1",
                        "items": [_secret({"password": values[10]})]}),
        # Another resource carrying a Secret inside its object.
        event("s-nested", "create", code=201, t=7, resource="backups", group="example.com",
              name="b", level="RequestResponse",
              request={"apiVersion": "example.com/v1", "kind": "Backup",
                       "metadata": {"name": "b"},
                       "spec": {"include": [_secret({"password": values[11]})]}}),
    ]
    with Ledger.open(db) as ledger:
        assert ledger.record_audit_events(events, source=FILE, at=T) == len(events)
        stored = {a: (req, resp) for a, req, resp in ledger.conn.execute(
            "SELECT audit_id, request_object, response_object FROM audit_events")}
        assert ledger.verify().ok
    data = _file_bytes(db)
    assert _leaks(data, *values) == []
    # What is not a value is kept: the objects are there, redacted in place.
    create_req = json.loads(stored["s-create"][0])
    assert create_req["stringData"] == {"password": "<redacted>"}
    assert create_req["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": "<redacted>"}
    assert json.loads(stored["s-merge"][1])["data"] == {"password": "<redacted>",
                                                       "k": "<redacted>"}
    ops = json.loads(stored["s-json"][0])
    assert [op.get("value") for op in ops[:4]] == ["<redacted>", "<redacted>",
                                                    {"k": "<redacted>"}, "<redacted>"]
    assert ops[4]["value"]["data"] == {"whole": "<redacted>"}
    assert ops[5] == {"op": "add", "path": "/metadata/labels/tier", "value": "db"}
    assert json.loads(stored["s-apply"][0]) == "<redacted>"
    assert json.loads(stored["s-collection"][1])["items"][0]["data"] == {
        "password": "<redacted>"}
    nested = json.loads(stored["s-nested"][0])
    assert nested["spec"]["include"][0]["data"] == {"password": "<redacted>"}


@pytest.mark.kubectl
def test_real_secret_writes_logged_by_the_api_server(auth_sandbox: Any, tmp_path: Path) -> None:
    from auditor.sandbox import AuditConfig
    from tests.sandbox.authkit import kubectl_for, read_events

    log = tmp_path / "audit.log"
    sb = auth_sandbox(audit=AuditConfig(log_path=log, policy={
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
            {"level": "None", "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                  "/openapi/*", "/version"]},
            {"level": "RequestResponse"}]}))
    kubectl = kubectl_for(sb, tmp_path)
    values = [f"{MARK}-real-{n}" for n in range(5)]
    manifest = ("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: default}\n"
                f"stringData: {{password: {values[0]}}}\n")
    kubectl("apply", "-f", "-", input=manifest)  # client-side: last-applied holds the value
    kubectl("patch", "secret", "db", "--type=merge", "-p",
            json.dumps({"stringData": {"password": values[1]}}))
    kubectl("patch", "secret", "db", "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/data/password", "value": _b64(values[2])}]))
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
            input=manifest.replace(values[0], values[3]))
    kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other",
                                                           "namespace": "default"},
        "data": {"token": _b64(values[4])}}))
    kubectl("delete", "secret", "db")
    events = read_events(log)
    raw = json.dumps(events)
    assert all(v in raw or _b64(v) in raw for v in values)  # the log holds them all
    db = tmp_path / "l.db"
    with Ledger.open(db) as ledger:
        recorded = ledger.record_audit_events(events, source=f"file:{log}", at=T)
        rows = ledger.conn.execute(
            "SELECT verb, name, kind, code FROM audit_events WHERE resource = 'secrets' "
            "ORDER BY id").fetchall()
        assert ledger.verify().ok
    assert recorded == len(rows)  # every write kubectl made was on a Secret
    pairs = [(v, n) for v, n, _, _ in rows]
    # apply, the two patches, the server-side apply (kubectl 1.35 sends several patches
    # while it takes over client-side apply's fields), the create and the delete.
    assert pairs[:3] == [("create", "db"), ("patch", "db"), ("patch", "db")]
    assert pairs[-2:] == [("create", "other"), ("delete", "db")]
    assert set(pairs[3:-2]) == {("patch", "db")}
    assert {k for _, _, k, _ in rows[:-1]} == {"Secret"}
    assert _leaks(_file_bytes(db), *values) == []


# ------------------------------------------------------- deliveries, positions, chunks


def test_deliveries_split_at_silences_and_heartbeats(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:
        # Two stretches: a silence of more than SILENCE_SECONDS between them.
        gap = auditevents.SILENCE_SECONDS + 30
        events = [event("d1", t=0), event("r1", "get", t=20), event("d2", t=50),
                  event("d3", t=50 + gap), event("r2", "list", name="", t=55 + gap)]
        assert ledger.record_audit_events(events, source=FILE, at=T) == 3
        # Nothing new: a heartbeat, at most one per HEARTBEAT_SECONDS per source.
        assert ledger.record_audit_events([], source=FILE, at=T + timedelta(seconds=10)) == 0
        ledger.record_audit_events([], source=FILE, at=T + timedelta(seconds=200))
        ledger.record_audit_events([], source=FILE, at=T + timedelta(seconds=230))
        ledger.record_audit_events([], source="webhook", at=T + timedelta(seconds=230))
        ledger.record_audit_events([], source=FILE, at=T + timedelta(seconds=261))
        rows = ledger.conn.execute(
            "SELECT source, at, events, recorded, first_at, last_at FROM audit_deliveries "
            "ORDER BY id").fetchall()
        checkpoints = ledger.conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        assert ledger.verify().ok
    assert rows == [
        (FILE, "2026-11-20T10:00:00Z", 3, 2, stamp(0), stamp(50)),
        (FILE, "2026-11-20T10:00:00Z", 2, 1, stamp(50 + gap), stamp(55 + gap)),
        (FILE, "2026-11-20T10:03:20Z", 0, 0, None, None),
        ("webhook", "2026-11-20T10:03:50Z", 0, 0, None, None),
        (FILE, "2026-11-20T10:04:21Z", 0, 0, None, None)]
    assert checkpoints == 4  # one per call that wrote evidence


def test_a_source_needs_a_name_and_no_run_may_be_open(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        with pytest.raises(LedgerError, match="name of their source"):
            ledger.record_audit_events([event("x")], source=" ")
        run = ledger.begin_run(started_at=at(0))
        with pytest.raises(LedgerError, match="while a run is open"):
            ledger.record_audit_events([event("x")], source=FILE)
        run.finish()
        assert ledger.record_audit_events([event("x")], source=FILE) == 1


def test_the_position_moves_with_the_last_events(ledger_target: LedgerTarget,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = ledger_target
    monkeypatch.setattr(auditevents, "CHUNK", 4)
    with db.open() as ledger:
        assert ledger.audit_position(FILE) is None
        ledger.record_audit_events([event("p0", t=0)], source=FILE, position="inode=7:off=100",
                                   at=T)
        assert ledger.audit_position(FILE) == "inode=7:off=100"
        assert ledger.audit_position("webhook") is None

        def tail() -> Iterator[dict[str, Any]]:
            for i in range(1, 11):
                if i == 7:
                    raise OSError("tailer killed")
                yield event(f"p{i}", t=i)

        # Killed after one chunk committed (p1..p4): the position is still the old one.
        with pytest.raises(OSError, match="tailer killed"):
            ledger.record_audit_events(tail(), source=FILE, position="inode=7:off=900", at=T)
        assert audit_ids(db) == ["p0", "p1", "p2", "p3", "p4"]
        assert ledger.audit_position(FILE) == "inode=7:off=100"
        # Resumed from there: the committed chunk is delivered again, recorded once.
        again = [event(f"p{i}", t=i) for i in range(1, 11)]
        assert ledger.record_audit_events(again, source=FILE, position="inode=7:off=900",
                                          at=T) == 6
        assert ledger.audit_position(FILE) == "inode=7:off=900"
        # A heartbeat may move the position too (the file rotated, nothing new).
        ledger.record_audit_events([], source=FILE, position="inode=8:off=0",
                                   at=T + timedelta(seconds=5))
        assert ledger.audit_position(FILE) == "inode=8:off=0"
        assert ledger.verify().ok
    assert audit_ids(db) == [f"p{i}" for i in range(11)]


def test_long_deliveries_are_committed_in_chunks(ledger_target: LedgerTarget,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = ledger_target
    monkeypatch.setattr(auditevents, "CHUNK", 50)
    committed: list[int] = []
    readers = contextlib.ExitStack()
    reader = readers.enter_context(db.connect())  # another connection, no lock

    def stream() -> Iterator[dict[str, Any]]:
        for i in range(230):
            if i % 50 == 0:
                # What another reader sees before the caller hands over event i.
                committed.append(reader.execute(
                    "SELECT count(*) FROM audit_events").fetchone()[0])
            yield event(f"c{i:03d}", "get" if i % 10 == 9 else "patch", t=i)

    with db.open() as ledger:
        assert ledger.record_audit_events(stream(), source=FILE, position="end", at=T) == 207
        readers.close()
        deliveries = ledger.conn.execute(
            "SELECT events, recorded, first_at, last_at FROM audit_deliveries ORDER BY id"
        ).fetchall()
        checkpoints = ledger.conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        assert ledger.verify().ok
    # The events are written while the caller still streams: memory is one chunk's.
    assert committed == [0, 45, 90, 135, 180]
    assert [(e, r) for e, r, _, _ in deliveries] == [(50, 45)] * 4 + [(30, 27)]
    assert (deliveries[0][2], deliveries[-1][3]) == (stamp(0), stamp(229))
    assert checkpoints == 5
    assert len(audit_ids(db)) == 207


# ------------------------------------------------------------------------------ verify


def _audited(db: Path) -> None:
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(key("web"), {"v": 1}))
        run.record(in_sync(key("web")))
        run.finish()
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
              "data": {"MODE": "prod"}}
        ledger.record_audit_events(
            [event(f"v{i}", "update", resource="configmaps", group="", name="c", t=i,
                   level="RequestResponse", request=cm, response=cm) for i in range(3)],
            source=FILE, at=T)
        ledger.record_audit_events([event("v-meta", "patch", t=9)], source="webhook", at=T)
        ledger.record_audit_events([], source="webhook", at=T + timedelta(minutes=5))


@pytest.mark.parametrize("column, value", [
    ("user", "mallory"), ("verb", "get"), ("stage_at", "2026-11-20T10:00:09.000000Z"),
    ("code", 201), ("request_hash", "0" * 64), ("source", "webhook")])
def test_an_altered_audit_event_is_named_by_its_seq(tmp_path: Path, column: str,
                                                    value: object) -> None:
    db = tmp_path / "l.db"
    _audited(db)
    conn = _untriggered(db)
    row_id, seq = conn.execute("SELECT id, seq FROM audit_events WHERE audit_id = 'v1'"
                               ).fetchone()
    conn.execute(f"UPDATE audit_events SET {column} = ? WHERE id = ?", (value, row_id))
    conn.close()
    with Ledger.open(db) as ledger:
        result = ledger.verify()
    assert not result.ok and result.first_broken_seq == seq
    assert f"audit_events row {row_id}" in result.message


@pytest.mark.parametrize("audit_id, column, edit, problem", [
    ("v2", "request_object", lambda t: t.replace("prod", "dev"), "request object does not match"),
    ("v2", "response_object", lambda t: t.replace("prod", "dev"),
     "response object does not match"),
    ("v2", "request_object", lambda t: None, "request object was deleted"),
    # A Metadata-level event given an object it never had.
    ("v-meta", "response_object", lambda t: '{"kind":"Secret"}',
     "response object its chained event has no hash of"),
])
def test_an_altered_stored_object_is_found(tmp_path: Path, audit_id: str, column: str,
                                           edit: Any, problem: str) -> None:
    db = tmp_path / "l.db"
    _audited(db)
    conn = _untriggered(db)
    row_id, seq, text = conn.execute(
        f"SELECT id, seq, {column} FROM audit_events WHERE audit_id = ?", (audit_id,)
    ).fetchone()
    conn.execute(f"UPDATE audit_events SET {column} = ? WHERE id = ?", (edit(text), row_id))
    conn.close()
    with Ledger.open(db) as ledger:
        result = ledger.verify()
    assert not result.ok and result.first_broken_seq == seq
    assert problem in result.message


def test_deleted_and_inserted_audit_rows_are_found(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _audited(db)
    conn = _untriggered(db)
    seq = conn.execute("SELECT seq FROM audit_events WHERE audit_id = 'v0'").fetchone()[0]
    conn.execute("DELETE FROM audit_events WHERE seq = ?", (seq,))
    conn.close()
    with Ledger.open(db) as ledger:
        result = ledger.verify()
    assert result.first_broken_seq == seq and "was deleted" in result.message

    db2 = tmp_path / "l2.db"
    _audited(db2)
    conn = _untriggered(db2)
    cols = [c for (_, c, *_) in conn.execute("PRAGMA table_info(audit_events)")]
    row = dict(zip(cols, conn.execute("SELECT * FROM audit_events WHERE audit_id = 'v0'"
                                      ).fetchone(), strict=True))
    row.update(id=99, seq=None, audit_id="forged")
    conn.execute(f"INSERT INTO audit_events ({', '.join(row)}) VALUES "
                 f"({', '.join('?' * len(row))})", tuple(row.values()))
    # A delivery row edited to hide a silence.
    dseq = conn.execute("SELECT seq FROM audit_deliveries WHERE events = 0").fetchone()[0]
    conn.execute("UPDATE audit_deliveries SET events = 5 WHERE seq = ?", (dseq,))
    conn.close()
    with Ledger.open(db2) as ledger:
        result = ledger.verify()
    assert not result.ok and result.first_broken_seq == dseq
    assert any("audit_events row 99 is in no event" in m for _, m in result.problems)


def test_a_raw_value_that_looks_like_a_keyed_hash_is_still_redacted(tmp_path: Path) -> None:
    """Only the pipeline makes keyed hashes: in a request, ``hmac-sha256:…`` is the user's
    own value, and kept as such it would be a Secret value in the ledger."""
    db = tmp_path / "l.db"
    disguised = f"hmac-sha256:{MARK}-disguised"
    secret_ev: dict[str, Any] = dict(resource="secrets", group="", name="db",
                                     level="RequestResponse")
    events = [
        event("h-create", "create", code=201, t=1, **secret_ev,
              request={**_secret({}), "stringData": {"password": disguised}},
              response=_secret({"password": disguised})),
        event("h-patch", "patch", t=2, **secret_ev,
              request=[{"op": "replace", "path": "/stringData/password", "value": disguised}]),
    ]
    with Ledger.open(db) as ledger:
        assert ledger.record_audit_events(events, source="webhook") == 2
    assert MARK.encode() not in _file_bytes(db)


def test_credential_bodies_are_never_kept(tmp_path: Path) -> None:
    """A TokenReview's request is a bearer token, a TokenRequest's response an issued one:
    the write is recorded, its objects are not."""
    db = tmp_path / "l.db"
    token = f"{MARK}-bearer-token"
    events = [
        event("t-review", "create", code=201, t=1, resource="tokenreviews",
              group="authentication.k8s.io", namespace="", name="", level="RequestResponse",
              request={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                       "spec": {"token": token}},
              response={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                        "spec": {"token": token}, "status": {"authenticated": True}}),
        event("t-issue", "create", code=201, t=2, resource="serviceaccounts", group="",
              name="builder", subresource="token", level="RequestResponse",
              request={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"audiences": ["api"]}},
              response={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "status": {"token": token}}),
    ]
    with Ledger.open(db) as ledger:
        assert ledger.record_audit_events(events, source="webhook") == 2
        assert ledger.verify().ok
    assert MARK.encode() not in _file_bytes(db)
    assert sorted(audit_ids(db)) == ["t-issue", "t-review"]
