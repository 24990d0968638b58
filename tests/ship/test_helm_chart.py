"""The Helm chart (``deploy/helm/drift-auditor``) under the real helm and kubectl 1.35.

Each variant (the default install, every feature on in the pod runner, the CronJob runner)
passes ``helm lint --strict``; every rendered object validates strictly against the
Kubernetes 1.35 schemas and is applied to the sandbox with kubectl; the rendered
drift-auditor.yaml is a valid configuration whose scope and RBAC agree; Secrets are only ever
referenced. ``cronjob.yaml`` and the Kustomize base are the default rendering, byte for byte;
bad values fail ``helm template`` naming the value.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from auditor import config as config_mod
from tests.rbac.kit import grants
from tools import render_manifests

ROOT = Path(__file__).resolve().parents[2]
CHART = render_manifests.CHART
VARIANTS: dict[str, tuple[str, ...]] = {
    # cronjob.yaml's: the default values, with the namespace created.
    "default": render_manifests.FLAGS,
    "all-features": ("-f", str(CHART / "ci" / "all-features-values.yaml")),
    "cronjob": ("-f", str(CHART / "ci" / "cronjob-values.yaml")),
    "cronjob-same-node": ("--set", "runner=cronjob", "--set", "cronjob.sameNodeAsServe=true"),
    # A cluster of a fleet: the ledger in the central PostgreSQL store.
    "fleet-store": ("-f", str(CHART / "ci" / "fleet-store-values.yaml")),
    # mode: central — one serve over every cluster of the store, in a management cluster.
    "central-serve": ("-f", str(CHART / "ci" / "central-serve-values.yaml")),
}
STORE_URL = "postgresql://drift_reader@audit-db.platform.svc:5432/audit?sslmode=verify-full"
# Custom resources of the Prometheus operator: no Kubernetes schema to validate against.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}

Doc = dict[str, Any]


@functools.cache
def rendered(variant: str) -> tuple[Doc, ...]:
    text = render_manifests.render(*VARIANTS[variant])
    return tuple(d for d in yaml.safe_load_all(text) if d)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([render_manifests.helm(), *args], capture_output=True, text=True,
                          timeout=120)


def one(docs: tuple[Doc, ...], kind: str, name: str | None = None) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def pod_specs(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    """Every pod template, by workload name."""
    out = {}
    for d in docs:
        if d["kind"] == "Deployment":
            out[d["metadata"]["name"]] = d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            out[d["metadata"]["name"]] = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return out


def shipped_config(docs: tuple[Doc, ...], tmp_path: Path) -> config_mod.Config:
    file = tmp_path / "drift-auditor.yaml"
    file.write_text(one(docs, "ConfigMap", "drift-auditor-config")["data"]["drift-auditor.yaml"])
    return config_mod.load(file, env={})


# ----------------------------------------------------------- one source of truth


def test_cronjob_yaml_and_the_kustomize_base_are_the_default_rendering() -> None:
    want = render_manifests.plain_manifest()
    for path in render_manifests.OUTPUTS:
        assert path.read_text(encoding="utf-8") == want, \
            f"{path.relative_to(ROOT)} differs from the chart: run `make manifests`"
    assert render_manifests.main(["--check"]) == 0


@pytest.mark.kubectl
def test_kustomize_renders_the_same_objects(kubectl: Any) -> None:
    base = list(yaml.safe_load_all(kubectl("kustomize", str(ROOT / "deploy" / "kustomize" /
                                                               "base")).stdout))

    def key(d: Doc) -> tuple[str, str]:
        return d["kind"], d["metadata"]["name"]

    assert sorted(base, key=key) == sorted(rendered("default"), key=key)
    overlay = list(yaml.safe_load_all(kubectl("kustomize", str(ROOT / "deploy" / "kustomize" /
                                                                  "example")).stdout))
    images = {c["image"] for spec in pod_specs(tuple(overlay)).values()
              for c in spec["containers"]}
    assert images == {"registry.example.com/platform/drift-auditor:0.1.0"}


@pytest.mark.kubectl
def test_the_overlay_example_config_is_valid(kubectl: Any, tmp_path: Path) -> None:
    overlay = tuple(yaml.safe_load_all(kubectl("kustomize", str(ROOT / "deploy" / "kustomize" /
                                                                   "example")).stdout))
    cfg = shipped_config(overlay, tmp_path)
    assert [j.name for j in cfg.schedule.jobs] == ["audit", "report"]


# ------------------------------------------------------------------------ helm


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant: str) -> None:
    proc = helm("lint", "--strict", str(CHART), *VARIANTS[variant])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_strictly(variant: str) -> None:
    docs = rendered(variant)
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, "1.35.0", strict=True)


def test_the_expected_objects_per_variant() -> None:
    def kinds(variant: str) -> list[tuple[str, str]]:
        return sorted((d["kind"], d["metadata"]["name"]) for d in rendered(variant))

    assert kinds("default") == sorted([
        ("Namespace", "drift-auditor"), ("ServiceAccount", "drift-auditor"),
        ("ClusterRole", "drift-auditor-read"), ("ClusterRoleBinding", "drift-auditor-read"),
        ("PersistentVolumeClaim", "drift-auditor-ledger"),
        ("ConfigMap", "drift-auditor-config"), ("Deployment", "drift-auditor"),
        ("Service", "drift-auditor")])
    full = kinds("all-features")
    for wanted in [("ClusterRole", "drift-auditor-watch"), ("ClusterRole", "drift-auditor-revert"),
                   ("RoleBinding", "drift-auditor-revert"), ("ServiceMonitor", "drift-auditor"),
                   ("PrometheusRule", "drift-auditor"), ("Service", "drift-auditor-audit-webhook"),
                   ("ConfigMap", "drift-auditor-dashboard"), ("ClusterRole", "drift-auditor-gitops"),
                   ("RoleBinding", "drift-auditor-argocd-credentials")]:
        assert wanted in full
    assert [n for k, n in full if k == "RoleBinding" and "revert" in n] == \
        ["drift-auditor-revert"] * 2
    assert kinds("central-serve") == sorted([
        ("Namespace", "drift-auditor"), ("ServiceAccount", "drift-auditor"),
        ("ConfigMap", "drift-auditor-config"), ("Deployment", "drift-auditor"),
        ("Service", "drift-auditor")])
    cron = kinds("cronjob")
    for wanted in [("CronJob", "drift-auditor"), ("CronJob", "drift-auditor-report"),
                   ("Deployment", "drift-auditor-serve"), ("Deployment", "drift-auditor-watch")]:
        assert wanted in cron
    for variant in VARIANTS:
        assert all(d["kind"] != "Secret" for d in rendered(variant)), \
            "Secret values are never shipped, only referenced"


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_is_valid_and_scope_matches_the_read_role(variant: str, tmp_path: Path) -> None:
    docs = rendered(variant)
    cfg = shipped_config(docs, tmp_path)
    if variant == "central-serve":
        # Serve only: no role to agree with, no schedule; the store URL alone is the fleet.
        assert not [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
        assert not cfg.schedule.jobs and not cfg.ledger.url
        assert cfg.serve.ledgers == (STORE_URL + "&sslrootcert=/etc/drift-auditor/store/ca.crt",)
        return
    assert cfg.cluster.in_cluster
    include = set(cfg.scope.include_kinds)
    role = grants(one(docs, "ClusterRole", "drift-auditor-read"))
    assert {verb for verb, _, _ in role} == {"list"}
    granted = {(g, r) for _, g, r in role}
    assert ("", "secrets") not in granted
    # One values list makes both: every included kind is listable and nothing else is.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert include == {k["kind"] if not k["group"] else f"{k['kind']}.{k['group']}"
                       for k in values["kinds"]}
    assert granted == {(k["group"], k["resource"]) for k in values["kinds"]}
    assert cfg.ledger.path == "/var/lib/drift-auditor/ledger.db"
    assert cfg.reports.directory == "/var/lib/drift-auditor/reports"
    if variant in ("default", "all-features", "fleet-store"):
        jobs = {j.name: j for j in cfg.schedule.jobs}
        assert jobs["audit"].args == ("run", "--exit-zero-on-drift")
        assert jobs["audit"].cron == "*/15 * * * *" and cfg.reports.schedule_minutes == 15
        assert jobs["report"].args[:3] == ("report", "--period", "last-month")
    else:
        assert not cfg.schedule.jobs, "CronJobs schedule the runs"
    if variant == "all-features":
        assert cfg.watch.webhook_port == 8443 and cfg.watch.webhook_token_file
        assert cfg.serve.token_file and cfg.ledger.signing_key_file
        assert cfg.compare.secret_hash_key_file
        assert cfg.revert.mode == "enforce" and cfg.revert.namespaces == ("shop", "billing")
        assert [(c.controller, c.namespaces, c.controller_credentials)
                for c in cfg.controllers] == [("argocd", ("argocd",), True), ("flux", (), False)]
        gitops = grants(one(docs, "ClusterRole", "drift-auditor-gitops"))
        assert gitops == {("list", "argoproj.io", "applications"),
                          ("list", "source.toolkit.fluxcd.io", "gitrepositories"),
                          ("list", "kustomize.toolkit.fluxcd.io", "kustomizations"),
                          ("list", "helm.toolkit.fluxcd.io", "helmreleases")}
        role = one(docs, "Role", "drift-auditor-argocd-credentials")
        assert role["metadata"]["namespace"] == "argocd"
        assert grants(role) == {("list", "", "secrets")}
    elif variant == "default":
        assert cfg.revert.mode == "off", "the default install is read-only"
    if variant == "fleet-store":
        assert cfg.ledger.url == ("postgresql://drift_auditor@audit-db.platform.svc:5432/audit"
                                  "?sslmode=verify-full&sslrootcert=/etc/drift-auditor/store/ca.crt")
        assert cfg.ledger.cluster == "prod-eu"
        assert cfg.ledger.password_file == "/etc/drift-auditor/store/password"
    else:
        assert not cfg.ledger.url, "the SQLite file unless a store is configured"


def test_a_fleet_store_reaches_every_container_that_opens_the_ledger() -> None:
    """The store's password and CA: projected from their Secrets into the writers and serve
    (which reads the store), file mode 0440, and in no pod without a store."""
    for name, spec in pod_specs(rendered("fleet-store")).items():
        [store] = [v for v in spec["volumes"] if v["name"] == "store"]
        assert store["projected"]["defaultMode"] == 0o440
        assert [src["secret"] for src in store["projected"]["sources"]] == [
            {"name": "audit-db", "items": [{"key": "password", "path": "password"}]},
            {"name": "audit-db-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}]
        for container in spec["containers"]:
            mounts = {m["name"]: m for m in container["volumeMounts"]}
            assert mounts["store"] == {"name": "store", "mountPath": "/etc/drift-auditor/store",
                                       "readOnly": True}, (name, container["name"])
    for variant in ("default", "all-features", "cronjob"):
        for spec in pod_specs(rendered(variant)).values():
            assert all(v["name"] != "store" for v in spec["volumes"]), variant


def test_central_serve_is_serve_alone_over_the_whole_store(tmp_path: Path) -> None:
    """mode: central renders one serve reading every cluster of the store: the store's
    password and CA mounted, no token, no role of any kind, no claim, no audit schedule."""
    docs = rendered("central-serve")
    [(name, spec)] = pod_specs(docs).items()
    assert name == "drift-auditor"
    assert [c["name"] for c in spec["containers"]] == ["serve"]
    [serve] = spec["containers"]
    assert serve["args"] == ["serve"]
    assert spec["automountServiceAccountToken"] is False
    assert "kube-api-access" not in {v["name"] for v in spec["volumes"]}
    assert not any("serviceAccountToken" in src for v in spec["volumes"]
                   for src in v.get("projected", {}).get("sources", []))
    mounts = {m["name"]: m for m in serve["volumeMounts"]}
    assert mounts["store"] == {"name": "store", "mountPath": "/etc/drift-auditor/store",
                               "readOnly": True}
    assert mounts["serve-token"]["mountPath"] == "/etc/drift-auditor/serve"
    assert "keys" not in mounts, "serve signs nothing"
    [store] = [v for v in spec["volumes"] if v["name"] == "store"]
    assert [src["secret"] for src in store["projected"]["sources"]] == [
        {"name": "audit-db-reader", "items": [{"key": "password", "path": "password"}]},
        {"name": "audit-db-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}]
    assert not [d for d in docs if d["kind"] in (
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "PersistentVolumeClaim",
        "CronJob")]
    service = one(docs, "Service")
    deploy = one(docs, "Deployment")
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"][
        "labels"].items()
    cfg = shipped_config(docs, tmp_path)
    # serve.ledgers holds the URL alone (every cluster, as `serve --ledger URL`); the password
    # file is the projected Secret's; ledger.url stays empty (no cluster of its own).
    assert cfg.serve.ledgers == (STORE_URL + "&sslrootcert=/etc/drift-auditor/store/ca.crt",)
    assert cfg.ledger.password_file == "/etc/drift-auditor/store/password"
    assert not cfg.ledger.url and not cfg.ledger.cluster
    assert cfg.serve.token_file == "/etc/drift-auditor/serve/token"
    assert not cfg.schedule.jobs


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_are_hardened_and_only_api_clients_get_a_token(variant: str) -> None:
    docs = rendered(variant)
    for name, spec in pod_specs(docs).items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in spec["volumes"]}
        if variant == "central-serve":  # the ledgers are in the store: no claim
            assert volumes["ledger"] == {"name": "ledger", "emptyDir": {"sizeLimit": "64Mi"}}
        else:
            assert volumes["ledger"]["persistentVolumeClaim"]["claimName"] == \
                "drift-auditor-ledger"
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert "command" not in container, "the image's entrypoint is PID 1"
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts["tmp"] == "/tmp" and mounts["ledger"] == "/var/lib/drift-auditor"
            env = {e["name"]: e for e in container["env"]}
            assert env["DRIFT_AUDITOR_CONFIG"]["value"] == "/etc/drift-auditor/drift-auditor.yaml"
            for e in env.values():
                assert "value" in e or set(e["valueFrom"]) == {"secretKeyRef"}, e
            talks_to_api = container["name"] in ("audit", "watch")
            assert ("kube-api-access" in mounts) is talks_to_api, container["name"]
            if container["name"] in ("serve", "report"):
                assert not any("valueFrom" in e for e in env.values()), \
                    f"{container['name']} needs no credential"
            if talks_to_api:
                assert mounts["kube-api-access"] == "/var/run/secrets/kubernetes.io/serviceaccount"
                assert env["GIT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "drift-auditor-git"


def test_the_default_runner_needs_no_pod_affinity_and_one_volume_owner() -> None:
    docs = rendered("default")
    [spec] = pod_specs(docs).values()
    assert "affinity" not in spec
    assert [c["name"] for c in spec["containers"]] == ["audit", "serve"]
    assert [c["args"] for c in spec["containers"]] == [["schedule"], ["serve"]]
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"][
        "labels"].items()
    # The cronjob runner with the same-node option keeps the old behaviour, by choice.
    cron = one(rendered("cronjob-same-node"), "CronJob", "drift-auditor")
    term = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "serve"
    assert "affinity" not in pod_specs(rendered("cronjob"))["drift-auditor"]


def test_the_cronjob_runner_schedules_audit_and_report(tmp_path: Path) -> None:
    docs = rendered("cronjob")
    audit = one(docs, "CronJob", "drift-auditor")["spec"]
    report = one(docs, "CronJob", "drift-auditor-report")["spec"]
    assert audit["schedule"] == "*/15 * * * *" and audit["concurrencyPolicy"] == "Forbid"
    assert audit["timeZone"] == "Etc/UTC"
    job = audit["jobTemplate"]["spec"]
    assert 0 < job["activeDeadlineSeconds"] < 15 * 60
    assert job["template"]["spec"]["containers"][0]["args"] == ["run", "--exit-zero-on-drift"]
    assert report["schedule"] == "0 2 1 * *"
    assert report["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "report", "--period", "last-month", "--format", "all"]
    assert one(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_prometheus_rule_is_the_shipped_rules_and_promtool_accepts_it(tmp_path: Path) -> None:
    rule = one(rendered("all-features"), "PrometheusRule")
    shipped = yaml.safe_load((CHART / "files" / "drift-auditor-rules.yaml").read_text())
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {r["alert"] for g in shipped["groups"] for r in g["rules"]}
    # The dead man's switch follows the chart's schedule (two 15-minute periods).
    assert alerts["DriftAuditorNotRunning"]["expr"].endswith("> 1800")
    assert "{{ $labels.status }}" in alerts["DriftAuditorRunNotComplete"]["annotations"]["summary"]
    file = tmp_path / "rules.yaml"
    file.write_text(yaml.safe_dump(rule["spec"]))
    proc = subprocess.run(["promtool", "check", "rules", str(file)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout


def test_grafana_dashboard_configmap_carries_the_shipped_dashboard() -> None:
    cm = one(rendered("all-features"), "ConfigMap", "drift-auditor-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = (CHART / "files" / "drift-auditor-dashboard.json").read_text()
    assert cm["data"]["drift-auditor-dashboard.json"].strip() == text.strip()


@pytest.mark.parametrize(("flags", "message"), [
    (("--set", "audit.schedul=*/5 * * * *"), "additional properties 'schedul' not allowed"),
    (("--set", "image.repository="), "/image/repository"),
    (("--set", "runner=daily"), "/runner"),
    (("--set", "report.period=fortnight"), "/report/period"),
    (("--set", "runner=cronjob"), "set ledger.persistence.accessMode: ReadWriteMany"),
    (("--set", "revert.enabled=true"), "list the namespaces auto-revert may write"),
    (("--set", "audit.schedule=every hour"), "/audit/schedule"),
    (("--set", "gitops.flux.enabled=true", "--set", "gitops.flux.controllerCredentials=true"),
     "list the namespaces holding its repository Secrets"),
    (("--set", "ledger.store.url=postgresql://u@db/audit"),
     "ledger.store.cluster: name this cluster in the fleet store"),
    (("--set", "ledger.store.url=postgresql://u@db/audit", "--set",
      "ledger.store.cluster=prod"), "secrets.hashKey: a cluster writing the fleet store"),
    (("--set", "ledger.store.url=postgresql://u:hunter2@db/audit", "--set",
      "ledger.store.cluster=prod"), "/ledger/store/url"),
    (("--set", "ledger.store.url=postgresql://u@db/audit", "--set",
      "ledger.store.cluster=Prod_EU"), "/ledger/store/cluster"),
    (("--set", "mode=central"), "mode: central serves every cluster of the fleet store: set "
                                "ledger.store.url"),
    (("--set", "mode=hub"), "/mode"),
    (("-f", str(CHART / "ci" / "central-serve-values.yaml"), "--set", "watch.enabled=true"),
     "mode: central runs serve only: set watch.enabled and revert.enabled to false"),
])
def test_bad_values_fail_naming_the_value(flags: tuple[str, ...], message: str) -> None:
    proc = helm("template", "x", str(CHART), *flags)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


# -------------------------------------------------------------- real kubectl


@pytest.mark.kubectl
@pytest.mark.parametrize("variant", VARIANTS)
def test_kubectl_applies_the_rendering(variant: str, kubectl: Any, tmp_path: Path) -> None:
    docs = [d for d in rendered(variant) if d["kind"] not in OPERATOR_KINDS]
    namespaces = {d["metadata"].get("namespace") for d in docs} - {None}
    namespaces -= {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    # The namespaces helm install --create-namespace (and revert's targets) would have.
    if namespaces:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
             for ns in sorted(namespaces)]))
    file = tmp_path / "rendered.yaml"
    file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    out = kubectl("apply", "-f", str(file)).stdout
    assert out.count("created") == len(docs), out
    again = kubectl("apply", "-f", str(file)).stdout
    assert again.count("unchanged") == len(docs), again


def test_the_charts_watch_and_revert_roles_match_the_standalone_files() -> None:
    docs = rendered("all-features")
    watch_file = [d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac" / "watch.yaml")
                                                .read_text()) if d]
    assert grants(one(docs, "ClusterRole", "drift-auditor-watch")) == grants(
        one(tuple(watch_file), "ClusterRole", "drift-auditor-watch"))
    revert_file = [d for d in yaml.safe_load_all((ROOT / "cronjob-revert-rbac.yaml").read_text())
                   if d]
    chart_revert = {g for g in grants(one(docs, "ClusterRole", "drift-auditor-revert"))
                    if g[0] != "create"}
    assert chart_revert == grants(one(tuple(revert_file), "ClusterRole", "drift-auditor-revert"))
