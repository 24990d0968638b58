"""`cronjob.yaml` (the Helm chart's default rendering) and `cronjob-revert-rbac.yaml`: every
document valid against the Kubernetes 1.35-1.37 schemas (kubernetes-validate, strict), the
shipped config a valid drift-auditor.yaml, RBAC and scope consistent with each other (checked
against real discovery data), the pod hardened, the ledger volume held by one pod, and both
files applied with kubectl 1.35 and read back. tests/ship/test_helm_chart.py covers the
chart's other variants."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import orjson
import pytest
import yaml
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.config import ClusterConfig
from auditor.live.client import Cluster, in_scope
from auditor.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
FILES = ("cronjob.yaml", "cronjob-revert-rbac.yaml")
VERSIONS = ("1.35.0", "1.36.0", "1.37.0")


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


def one(kind: str, name: str | None = None, file: str = "cronjob.yaml") -> dict[str, Any]:
    [doc] = [d for d in documents(file)
             if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


@pytest.fixture
def shipped_config(tmp_path: Path) -> config_mod.Config:
    file = tmp_path / "drift-auditor.yaml"
    file.write_text(one("ConfigMap")["data"]["drift-auditor.yaml"])
    return config_mod.load(file, env={})


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    [found] = [c for c in pod_spec()["containers"] if c["name"] == name]
    return found


def audit_args() -> list[str]:
    [job] = [j for j in yaml.safe_load(one("ConfigMap")["data"]["drift-auditor.yaml"])[
        "schedule"]["jobs"] if j["name"] == "audit"]
    return list(job["args"])


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("file", FILES)
def test_every_document_validates_strictly(file: str, version: str) -> None:
    docs = documents(file)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_is_strict_enough_to_catch_a_typo() -> None:
    deploy = copy.deepcopy(one("Deployment"))
    first = deploy["spec"]["template"]["spec"]["containers"][0]
    first["securityContext"]["readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(deploy, "1.35.0", strict=True)


def test_the_expected_objects_are_shipped() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in documents("cronjob.yaml"))
    assert kinds == sorted([
        ("Namespace", "drift-auditor"), ("ServiceAccount", "drift-auditor"),
        ("ClusterRole", "drift-auditor-read"), ("ClusterRoleBinding", "drift-auditor-read"),
        ("PersistentVolumeClaim", "drift-auditor-ledger"),
        ("ConfigMap", "drift-auditor-config"), ("Deployment", "drift-auditor"),
        ("Service", "drift-auditor")])
    assert all(d["kind"] != "Secret" for f in FILES for d in documents(f)), \
        "Secret values are never shipped, only referenced"


# ------------------------------------------------------------------- config


def test_shipped_config_is_a_valid_drift_auditor_yaml(shipped_config: config_mod.Config) -> None:
    cfg = shipped_config
    assert cfg.cluster.in_cluster
    assert cfg.revert.mode == "off", "the shipped install is read-only"
    # Ledger and reports live on the volume both containers mount.
    mounts = {c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
              for c in pod_spec()["containers"]}
    for name in ("audit", "serve"):
        data = mounts[name]["ledger"]
        assert Path(cfg.ledger.path).parent == Path(data)
        assert Path(cfg.reports.directory).parent == Path(data)
        assert mounts[name]["config"] == "/etc/drift-auditor/drift-auditor.yaml"
    # serve listens where the Deployment, probes and Service expect it.
    serve_container = container("serve")
    assert cfg.serve.host == "0.0.0.0"
    assert serve_container["ports"][0]["containerPort"] == cfg.serve.port
    assert one("Service")["spec"]["ports"][0]["port"] == cfg.serve.port


def test_config_path_env_points_at_the_configmap_key() -> None:
    key = next(iter(one("ConfigMap")["data"]))
    for c in pod_spec()["containers"]:
        env = {e["name"]: e for e in c["env"]}
        assert env["DRIFT_AUDITOR_CONFIG"]["value"] == f"/etc/drift-auditor/{key}"
        # Any other DRIFT_AUDITOR_* variable would be read as a config override.
        assert [n for n in env if n.startswith("DRIFT_AUDITOR_")] == ["DRIFT_AUDITOR_CONFIG"]


def test_secret_values_are_references_named_as_the_config_expects(
        shipped_config: config_mod.Config) -> None:
    wanted = {shipped_config.slack.token_env,
              *(s.credentials.password_env for s in shipped_config.sources)}
    wanted.discard("")
    assert wanted == {"SLACK_BOT_TOKEN", "GIT_TOKEN"}
    env = {e["name"]: e for e in container("audit")["env"]}
    for name in wanted:
        assert "value" not in env[name], f"{name} must come from a Secret"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"].startswith("drift-auditor-") and ref["key"] == "token"
    # serve needs no credentials (it reads a file): none are given to it.
    serve_env = container("serve")["env"]
    assert not any("valueFrom" in e for e in serve_env)


# -------------------------------------------------------------------- RBAC


def granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_read_role_is_read_only_and_never_reads_secrets() -> None:
    grants = granted(one("ClusterRole", "drift-auditor-read"))
    # list only: a run never gets one object by name (tests/rbac watches it in an audit log).
    assert all(verbs == {"list"} for verbs in grants.values()), grants
    assert not any("*" in g or "*" in r for g, r in grants), "no wildcards"
    assert ("", "secrets") not in grants


def test_read_role_and_scope_agree(sandbox: Sandbox, shipped_config: config_mod.Config,
                                  tmp_path: Path) -> None:
    # Real discovery data (the sandbox serves Kubernetes' own resource lists) decides which
    # resources the shipped scope audits; each needs get+list, and nothing more is granted.
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    with Cluster(ClusterConfig(kubeconfig=str(kubeconfig), retries=1)) as c:
        resources = c.discover()
    scope = shipped_config.scope
    audited = {(r.group, r.plural) for r in resources if in_scope(r, scope)}
    grants = granted(one("ClusterRole", "drift-auditor-read"))
    assert audited == set(grants), (
        f"in scope without permission: {sorted(audited - set(grants))}; "
        f"permitted but not in scope: {sorted(set(grants) - audited)}")
    # Every include-kinds entry names a real kind (a typo would silently audit nothing).
    kinds = {r.group_kind for r in resources}
    assert set(scope.include_kinds) <= kinds, set(scope.include_kinds) - kinds
    # Secrets: not readable, so not in scope — either way the config is read.
    [secret] = [r for r in resources if r.group == "" and r.kind == "Secret"]
    assert not in_scope(secret, scope)
    assert "Secret" in scope.exclude_kinds and "Secret" not in scope.include_kinds
    emptied = config_mod.ScopeConfig(exclude_kinds=scope.exclude_kinds)
    assert not in_scope(secret, emptied), "Secrets stay out even without include-kinds"
    # The exclusions keep the defaults (churn kinds) besides Secret.
    assert set(config_mod.DEFAULT_EXCLUDED_KINDS) <= set(scope.exclude_kinds)


def test_revert_role_is_optional_and_limited_to_audited_kinds() -> None:
    assert all(d["kind"] not in ("ClusterRole", "Role") or "revert" not in d["metadata"]["name"]
               for d in documents("cronjob.yaml")), "revert rights live in their own file"
    read = granted(one("ClusterRole", "drift-auditor-read"))
    revert = granted(one("ClusterRole", "drift-auditor-revert", file="cronjob-revert-rbac.yaml"))
    assert set(revert) <= set(read), "only kinds the audit covers can be reverted"
    assert all(verbs == {"get", "patch"} for verbs in revert.values()), \
        "create (recreate-missing) and delete (prune) are opt-in, commented out"
    assert ("", "secrets") not in revert
    binding = one("RoleBinding", file="cronjob-revert-rbac.yaml")
    assert binding["roleRef"]["name"] == "drift-auditor-revert"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "drift-auditor",
                                    "namespace": "drift-auditor"}]
    assert not any(d["kind"] == "ClusterRoleBinding"
                   for d in documents("cronjob-revert-rbac.yaml")), "granted per namespace"


# --------------------------------------------------------- pods and sharing


def test_the_pod_is_hardened() -> None:
    spec = pod_spec()
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] >= 1000
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in sc and "add" not in sc["capabilities"]
        res = c["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
        assert c["image"].rsplit(":", 1)[1] not in ("latest", "")
        # A read-only root needs somewhere to write temporary files.
        assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
    assert not spec.get("hostNetwork") and not spec.get("hostPID")


def test_the_schedule_and_its_limits(shipped_config: config_mod.Config) -> None:
    jobs = {j.name: j for j in shipped_config.schedule.jobs}
    minutes = int(re.fullmatch(r"\*/(\d+) \* \* \* \*", jobs["audit"].cron).group(1))  # type: ignore[union-attr]
    assert minutes == shipped_config.reports.schedule_minutes, \
        "reports measure coverage against the real schedule"
    assert 0 < jobs["audit"].deadline_seconds < minutes * 60, "a stuck run ends before the next"
    assert jobs["report"].args[:3] == ("report", "--period", "last-month")
    spec = pod_spec()
    assert spec["serviceAccountName"] == "drift-auditor"
    assert one("ClusterRoleBinding")["subjects"][0]["name"] == "drift-auditor"
    # The scheduler stops a running audit on SIGTERM and waits for it.
    assert spec["terminationGracePeriodSeconds"] >= 30


def test_one_pod_holds_the_ledger_volume() -> None:
    pvc = one("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    [vol] = [v for v in pod_spec()["volumes"] if "persistentVolumeClaim" in v]
    assert vol["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    deploy = one("Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}, "a surge pod could not mount it"
    assert "affinity" not in pod_spec(), "nothing waits on another pod"
    assert not [d for d in documents("cronjob.yaml") if d["kind"] in ("CronJob", "Job")]


def test_serve_is_scraped_and_probed() -> None:
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
            "prometheus.io/path": "/metrics"}
    assert one("Service")["metadata"]["annotations"] == want
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert want.items() <= annotations.items()
    serve = container("serve")
    assert serve["args"] == ["serve"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "tcpSocket" in serve["livenessProbe"]
    assert one("Service")["spec"]["type"] == "ClusterIP"
    assert pod_spec()["automountServiceAccountToken"] is False
    assert "kube-api-access" not in {m["name"] for m in serve["volumeMounts"]}, \
        "serve reads a file: it gets no API token"


def test_the_audit_runs_the_image_entrypoint_with_drift_as_success() -> None:
    audit = container("audit")
    # No shell wrapper: the image's ENTRYPOINT (drift-auditor) is PID 1 and gets SIGTERM.
    assert "command" not in audit and audit["args"] == ["schedule"]
    assert audit_args() == ["run", "--exit-zero-on-drift"]
    assert "--exit-zero-on-partial" not in audit_args(), "a partial audit is a failed run"


SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
"""


