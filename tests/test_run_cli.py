"""`drift-auditor run` end to end: real kubectl changes against the sandbox, recorded in a
real SQLite ledger across several runs; drift lifecycle, actors, audit-log users, partial
reads, exit codes and the ledger's own verification."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from auditfixtures import as_user, write_log
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.errors import ConfigError
from auditor.ledger import drifts, reading
from auditor.pipeline import run_once

pytestmark = pytest.mark.kubectl

APPS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shop}
stringData: {token: s3cr3t-value-never-shown}
"""


@pytest.fixture
def setup(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, APPS)
    cfg_file = config_file(tmp_path, kubeconfig)
    return {"apps": apps, "config": cfg_file, "ledger": tmp_path / "ledger.db"}


def cli(setup: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(setup["config"]),
                           *args], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})


def run(setup: dict[str, Any], *args: str) -> tuple[int, Any]:
    proc = cli(setup, "run", "--desired", str(setup["apps"]), "--output", "json", *args)
    # 3: partial (a kind could not be listed); its JSON is the result the test reads.
    assert proc.returncode in (0, 1, 3), proc.stderr
    return proc.returncode, orjson.loads(proc.stdout)


def test_two_runs_record_changes_with_their_actors(setup: dict[str, Any], kubectl: Any) -> None:
    code, first = run(setup)
    assert code == 0 and first["run"]["status"] == "complete"
    assert first["summary"]["in_sync"] == 4

    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
    code, second = run(setup)
    assert code == 1
    assert second["run"]["ledger"]["drifts_opened"] == 1
    assert second["run"]["ledger"]["changes"] == 1

    # Nothing changed since: the drifted verdict is reused, identical, and stays open.
    code, third = run(setup)
    assert code == 1
    assert third["run"]["ledger"]["drifts_still_open"] == 1
    assert third["run"]["ledger"]["drifts_opened"] == 0
    assert [r for r in third["resources"] if r["status"] == "drifted"] == \
        [r for r in second["resources"] if r["status"] == "drifted"]

    history = cli(setup, "history", "--output", "json")
    assert history.returncode == 0, history.stderr
    entries = orjson.loads(history.stdout)
    change = next(e for e in entries if e["type"] == "change")
    assert change["object"].endswith("shop/web") and change["actor"] == "kubectl-set"
    assert change["category"] == "human"

    verify = cli(setup, "verify")
    assert verify.returncode == 0 and "ledger OK" in verify.stdout
    # The Secret's value never reaches the ledger file.
    raw = setup["ledger"].read_bytes()
    for wal in setup["ledger"].parent.glob("ledger.db-wal"):
        raw += wal.read_bytes()
    assert b"s3cr3t-value-never-shown" not in raw
    assert b"czNjcjN0LXZhbHVlLW5ldmVyLXNob3du" not in raw


def test_exit_zero_on_drift_for_cronjobs(setup: dict[str, Any], kubectl: Any) -> None:
    run(setup)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:9.9.9")
    proc = cli(setup, "run", "--desired", str(setup["apps"]), "--exit-zero-on-drift")
    assert proc.returncode == 0, proc.stderr
    assert "1 drifted" in proc.stdout
    (setup["apps"] / "broken.yaml").write_text("kind: [\n")
    proc = cli(setup, "run", "--desired", str(setup["apps"]), "--exit-zero-on-drift")
    assert proc.returncode == 2, "an audit with errors still fails the Job"


