"""The audit webhook receiver (:mod:`auditor.web.auditwebhook`): real HTTP(S) on a local port,
a real SQLite ledger in a temporary directory, and the sandbox API server's webhook backend as
the real sender for real kubectl 1.35 requests."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import logging
import pathlib
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auditor.errors import ConfigError, LedgerError
from auditor.ledger import Ledger
from auditor.sandbox import AuditConfig, Sandbox
from auditor.sandbox.tls import ServingCerts, make_serving_certs
from auditor.web.access import BearerToken, tls_context
from auditor.web.auditwebhook import AuditSink, AuditWebhook, LedgerSink, mtls_context
from tests.sandbox.authkit import kubectl_for

API = "audit.k8s.io/v1"
TOKEN = "hook-token-0123456789"
SECRET_MARKER = "hunter2-never-in-the-ledger"
QUIET_DISCOVERY = {"level": "None", "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                        "/openapi/*", "/version"]}
Start = Callable[..., Sandbox]
MakeHook = Callable[..., AuditWebhook]


def event(n: int, *, user: str = "alice", verb: str = "update", name: str | None = None,
          note: str = "") -> dict[str, Any]:
    """A Metadata-level ConfigMap write as kube-apiserver's webhook sends it (no kind)."""
    at = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC) + dt.timedelta(milliseconds=n)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"level": "Metadata", "auditID": f"00000000-0000-4000-8000-{n:012d}",
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/default/configmaps/{name or f'cm-{n}'}",
            "verb": verb, "user": {"username": user, "groups": ["sre", "system:authenticated"]},
            "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.35.0 (linux/amd64)",
            "objectRef": {"resource": "configmaps", "namespace": "default",
                          "name": name or f"cm-{n}", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
            "annotations": {"authorization.k8s.io/decision": "allow",
                            "authorization.k8s.io/reason": note}}


def event_list(first: int, count: int, **kw: Any) -> bytes:
    return orjson.dumps({"kind": "EventList", "apiVersion": API, "metadata": {},
                         "items": [event(first + i, **kw) for i in range(count)]})


def post(hook: AuditWebhook, body: bytes, *, token: str | None = TOKEN, path: str = "/audit",
         method: str = "POST", headers: dict[str, str] | None = None,
         context: ssl.SSLContext | None = None,
         timeout: float = 30) -> tuple[int, dict[str, Any], dict[str, str]]:
    conn: http.client.HTTPConnection
    if context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", hook.port, timeout=timeout,
                                           context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", hook.port, timeout=timeout)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, (orjson.loads(data) if data else {}), dict(resp.getheaders())


def rows(ledger: pathlib.Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM audit_events ORDER BY id")]
    finally:
        conn.close()


def ledger_bytes(ledger: pathlib.Path) -> bytes:
    return b"".join(p.read_bytes() for p in (ledger, ledger.with_name(ledger.name + "-wal"))
                    if p.exists())


@pytest.fixture
def ledger(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def make_hook(ledger: pathlib.Path) -> Iterator[MakeHook]:
    """Start receivers on a free loopback port (bearer token, ledger sink unless given);
    each is stopped at the end of the test."""
    started: list[AuditWebhook] = []

    def make(sink: AuditSink | None = None, **kw: Any) -> AuditWebhook:
        kw.setdefault("token", BearerToken(TOKEN))
        hook = AuditWebhook(sink or LedgerSink(ledger, lock_wait=10), host="127.0.0.1",
                            port=0, **kw)
        hook.start()
        started.append(hook)
        return hook

    yield make
    for hook in started:
        hook.stop()


def webhook_kubeconfig(path: pathlib.Path, url: str, *, token: str | None = None,
                       ca_pem: bytes | None = None, client_cert: bytes | None = None,
                       client_key: bytes | None = None) -> pathlib.Path:
    """An ``--audit-webhook-config-file`` naming the receiver (JSON is YAML)."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    cluster: dict[str, Any] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = b64(ca_pem)
    user: dict[str, Any] = {}
    if token is not None:
        user["token"] = token
    if client_cert is not None and client_key is not None:
        user.update({"client-certificate-data": b64(client_cert),
                     "client-key-data": b64(client_key)})
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "audit", "cluster": cluster}],
        "users": [{"name": "kube-apiserver", "user": user}],
        "contexts": [{"name": "webhook", "context": {"cluster": "audit",
                                                     "user": "kube-apiserver"}}],
        "current-context": "webhook"}))
    return path


def serving_files(certs: ServingCerts, tmp: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    cert.write_bytes(certs.cert_pem)
    key.write_bytes(certs.key_pem)
    return cert, key


def client_certs() -> tuple[bytes, bytes, bytes]:
    """(CA PEM, client certificate PEM, its key PEM): kube-apiserver's webhook client."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "audit-client-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


# -- the real sender: kube-apiserver's webhook backend (the sandbox's) -------------------------


SECRET = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: default}}
stringData: {{password: {SECRET_MARKER}}}
"""
API_SECRET = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: api, namespace: default}}
data: {{key: {base64.b64encode(SECRET_MARKER.encode()).decode()}}}
"""


