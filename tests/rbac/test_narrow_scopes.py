"""The narrower installs users ask for, each with the exact RBAC file the README points at,
applied by kubectl 1.35 and run in-cluster as the auditor's ServiceAccount:

* Secrets in scope without permission to read them: the run is partial and says which kind
  and why ("not audited: no permission ..."), in its output and in the ledger; with
  deploy/rbac/audit-secrets.yaml added, Secrets are audited (by keyed hash, never by value).
* A namespace-scoped install (cronjob.yaml without its cluster-wide role, and
  deploy/rbac/namespaced.yaml's Role and RoleBinding in each audited namespace): a run with
  exactly that completes, asks for nothing cluster-scoped beyond discovery, and uses every
  permission the Role grants in every audited namespace.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest

from auditor.config import ClusterConfig
from auditor.ledger import reading, runs
from auditor.live.client import APIResource
from auditor.live.client import Cluster as ApiClient
from tests.rbac import kit

pytestmark = pytest.mark.kubectl

SECRET_VALUE = "s3cr3t-never-shown"
HAND_EDITED = "r0tated-by-hand"

SECRET_APPS = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: shop}}
data: {{MODE: prod}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: shop}}
stringData: {{password: {SECRET_VALUE}}}
"""


@pytest.mark.parametrize("version", ["1.35.0", "1.36.0", "1.37.0"])
@pytest.mark.parametrize("path", [kit.NAMESPACED_RBAC, kit.SECRETS_RBAC], ids=lambda p: p.name)
def test_the_rbac_files_are_valid_and_grant_list_only_to_the_auditor(path: pathlib.Path,
                                                                     version: str) -> None:
    docs = kit.documents(path)
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    [role] = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    [binding] = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {verb for verb, _, _ in kit.grants(role)} == {"list"}
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"],
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": kit.SA_NAME,
                                    "namespace": kit.SA_NAMESPACE}]
    if path == kit.NAMESPACED_RBAC:
        # It names no namespace: `kubectl -n NS apply -f` puts it in each audited one.
        assert not any("namespace" in d["metadata"] for d in docs)


def discovered(cluster: kit.Cluster) -> list[APIResource]:
    with ApiClient(ClusterConfig(kubeconfig=str(cluster.admin.kubeconfig))) as api:
        return api.discover()


# ------------------------------------------------------------------------------ Secrets


class Secrets:
    def __init__(self, tmp: pathlib.Path, cluster: kit.Cluster) -> None:
        self.cluster = cluster
        cluster.apply(kit.CRONJOB)
        repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": SECRET_APPS})
        cluster.apply(repo / "apps" / "shop.yaml", server_side_as=kit.GITOPS_MANAGER)
        config = kit.shipped_config()
        scope = config["scope"]
        scope["include-kinds"].append("Secret")
        scope["exclude-kinds"].remove("Secret")
        self.config = kit.write_config(tmp / "drift-auditor.yaml", config)
        self.env = kit.pod_env(tmp, repo)
        self.ledger = pathlib.Path(self.env["DRIFT_AUDITOR_LEDGER_PATH"])

        self.unreadable = self.job()
        self.unreadable_runs = self.runs()
        cluster.apply(kit.SECRETS_RBAC)
        start = cluster.mark()
        self.readable = self.job("-o", "json")
        self.readable_requests = cluster.requests(start)
        encoded = base64.b64encode(HAND_EDITED.encode()).decode()
        cluster.admin("-n", "shop", "patch", "secret", "db", "-p",
                      json.dumps({"data": {"password": encoded}}))
        self.edited = self.job("-o", "json")

    def job(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.pod_run(*kit.cronjob_args(), *extra, config=self.config,
                                    env=self.env)

    def runs(self) -> list[dict[str, Any]]:
        with reading(self.ledger) as conn:
            return runs(conn)


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secrets]:
    tmp = tmp_path_factory.mktemp("secrets")
    with kit.cluster(tmp) as cluster:
        yield Secrets(tmp, cluster)


SECRETS_REASON = (
    "not audited: no permission to list secrets cluster-wide (403 forbidden: the RBAC verb "
    "'list' on resource 'secrets' cluster-wide is missing). The API server said: "
    + kit.forbidden_message("list", "", "secrets", ""))


