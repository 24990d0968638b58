"""``watch`` with the API server's audit events: the authenticating sandbox logs every request
to a file and posts it to the watch's webhook, as kube-apiserver does with
``--audit-log-path`` and ``--audit-webhook-config-file``. A change made and undone while no
one watched is still in the ledger with its user, and completeness holds the audit stream
against what the ledger recorded."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from auditor import config as config_mod
from auditor.ledger import reading
from auditor.ledger.completeness import audit_completeness
from auditor.pipeline import run_once
from auditor.sandbox import AuditConfig
from tests.sandbox.authkit import kubectl_for
from tests.watch.test_audit_webhook import webhook_kubeconfig
from tests.watch.test_watch_loop import GIT, NS, Watching, _patch, _wait

pytestmark = pytest.mark.kubectl

TOKEN = "audit-webhook-token-for-tests"
QUIET = {"level": "None", "nonResourceURLs": ["/api*", "/version", "/openapi*"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _audit_rows(ledger: Path, name: str) -> list[tuple[str, str, str, str]]:
    with reading(ledger) as conn:
        return [tuple(map(str, r)) for r in conn.execute(  # type: ignore[misc]
            "SELECT verb, user, source, kind FROM audit_events WHERE name = ? "
            "AND namespace = ? AND user = 'alice' ORDER BY stage_at", (name, NS))]


def test_a_change_undone_while_nobody_watched_is_recorded_from_the_audit_log(
        auth_sandbox: Any, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "audit" / "audit.log"
    sb = auth_sandbox(users={"alice": ["sre"]}, audit=AuditConfig(
        policy={"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                "rules": [QUIET, {"level": "Metadata"}]},
        log_path=log,
        webhook_config=webhook_kubeconfig(tmp_path / "webhook.json",
                                          f"http://127.0.0.1:{port}/audit", token=TOKEN),
        webhook_batch_max_size=400, webhook_batch_max_wait=0.2))
    admin = kubectl_for(sb, tmp_path)
    alice = kubectl_for(sb, tmp_path, "alice")
    apps = tmp_path / "git" / "apps"
    apps.mkdir(parents=True)
    (apps / "shop.yaml").write_text(GIT)
    admin("apply", "--server-side", "--field-manager=argocd-controller", "-f",
          str(apps / "shop.yaml"))
    (tmp_path / "token").write_text(TOKEN)
    kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig-auditor")
    path = tmp_path / "drift-auditor.yaml"
    path.write_text(
        f"cluster: {{name: test, kubeconfig: {kubeconfig}, retries: 1}}\n"
        f"ledger: {{path: {tmp_path / 'ledger.db'}}}\n"
        f"policies: {{directory: {tmp_path / 'no-policies'}}}\n"
        f"scope: {{include-namespaces: [{NS}]}}\n"
        f"watch: {{batch-seconds: 0.2, audit-log: {log}, audit-poll-seconds: 0.2, "
        f"webhook-host: 127.0.0.1, webhook-port: {port}, "
        f"webhook-token-file: {tmp_path / 'token'}}}\n")
    cfg = config_mod.load(str(path), env={})
    ledger = tmp_path / "ledger.db"
    assert run_once(cfg, desired_path=str(apps)).status == "complete"
    time.sleep(1.0)  # the period under test starts after the baseline (second resolution)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    # Alice changes cm-0 and puts it back while no watch runs: no list will ever see it.
    _patch(alice, "cm-0", "debug")
    _patch(alice, "cm-0", "prod")
    # Their webhook batch is posted (and dropped after its retries: nobody listens) before
    # the watch starts; else a loaded machine may start the receiver within the retries.
    sb.flush_audit()

    w = Watching(cfg, apps)
    try:
        # The tailer catches up from the start of the log; the webhook gets what follows.
        rows = _wait(lambda: [r for r in _audit_rows(ledger, "cm-0") if r[0] == "patch"],
                     "alice's two patches from the audit log")
        assert len(rows) == 2 and {r[1] for r in rows} == {"alice"}
        assert {r[2] for r in rows} == {f"file:{log}"}
        assert {r[3] for r in rows} == {"ConfigMap"}  # named through discovery
        # While the watch runs, a change reaches the ledger by both ways, recorded once.
        _patch(alice, "cm-1", "debug")
        sb.flush_audit()
        live = _wait(lambda: [r for r in _audit_rows(ledger, "cm-1") if r[0] == "patch"],
                     "alice's patch of cm-1")
        time.sleep(1.0)  # the tailer reads the same event from the file
        assert len(_audit_rows(ledger, "cm-1")) == len(live) == 1
    finally:
        w.stop()
    assert w.outcome is not None and not w.outcome.problems

    # Completeness: the watched change is matched to a ledger change; the two made while
    # nobody watched are writes no ledger change accounts for, named with their user.
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    with reading(ledger) as conn:
        result = audit_completeness(conn, started, until, until=until)
    assert result.tested
    unmatched = {(w.name, w.user, w.verb) for w in result.unmatched}
    assert unmatched == {("cm-0", "alice", "patch")}
    assert len(result.unmatched) == 2
    assert result.matched >= 1