def test_drift_fixed_live_resolves_and_steady_state_observes_nothing(
        setup: dict[str, Any], kubectl: Any) -> None:
    run(setup)
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=7")
    code, doc = run(setup)
    assert code == 1
    [web] = [r for r in doc["resources"] if r["name"] == "web"]
    assert web["drifts"][0]["path"] == "spec.replicas" and web["drifts"][0]["manager"] == "kubectl"

    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=2")
    code, doc = run(setup)
    assert code == 0
    assert doc["run"]["ledger"]["drifts_resolved"] == {"fixed-live": 1}

    code, doc = run(setup)
    assert code == 0
    with reading(setup["ledger"]) as conn:
        last = conn.execute("SELECT counts FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    counts = orjson.loads(last)
    assert counts["observed"] == 0, "an unchanged cluster writes no object versions"
    assert counts["unchanged"] >= 4
    assert counts["reused_verdicts"] == 4, "unchanged pairs are not compared again"
    # Where the time went, stage by stage.
    assert set(counts["seconds"]) == {"discovery", "desired", "list_and_compare", "revert",
                                      "policies"}

    # A change to a pair whose verdict was cached is still seen.
    kubectl("-n", "shop", "label", "configmap", "settings", "owner=bob")
    code, doc = run(setup)
    assert code == 1
    [cm] = [r for r in doc["resources"] if r["name"] == "settings"]
    assert cm["drifts"][0]["path"] == "metadata.labels.owner"


def test_forbidden_kind_makes_the_run_partial_and_keeps_its_drift_open(
        setup: dict[str, Any], kubectl: Any, sandbox: Any) -> None:
    run(setup)
    kubectl("-n", "shop", "patch", "configmap", "settings", "-p", '{"data":{"MODE":"debug"}}')
    code, _ = run(setup)
    assert code == 1
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/configmaps$", status=403)
    proc = cli(setup, "run", "--desired", str(setup["apps"]), "--output", "json")
    assert proc.returncode == 3, proc.stderr
    doc = orjson.loads(proc.stdout)
    assert doc["run"]["status"] == "partial" and doc["run"]["skipped_kinds"] == ["ConfigMap"]
    assert "ConfigMap" not in {r["kind"] for r in doc["resources"]}
    with reading(setup["ledger"]) as conn:
        still = [d for d in drifts(conn) if d["object"].startswith("ConfigMap")]
    assert still and still[0]["state"] == "open", "a skipped kind never resolves its drift"


def test_a_partial_run_exits_3_before_drift_unless_the_user_opts_out(
        setup: dict[str, Any], kubectl: Any, sandbox: Any) -> None:
    apps = str(setup["apps"])

    def code(*args: str) -> int:
        proc = cli(setup, *args)
        assert proc.returncode in (0, 1, 3), proc.stderr
        return proc.returncode

    assert code("run", "--desired", apps) == 0
    # ConfigMaps keep failing (5xx on every retry): the kind is skipped, the run partial.
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/configmaps$", status=500)
    proc = cli(setup, "run", "--desired", apps)
    assert proc.returncode == 3, proc.stderr
    assert "partial" in proc.stdout
    assert "skipped kinds (not audited this run): ConfigMap" in proc.stdout
    # Drift is a result a CronJob accepts; a partial audit is not.
    assert code("run", "--desired", apps, "--exit-zero-on-drift") == 3
    assert code("run", "--desired", apps, "--exit-zero-on-partial") == 0
    assert code("diff", "--desired", apps) == 3
    assert code("diff", "--desired", apps, "--exit-zero-on-partial") == 0

    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:3.0.0")
    assert code("run", "--desired", apps) == 3, "partial outranks drift"
    assert code("run", "--desired", apps, "--exit-zero-on-partial") == 1
    assert code("run", "--desired", apps, "--exit-zero-on-partial", "--exit-zero-on-drift") == 0
    assert code("diff", "--desired", apps) == 3
    assert code("diff", "--desired", apps, "--exit-zero-on-partial") == 1

    sandbox.faults.clear()
    proc = cli(setup, "run", "--desired", apps, "--output", "json")
    assert proc.returncode == 1, proc.stderr
    doc = orjson.loads(proc.stdout)
    assert (doc["run"]["status"], doc["run"]["skipped_kinds"]) == ("complete", [])
    with reading(setup["ledger"]) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]
    assert statuses == ["complete", "partial", "partial", "partial", "partial", "partial",
                        "partial", "complete"]