def test_secrets_in_scope_but_not_readable_make_a_partial_run_that_says_why(
        secrets: Secrets) -> None:
    job = secrets.unreadable
    assert job.returncode == 3, job.stdout + job.stderr
    lines = job.stdout.splitlines()
    assert lines[0].startswith("run 1: partial · 2 objects: 2 in sync, 0 drifted, 0 missing")
    assert "skipped kinds (not audited this run): Secret" in lines
    assert f"forbidden: Secret: {SECRETS_REASON}" in lines
    assert "Traceback" not in job.stderr
    [run] = secrets.unreadable_runs
    assert run["status"] == "partial" and run["skipped_kinds"] == ["Secret"]
    assert [(p["where"], p["kind"], p["message"]) for p in run["problems"]] == [
        ("Secret", "forbidden", SECRETS_REASON)]


def test_with_audit_secrets_yaml_secrets_are_audited(secrets: Secrets) -> None:
    job = secrets.readable
    assert job.returncode == 0, job.stderr
    doc = json.loads(job.stdout)
    assert doc["run"]["status"] == "complete" and doc["run"]["skipped_kinds"] == []
    assert {(r["kind"], r["name"], r["status"]) for r in doc["resources"]} >= {
        ("Secret", "db", "in-sync")}
    listed = {(e["verb"], e["objectRef"]["resource"],
               e["annotations"]["authorization.k8s.io/reason"])
              for e in secrets.readable_requests if e.get("objectRef", {}).get("resource")
              == "secrets"}
    assert listed == {("list", "secrets", 'RBAC: allowed by ClusterRoleBinding '
                       '"drift-auditor-read-secrets" of ClusterRole "drift-auditor-read-secrets" '
                       f'to ServiceAccount "{kit.SA_NAME}/{kit.SA_NAMESPACE}"')}
    role = kit.one(kit.documents(kit.SECRETS_RBAC), "ClusterRole")
    assert kit.grants(role) == {("list", "", "secrets")}


def test_a_secrets_drift_is_reported_without_its_value(secrets: Secrets) -> None:
    job = secrets.edited
    doc = json.loads(job.stdout)
    [db] = [r for r in doc["resources"] if r["kind"] == "Secret"]
    assert db["status"] == "drifted"
    assert [d["path"] for d in db["drifts"]] == ["data.password"]
    blobs = [job.stdout, job.stderr, secrets.ledger.read_bytes().decode("latin-1")]
    for value in (SECRET_VALUE, HAND_EDITED):
        for text in (value, base64.b64encode(value.encode()).decode()):
            assert not any(text in blob for blob in blobs)


# ------------------------------------------------------------------------- namespaced


AUDITED = ("shop", "payments")


