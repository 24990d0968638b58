"""The chart's rendered pods run against an RBAC-enforcing sandbox as the chart gives them:
the audit container's args and environment (Secret references filled as kubelet would), the
rendered drift-auditor.yaml, the ServiceAccount's token at its in-cluster path, and only the
RBAC the chart renders (applied with kubectl 1.35).

Paths on the pod's volumes (the ledger, the reports, the Git source and the policy pack
baked into the image) are moved to this machine's by the configuration's environment
overrides, as tests/rbac does; everything else is the rendering.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.rbac import kit
from tests.ship.test_helm_chart import one, pod_specs, rendered

pytestmark = pytest.mark.kubectl


@pytest.fixture
def cluster(tmp_path: pathlib.Path) -> Iterator[kit.Cluster]:
    with kit.cluster(tmp_path) as c:
        yield c


def install(cluster: kit.Cluster, variant: str, tmp: pathlib.Path) -> tuple[pathlib.Path,
                                                                               pathlib.Path]:
    """Apply the variant's identity and RBAC, sync Git as a GitOps controller would, and
    write the rendered configuration. Returns (config file, Git repository)."""
    docs = rendered(variant)
    wanted = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    objects = [d for d in docs if d["kind"] in wanted]
    if not any(d["kind"] == "Namespace" for d in objects):
        objects.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "drift-auditor"}})
    cluster.apply(cluster.write(f"{variant}-rbac.yaml", objects))
    repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": kit.SHOP})
    cluster.apply(repo / "apps" / "shop.yaml", server_side_as=kit.GITOPS_MANAGER)
    config = tmp / "drift-auditor.yaml"
    config.write_text(one(docs, "ConfigMap", "drift-auditor-config")["data"]["drift-auditor.yaml"])
    return config, repo


def container_env(container: dict[str, Any], tmp: pathlib.Path,
                  repo: pathlib.Path) -> dict[str, str]:
    """The container's environment as kubelet fills it (Secret keys: test values), plus the
    path overrides for this machine."""
    env: dict[str, str] = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = f"test-value-of-{e['valueFrom']['secretKeyRef']['name']}"
    overrides = kit.pod_env(tmp, repo)
    del overrides["GIT_TOKEN"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    if "/etc/drift-auditor/keys" in mounts:
        # The projected keys Secret (compare.secret-hash-key-file), with a key of its own.
        keys = tmp / "keys"
        keys.mkdir(exist_ok=True)
        (keys / "hash-key").write_bytes(bytes(range(32)))
        overrides["DRIFT_AUDITOR_COMPARE_SECRET_HASH_KEY_FILE"] = str(keys / "hash-key")
    # DRIFT_AUDITOR_CONFIG and HOME point at this machine's copies (pod_run sets both).
    env.pop("DRIFT_AUDITOR_CONFIG")
    env.pop("HOME")
    return {**env, **overrides}


def runs(tmp: pathlib.Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp / "volume" / "ledger.db") as db:
        return [(r[0], r[1]) for r in db.execute("SELECT status, mode FROM runs ORDER BY id")]


def test_the_cronjob_runners_audit_pod_runs_in_cluster(cluster: kit.Cluster,
                                                       tmp_path: pathlib.Path) -> None:
    config, repo = install(cluster, "cronjob", tmp_path)
    [container] = pod_specs(rendered("cronjob"))["drift-auditor"]["containers"]
    env = container_env(container, tmp_path, repo)
    assert set(env) >= {"GIT_TOKEN", "SLACK_BOT_TOKEN", "PYTHONDONTWRITEBYTECODE"}
    start = cluster.mark()
    job = cluster.pod_run(*container["args"], config=config, env=env)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "Traceback" not in job.stderr
    assert job.stdout.startswith("run 1: complete"), job.stdout
    assert "skipped kinds" not in job.stdout
    assert runs(tmp_path) == [("complete", "run")]
    # Every request was the ServiceAccount's, allowed by the rendered roles alone.
    requests = [e for e in cluster.requests(start, user=None)
                if e["userAgent"].startswith("drift-auditor/")]
    assert requests and {e["user"]["username"] for e in requests} == {kit.SA_USER}
    assert all(e["annotations"]["authorization.k8s.io/decision"] == "allow" for e in requests)


def test_the_default_pods_scheduler_runs_the_audit_job(cluster: kit.Cluster,
                                                        tmp_path: pathlib.Path) -> None:
    config, repo = install(cluster, "default", tmp_path)
    [spec] = pod_specs(rendered("default")).values()
    audit = next(c for c in spec["containers"] if c["name"] == "audit")
    env = container_env(audit, tmp_path, repo)
    # The container's own args, told to run the audit job once (as README's "first results"
    # does with kubectl exec).
    proc = cluster.pod_run(*audit["args"], "--job", "audit", "--once", config=config, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    log = proc.stdout + proc.stderr
    assert "audit" in log and "exit 0" in log.replace("exit status 0", "exit 0"), log
    assert runs(tmp_path) == [("complete", "run")]
    # The report job is the other half of the schedule; its args render a report.
    jobs = yaml.safe_load(config.read_text())["schedule"]["jobs"]
    assert [j["name"] for j in jobs] == ["audit", "report"]


def test_the_gitops_role_is_enough_to_audit_argocd_sources(cluster: kit.Cluster,
                                                          tmp_path: pathlib.Path) -> None:
    """With gitops.argocd on, the rendered RBAC alone lets the pod read the Applications
    and audit their sources: no 403, every request allowed, the source derived."""
    from tests.gitops import kit as gitops_kit
    from tests.ship.test_helm_chart import render_manifests

    docs = tuple(d for d in yaml.safe_load_all(render_manifests.render(
        *render_manifests.FLAGS, "--set", "gitops.argocd.enabled=true",
        "--set-json", "config.sources=[]")) if d)
    wanted = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    cluster.apply(cluster.write("gitops-rbac.yaml", [d for d in docs if d["kind"] in wanted]))
    gitops_kit.install_crds(cluster.admin)
    repo = kit.git_repo(tmp_path / "repo", {"apps/shop.yaml": kit.SHOP})
    sha = kit.git(repo, "rev-parse", "HEAD").strip()
    cluster.apply(repo / "apps" / "shop.yaml", server_side_as=kit.GITOPS_MANAGER)
    gitops_kit.create(cluster.admin, gitops_kit.argo_application(
        "shop", repo_url=repo.as_uri(), path="apps", target_revision="main",
        dest_namespace="shop", synced_revision=sha))
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(one(docs, "ConfigMap", "drift-auditor-config")["data"]["drift-auditor.yaml"])
    [spec] = [s for s in pod_specs(docs).values()]
    audit = next(c for c in spec["containers"] if c["name"] == "audit")
    env = container_env(audit, tmp_path, repo)
    env.pop("DRIFT_AUDITOR_SOURCE_URL")  # no source of ours: the Application is the source
    start = cluster.mark()
    job = cluster.pod_run("run", "--exit-zero-on-drift", "-o", "json", config=config, env=env)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr
    doc = json.loads(job.stdout)
    assert [s["owner"] for s in doc["gitops"]["sources"]] == ["Application argocd/shop"]
    assert doc["summary"]["drifted"] == 0 and doc["summary"]["in_sync"] > 0
    requests = [e for e in cluster.requests(start, user=None)
                if e["userAgent"].startswith("drift-auditor/")]
    assert {e["user"]["username"] for e in requests} == {kit.SA_USER}
    assert all(e["annotations"]["authorization.k8s.io/decision"] == "allow" for e in requests)
    assert any("/apis/argoproj.io/v1alpha1/applications" in e["requestURI"] for e in requests)
