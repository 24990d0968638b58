"""`drift-auditor compare-clusters`: two sandbox API servers stand for staging and prod, each
audited by real `drift-auditor run`s into its own ledger from its own overlay of one set of
manifests (replicas 1 in staging, 3 in prod; a ConfigMap only prod's Git declares; a Secret
whose value differs); a human then changes prod with real kubectl. The comparison must tell
the overlay's differences (declared, hidden by default) from the human's (drift, with the
actor and the time), and never show a Secret value."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import kubectl_binary
from gitopsfixtures import sync_from_git
from test_startup import HEAVY, imported

from auditor.engine.divergence import SECRET_VALUE, classify, diff_objects, touches
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation, content_hash, divergence, readonly
from auditor.sandbox import Sandbox

BASE = """\
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0.0
        - name: proxy
          image: shop/proxy:1.0.0
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: shop}}
data: {{MODE: standard}}
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: shop}}
stringData: {{token: {token}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: shared, namespace: shop}}
stringData: {{key: same-in-both-clusters-value}}
"""

PROD_ONLY = """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: prod-tuning, namespace: shop}
data: {POOL: "64"}
"""

BY_HAND = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: by-hand, namespace: shop}
data: {a: b}
"""

STAGING_SECRET = "staging-token-Zq81-never-shown"
PROD_SECRET = "prod-token-Kx93-never-shown"

pytestmark = pytest.mark.kubectl


class Cluster:
    """One sandbox, its kubeconfig, its Git folder, its config file and its ledger."""

    def __init__(self, name: str, sandbox: Sandbox, root: Path, key_file: Path) -> None:
        self.name = name
        self.root = root
        root.mkdir()
        self.kubeconfig = sandbox.write_kubeconfig(root / "kubeconfig")
        self.apps = root / "git" / "apps"
        self.ledger = root / f"{name}.db"
        self.config = root / "drift-auditor.yaml"
        self.config.write_text(
            f"cluster: {{name: {name}, kubeconfig: {self.kubeconfig}, retries: 1}}\n"
            f"ledger: {{path: {self.ledger}}}\n"
            f"policies: {{directory: {root / 'no-policies'}}}\n"
            # One key for the fleet: a Secret holding the same value hashes the same in both.
            f"compare: {{secret-hash-key-file: {key_file}}}\n")

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.root),
               "KUBECACHEDIR": str(self.root / "kube-cache"), "KUBE_EDITOR": "true"}
        proc = subprocess.run([str(kubectl_binary()), *args], input=input, env=env, text=True,
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    def run(self) -> None:
        proc = cli("--config", str(self.config), "run", "--desired", str(self.apps),
                   "--output", "json")
        assert proc.returncode in (0, 1), proc.stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", *args], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=300)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fleet")
    key_file = root / "fleet.key"
    key_file.write_text("k" * 64)
    with Sandbox() as sb_staging, Sandbox() as sb_prod:
        staging = Cluster("staging", sb_staging, root / "staging", key_file)
        prod = Cluster("prod", sb_prod, root / "prod", key_file)
        staging_git = BASE.format(replicas=1, token=STAGING_SECRET)
        sync_from_git(staging.kubectl, staging.apps, staging_git.replace("web:1.0.0", "web:0.9.0"))
        sync_from_git(prod.kubectl, prod.apps,
                      BASE.format(replicas=3, token=PROD_SECRET) + PROD_ONLY)
        staging.run()
        prod.run()
        # Prod before anyone touched it: it differs from staging only as Git declares.
        before = root / "before"
        before.mkdir()
        for suffix in ("", "-wal"):
            if Path(f"{prod.ledger}{suffix}").exists():
                (before / f"prod-before.db{suffix}").write_bytes(
                    Path(f"{prod.ledger}{suffix}").read_bytes())
        # Staging's rollout of 1.0.0 by the GitOps controller: a change recorded with its actor.
        sync_from_git(staging.kubectl, staging.apps, staging_git)
        staging.run()
        # A human on prod: a hotfix image, a ConfigMap made by hand (not in Git), another that
        # Git declares deleted.
        prod.kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:2.0.0-hotfix")
        prod.kubectl("create", "-f", "-", input=BY_HAND)
        prod.kubectl("-n", "shop", "delete", "configmap", "settings")
        prod.run()
        yield {"staging": staging, "prod": prod, "root": root,
               "prod_before": before / "prod-before.db"}


def compare(fleet: dict[str, Any], *args: str,
            a: str = "staging", b: str = "prod") -> subprocess.CompletedProcess[str]:
    return cli("compare-clusters", a, b, "--ledger", str(fleet["staging"].ledger),
               "--ledger", str(fleet["prod"].ledger), *args)


