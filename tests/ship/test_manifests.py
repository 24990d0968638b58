"""`cronjob.yaml` and `cronjob-revert-rbac.yaml`: every document valid against the Kubernetes
1.35-1.37 schemas (kubernetes-validate, strict), the shipped config a valid drift-auditor.yaml,
RBAC and scope consistent with each other (checked against real discovery data), the pods
hardened, the ledger volume shared the way the header says, and both files applied with
kubectl 1.35 and read back."""

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


def pod_specs() -> dict[str, dict[str, Any]]:
    cron = one("CronJob")
    return {"CronJob": cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            "Deployment": one("Deployment")["spec"]["template"]["spec"]}


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("file", FILES)
def test_every_document_validates_strictly(file: str, version: str) -> None:
    docs = documents(file)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_is_strict_enough_to_catch_a_typo() -> None:
    cron = copy.deepcopy(one("CronJob"))
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(cron, "1.35.0", strict=True)


def test_the_expected_objects_are_shipped() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in documents("cronjob.yaml"))
    assert kinds == sorted([
        ("Namespace", "drift-auditor"), ("ServiceAccount", "drift-auditor"),
        ("ServiceAccount", "drift-auditor-serve"), ("ClusterRole", "drift-auditor-read"),
        ("ClusterRoleBinding", "drift-auditor-read"),
        ("PersistentVolumeClaim", "drift-auditor-ledger"),
        ("ConfigMap", "drift-auditor-config"), ("CronJob", "drift-auditor"),
        ("Deployment", "drift-auditor-serve"), ("Service", "drift-auditor")])
    assert all(d["kind"] != "Secret" for f in FILES for d in documents(f)), \
        "Secret values are never shipped, only referenced"


# ------------------------------------------------------------------- config


def test_shipped_config_is_a_valid_drift_auditor_yaml(shipped_config: config_mod.Config) -> None:
    cfg = shipped_config
    assert cfg.cluster.in_cluster
    assert cfg.revert.mode == "off", "the shipped install is read-only"
    # Ledger and reports live on the volume both pods mount.
    mounts = {c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
              for spec in pod_specs().values() for c in spec["containers"]}
    for container in ("auditor", "serve"):
        data = mounts[container]["ledger"]
        assert Path(cfg.ledger.path).parent == Path(data)
        assert Path(cfg.reports.directory).parent == Path(data)
        assert mounts[container]["config"] == "/etc/drift-auditor"
    # serve listens where the Deployment, probes and Service expect it.
    serve_container = pod_specs()["Deployment"]["containers"][0]
    assert cfg.serve.host == "0.0.0.0"
    assert serve_container["ports"][0]["containerPort"] == cfg.serve.port
    assert one("Service")["spec"]["ports"][0]["port"] == cfg.serve.port


def test_config_path_env_points_at_the_configmap_key() -> None:
    key = next(iter(one("ConfigMap")["data"]))
    for spec in pod_specs().values():
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["DRIFT_AUDITOR_CONFIG"]["value"] == f"/etc/drift-auditor/{key}"
        # Any other DRIFT_AUDITOR_* variable would be read as a config override.
        assert [n for n in env if n.startswith("DRIFT_AUDITOR_")] == ["DRIFT_AUDITOR_CONFIG"]


def test_secret_values_are_references_named_as_the_config_expects(
        shipped_config: config_mod.Config) -> None:
    wanted = {shipped_config.slack.token_env,
              *(s.credentials.password_env for s in shipped_config.sources)}
    wanted.discard("")
    assert wanted == {"SLACK_BOT_TOKEN", "GIT_TOKEN"}
    env = {e["name"]: e for e in pod_specs()["CronJob"]["containers"][0]["env"]}
    for name in wanted:
        assert "value" not in env[name], f"{name} must come from a Secret"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"].startswith("drift-auditor-") and ref["key"] == "token"
    # serve needs no credentials (it reads a file): none are given to it.
    serve_env = pod_specs()["Deployment"]["containers"][0]["env"]
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


@pytest.mark.parametrize("owner", ["CronJob", "Deployment"])
def test_pods_are_hardened(owner: str) -> None:
    spec = pod_specs()[owner]
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] >= 1000
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in sc and "add" not in sc["capabilities"]
        res = container["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
        assert container["image"].rsplit(":", 1)[1] not in ("latest", "")
        # A read-only root needs somewhere to write temporary files.
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    assert not spec.get("hostNetwork") and not spec.get("hostPID")


def test_cronjob_schedule_and_limits(shipped_config: config_mod.Config) -> None:
    cron = one("CronJob")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["startingDeadlineSeconds"] > 0
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    minutes = int(re.fullmatch(r"\*/(\d+) \* \* \* \*", cron["schedule"]).group(1))  # type: ignore[union-attr]
    assert minutes == shipped_config.reports.schedule_minutes, \
        "reports measure coverage against the real schedule"
    job = cron["jobTemplate"]["spec"]
    assert 0 < job["activeDeadlineSeconds"] < minutes * 60, "a stuck run ends before the next"
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "drift-auditor"
    assert one("ClusterRoleBinding")["subjects"][0]["name"] == "drift-auditor"


def test_ledger_volume_is_shared_on_one_node() -> None:
    pvc = one("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    claim = pvc["metadata"]["name"]
    for spec in pod_specs().values():
        [vol] = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        assert vol["persistentVolumeClaim"]["claimName"] == claim
    deploy = one("Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    serve_labels = deploy["spec"]["template"]["metadata"]["labels"]
    [term] = pod_specs()["CronJob"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    selector = term["labelSelector"]["matchLabels"]
    assert selector.items() <= serve_labels.items(), "the affinity selects the serve pod"
    audit_labels = one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= audit_labels.items(), "not the audit pods themselves"
    assert not one("Service")["spec"]["selector"].items() <= audit_labels.items()


def test_serve_is_scraped_and_probed() -> None:
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
            "prometheus.io/path": "/metrics"}
    assert one("Service")["metadata"]["annotations"] == want
    assert one("Deployment")["spec"]["template"]["metadata"]["annotations"] == want
    container = pod_specs()["Deployment"]["containers"][0]
    assert container["args"] == ["serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "tcpSocket" in container["livenessProbe"]
    assert one("Service")["spec"]["type"] == "ClusterIP"
    assert pod_specs()["Deployment"]["automountServiceAccountToken"] is False


def test_cronjob_runs_the_image_entrypoint_with_drift_as_success() -> None:
    container = pod_specs()["CronJob"]["containers"][0]
    # No shell wrapper: the image's ENTRYPOINT (drift-auditor) is PID 1 and gets SIGTERM.
    assert "command" not in container
    assert container["args"] == ["run", "--exit-zero-on-drift"]
    assert "--exit-zero-on-partial" not in container["args"], "a partial audit fails the Job"


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
    args = pod_specs()["CronJob"]["containers"][0]["args"]
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
    cron = by_kind["CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["GIT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "drift-auditor-git"
    cm = by_kind["ConfigMap"]
    assert cm["data"] == one("ConfigMap")["data"]
    assert by_kind["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    rbac = orjson.loads(kubectl("get", "-f", str(ROOT / "cronjob-revert-rbac.yaml"),
                                "-o", "json").stdout)
    assert {o["kind"] for o in rbac["items"]} == {"ClusterRole", "RoleBinding"}