def configmap(name: str, namespace: str = "default") -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
            f"{namespace}}}\ndata: {{a: '1'}}\n")


@pytest.mark.kubectl
def test_kubectl_changes_land_in_the_ledger_by_batch(auth_sandbox: Start, make_hook: MakeHook,
                                                     ledger: pathlib.Path,
                                                     tmp_path: pathlib.Path) -> None:
    hook = make_hook()
    sb = auth_sandbox(users={"alice": ["sre"]}, audit=AuditConfig(
        # RequestResponse: the Secret's value travels in the events; it must not be kept.
        policy={"apiVersion": API, "kind": "Policy",
                "rules": [QUIET_DISCOVERY, {"level": "RequestResponse"}]},
        webhook_config=webhook_kubeconfig(tmp_path / "webhook.json", hook.url, token=TOKEN),
        webhook_batch_max_size=400, webhook_batch_max_wait=0.2))
    alice = kubectl_for(sb, tmp_path, "alice")
    # (``kubectl create configmap`` sends protobuf, which the sandbox does not speak.)
    alice("create", "-f", "-", input=configmap("settings"))
    alice("apply", "-f", "-", input=SECRET)
    alice("create", "-f", "-", input=API_SECRET)
    alice("label", "configmap", "settings", "tier=web")
    alice("delete", "configmap", "settings")
    sb.flush_audit()  # returns once the POST was answered: 200 means committed

    found = rows(ledger)
    writes = {(r["verb"], r["resource"], r["name"]) for r in found}
    assert writes >= {("create", "configmaps", "settings"), ("patch", "configmaps", "settings"),
                      ("delete", "configmaps", "settings"), ("create", "secrets", "db"),
                      ("create", "secrets", "api")}
    assert {r["user"] for r in found} == {"alice"}
    assert {r["source"] for r in found} == {"webhook"}
    create = next(r for r in found if r["verb"] == "create" and r["resource"] == "configmaps")
    assert (create["namespace"], create["kind"], create["grp"]) == ("default", "ConfigMap", "")
    assert json.loads(create["groups"]) == ["sre", "system:authenticated"]
    # Reads were delivered too (counted as deliveries, not recorded as writes).
    assert hook.stats.accepted_events > len(found)
    assert hook.stats.rejected == {}
    stored = ledger_bytes(ledger)
    assert SECRET_MARKER.encode() not in stored
    assert base64.b64encode(SECRET_MARKER.encode()) not in stored
    with Ledger.open(ledger) as opened:
        assert opened.verify().ok