def as_json(fleet: dict[str, Any], *args: str) -> tuple[int, dict[str, Any]]:
    proc = compare(fleet, "-o", "json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, orjson.loads(proc.stdout)


def _object(doc: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in doc["objects"] if o["kind"] == kind and o["name"] == name]
    assert len(found) == 1, [(o["kind"], o["name"]) for o in doc["objects"]]
    return found[0]


def _field(obj: dict[str, Any], path: str) -> dict[str, Any]:
    found = [f for f in obj["fields"] if f["path"] == path]
    assert len(found) == 1, [f["path"] for f in obj["fields"]]
    return found[0]


# ------------------------------------------------------------------------------ end to end

def test_human_change_is_drift_with_its_actor_and_the_git_value_on_staging(
        fleet: dict[str, Any]) -> None:
    code, doc = as_json(fleet)
    assert code == 1
    assert doc["clusters"] == ["staging", "prod"]
    web = _object(doc, "Deployment", "web")
    assert (web["group"], web["namespace"], web["status"], web["class"]) == \
        ("apps", "shop", "diverged", "drift")
    image = _field(web, "spec.template.spec.containers[name=web].image")
    assert image["class"] == "drift"
    assert image["a"]["value"] == "shop/web:1.0.0"
    assert image["b"]["value"] == "shop/web:2.0.0-hotfix"
    assert image["b"]["manager"] == "kubectl-set" and image["b"]["time"]
    # Staging holds what Git declares: its newest change is the GitOps controller's apply.
    assert image["a"]["manager"] == "argocd-controller"
    # The overlay's replicas are declared: hidden by default...
    assert [f["path"] for f in web["fields"]] == ["spec.template.spec.containers[name=web].image"]
    # ...and the untouched container (matched by name, not position) is no difference at all.
    _code, everything = as_json(fleet, "--all")
    web_all = _object(everything, "Deployment", "web")
    replicas = _field(web_all, "spec.replicas")
    assert replicas["class"] == "declared"
    assert (replicas["a"]["value"], replicas["b"]["value"]) == (1, 3)
    assert not any("proxy" in f["path"] for f in web_all["fields"])


def test_object_only_in_prod(fleet: dict[str, Any]) -> None:
    _code, doc = as_json(fleet)
    by_hand = _object(doc, "ConfigMap", "by-hand")
    assert by_hand["status"] == "only-in-b" and by_hand["class"] == "drift"
    assert by_hand["b"]["manager"] == "kubectl-create" and by_hand["a"] is None
    # Declared only in prod's Git: an overlay's object, shown with --all.
    assert not [o for o in doc["objects"] if o["name"] == "prod-tuning"]
    _code, everything = as_json(fleet, "--all")
    tuning = _object(everything, "ConfigMap", "prod-tuning")
    assert (tuning["status"], tuning["class"]) == ("only-in-b", "declared")
    text = compare(fleet).stdout
    assert "ConfigMap shop/by-hand: only in prod (drift)  by kubectl-create at " in text


def test_object_deleted_by_hand_in_prod_is_only_in_staging_and_drift(
        fleet: dict[str, Any]) -> None:
    _code, doc = as_json(fleet)
    settings = _object(doc, "ConfigMap", "settings")
    assert (settings["status"], settings["class"]) == ("only-in-a", "drift")
    # Prod knew it (its ledger recorded the deletion); staging holds it as Git declares.
    assert settings["a"]["manager"] == "argocd-controller" or settings["a"]["manager"] == ""
    assert settings["b"] is not None and settings["b"]["value"] is None
    assert "ConfigMap shop/settings: only in staging (drift)" in compare(fleet).stdout


def test_text_output_grouped_and_sorted(fleet: dict[str, Any]) -> None:
    proc = compare(fleet)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert "Deployment.apps shop/web: diverged (drift)" in lines
    i = lines.index("Deployment.apps shop/web: diverged (drift)")
    assert lines[i + 1] == "  spec.template.spec.containers[name=web].image [drift]"
    assert lines[i + 2].split()[:2] == ["staging", '"shop/web:1.0.0"']
    assert lines[i + 3].split()[:2] == ["prod", '"shop/web:2.0.0-hotfix"']
    assert "kubectl-set at " in lines[i + 3]
    assert "spec.replicas" not in proc.stdout and "(shown with --all)" in lines[-1]
    full = compare(fleet, "--all").stdout
    assert "  spec.replicas [declared]" in full
    headers = [line for line in full.splitlines() if line and not line.startswith(" ")][:-1]
    # Objects by key: group, kind, namespace, name ("" group, the core, first).
    assert headers == sorted(headers, key=lambda h: (h.split()[0].partition(".")[2],
                                                     h.split()[0].partition(".")[0],
                                                     h.split()[1].rstrip(":")))


def test_json_is_deterministic_and_keyed_in_order(fleet: dict[str, Any]) -> None:
    first = compare(fleet, "-o", "json", "--all").stdout
    assert first == compare(fleet, "-o", "json", "--all").stdout
    doc = orjson.loads(first)
    assert list(doc) == ["clusters", "objects", "summary"]
    web = _object(doc, "Deployment", "web")
    assert list(web)[:7] == ["kind", "namespace", "name", "group", "status", "class", "fields"]
    assert list(web["fields"][0]) == ["path", "class", "a", "b"]
    assert list(web["fields"][0]["a"]) == ["value", "manager", "user", "time"]
    keys = [(o["group"], o["kind"], o["namespace"], o["name"]) for o in doc["objects"]]
    assert keys == sorted(keys)
    paths = [f["path"] for f in web["fields"]]
    assert paths == sorted(paths)
    summary = doc["summary"]
    assert summary["diverged"] >= 2 and summary["only_in_b"] == 2 and summary["only_in_a"] == 1


def test_no_secret_value_ever_appears(fleet: dict[str, Any]) -> None:
    outputs = [compare(fleet, *args).stdout for args in
               ((), ("--all",), ("-o", "json"), ("-o", "json", "--all"))]
    for out in outputs:
        for raw in (STAGING_SECRET, PROD_SECRET, "same-in-both-clusters-value"):
            assert raw not in out
        # Not even the keyed hashes the ledger holds.
        assert "hmac-sha256" not in out
    _code, doc = as_json(fleet, "--all")
    token = _object(doc, "Secret", "token")
    data = _field(token, "data.token")
    assert data["a"]["value"] == data["b"]["value"] == SECRET_VALUE
    # The same value under the fleet's one hash key: no difference.
    assert not [o for o in doc["objects"] if o["name"] == "shared"]


def test_exit_codes_and_an_unknown_cluster(fleet: dict[str, Any]) -> None:
    # Either order: the divergence is found (1).
    assert compare(fleet, a="prod", b="staging").returncode == 1
    proc = compare(fleet, a="staging", b="qa")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "drift-auditor: error: compare-clusters: no ledger of cluster qa; the ledgers given "
        "are of: staging, prod"]
    assert proc.stdout == ""
    same = compare(fleet, a="prod", b="prod")
    assert same.returncode == 2 and "two different clusters" in same.stderr
    missing = cli("compare-clusters", "staging", "prod", "--ledger",
                  str(fleet["staging"].ledger), "--ledger", str(fleet["root"] / "nope.db"))
    assert missing.returncode == 2 and "no ledger here" in missing.stderr


