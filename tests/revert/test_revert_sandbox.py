"""Auto-revert end to end: Git applied by an Argo-like GitOps manager, real kubectl changes
made out of band, then ``run_once`` (and the CLI) with ``revert.mode`` set, against the
sandbox API server and a real SQLite ledger."""

from __future__ import annotations

import base64
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.config import Config, RevertConfig
from auditor.ledger import Ledger, reading
from auditor.ledger import reverts as ledger_reverts
from auditor.pipeline import RunOutcome, run_once
from auditor.sandbox import Sandbox

pytestmark = pytest.mark.kubectl

SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
          env:
            - {name: MODE, value: prod}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
    - {port: 80, targetPort: 8080}
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
SECRET_VALUE = b"s3cr3t-value-never-shown"
HUMAN_SECRET = "hum4n-added-s3cret"


@pytest.fixture
def shop(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    apps = tmp_path / "git"
    sync_from_git(kubectl, apps, SHOP)
    cfg_file = config_file(tmp_path, kubeconfig)
    cfg = config_mod.load(cfg_file, env={})
    return {"apps": apps, "config": cfg_file, "cfg": cfg, "ledger": tmp_path / "ledger.db"}


def with_revert(cfg: Config, **kw: Any) -> Config:
    base = {"mode": "enforce", "recreate_missing": True, "max_objects": 10}
    return replace(cfg, revert=RevertConfig(**{**base, **kw}))


def run(shop: dict[str, Any], **revert: Any) -> RunOutcome:
    cfg = with_revert(shop["cfg"], **revert) if revert else shop["cfg"]
    return run_once(cfg, desired_path=str(shop["apps"]))


def statuses(outcome: RunOutcome) -> dict[str, str]:
    return {f"{r.key.kind}/{r.key.name}": r.status for r in outcome.audit.results}


def get(kubectl: Any, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(kubectl("-n", "shop", "get", *args, "-o", "json",
                                               "--show-managed-fields").stdout)
    return doc


def versions(sandbox: Sandbox) -> dict[str, str]:
    """resourceVersion of every object in the shop namespace (and the namespace itself)."""
    out: dict[str, str] = {}
    for res, ns, name, obj in sandbox_objects(sandbox):
        if ns == "shop" or (res == "Namespace" and name == "shop"):
            out[f"{res}/{name}"] = obj["metadata"]["resourceVersion"]
    return out


def sandbox_objects(sandbox: Sandbox) -> list[tuple[str, str, str, dict[str, Any]]]:
    import http.client

    out = []
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port)
    for path, kind in (("/api/v1/namespaces", "Namespace"),
                       ("/api/v1/namespaces/shop/services", "Service"),
                       ("/api/v1/namespaces/shop/configmaps", "ConfigMap"),
                       ("/api/v1/namespaces/shop/secrets", "Secret"),
                       ("/apis/apps/v1/namespaces/shop/deployments", "Deployment")):
        conn.request("GET", path)
        for item in orjson.loads(conn.getresponse().read())["items"]:
            meta = item["metadata"]
            out.append((kind, meta.get("namespace", ""), meta["name"], item))
    conn.close()
    return out


def human_changes(kubectl: Any) -> None:
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=5")
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    kubectl("-n", "shop", "set", "env", "deployment/web", "DEBUG=1")
    kubectl("-n", "shop", "label", "configmap/settings", "touched-by=ops")
    kubectl("-n", "shop", "patch", "secret/token", "--type=merge", "-p",
            orjson.dumps({"stringData": {"extra": HUMAN_SECRET}}).decode())
    kubectl("-n", "shop", "delete", "service", "web")


def test_enforce_restores_every_change_and_the_next_run_is_in_sync(
        shop: dict[str, Any], kubectl: Any) -> None:
    first = run(shop)
    assert set(statuses(first).values()) == {"in-sync"}

    human_changes(kubectl)
    # One audit without revert: the drifts open (as they would before revert was enabled).
    seen = run(shop)
    assert statuses(seen) == {"Namespace/shop": "in-sync", "Deployment/web": "drifted",
                              "Service/web": "missing", "ConfigMap/settings": "drifted",
                              "Secret/token": "drifted"}

    fixed = run(shop, mode="enforce")
    assert fixed.ledger["drifts_resolved"] == {"reverted": 4}
    web = get(kubectl, "deployment/web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert web["spec"]["replicas"] == 2
    assert container["image"] == "shop/web:1.0.0"
    assert container["env"] == [{"name": "MODE", "value": "prod"}]
    assert get(kubectl, "service/web")["spec"]["ports"][0]["port"] == 80
    assert "touched-by" not in get(kubectl, "configmap/settings")["metadata"].get("labels", {})
    secret = get(kubectl, "secret/token")
    assert set(secret["data"]) == {"token"}
    assert base64.b64decode(secret["data"]["token"]) == SECRET_VALUE
    # Controllers' and GitOps' entries stay; the humans' are gone.
    managers = {e["manager"] for e in web["metadata"]["managedFields"]}
    assert {"argocd-controller", "drift-auditor"} <= managers
    assert "kubectl-set" not in managers

    again = run(shop, mode="enforce")
    assert set(statuses(again).values()) == {"in-sync"}
    assert again.observed == 4  # the four reverted objects, seen once more, then quiet
    assert again.ledger["drifts_opened"] == 0

    with reading(shop["ledger"]) as conn:
        rows = ledger_reverts.history(conn)
    assert [(r["kind"], r["name"], r["result"], r["mode"]) for r in rows] == [
        ("ConfigMap", "settings", "reverted", "enforce"),
        ("Secret", "token", "reverted", "enforce"),
        ("Service", "web", "reverted", "enforce"),
        ("Deployment", "web", "reverted", "enforce")]  # dependency order
    web_row = rows[-1]
    assert {i["path"] for i in web_row["items"]} >= {
        "spec.replicas", "spec.template.spec.containers[name=web].image",
        "spec.template.spec.containers[name=web].env[name=DEBUG]"}
    assert web_row["managers"] == ["kubectl-set"]
    assert web_row["resource_version_after"] != web_row["resource_version_before"]
    with Ledger.open(shop["ledger"]) as ledger:
        assert ledger.verify().ok
    # Neither Git's Secret value nor the human's ever reaches the ledger.
    raw = b"".join(p.read_bytes() for p in shop["ledger"].parent.glob("ledger.db*"))
    for value in (SECRET_VALUE, HUMAN_SECRET.encode()):
        assert value not in raw and base64.b64encode(value) not in raw


def test_dry_run_changes_nothing_and_records_what_would_change(
        shop: dict[str, Any], kubectl: Any, sandbox: Sandbox) -> None:
    run(shop)
    human_changes(kubectl)
    before = versions(sandbox)
    out = run(shop, mode="dry-run")
    assert versions(sandbox) == before
    assert out.ledger["drifts_resolved"] == {}
    with reading(shop["ledger"]) as conn:
        rows = ledger_reverts.history(conn)
    assert {(r["name"], r["result"]) for r in rows} == {
        ("token", "dry-run"), ("settings", "dry-run"), ("web", "dry-run")} and len(rows) == 4
    # The same would-be reverts next run are not written again.
    run(shop, mode="dry-run")
    with reading(shop["ledger"]) as conn:
        assert len(ledger_reverts.history(conn)) == 4
    assert versions(sandbox) == before
    assert get(kubectl, "deployment/web")["spec"]["replicas"] == 5


def test_cap_reverts_nothing_and_says_so(shop: dict[str, Any], kubectl: Any,
                                         sandbox: Sandbox) -> None:
    run(shop)
    human_changes(kubectl)
    before = versions(sandbox)
    out = run(shop, mode="enforce", max_objects=3)
    assert versions(sandbox) == before
    [problem] = [p for p in out.audit.problems if p.kind == "revert-capped"]
    assert "4 objects to revert exceed revert.max_objects (3)" in problem.message
    with reading(shop["ledger"]) as conn:
        assert ledger_reverts.history(conn) == []
        [event] = conn.execute("SELECT payload FROM events WHERE type = 'revert_capped'").fetchall()
    assert orjson.loads(event[0])["planned"] == 4


def test_opt_out_annotation_and_scope_are_respected(shop: dict[str, Any], kubectl: Any) -> None:
    run(shop)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    kubectl("-n", "shop", "annotate", "deployment/web", "drift-auditor.io/revert=false")
    kubectl("-n", "shop", "label", "configmap/settings", "touched-by=ops")
    out = run(shop, mode="enforce", kinds=("Deployment", "ConfigMap"))
    assert get(kubectl, "deployment/web")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "shop/web:6.6.6-hotfix"
    assert "touched-by" not in get(kubectl, "configmap/settings")["metadata"].get("labels", {})
    # The ConfigMap's drift, new this run, is opened and closed as reverted in the same run.
    assert out.ledger["drifts_resolved"] == {"reverted": 1}

    kubectl("-n", "shop", "label", "configmap/settings", "touched-by=ops")
    run(shop, mode="enforce", kinds=("Secret",))  # out of scope: left alone
    assert get(kubectl, "configmap/settings")["metadata"]["labels"]["touched-by"] == "ops"


def test_forbidden_patch_names_the_permission_is_recorded_and_backs_off(
        shop: dict[str, Any], kubectl: Any, sandbox: Sandbox) -> None:
    run(shop)
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=5")
    fault = sandbox.faults.add(method="PATCH", path_regex=r"/deployments/web$", status=403)
    out = run(shop, mode="enforce")
    [problem] = [p for p in out.audit.problems if p.kind == "revert-failed"]
    assert "cannot patch deployments.apps web in namespace shop" in problem.message
    assert "RBAC verb 'patch' on resource 'deployments.apps' in namespace shop" in problem.message
    assert dict(problem.extra)["forbidden"] is True
    assert out.status == "complete"  # the audit itself was complete
    hits = fault.hits
    assert hits == 1  # the server dry-run was refused: nothing else was tried

    again = run(shop, mode="enforce")
    assert fault.hits == hits  # backing off: not one more request
    assert not [p for p in again.audit.problems if p.kind == "revert-failed"]
    with reading(shop["ledger"]) as conn:
        [row] = ledger_reverts.history(conn)
        last = ledger_reverts.last_attempts(conn)
    assert row["result"] == "failed" and "forbidden" in row["error"]
    assert next(iter(last.values())).failures == 1

    # With the permission granted and the backoff over (0 minutes), it goes through.
    sandbox.faults.clear()
    fixed = run(shop, mode="enforce", failure_backoff_minutes=0)
    assert fixed.ledger["drifts_resolved"] == {"reverted": 1}
    assert get(kubectl, "deployment/web")["spec"]["replicas"] == 2


def test_prune_deletes_orphans_only_when_asked(shop: dict[str, Any], kubectl: Any) -> None:
    run(shop)
    kubectl("-n", "shop", "apply", "--server-side", "--field-manager=kubectl", "-f", "-",
            input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stray, namespace: shop}\n"
                  "data: {a: b}\n")
    out = run(shop, mode="enforce")
    assert statuses(out)["ConfigMap/stray"] == "orphan"
    assert kubectl("-n", "shop", "get", "configmap", "stray", check=False).returncode == 0
    run(shop, mode="enforce", prune=True)
    gone = kubectl("-n", "shop", "get", "configmap", "stray", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_cli_run_with_enforce_from_the_environment(shop: dict[str, Any], kubectl: Any) -> None:
    def cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "auditor.cli", "--config", str(shop["config"]), "run",
             "--desired", str(shop["apps"]), "--output", "json"],
            capture_output=True, text=True,
            env={"PATH": "/usr/bin:/bin", "DRIFT_AUDITOR_REVERT_MODE": "enforce"})

    assert cli().returncode == 0
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    proc = cli()
    assert proc.returncode == 1, proc.stderr  # the run found drift (and reverted it)
    assert get(kubectl, "deployment/web")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "shop/web:1.0.0"
    after = cli()
    assert after.returncode == 0, after.stdout