@pytest.mark.kubectl
def test_client_certificate_over_tls_in_blocking_mode(auth_sandbox: Start,
                                                      make_hook: MakeHook,
                                                      ledger: pathlib.Path,
                                                      tmp_path: pathlib.Path) -> None:
    serving = make_serving_certs("127.0.0.1")
    ca, cert, key = client_certs()
    (tmp_path / "client-ca.crt").write_bytes(ca)
    tls = mtls_context(*serving_files(serving, tmp_path), tmp_path / "client-ca.crt")
    hook = make_hook(token=None, tls=tls)  # the client certificate is the authentication
    assert hook.url.startswith("https://127.0.0.1:")
    sb = auth_sandbox(audit=AuditConfig(
        policy={"apiVersion": API, "kind": "Policy",
                "rules": [QUIET_DISCOVERY, {"level": "Metadata",
                                            "omitStages": ["RequestReceived"]}]},
        webhook_config=webhook_kubeconfig(tmp_path / "webhook.json", hook.url,
                                          ca_pem=serving.ca_pem, client_cert=cert,
                                          client_key=key),
        webhook_mode="blocking"))
    kubectl = kubectl_for(sb, tmp_path)
    kubectl("create", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    kubectl("create", "-f", "-", input=configmap("prices", "shop"))
    # Blocking: the event was committed before kubectl got its answer.
    found = {(r["verb"], r["resource"], r["namespace"], r["name"], r["user"])
             for r in rows(ledger)}
    assert ("create", "configmaps", "shop", "prices", "kubernetes-admin") in found
    assert ("create", "namespaces", "", "shop", "kubernetes-admin") in found

    # Without a client certificate the handshake fails; nothing is answered or recorded.
    bare = ssl.create_default_context(cadata=serving.ca_pem.decode())
    with pytest.raises((ssl.SSLError, ConnectionError)):
        post(hook, event_list(0, 1), token=None, context=bare)
    assert len(rows(ledger)) == len(found)


def test_https_with_a_token_keeps_the_connection_alive(make_hook: MakeHook,
                                                       ledger: pathlib.Path,
                                                       tmp_path: pathlib.Path) -> None:
    serving = make_serving_certs("127.0.0.1")
    hook = make_hook(tls=tls_context(*serving_files(serving, tmp_path)))
    conn = http.client.HTTPSConnection("127.0.0.1", hook.port, timeout=10, context=ssl.
                                       create_default_context(cadata=serving.ca_pem.decode()))
    answers = []
    # One connection, as Go's client keeps it: a refused body is read and dropped, so the
    # connection goes on.
    for n, token in enumerate(("wrong", TOKEN, TOKEN)):
        conn.request("POST", "/audit", body=event_list(n * 10, 10),
                     headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        answers.append((resp.status, resp.getheader("Connection")))
    conn.close()
    assert answers == [(401, None), (200, None), (200, None)]
    assert len(rows(ledger)) == 20


# -- what is acknowledged is recorded, exactly once --------------------------------------------


def test_a_repeated_delivery_is_recorded_once(make_hook: MakeHook,
                                              ledger: pathlib.Path) -> None:
    hook = make_hook()
    body = event_list(0, 50)
    assert post(hook, body)[0] == 200
    status, answer, _ = post(hook, body)  # the answer was lost: kube-apiserver sends again
    assert status == 200
    assert answer["kind"] == "Status" and answer["status"] == "Success"
    # A single Event (with its kind) is a delivery too; its auditID is already held.
    single = orjson.dumps({"kind": "Event", "apiVersion": API, **event(7)})
    assert post(hook, single)[0] == 200
    assert post(hook, orjson.dumps({"kind": "Event", "apiVersion": API, **event(50)}))[0] == 200
    assert [r["audit_id"] for r in rows(ledger)] == [event(n)["auditID"] for n in range(51)]
    stats = hook.stats
    assert (stats.accepted_requests, stats.accepted_events) == (4, 102)
    assert (stats.committed_events, stats.new_events) == (102, 51)


def test_refusals_record_nothing_and_log_no_secret(make_hook: MakeHook, ledger: pathlib.Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="auditor.web.auditwebhook")
    hook = make_hook(max_body=50_000)
    good = event_list(0, 3, note=SECRET_MARKER)
    cases: list[tuple[int, dict[str, Any], str]] = [
        (401, {"token": None}, "bearer token"),
        (401, {"token": "wrong-" + TOKEN}, "bearer token"),
        (404, {"path": "/other"}, "no such path"),
        (405, {"method": "PUT"}, "PUT is not allowed"),
        (400, {"body": b'{"kind": "EventList", "items": [}'}, "not JSON (line 1"),
        (400, {"body": b"[1, 2]"}, "not a JSON object"),
        (400, {"body": orjson.dumps({"kind": "Pod", "apiVersion": "v1"})}, "apiVersion 'v1'"),
        (400, {"body": orjson.dumps({"kind": "Policy", "apiVersion": API})},
         "kind 'Policy': expected EventList or Event"),
        (400, {"body": orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1",
                                     "items": [event(1)]})}, "expected audit.k8s.io/v1"),
        (400, {"body": orjson.dumps({"kind": "EventList", "apiVersion": API, "items": {}})},
         "items is not a list"),
        (400, {"body": orjson.dumps({"kind": "EventList", "apiVersion": API,
                                     "items": [event(1), "x"]})}, "items[1] is not an object"),
        (413, {"body": event_list(0, 100)}, "at most 50000"),
        (411, {"headers": {"Transfer-Encoding": "chunked"}}, "Content-Length"),
        (415, {"headers": {"Content-Encoding": "gzip"}}, "compressed"),
    ]
    for status, how, reason in cases:
        body = how.get("body", good)
        got, answer, headers = post(hook, body, token=how.get("token", TOKEN),
                                    path=how.get("path", "/audit"),
                                    method=how.get("method", "POST"),
                                    headers=how.get("headers"))
        assert got == status, (how, answer)
        assert answer["code"] == status and answer["status"] == "Failure"
        assert reason in answer["message"] and "\n" not in answer["message"]
        if status == 401:
            assert headers["WWW-Authenticate"].startswith("Bearer")
    assert rows(ledger) == []
    assert hook.stats.rejected == {401: 2, 404: 1, 405: 1, 400: 7, 413: 1, 411: 1, 415: 1}
    assert post(hook, good)[0] == 200  # the same receiver still records good deliveries
    assert len(rows(ledger)) == 3
    logged = caplog.text
    assert "400 to 127.0.0.1" in logged
    assert TOKEN not in logged and SECRET_MARKER not in logged


