"""`drift-auditor diff` end to end: Git manifests applied to the sandbox as a GitOps
controller would, changed with the real kubectl 1.35, audited by the CLI over real HTTP.
Checks the JSON contract of DESIGN.md, the exit codes, and that bad input loses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitfixtures import RepoBuilder

pytestmark = pytest.mark.kubectl

SHOP = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app.kubernetes.io/name: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: web}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web}
    spec:
      containers:
        - name: web
          image: shop/web:1.4.2
          ports: [{containerPort: 8080}]
          resources:
            requests: {cpu: "0.5", memory: 1024Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app.kubernetes.io/name: web}
  ports: [{port: 80, targetPort: 8080}]
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
stringData:
  password: hunter2-but-longer
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "git" / "apps"
    folder.mkdir(parents=True)
    (folder / "shop.yaml").write_text(SHOP)
    (folder / "secret.yaml").write_text(SECRET)
    return folder


def run_diff(kubeconfig: Path, *args: str, tmp: Path) -> tuple[int, Any, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", "/dev/null", "diff",
         "--kubeconfig", str(kubeconfig), "--output", "json", *args],
        capture_output=True, env={"PATH": "/usr/bin:/bin",
                                  "DRIFT_AUDITOR_LEDGER_PATH": str(tmp / "ledger.db")})
    doc = orjson.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, doc, proc.stderr.decode()


def by_name(doc: Any) -> dict[str, Any]:
    return {f"{r['kind']}/{r['name']}": r for r in doc["resources"]}


def apply_as_gitops(kubectl: Any, repo: Path) -> None:
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f",
            str(repo / "shop.yaml"))
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f",
            str(repo / "secret.yaml"))


def test_in_sync_after_gitops_apply_exits_0(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                             repo: Path, tmp_path: Path) -> None:
    apply_as_gitops(kubectl, repo)
    code, doc, err = run_diff(kubeconfig, "--desired", str(repo), tmp=tmp_path)
    assert code == 0, err
    assert doc["summary"] == {"resources": 4, "in_sync": 4, "drifted": 0, "missing": 0,
                              "orphan": 0}
    assert [r["kind"] for r in doc["resources"]] == ["Namespace", "Secret", "Service",
                                                      "Deployment"]  # sorted by key


def test_kubectl_changes_are_drift_with_their_managers(sandbox: Any, kubeconfig: Path,
                                                       kubectl: Any, repo: Path,
                                                       tmp_path: Path) -> None:
    apply_as_gitops(kubectl, repo)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.5.0-rc1")
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=4")
    kubectl("-n", "shop", "label", "service/web", "hotfix=true")
    kubectl("-n", "shop", "patch", "secret/db", "-p", '{"stringData":{"password":"changed-value"}}')
    kubectl("-n", "shop", "apply", "-f", "-", input="""