EXTRA = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: extra-settings, namespace: extra}
data: {A: b}
---
apiVersion: v1
kind: Namespace
metadata: {name: extra}
"""


def test_missing_namespace_and_its_contents_dry_run_then_recreate(
        shop: dict[str, Any], kubectl: Any) -> None:
    (shop["apps"] / "extra.yaml").write_text(EXTRA)
    dry = run(shop, mode="dry-run")
    assert not [p for p in dry.audit.problems if p.kind == "revert-failed"]
    assert kubectl("get", "namespace", "extra", check=False).returncode != 0
    with reading(shop["ledger"]) as conn:
        assert [(r["kind"], r["result"]) for r in ledger_reverts.history(conn)] == [
            ("Namespace", "dry-run"), ("ConfigMap", "dry-run")]

    run(shop, mode="enforce")
    made = orjson.loads(kubectl("-n", "extra", "get", "configmap", "extra-settings", "-o",
                                "json").stdout)
    assert made["data"] == {"A": "b"}
    assert set(statuses(run(shop, mode="enforce")).values()) == {"in-sync"}


def test_a_drift_first_seen_and_reverted_in_one_run_resolves_as_reverted(
        shop: dict[str, Any], kubectl: Any) -> None:
    run(shop)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    run(shop, mode="enforce")
    after = run(shop, mode="enforce")
    with reading(shop["ledger"]) as conn:
        open_now = conn.execute("SELECT count(*) FROM drift_state WHERE state = 'open'").fetchone()
        hows = [r[0] for r in conn.execute(
            "SELECT how FROM drift_events WHERE event = 'resolved'")]
    assert open_now[0] == 0 and after.ledger["drifts_resolved"] == {}
    assert hows == ["reverted"]


TEAMS = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: teams}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: flags, namespace: team-a}
data: {CHECKOUT: "on"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: flags, namespace: teams}
data: {CHECKOUT: "on"}
"""


