"""Auto-revert (``revert.mode: enforce``) against an RBAC-enforcing API server, run in-cluster as
the auditor's ServiceAccount: with cronjob.yaml alone every attempt is refused and recorded in
the ledger with the missing permission named (no traceback); with cronjob-revert-rbac.yaml's
role bound in a namespace, a drifted Deployment there is reverted; a kind the role does not
name, and a namespace it is not bound in, are still refused. The audit log shows the revert
asks for nothing but the role's ``get`` and ``patch``."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from auditor.ledger import reading
from auditor.ledger import reverts as ledger_reverts
from tests.rbac import kit

pytestmark = pytest.mark.kubectl

APPS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: payments}
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
        - {name: web, image: "shop/web:1.0.0"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: payments}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - {name: api, image: "payments/api:1.0.0"}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: shop}
spec:
  hard: {pods: "20"}
"""

# Alice administers both namespaces (the default ClusterRole "admin", bound per namespace:
# "edit" may not write ResourceQuotas).
PEOPLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-admin, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-admin, namespace: payments}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"""

REVERT = {"mode": "enforce", "kinds": ["Deployment.apps", "ResourceQuota"],
          "namespaces": ["shop", "payments"],
          # Each run here retries what failed before (the default waits an hour).
          "failure-backoff-minutes": 0}


class Scenario:
    def __init__(self, tmp: pathlib.Path, cluster: kit.Cluster) -> None:
        self.cluster = cluster
        cluster.apply(kit.CRONJOB)
        repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": APPS})
        cluster.apply(repo / "apps" / "shop.yaml", server_side_as=kit.GITOPS_MANAGER)
        cluster.apply(cluster.write("people.yaml", kit.yaml_docs(PEOPLE)))
        config = kit.shipped_config()
        config["revert"] = REVERT
        self.config = kit.write_config(tmp / "drift-auditor.yaml", config)
        self.env = kit.pod_env(tmp, repo)
        self.ledger = self.env["DRIFT_AUDITOR_LEDGER_PATH"]
        self.baseline = self.job()
        alice = cluster.kubectl("alice")
        alice("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
        alice("-n", "payments", "set", "image", "deployment/api", "api=payments/api:6.6.6")
        # Namespace admins may not write ResourceQuotas (bootstrap policy): a cluster admin did.
        cluster.admin("-n", "shop", "patch", "resourcequota", "compute", "-p",
                      '{"spec":{"hard":{"pods":"50"}}}')

        start = cluster.mark()
        self.unbound = self.job()
        self.unbound_requests = cluster.requests(start)
        self.unbound_rows = self.reverts(run_id=2)
        self.unbound_image = self.image("shop", "web")

        # The optional file, its RoleBinding put in shop (its comment: one per namespace).
        docs = kit.documents(kit.REVERT_RBAC)
        kit.one(docs, "RoleBinding")["metadata"]["namespace"] = "shop"
        cluster.apply(cluster.write("revert-rbac.yaml", docs))
        start = cluster.mark()
        self.bound = self.job()
        self.bound_requests = cluster.requests(start)
        self.bound_rows = self.reverts(run_id=3)
        self.bound_image = self.image("shop", "web")
        self.bound_quota = cluster.admin("-n", "shop", "get", "resourcequota", "compute", "-o",
                                         "jsonpath={.spec.hard.pods}").stdout

        # revert.mode dry-run: the same reads and server-side applies, with dryRun=All.
        alice("-n", "shop", "set", "image", "deployment/web", "web=shop/web:7.7.7-hotfix")
        start = cluster.mark()
        self.dry_run = cluster.pod_run(*kit.cronjob_args(), config=self.config,
                                       env={**self.env, "DRIFT_AUDITOR_REVERT_MODE": "dry-run"})
        self.dry_run_requests = cluster.requests(start)
        self.dry_run_rows = self.reverts(run_id=4)
        self.dry_run_image = self.image("shop", "web")

    def job(self) -> subprocess.CompletedProcess[str]:
        return self.cluster.pod_run(*kit.cronjob_args(), config=self.config, env=self.env)

    def reverts(self, run_id: int) -> dict[str, dict[str, Any]]:
        with reading(self.ledger) as conn:
            rows = ledger_reverts.history(conn, run_id=run_id)
        return {f"{r['kind']} {r['namespace']}/{r['name']}": r for r in rows}

    def image(self, namespace: str, name: str) -> str:
        return self.cluster.admin("-n", namespace, "get", "deployment", name, "-o",
                                  "jsonpath={.spec.template.spec.containers[0].image}").stdout


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("revert")
    with kit.cluster(tmp, users={"alice": []}) as cluster:
        yield Scenario(tmp, cluster)


def refusal(verb: str, group: str, resource: str, namespace: str, name: str) -> str:
    """What the ledger records for a revert the API refused: the product's sentence naming the
    missing permission, then the API's own 403 message."""
    full = f"{resource}.{group}" if group else resource
    return (f"forbidden: cannot {verb} {full} {name} in namespace {namespace}: the service "
            f"account needs the RBAC verb '{verb}' on resource '{full}' in namespace "
            f"{namespace} ({kit.forbidden_message(verb, group, resource, namespace, name)})")