class Namespaced:
    def __init__(self, tmp: pathlib.Path, cluster: kit.Cluster) -> None:
        self.cluster = cluster
        self.tmp = tmp
        self.install = cluster.apply(kit.CRONJOB, selector="app.kubernetes.io/component!=cluster-read")
        shop = [d for d in kit.yaml_docs(kit.SHOP) if "namespace" in d["metadata"]
                or d["kind"] == "Namespace"]
        payments = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}},
                    {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "limits", "namespace": "payments"},
                     "data": {"MAX": "100"}}]
        repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": kit.yaml_dump(shop),
                                           "apps/payments.yaml": kit.yaml_dump(payments)})
        cluster.apply(repo / "apps", server_side_as=kit.GITOPS_MANAGER)
        # A namespace nobody audits, with an object the auditor must not see.
        cluster.sb.load([{"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "private", "namespace": "other"}}])
        for namespace in AUDITED:
            cluster.apply(kit.NAMESPACED_RBAC, namespace=namespace)
        self.role = kit.one(kit.documents(kit.NAMESPACED_RBAC), "Role")
        self.resources = discovered(cluster)
        shipped = kit.shipped_config()
        namespaced = [k for k in shipped["scope"]["include-kinds"]
                      if any(r.namespaced and r.group_kind == k for r in self.resources)]
        self.kinds = namespaced
        config = dict(shipped)
        config["scope"] = {**shipped["scope"], "include-kinds": namespaced,
                           "include-namespaces": list(AUDITED)}
        self.config = kit.write_config(tmp / "drift-auditor.yaml", config)
        self.env = kit.pod_env(tmp, repo)
        start = cluster.mark()
        self.job = cluster.pod_run(*kit.cronjob_args(), "-o", "json", config=self.config,
                                   env=self.env)
        self.requests = cluster.requests(start)

        config["scope"] = {**config["scope"], "include-namespaces": ["shop", "pay*"]}
        self.pattern_config = kit.write_config(tmp / "pattern.yaml", config)
        self.pattern_job = cluster.pod_run(*kit.cronjob_args(), config=self.pattern_config,
                                           env={**self.env, "DRIFT_AUDITOR_LEDGER_PATH":
                                                str(tmp / "pattern" / "ledger.db")})


@pytest.fixture(scope="module")
def namespaced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Namespaced]:
    tmp = tmp_path_factory.mktemp("namespaced")
    with kit.cluster(tmp) as cluster:
        yield Namespaced(tmp, cluster)


def test_the_install_leaves_out_the_cluster_wide_role(namespaced: Namespaced) -> None:
    # kubectl prints `<resource>[.<group>]/<name> created` for each object it applied.
    created = set()
    for line in namespaced.install.splitlines():
        resource, name = line.split()[0].split("/")
        created.add((resource.split(".")[0], name))
    docs = kit.documents(kit.CRONJOB)
    assert created == {(d["kind"].lower(), d["metadata"]["name"]) for d in docs
                       if d["kind"] not in ("ClusterRole", "ClusterRoleBinding")}
    assert len(created) == len(docs) - 2
    got = namespaced.cluster.admin("get", "clusterrolebinding", "drift-auditor-read",
                                   check=False)
    assert got.returncode == 1 and "NotFound" in got.stderr


def test_the_role_names_exactly_the_namespaced_kinds_of_the_shipped_scope(
        namespaced: Namespaced) -> None:
    by_kind = {r.group_kind: r for r in namespaced.resources}
    wanted = {("list", by_kind[k].group, by_kind[k].plural) for k in namespaced.kinds}
    assert kit.grants(namespaced.role) == wanted
    assert len(wanted) == 17
    cluster_scoped = {k for k in kit.shipped_config()["scope"]["include-kinds"]
                      if not by_kind[k].namespaced}
    assert cluster_scoped == {"Namespace", "ClusterRole.rbac.authorization.k8s.io",
                              "ClusterRoleBinding.rbac.authorization.k8s.io",
                              "StorageClass.storage.k8s.io",
                              "CustomResourceDefinition.apiextensions.k8s.io"}


def test_a_run_with_only_the_namespaced_rbac_completes(namespaced: Namespaced) -> None:
    job = namespaced.job
    assert job.returncode in (0, 1), job.stdout + job.stderr
    doc = json.loads(job.stdout)
    assert doc["run"]["status"] == "complete" and doc["run"]["skipped_kinds"] == []
    assert "problems" not in doc
    audited = {(r["kind"], r["namespace"], r["status"]) for r in doc["resources"]}
    assert ("ConfigMap", "payments", "in-sync") in audited
    assert {ns for _, ns, _ in audited} == set(AUDITED)
    assert len([r for r in audited if r[1] == "shop" and r[2] == "in-sync"]) == 17


def test_it_asks_for_nothing_cluster_scoped_and_uses_every_permission(
        namespaced: Namespaced) -> None:
    requests = namespaced.requests
    assert requests and all(e["responseStatus"]["code"] == 200 for e in requests)
    resource = [e for e in requests if "objectRef" in e]
    # Every resource request is namespaced, in an audited namespace, allowed by its Role.
    assert {e["objectRef"].get("namespace") for e in resource} == set(AUDITED)
    used = {(e["objectRef"]["namespace"], e["verb"], e["objectRef"].get("apiGroup", ""),
             e["objectRef"]["resource"]) for e in resource}
    granted = kit.grants(namespaced.role)
    assert used == {(ns, *g) for ns in AUDITED for g in granted}
    for e in resource:
        ns = e["objectRef"]["namespace"]
        assert e["annotations"]["authorization.k8s.io/reason"] == (
            f'RBAC: allowed by RoleBinding "drift-auditor-read/{ns}" of Role "drift-auditor-read" '
            f'to ServiceAccount "{kit.SA_NAME}/{kit.SA_NAMESPACE}"')
    # The rest is discovery, which the default binding gives every authenticated user.
    assert {e["annotations"]["authorization.k8s.io/reason"] for e in requests
            if "objectRef" not in e} == {
        'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
        '"system:discovery" to Group "system:authenticated"'}


def test_a_namespace_pattern_needs_cluster_wide_list_and_says_so(
        namespaced: Namespaced) -> None:
    job = namespaced.pattern_job
    assert job.returncode == 3, job.stdout + job.stderr
    assert "run 1: partial" in job.stdout
    api = kit.forbidden_message("list", "", "configmaps", "")
    assert ("forbidden: ConfigMap: not audited: no permission to list configmaps cluster-wide "
            "(403 forbidden: the RBAC verb 'list' on resource 'configmaps' cluster-wide is "
            f"missing). The API server said: {api}") in job.stdout.splitlines()
    skipped = next(line for line in job.stdout.splitlines() if line.startswith("skipped kinds"))
    assert len(skipped.split(": ", 1)[1].split(", ")) == len(namespaced.kinds)