def test_namespace_patterns_select_in_scope_and_revert_as_documented(
        shop: dict[str, Any], kubectl: Any, kubeconfig: Path, tmp_path: Path) -> None:
    """README's `revert.namespaces: [shop-*]`: a pattern selects every namespace it matches,
    in `revert` as in `scope`, through the real command."""
    sync_from_git(kubectl, shop["apps"], TEAMS, name="teams.yaml")
    config = config_file(tmp_path, kubeconfig, extra=(
        'scope: {include-namespaces: [shop, "team-*", teams]}\n'
        'revert: {mode: enforce, namespaces: [shop, "team-*"]}\n'))

    def cli(*args: str) -> tuple[int, Any]:
        proc = subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config),
                               *args, "--desired", str(shop["apps"]), "--output", "json"],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode in (0, 1), proc.stderr
        return proc.returncode, orjson.loads(proc.stdout)

    # A pattern among the included namespaces: every namespace is listed, then filtered.
    code, doc = cli("diff")
    assert code == 0, [r for r in doc["resources"] if r["status"] != "in-sync"]
    assert {r["namespace"] for r in doc["resources"] if r["kind"] == "ConfigMap"} == {
        "shop", "team-a", "teams"}

    for ns in ("team-a", "teams"):
        kubectl("-n", ns, "patch", "configmap/flags", "-p", '{"data":{"CHECKOUT":"off"}}')
    code, doc = cli("run")
    assert code == 1
    live = {ns: orjson.loads(kubectl("-n", ns, "get", "configmap/flags", "-o", "json").stdout)
            for ns in ("team-a", "teams")}
    assert live["team-a"]["data"] == {"CHECKOUT": "on"}, "team-a matches team-*: reverted"
    assert live["teams"]["data"] == {"CHECKOUT": "off"}, "teams is not in revert.namespaces"
    assert doc["run"]["ledger"]["drifts_resolved"] == {"reverted": 1}