def test_declared_only_differences_exit_zero(fleet: dict[str, Any]) -> None:
    args = ("compare-clusters", "staging", "prod", "--ledger", str(fleet["staging"].ledger),
            "--ledger", str(fleet["prod_before"]))
    proc = cli(*args, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["objects"] == []
    full = cli(*args, "-o", "json", "--all")
    assert full.returncode == 0, full.stderr
    doc = orjson.loads(full.stdout)
    assert {(o["kind"], o["name"], o["class"]) for o in doc["objects"]} == {
        ("Deployment", "web", "declared"), ("Secret", "token", "declared"),
        ("ConfigMap", "prod-tuning", "declared")}
    replicas = _field(_object(doc, "Deployment", "web"), "spec.replicas")
    # Git set both values: no actor is blamed for an overlay.
    assert replicas["a"] == {"value": 1, "manager": "", "user": "", "time": ""}
    text = cli(*args, "--all").stdout
    assert "Deployment.apps shop/web: differs as Git declares per cluster" in text


def test_two_ledgers_of_one_name_are_told_apart_by_file(fleet: dict[str, Any],
                                                          tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    copy.write_bytes(fleet["staging"].ledger.read_bytes())
    ledgers = ("--ledger", str(fleet["staging"].ledger), "--ledger", str(copy))
    proc = cli("compare-clusters", "staging", "prod", *ledgers)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("are of: staging@staging.db, staging@copy.db")
    ok = cli("compare-clusters", "staging@staging.db", "staging@copy.db", *ledgers)
    assert ok.returncode == 0, ok.stderr
    twice = cli("compare-clusters", "staging", "prod", "--ledger", str(copy), "--ledger",
                str(copy))
    assert twice.returncode == 2 and "the same ledger is given twice" in twice.stderr


# ------------------------------------------------------------------------------ the engine

def test_lists_are_matched_by_merge_key_not_position() -> None:
    a = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}}}}
    b = {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "s:1"}, {"name": "app", "image": "a:2"},
        {"name": "extra", "image": "e:1"}]}}}}
    diffs = diff_objects("apps/v1", "Deployment", a, b)
    assert [(d.path, d.a, d.b, d.in_a, d.in_b) for d in diffs] == [
        ("spec.template.spec.containers[name=app].image", "a:1", "a:2", True, True),
        ("spec.template.spec.containers[name=extra]", None,
         {"name": "extra", "image": "e:1"}, False, True)]