def test_help_documents_every_exit_status() -> None:
    for command in ("run", "diff"):
        proc = subprocess.run([sys.executable, "-m", "auditor.cli", command, "--help"],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        text = " ".join(proc.stdout.split())
        assert "Exit 0 in sync, 1 drift/missing/orphan, 2 error, 3 partial" in text, text
        assert "--exit-zero-on-partial" in text


def test_audit_log_names_the_user(setup: dict[str, Any], kubectl: Any, tmp_path: Path) -> None:
    run(setup)
    # The audit event kube-apiserver writes for the very request kubectl made.
    events = as_user(kubectl, "alice@example.com", ("sre", "system:authenticated"), "-n", "shop",
                     "set", "image", "deployment/web", "web=shop/web:3.0.0")
    assert "fieldManager=kubectl-set" in events[0]["requestURI"]
    log = write_log(tmp_path / "audit.jsonl", events)
    code, _ = run(setup, "--audit-log", str(log))
    assert code == 1
    entries = orjson.loads(cli(setup, "history", "--output", "json").stdout)
    change = next(e for e in entries if e["type"] == "change")
    assert "alice@example.com" in orjson.dumps(change).decode()


def test_run_without_sources_is_a_config_error(tmp_path: Path) -> None:
    cfg = config_mod.load(None, env={"DRIFT_AUDITOR_LEDGER_PATH": str(tmp_path / "l.db")})
    with pytest.raises(ConfigError, match="no Git source configured"):
        run_once(cfg)
    assert not (tmp_path / "l.db").exists(), "nothing is written before the config is usable"


def _object_changes(ledger: Path, kind: str, name: str) -> list[str]:
    with reading(ledger) as conn:
        return [row[0] for row in conn.execute(
            "SELECT c.change FROM changes c JOIN objects o ON o.id = c.object_id "
            "WHERE o.kind = ? AND o.name = ? ORDER BY c.id", (kind, name))]


HAND_MADE = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: by-hand, namespace: shop}
data: {k: v}
---
apiVersion: v1
kind: Namespace
metadata: {name: scratch}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: notes, namespace: scratch}
data: {a: b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: scratch}
"""


def test_deleting_what_git_does_not_declare_is_recorded(
        setup: dict[str, Any], kubectl: Any, sandbox: Any) -> None:
    """`kubectl delete` of an object outside Git (a hand-made orphan, a controller's object)
    is a change like any other; a kind the run could not list proves nothing."""
    run(setup)
    kubectl("create", "-f", "-", input=HAND_MADE)
    _, doc = run(setup)
    assert [r["name"] for r in doc["resources"] if r["status"] == "orphan"] == ["by-hand"]
    assert _object_changes(setup["ledger"], "ConfigMap", "by-hand") == ["created"]

    kubectl("-n", "shop", "delete", "configmap", "by-hand")
    kubectl("-n", "scratch", "delete", "configmap", "notes")
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/serviceaccounts$", status=403)
    kubectl("-n", "scratch", "delete", "serviceaccount", "robot")
    _, doc = run(setup)
    assert doc["run"]["ledger"]["deletions"] == 2
    assert _object_changes(setup["ledger"], "ConfigMap", "by-hand") == ["created", "deleted"]
    assert _object_changes(setup["ledger"], "ConfigMap", "notes") == ["created", "deleted"]
    # ServiceAccounts could not be listed: the robot is not taken for deleted.
    assert _object_changes(setup["ledger"], "ServiceAccount", "robot") == ["created"]
    with reading(setup["ledger"]) as conn:
        orphan = [d for d in drifts(conn) if "by-hand" in d["object"]]
    assert orphan == [], "the orphan's drift resolved with its deletion"

    _, doc = run(setup)
    assert doc["run"]["ledger"]["deletions"] == 0, "a deletion is recorded once"
    verify = cli(setup, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