def test_without_the_revert_role_every_attempt_is_a_named_403_in_the_ledger(
        scenario: Scenario) -> None:
    assert scenario.baseline.returncode == 0, scenario.baseline.stdout + scenario.baseline.stderr
    run = scenario.unbound
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stdout + run.stderr  # drift found, audit complete
    assert "run 2: complete" in run.stdout
    rows = scenario.unbound_rows
    assert set(rows) == {"Deployment shop/web", "Deployment payments/api",
                         "ResourceQuota shop/compute"}
    assert {r["result"] for r in rows.values()} == {"failed"}
    # The first thing a revert does is read the object fresh: `get` is what is missing.
    assert rows["Deployment shop/web"]["error"] == refusal("get", "apps", "deployments", "shop",
                                                           "web")
    assert rows["ResourceQuota shop/compute"]["error"] == refusal(
        "get", "", "resourcequotas", "shop", "compute")
    # Nothing was written, and nothing but that read was tried.
    writes = [e for e in scenario.unbound_requests if e["verb"] not in ("list", "get")]
    assert writes == []
    assert scenario.unbound_image == "shop/web:6.6.6-hotfix"
    assert "forbidden: cannot get deployments.apps web in namespace shop" in run.stdout


def test_with_the_revert_role_bound_the_drifted_deployment_is_reverted(
        scenario: Scenario) -> None:
    run = scenario.bound
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stdout + run.stderr
    web = scenario.bound_rows["Deployment shop/web"]
    assert web["result"] == "reverted" and web["error"] in ("", None), web
    assert scenario.bound_image == "shop/web:1.0.0"


def test_a_kind_or_a_namespace_the_role_does_not_cover_is_still_refused(
        scenario: Scenario) -> None:
    rows = scenario.bound_rows
    quota = rows["ResourceQuota shop/compute"]
    assert quota["result"] == "failed"
    assert quota["error"] == refusal("get", "", "resourcequotas", "shop", "compute")
    api = rows["Deployment payments/api"]
    assert api["result"] == "failed"
    assert api["error"] == refusal("get", "apps", "deployments", "payments", "api")
    assert scenario.image("payments", "api") == "payments/api:6.6.6"
    assert scenario.bound_quota == "50"


def test_the_revert_uses_only_get_and_patch_and_only_where_bound(scenario: Scenario) -> None:
    role = kit.one(kit.documents(kit.REVERT_RBAC), "ClusterRole")
    granted = kit.grants(role)
    allowed = [e for e in scenario.bound_requests
               if e["verb"] not in ("list",) and e["responseStatus"]["code"] < 400]
    used = {(e["verb"], e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"])
            for e in allowed if "objectRef" in e}
    assert used == {("get", "apps", "deployments"), ("patch", "apps", "deployments")}
    assert used <= granted
    assert {e["objectRef"]["namespace"] for e in allowed if "objectRef" in e} == {"shop"}
    # Only get and patch: create (revert.recreate-missing) and delete (revert.prune) are left
    # out of the role until enabled.
    assert {verb for verb, _, _ in granted} == {"get", "patch"}
    binding = 'RoleBinding "drift-auditor-revert/shop" of ClusterRole "drift-auditor-revert"'
    assert all(binding in e["annotations"]["authorization.k8s.io/reason"] for e in allowed
               if "objectRef" in e)
    refused = {(e["verb"], e["objectRef"]["resource"], e["objectRef"]["namespace"])
               for e in scenario.bound_requests if e["responseStatus"]["code"] == 403}
    assert refused == {("get", "resourcequotas", "shop"), ("get", "deployments", "payments")}


def test_dry_run_needs_the_same_get_and_patch(scenario: Scenario) -> None:
    assert scenario.dry_run.returncode == 0, scenario.dry_run.stdout + scenario.dry_run.stderr
    assert scenario.dry_run_rows["Deployment shop/web"]["result"] == "dry-run"
    assert scenario.dry_run_image == "shop/web:7.7.7-hotfix"
    writes = [e for e in scenario.dry_run_requests
              if e["verb"] == "patch" and e["objectRef"]["resource"] == "deployments"]
    # Authorized as patch (the role's), and never for real.
    assert writes and all("dryRun=All" in e["requestURI"]
                          and e["responseStatus"]["code"] == 200 for e in writes)
    assert ("get", "deployments", 200) in {
        (e["verb"], e["objectRef"]["resource"], e["responseStatus"]["code"])
        for e in scenario.dry_run_requests if "objectRef" in e}