def test_server_owned_metadata_and_last_applied_are_ignored() -> None:
    a = {"metadata": {"uid": "1", "resourceVersion": "5", "generation": 2,
                      "creationTimestamp": "x", "managedFields": [{}],
                      "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
         "status": {"replicas": 1}}
    b = {"metadata": {"uid": "2", "resourceVersion": "9", "generation": 7,
                      "creationTimestamp": "y", "managedFields": [{}, {}],
                      "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "[]"}},
         "status": {"replicas": 3}}
    assert diff_objects("apps/v1", "Deployment", a, b) == []


def test_drift_paths_touch_parents_and_children() -> None:
    path = "spec.template.spec.containers[name=web].image"
    assert touches("spec.template.spec.containers[name=web]", path)
    assert touches(path, "spec.template")
    assert touches("", path)  # a whole-object drift (an orphan)
    assert not touches("spec.template.spec.containers[name=webhook]", path)
    assert not touches("spec.replica", "spec.replicas")
    assert classify(path, [], []) == "declared"
    assert classify(path, [], ["spec.template.spec.containers[name=web].image"]) == "drift"


def test_help_loads_no_heavy_library() -> None:
    names, proc = imported("compare-clusters", "--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


# ------------------------------------------------------------------------------ the library

def _deployment(image: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "image": image}]}}}}


def _ledger(path: Path, cluster: str, content: dict[str, Any],
            drift: DriftItem | None) -> None:
    web = ResourceKey("apps", "Deployment", "shop", "web")
    with Ledger.open(path, sign=False) as ledger:
        run = ledger.begin_run(cluster=cluster)
        run.observe(Observation(web, "apps/v1", "1", content_hash(content), content,
                                "argocd-controller", "Apply", "2026-11-20T08:00:00Z", "gitops"))
        run.record(ObjectResult(web, "apps/v1", "drifted" if drift else "in-sync",
                                (drift,) if drift else (), SourceInfo("apps/web.yaml")))
        run.finish()


def test_the_drift_items_actor_and_user_name_the_side_parent_paths_included(
        tmp_path: Path) -> None:
    # The drift is on the container (a parent of the image): it still touches the image.
    item = DriftItem("spec.template.spec.containers[name=web]", "changed", None, None,
                     "kubectl-edit", "Update", "2026-11-20T09:30:00Z", "human",
                     "alice@example.com")
    _ledger(tmp_path / "a.db", "east", _deployment("web:1", 2), None)
    _ledger(tmp_path / "b.db", "west", _deployment("web:2", 2), item)
    with readonly.reading(tmp_path / "a.db") as a, readonly.reading(tmp_path / "b.db") as b:
        result = divergence.compare(a, b, "east", "west")
    assert result.exit_code() == 1
    (web,) = result.objects
    (image,) = web.fields
    assert (image.path, image.cls) == ("spec.template.spec.containers[name=web].image", "drift")
    assert (image.b.value, image.b.manager, image.b.user, image.b.time) == (
        "web:2", "kubectl-edit", "alice@example.com", "2026-11-20T09:30:00Z")
    # East has no drift and no change after its baseline: nobody to name.
    assert (image.a.value, image.a.manager) == ("web:1", "")
    assert "by alice@example.com via kubectl-edit at 2026-11-20T09:30:00Z" in result.to_text()


def test_pruned_content_is_said_not_compared(tmp_path: Path) -> None:
    _ledger(tmp_path / "a.db", "east", _deployment("web:1", 2), None)
    _ledger(tmp_path / "b.db", "west", _deployment("web:2", 2), None)
    # Retention dropped west's content (as `prune` does for old versions).
    with sqlite3.connect(tmp_path / "b.db") as conn:
        conn.execute("DELETE FROM contents")
    with readonly.reading(tmp_path / "a.db") as a, readonly.reading(tmp_path / "b.db") as b:
        result = divergence.compare(a, b, "east", "west")
    assert [o.status for o in result.objects] == ["no-content"]
    assert result.exit_code() == 0 and result.summary()["no_content"] == 1
    assert "1 not compared (content pruned)" in result.to_text()
    assert "Deployment.apps shop/web: content not kept" in result.to_text(everything=True)