def test_no_authentication_is_refused(ledger: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="no authentication"):
        AuditWebhook(LedgerSink(ledger), host="127.0.0.1", port=0)


# -- slow clients ------------------------------------------------------------------------------


def _slow_client(port: int, *, trickle: bool) -> tuple[socket.socket, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    if trickle:
        sock.sendall(b"POST /audit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + TOKEN.encode() + b"\r\nContent-Length: 100000\r\n\r\n")
    return sock, started


def _cut_after(sock: socket.socket, started: float, trickle: bool, limit: float) -> float:
    """Seconds until the server closed ``sock`` (sending a byte every 0.1 s if ``trickle``)."""
    sock.settimeout(0.1)
    while time.monotonic() - started < limit:
        try:
            if trickle:
                sock.sendall(b"x")
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset by the shutdown
            return time.monotonic() - started
    raise AssertionError(f"the slow client was not cut within {limit} s")


def test_a_slow_client_is_cut_at_the_read_timeout_and_blocks_no_one(
        make_hook: MakeHook, ledger: pathlib.Path) -> None:
    hook = make_hook(read_timeout=1.0, max_connections=4)
    slow, started = _slow_client(hook.port, trickle=True)
    try:
        begun = time.monotonic()
        assert post(hook, event_list(0, 5))[0] == 200  # while the slow one trickles
        assert time.monotonic() - begun < 0.8
        # A byte every 0.1 s never trips a socket timeout; the request's deadline does.
        assert 0.8 <= _cut_after(slow, started, trickle=True, limit=5) < 2.5
    finally:
        slow.close()
    assert len(rows(ledger)) == 5


def test_connections_beyond_the_limit_wait_for_a_slot(make_hook: MakeHook,
                                                      ledger: pathlib.Path) -> None:
    hook = make_hook(read_timeout=0.6, max_connections=1)
    silent, _ = _slow_client(hook.port, trickle=False)  # holds the only slot, says nothing
    try:
        begun = time.monotonic()
        assert post(hook, event_list(0, 2))[0] == 200
        waited = time.monotonic() - begun
    finally:
        silent.close()
    assert 0.3 <= waited < 2.5
    assert len(rows(ledger)) == 2


# -- failures: 503, nothing acknowledged -------------------------------------------------------


def test_a_failing_sink_is_a_503_and_nothing_is_acknowledged(make_hook: MakeHook,
                                                             ledger: pathlib.Path) -> None:
    real = LedgerSink(ledger)
    failures = [LedgerError("disk full"), RuntimeError("a bug")]

    def sink(events: list[dict[str, Any]]) -> int:
        if failures:
            raise failures.pop(0)
        return real(events)

    hook = make_hook(sink)
    for _ in range(2):
        status, answer, headers = post(hook, event_list(0, 10))
        assert status == 503
        assert headers["Retry-After"] == "5"
        # The Kubernetes REST client retries only when the Status suggests a delay.
        assert answer["details"] == {"retryAfterSeconds": 5}
        assert answer["reason"] == "ServiceUnavailable"
    assert rows(ledger) == []
    stats = hook.stats
    assert (stats.accepted_requests, stats.failed_batches, stats.rejected) == (0, 2, {503: 2})
    assert post(hook, event_list(0, 10))[0] == 200  # kube-apiserver's retry
    assert len(rows(ledger)) == 10


def test_a_locked_ledger_delays_the_answer_then_records(make_hook: MakeHook,
                                                        ledger: pathlib.Path) -> None:
    hook = make_hook()  # the sink waits up to 10 s for the lock
    holder = Ledger.open(ledger)  # a `run` holding the writer lock
    answers: list[int] = []
    sender = threading.Thread(target=lambda: answers.append(post(hook, event_list(0, 20))[0]))
    begun = time.monotonic()
    sender.start()
    time.sleep(1.0)
    assert answers == [] and hook.stats.pending_events == 20
    holder.close()
    sender.join(10)
    assert answers == [200]
    assert time.monotonic() - begun >= 0.9
    assert len(rows(ledger)) == 20


def test_a_ledger_locked_past_the_wait_is_a_503(make_hook: MakeHook,
                                                ledger: pathlib.Path) -> None:
    hook = make_hook(LedgerSink(ledger, lock_wait=0.3))
    with Ledger.open(ledger):
        status, answer, _ = post(hook, event_list(0, 20))
        assert status == 503 and "could not be written" in answer["message"]
    assert rows(ledger) == []
    assert post(hook, event_list(0, 20))[0] == 200
    assert len(rows(ledger)) == 20


# -- bursts ------------------------------------------------------------------------------------


def test_a_burst_beyond_the_pending_limit_is_all_recorded(make_hook: MakeHook,
                                                          ledger: pathlib.Path) -> None:
    real = LedgerSink(ledger)
    peaks: list[int] = []
    holder: list[AuditWebhook] = []

    def sink(events: list[dict[str, Any]]) -> int:
        peaks.append(holder[0].stats.pending_events)
        time.sleep(0.05)  # a slower disk: the queue fills up for sure
        return real(events)

    limit, senders, per_sender, size = 1000, 10, 2, 400
    # A short commit timeout: requests wait too long for room and get a 503; like
    # kube-apiserver, the senders send those again.
    hook = make_hook(sink, max_pending_events=limit, commit_timeout=0.4)
    holder.append(hook)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(k: int) -> None:
        for j in range(per_sender):
            body = event_list((k * per_sender + j) * size, size)
            for _ in range(200):
                status = post(hook, body)[0]
                with lock:
                    statuses.append(status)
                if status == 200:
                    break
                assert status == 503
                time.sleep(0.05)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    total = senders * per_sender * size
    assert statuses.count(200) == senders * per_sender
    assert statuses.count(503) > 0
    assert len({r["audit_id"] for r in rows(ledger)}) == len(rows(ledger)) == total
    assert max(peaks) <= limit
    stats = hook.stats
    assert stats.accepted_events == total and stats.pending_events == 0
    assert stats.commit_batches < senders * per_sender + statuses.count(503)


def test_stop_answers_and_commits_what_was_accepted(ledger: pathlib.Path) -> None:
    real = LedgerSink(ledger)

    def slow(events: list[dict[str, Any]]) -> int:
        time.sleep(0.5)
        return real(events)

    hook = AuditWebhook(slow, host="127.0.0.1", port=0, token=BearerToken(TOKEN))
    hook.start()
    answers: list[int] = []
    senders = [threading.Thread(target=lambda k=k: answers.append(
        post(hook, event_list(k * 10, 10))[0])) for k in range(3)]
    for t in senders:
        t.start()
    deadline = time.monotonic() + 5
    while hook.stats.pending_events < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    hook.stop()
    for t in senders:
        t.join(5)
    assert answers == [200, 200, 200]
    assert len(rows(ledger)) == 30
    with pytest.raises(OSError):
        post(hook, event_list(100, 1), timeout=2)
