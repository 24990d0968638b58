"""The shipped read-only RBAC (cronjob.yaml's ServiceAccount, ClusterRole ``drift-auditor-read``
and its binding, applied by kubectl 1.35 to an RBAC-enforcing API server) is sufficient and
minimal: ``drift-auditor run`` as that ServiceAccount, configured in-cluster as the CronJob's
pod is, audits every kind in scope; it asks the API server (as its audit log records) for
exactly the permissions the role grants and nothing else; each permission taken away is named
by the next run; and every write the auditor could attempt is refused with the API's 403."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.config import ClusterConfig
from auditor.ledger import reading, runs
from auditor.live.client import Cluster as ApiClient
from auditor.sandbox.rbac_defaults import default_cluster_roles
from tests.rbac import kit

pytestmark = pytest.mark.kubectl

SYSTEM_DISCOVERY = ('RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
                    '"system:discovery" to Group "system:authenticated"')
READ_ROLE = ('RBAC: allowed by ClusterRoleBinding "drift-auditor-read" of ClusterRole '
             f'"drift-auditor-read" to ServiceAccount "{kit.SA_NAME}/{kit.SA_NAMESPACE}"')


class Installed:
    """cronjob.yaml applied, Git synced by the GitOps controller, and one run of the CronJob."""

    def __init__(self, tmp: pathlib.Path, cluster: kit.Cluster) -> None:
        self.tmp = tmp
        self.cluster = cluster
        self.docs = kit.documents(kit.CRONJOB)
        self.role = kit.one(self.docs, "ClusterRole", "drift-auditor-read")
        cluster.apply(kit.CRONJOB)
        self.repo = kit.git_repo(tmp / "repo", {"apps/shop.yaml": kit.SHOP})
        self.manifests = self.repo / "apps" / "shop.yaml"
        cluster.apply(self.manifests, server_side_as=kit.GITOPS_MANAGER)
        self.config = kit.write_config(tmp / "drift-auditor.yaml", kit.shipped_config())
        self.env = kit.pod_env(tmp, self.repo)
        with ApiClient(ClusterConfig(kubeconfig=str(cluster.admin.kubeconfig))) as api:
            self.discovered = api.discover()
        start = cluster.mark()
        self.job = cluster.pod_run(*kit.cronjob_args(), config=self.config, env=self.env)
        self.job_requests = cluster.requests(start, user=None)

    def kind_of(self, group: str, resource: str) -> str:
        [found] = [r.group_kind for r in self.discovered
                   if (r.group, r.plural) == (group, resource)]
        return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("cluster-role")
    with kit.cluster(tmp) as cluster:
        yield Installed(tmp, cluster)


# ------------------------------------------------------------------------- sufficient


def test_the_cronjob_run_in_cluster_audits_every_kind_in_scope(installed: Installed) -> None:
    job = installed.job
    assert job.returncode in (0, 1), job.stdout + job.stderr
    assert "Traceback" not in job.stderr
    assert job.stdout.startswith("run 1: complete · 22 objects: 22 in sync"), job.stdout
    assert "skipped kinds" not in job.stdout and "forbidden" not in job.stdout
    # Every request of the pod was made as the ServiceAccount, from its projected token.
    assert {e["user"]["username"] for e in installed.job_requests
            if e["userAgent"].startswith("drift-auditor/")} == {kit.SA_USER}

    proc = installed.cluster.pod_run(*kit.cronjob_args(), "-o", "json",
                                     config=installed.config, env=installed.env)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["run"]["status"] == "complete" and doc["run"]["skipped_kinds"] == []
    assert "problems" not in doc
    audited = {(r["apiVersion"].rpartition("/")[0], r["kind"]) for r in doc["resources"]
               if r["status"] == "in-sync"}
    # One object of each of the 22 kinds in scope is in Git: each was listed and compared.
    in_scope = {(g, installed.kind_of(g, r).partition(".")[0])
                for _, g, r in kit.grants(installed.role)}
    assert len(in_scope) == 22 and audited == in_scope


# --------------------------------------------------------------------------- minimal


def test_the_run_asks_for_exactly_what_the_role_grants(installed: Installed) -> None:
    requests = [e for e in installed.job_requests if e["user"]["username"] == kit.SA_USER]
    assert requests and all(e["responseStatus"]["code"] == 200 for e in requests), \
        [(e["requestURI"], e["responseStatus"]) for e in requests
         if e["responseStatus"]["code"] != 200]
    resource = [e for e in requests if "objectRef" in e]
    used = {(e["verb"], e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"])
            for e in resource}
    granted = kit.grants(installed.role)
    assert used - granted == set(), "asked for more than the role grants"
    assert granted - used == set(), "the role grants what the run never uses"
    # Only list, cluster-wide: no get, no watch, nothing namespaced, nothing written.
    assert {e["verb"] for e in resource} == {"list"}
    assert all("namespace" not in e["objectRef"] for e in resource)
    # Each list was allowed by the shipped binding; discovery by the default one.
    assert {e["annotations"]["authorization.k8s.io/reason"] for e in resource} == {READ_ROLE}
    discovery = [e for e in requests if "objectRef" not in e]
    assert {e["annotations"]["authorization.k8s.io/reason"] for e in discovery} == \
        {SYSTEM_DISCOVERY}
    [role] = [r for r in default_cluster_roles() if r["metadata"]["name"] == "system:discovery"]
    urls = role["rules"][0]["nonResourceURLs"]
    for e in discovery:
        path = e["requestURI"].split("?")[0]
        assert e["verb"] == "get" and any(
            path == u or (u.endswith("*") and path.startswith(u[:-1])) for u in urls), path


# ------------------------------------------------------------------- nothing written


WRITES = {  # kubectl command → the verb the API server authorizes it as
    "create": "create",
    "replace": "update",
    "apply --server-side": "patch",
    "delete": "delete",
}


def test_every_write_is_refused_with_the_apis_403(installed: Installed) -> None:
    cluster = installed.cluster
    sa = cluster.kubectl(kit.SA_USER)
    objects = kit.documents(installed.manifests)
    before = cluster.admin("get", "-f", str(installed.manifests), "-o", "json").stdout
    start = cluster.mark()
    for command, verb in WRITES.items():
        proc = sa(*command.split(), "-f", str(installed.manifests), check=False)
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout
        for obj in objects:
            group = obj["apiVersion"].rpartition("/")[0]
            resource = next(r for _, g, r in kit.grants(installed.role)
                            if g == group and installed.kind_of(g, r).partition(".")[0]
                            == obj["kind"])
            meta = obj["metadata"]
            name = "" if verb == "create" else meta["name"]
            # RequestInfo takes a Namespace's own name for the request's namespace
            # (/api/v1/namespaces/shop: requestinfo.go).
            namespace = meta.get("namespace") or (name if obj["kind"] == "Namespace" else "")
            message = kit.forbidden_message(verb, group, resource, namespace, name)
            # kubectl prints `Error from server (Forbidden): [error when creating "FILE": ]`
            # before the API's message, one line per object.
            assert any(line.startswith("Error from server (Forbidden): ")
                       and line.endswith(message) for line in proc.stderr.splitlines()), \
                (command, message, proc.stderr)
    refused = cluster.requests(start)
    tried = {(e["verb"], e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"])
             for e in refused if e["verb"] in WRITES.values()}
    # 22 kinds × 4 verbs, every one a 403 the authorizer decided.
    assert tried == {(v, g, r) for v in WRITES.values() for _, g, r in kit.grants(installed.role)}
    assert all(e["responseStatus"]["code"] == 403
               and e["annotations"]["authorization.k8s.io/decision"] == "forbid"
               for e in refused if e["verb"] in WRITES.values())
    assert cluster.admin("get", "-f", str(installed.manifests), "-o", "json").stdout == before
    # Reading one object by name is not granted either (the run never needs it).
    got = sa("-n", "shop", "get", "deployment", "web", check=False)
    assert kit.forbidden_message("get", "apps", "deployments", "shop", "web") in got.stderr


# ------------------------------------------------- each permission taken away is named


def _cli_run(installed: Installed, kubeconfig: pathlib.Path) -> Any:
    """`drift-auditor run` with the CronJob's args, in this process (fast), as the
    ServiceAccount through a kubeconfig holding its token (the in-cluster path is the test
    above's)."""
    env = {**installed.env, "DRIFT_AUDITOR_CONFIG": str(installed.config),
           "DRIFT_AUDITOR_CLUSTER_IN_CLUSTER": "false",
           "DRIFT_AUDITOR_CLUSTER_KUBECONFIG": str(kubeconfig)}
    return CliRunner(env=env).invoke(main, kit.cronjob_args())


def _granted() -> list[tuple[str, str, str]]:
    role = kit.one(kit.documents(kit.CRONJOB), "ClusterRole", "drift-auditor-read")
    return sorted(kit.grants(role))


@pytest.mark.parametrize("permission", _granted(), ids=lambda p: "/".join(x or "core" for x in p))
def test_each_permission_taken_away_is_named_by_the_run(installed: Installed,
                                                         permission: tuple[str, str, str]
                                                         ) -> None:
    verb, group, resource = permission
    cluster = installed.cluster
    kind = installed.kind_of(group, resource)
    kubeconfig = cluster.sb.write_kubeconfig(
        installed.tmp / "sa-kubeconfig",
        token=cluster.sb.service_account_token(kit.SA_NAMESPACE, kit.SA_NAME))
    narrowed = cluster.write("narrowed-role.yaml", [kit.without(installed.role, group, resource)])
    cluster.apply(narrowed)
    try:
        result = _cli_run(installed, kubeconfig)
    finally:
        cluster.apply(kit.CRONJOB)
    assert result.exit_code == 3, result.output
    out = result.output
    assert " partial · " in out.splitlines()[0], out
    assert f"skipped kinds (not audited this run): {kind}\n" in out
    api = kit.forbidden_message(verb, group, resource, "")
    name = f"{resource}.{group}" if group else resource
    reason = (f"not audited: no permission to list {name} cluster-wide (403 forbidden: the "
              f"RBAC verb 'list' on resource '{name}' cluster-wide is missing). The API server "
              f"said: {api}")
    assert f"forbidden: {kind}: {reason}\n" in out
    with reading(installed.env["DRIFT_AUDITOR_LEDGER_PATH"]) as conn:
        last = runs(conn, limit=1)[0]
    assert last["status"] == "partial" and last["skipped_kinds"] == [kind]
    assert {"where": kind, "message": reason, "kind": "forbidden"}.items() <= \
        last["problems"][0].items(), last["problems"]