apiVersion: v1
kind: ConfigMap
metadata: {name: scratch, namespace: shop}
data: {a: b}
""")
    code, doc, err = run_diff(kubeconfig, "--desired", str(repo), tmp=tmp_path)
    assert code == 1, err
    res = by_name(doc)
    web = res["Deployment/web"]
    assert web["status"] == "drifted"
    assert web["apiVersion"] == "apps/v1" and web["namespace"] == "shop"
    assert web["source"]["file"].endswith("shop.yaml")
    drifts = {d["path"]: d for d in web["drifts"]}
    image = drifts["spec.template.spec.containers[name=web].image"]
    assert image == {"path": "spec.template.spec.containers[name=web].image", "op": "changed",
                     "desired": "shop/web:1.4.2", "live": "shop/web:1.5.0-rc1",
                     "manager": "kubectl-set", "operation": "Update", "time": image["time"],
                     "category": "human"}
    assert image["time"].endswith("Z")
    replicas = drifts["spec.replicas"]
    assert (replicas["desired"], replicas["live"], replicas["manager"], replicas["category"]) == (
        2, 4, "kubectl", "human")
    # Quantities written as 0.5 and 1024Mi in Git are 500m and 1Gi live: no drift there.
    assert not any("resources" in p for p in drifts)

    label = {d["path"]: d for d in res["Service/web"]["drifts"]}["metadata.labels.hotfix"]
    assert (label["op"], label["live"], label["manager"]) == ("added", "true", "kubectl-label")

    secret = res["Secret/db"]
    assert secret["status"] == "drifted"
    assert [d["path"] for d in secret["drifts"]] == ["data.password"]
    assert res["ConfigMap/scratch"]["status"] == "orphan"
    # Secret values never appear in the output, raw or base64.
    text = orjson.dumps(doc).decode()
    for leaked in ("hunter2-but-longer", "changed-value", "aHVudGVyMi1idXQtbG9uZ2Vy",
                   "Y2hhbmdlZC12YWx1ZQ=="):
        assert leaked not in text


def test_deleted_object_is_missing(sandbox: Any, kubeconfig: Path, kubectl: Any, repo: Path,
                                   tmp_path: Path) -> None:
    apply_as_gitops(kubectl, repo)
    kubectl("-n", "shop", "delete", "service", "web")
    code, doc, _ = run_diff(kubeconfig, "--desired", str(repo), tmp=tmp_path)
    assert code == 1
    assert by_name(doc)["Service/web"]["status"] == "missing"
    assert doc["summary"]["missing"] == 1


def test_broken_yaml_names_file_document_and_line_and_the_rest_is_audited(
        sandbox: Any, kubeconfig: Path, kubectl: Any, repo: Path, tmp_path: Path) -> None:
    apply_as_gitops(kubectl, repo)
    (repo / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok, namespace: shop}\n"
                                       "---\nmetadata: {name: [x\n")
    code, doc, _ = run_diff(kubeconfig, "--desired", str(repo), tmp=tmp_path)
    assert code == 2
    assert doc["summary"]["in_sync"] == 4, "the good files were still audited"
    problem = doc["problems"][0]
    assert "broken.yaml" in problem["where"] + problem["message"]
    assert "document 2" in problem["message"] and "line" in problem["message"]


def test_forbidden_kind_is_skipped_not_missing(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                               repo: Path, tmp_path: Path) -> None:
    apply_as_gitops(kubectl, repo)
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/secrets$", status=403)
    code, doc, _ = run_diff(kubeconfig, "--desired", str(repo), tmp=tmp_path)
    # A skipped kind is reported, never turned into missing objects; the comparison is
    # partial: exit 3, as `run`.
    assert code == 3, doc
    assert "Secret/db" not in by_name(doc)
    assert any(p["kind"] == "forbidden" and p["where"] == "Secret" for p in doc["problems"])


def test_live_file_from_kubectl_get(sandbox: Any, kubeconfig: Path, kubectl: Any, repo: Path,
                                    tmp_path: Path) -> None:
    apply_as_gitops(kubectl, repo)
    kubectl("-n", "shop", "set", "env", "deployment/web", "DEBUG=1")
    live = tmp_path / "live.json"
    live.write_text(kubectl("get", "namespaces,deployments,services", "-A", "-o", "json").stdout)
    code, doc, err = run_diff(kubeconfig, "--desired", str(repo / "shop.yaml"), "--live",
                              str(live), tmp=tmp_path)
    assert code == 1, err
    web = by_name(doc)["Deployment/web"]
    [drift] = web["drifts"]
    # `kubectl get -o json` leaves managedFields out: the addition is still caught, unattributed.
    assert drift["path"] == "spec.template.spec.containers[name=web].env[name=DEBUG]"
    assert drift["op"] == "added" and drift["category"] == "unknown"


def test_unreachable_cluster_is_one_line_and_exit_2(repo: Path, dead_kubeconfig: Path) -> None:
    kubeconfig = dead_kubeconfig
    proc = subprocess.run([sys.executable, "-m", "auditor.cli", "--config", "/dev/null", "diff",
                           "--kubeconfig", str(kubeconfig), "--desired", str(repo)],
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DRIFT_AUDITOR_CLUSTER_RETRIES": "0"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drift-auditor: error:")
    assert "127.0.0.1:" in lines[0] and "connection refused" in lines[0]


def test_source_carries_the_git_evidence(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                         tmp_path: Path) -> None:
    # A manifest merged through a pull request: the JSON names who committed it, its
    # subject, the PR number and the review trailers, as the ledger records them.
    builder = RepoBuilder(tmp_path / "repo")
    builder.write("apps/shop.yaml", SHOP)
    sha = builder.commit("Raise web replicas (#42)\n\nReviewed-by: Dana Ops <dana@example.com>\n"
                         "Approved-by: Lee Sec <lee@example.com>\n"
                         "Reviewed-by: Kim Dev <kim@example.com>\n",
                         author=("Alice", "alice@example.com"),
                         committer=("GitHub", "noreply@github.com"),
                         date="2026-03-04T05:06:07Z")
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f",
            str(builder.path / "apps" / "shop.yaml"))
    code, doc, err = run_diff(kubeconfig, "--desired", str(builder.path / "apps"),
                              tmp=tmp_path)
    assert code == 0, err
    source = by_name(doc)["Deployment/web"]["source"]
    assert source == {
        "file": "apps/shop.yaml", "commit": sha, "author": "Alice",
        "date": "2026-03-04T05:06:07+00:00", "committer": "GitHub",
        "commit_date": "2026-03-04T05:06:07+00:00", "subject": "Raise web replicas (#42)",
        "pr": 42, "trailers": {"Approved-by": ["Lee Sec <lee@example.com>"],
                               "Reviewed-by": ["Dana Ops <dana@example.com>",
                                               "Kim Dev <kim@example.com>"]}}


def test_a_kubeconfig_flag_wins_over_in_cluster_in_the_config(
        sandbox: Any, kubeconfig: Path, kubectl: Any, repo: Path, tmp_path: Path) -> None:
    # The pod's configuration says in-cluster; an operator runs it from a laptop.
    apply_as_gitops(kubectl, repo)
    config = tmp_path / "pod.yaml"
    config.write_text("cluster: {in-cluster: true}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", str(config), "diff",
         "--kubeconfig", str(kubeconfig), "--desired", str(repo), "--output", "json"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                             "DRIFT_AUDITOR_LEDGER_PATH": str(tmp_path / "l.db")})
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["summary"]["in_sync"] == 4