@pytest.mark.kubectl
def test_the_cronjob_args_make_drift_a_success_and_a_partial_run_a_failed_job(
        sandbox: Sandbox, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    """The Job's exit status, as the shipped args give it, from the real command."""
    args = audit_args()
    apps = tmp_path / "git"
    sync_from_git(kubectl, apps, SHOP)
    config = config_file(tmp_path, kubeconfig)

    def job() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config),
                               *args, "--desired", str(apps)], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"})

    assert job().returncode == 0
    kubectl("-n", "shop", "patch", "configmap/settings", "-p", '{"data":{"MODE":"debug"}}')
    drifted = job()
    assert drifted.returncode == 0 and "1 drifted" in drifted.stdout, drifted.stderr
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/namespaces$", status=403)
    partial = job()
    assert partial.returncode == 3, partial.stderr
    assert "skipped kinds (not audited this run): Namespace" in partial.stdout


# ------------------------------------------------------------ real kubectl


@pytest.mark.kubectl
def test_kubectl_applies_both_files_and_reads_them_back(kubectl: Any) -> None:
    for file in FILES:
        out = kubectl("apply", "-f", str(ROOT / file)).stdout
        assert "created" in out, out
    again = kubectl("apply", "-f", str(ROOT / "cronjob.yaml")).stdout
    assert again.count("unchanged") == len(documents("cronjob.yaml")), again
    got = orjson.loads(kubectl("get", "-f", str(ROOT / "cronjob.yaml"), "-o", "json").stdout)
    found = {(o["kind"], o["metadata"]["name"]) for o in got["items"]}
    assert found == {(d["kind"], d["metadata"]["name"]) for d in documents("cronjob.yaml")}
    by_kind = {o["kind"]: o for o in got["items"]}
    deploy = by_kind["Deployment"]
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    audit = deploy["spec"]["template"]["spec"]["containers"][0]
    assert audit["name"] == "audit"
    assert audit["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert audit["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in audit["env"]}
    assert env["GIT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "drift-auditor-git"
    cm = by_kind["ConfigMap"]
    assert cm["data"] == one("ConfigMap")["data"]
    assert by_kind["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    rbac = orjson.loads(kubectl("get", "-f", str(ROOT / "cronjob-revert-rbac.yaml"),
                                "-o", "json").stdout)
    assert {o["kind"] for o in rbac["items"]} == {"ClusterRole", "RoleBinding"}
