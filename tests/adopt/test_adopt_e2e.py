"""`drift-auditor adopt` end to end: real Git repositories, the sandbox API server changed by
the real kubectl 1.35 as an on-call engineer would, the ledger on disk.

Each test applies Git's manifests as Argo CD would (server-side, ``argocd-controller``),
records a run, makes emergency changes with kubectl, adopts them, checks the branch's files
line by line against the originals, then merges the branch and runs again: in sync, and the
drift resolved as ``git-changed`` with the adoption commit linked.
"""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor import config as config_mod
from auditor.adopt.workflow import Report, Request, execute
from auditor.config import Config
from auditor.errors import GitError
from auditor.ledger import adoptions, drifts, reading
from auditor.pipeline import audit, run_once
from tests.auditfixtures import PERSON_GROUPS, as_user, write_log
from tests.gitfixtures import TOOLS, RepoBuilder, git, tool


def adopt(req: Request, cfg: Config) -> Report:
    """What `drift-auditor adopt` does: a fresh comparison, then the adoption."""
    audited = audit(cfg, desired_path=req.desired, namespace=req.namespace,
                    tools_dir=req.tools_dir)
    return execute(req, cfg, audited.results, audited.desired)

pytestmark = pytest.mark.kubectl

SHOP = """\
# The shop's web front end (team shop, #shop-oncall).
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app.kubernetes.io/name: web  # selector label, never change
spec:
  replicas: 2    # two is enough by day
  selector:
    matchLabels: {app.kubernetes.io/name: web}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web}
    spec:
      containers:
        - name: web
          image: "shop/web:1.4.2"
          ports: [{containerPort: 8080}]
          env:
            - name: MODE
              value: 'prod'
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

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
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


def make_config(kubeconfig: Path, tmp_path: Path) -> Config:
    return config_mod.load("/dev/null", env={}, overrides={
        "cluster": {"kubeconfig": str(kubeconfig)},
        "ledger": {"path": str(tmp_path / "ledger.db")}})


def diff_lines(old: str, new: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="",
                                              n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def show(repo: Path, rev: str, rel: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout


def apply_as_gitops(kubectl: Any, *args: str, input: str | None = None) -> None:
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", *args, input=input)


@pytest.fixture
def shop(tmp_path: Path) -> RepoBuilder:
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("apps/namespace.yaml", NAMESPACE)
    repo.write("apps/shop.yaml", SHOP)
    repo.write("apps/secret.yaml", SECRET)
    repo.commit("shop: web 1.4.2")
    return repo


def test_adopt_image_scale_env_and_label_then_merge_resolves_git_changed(
        sandbox: Any, kubeconfig: Path, kubectl: Any, shop: RepoBuilder, tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    assert run_once(cfg, desired_path=str(apps)).audit.counts["drifted"] == 0
    # The API server's audit log names the person behind the kubectl requests (the events
    # of the very requests kubectl made).
    events = [e for args in (("set", "image", "deployment/web", "web=shop/web:1.5.0-hotfix"),
                             ("scale", "deployment/web", "--replicas=5"),
                             ("set", "env", "deployment/web", "DEBUG=1"),
                             ("label", "deployment/web", "incident=inc-4711"))
              for e in as_user(kubectl, "alice@shop.example", PERSON_GROUPS, "-n", "shop",
                               *args)]
    audit_log = write_log(tmp_path / "audit.log", events)
    first = run_once(cfg, desired_path=str(apps), audit_log=str(audit_log))
    assert first.ledger["drifts_opened"] == 1
    with reading(cfg.ledger.path) as conn:
        (drift,) = drifts(conn)
    main_before = shop.head()

    report = adopt(Request(target=str(drift["id"]), desired=str(apps), by="oncall@shop",
                             tools_dir=str(TOOLS)), cfg)

    assert report.refusals == []
    assert sorted(a.item.path for a in report.adopted) == [
        "metadata.labels.incident", "spec.replicas",
        "spec.template.spec.containers[name=web].env[name=DEBUG]",
        "spec.template.spec.containers[name=web].image"]
    assert report.branch.startswith("drift-auditor/adopt-deployment-shop-web-")
    # The audited branch and the user's checkout are untouched.
    assert shop.head() == main_before
    assert git(shop.path, "status", "--porcelain") == ""
    assert (apps / "shop.yaml").read_text() == SHOP
    # Only the adopted values differ, line by line; comments, quoting and order stay.
    new = show(shop.path, report.branch, "apps/shop.yaml")
    assert diff_lines(SHOP, new) == [
        "+    incident: inc-4711",
        "-  replicas: 2    # two is enough by day",
        "+  replicas: 5    # two is enough by day",
        '-          image: "shop/web:1.4.2"',
        '+          image: "shop/web:1.5.0-hotfix"',
        "+            - name: DEBUG",
        '+              value: "1"',
    ]
    assert git(shop.path, "diff", "--name-only", f"{main_before}..{report.branch}") == \
        "apps/shop.yaml"
    # The commit cites the drift: object, paths, actor, time, ledger id.
    message = git(shop.path, "log", "-1", "--format=%B", report.branch)
    assert f"(drift {drift['id']})" in message.splitlines()[0]
    assert f"Drift-Auditor-Drift: {drift['id']}" in message
    assert "Object: Deployment.apps shop/web" in message
    assert "Changed by: alice@shop.example (API-server audit log)" in message
    assert "- spec.replicas: 2 -> 5 (by kubectl, human, at " in message
    assert "- spec.template.spec.containers[name=web].image: shop/web:1.4.2 -> " \
           "shop/web:1.5.0-hotfix (by kubectl-set, human" in message
    assert report.push_command == f"git -C {shop.path} push origin {report.branch}"

    with reading(cfg.ledger.path) as conn:
        (adoption,) = adoptions.adoptions(conn)
    assert (adoption["drift_id"], adoption["commit"], adoption["branch"], adoption["by"]) == (
        drift["id"], report.commit, report.branch, "oncall@shop")
    assert adoption["outcome"] == "pending merge"

    # Review done: merge the branch; the next run finds Git matching the cluster.
    shop.merge(report.branch, "Merge adoption of the 3 a.m. hotfix")
    second = run_once(cfg, desired_path=str(apps))
    assert second.audit.counts["drifted"] == 0
    assert second.ledger["drifts_resolved"] == {"git-changed": 1}
    with reading(cfg.ledger.path) as conn:
        (resolved,) = drifts(conn, states=("resolved",))
        (adoption,) = adoptions.adoptions(conn)
    assert resolved["id"] == drift["id"]
    assert resolved["resolved_how"] == "git-changed"
    assert adoption["resolution"] == "git-changed"
    assert adoption["merged"] is True
    assert adoption["outcome"] == f"resolved: Git changed to match (commit {report.commit[:12]})"


def test_paths_select_and_dry_run_commits_nothing(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                                  shop: RepoBuilder, tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=3")
    kubectl("-n", "shop", "label", "service/web", "team.example.com/owner=ops")
    branches = git(shop.path, "branch", "--list")
    (apps / "NOTES.md").write_text("not committed yet\n")

    report = adopt(Request(target="Deployment/web", desired=str(apps), dry_run=True,
                             paths=("spec.replicas",)), cfg)
    assert [a.item.path for a in report.adopted] == ["spec.replicas"]
    (warning,) = report.warnings
    assert "1 uncommitted file(s) under apps (apps/NOTES.md)" in warning
    assert "-  replicas: 2    # two is enough by day\n" in report.diff
    assert "+  replicas: 3    # two is enough by day\n" in report.diff
    assert report.branch == "" and report.commit == ""
    assert git(shop.path, "branch", "--list") == branches
    assert git(shop.path, "worktree", "list", "--porcelain").count("worktree ") == 1

    # A key with dots, in brackets, lands in the Service's document only.
    report = adopt(Request(target="Service/shop/web", desired=str(apps),
                             branch="adopt/owner-label"), cfg)
    assert report.branch == "adopt/owner-label"
    new = show(shop.path, report.branch, "apps/shop.yaml")
    assert diff_lines(SHOP, new) == ["+  labels:", "+    team.example.com/owner: ops"]
    assert new.index("team.example.com/owner") > new.index("kind: Service")


def test_added_container_and_port_are_written_without_server_defaults(
        sandbox: Any, kubeconfig: Path, kubectl: Any, shop: RepoBuilder, tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "patch", "deployment/web", "--type=json", "-p",
            '[{"op": "add", "path": "/spec/template/spec/containers/0/ports/-",'
            ' "value": {"containerPort": 9090}},'
            ' {"op": "add", "path": "/spec/template/spec/containers/-",'
            ' "value": {"name": "debug", "image": "busybox:1.36", "args": ["sleep", "1d"]}}]')
    report = adopt(Request(target="Deployment/web", desired=str(apps)), cfg)
    assert report.refusals == []
    new = show(shop.path, report.branch, "apps/shop.yaml")
    # No terminationMessagePath/Policy, imagePullPolicy or protocol: the server's, not Git's.
    assert diff_lines(SHOP, new) == [
        "-          ports: [{containerPort: 8080}]",
        "+          ports: [{containerPort: 8080}, {containerPort: 9090}]",
        "+        - name: debug",
        "+          args:",
        "+            - sleep",
        "+            - 1d",
        "+          image: busybox:1.36",
    ]
    shop.merge(report.branch, "Merge adoption")
    assert audit(cfg, desired_path=str(apps)).counts["drifted"] == 0


def test_secrets_are_refused_and_nothing_is_written(sandbox: Any, kubeconfig: Path,
                                                    kubectl: Any, shop: RepoBuilder,
                                                    tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "patch", "secret/db", "-p",
            '{"stringData":{"password":"rotated-at-3am-value"}}')
    branches = git(shop.path, "branch", "--list")
    report = adopt(Request(target="Secret/shop/db", desired=str(apps)), cfg)
    assert report.adopted == [] and report.branch == "" and report.diff == ""
    (refusal,) = report.refusals
    assert "Secrets are never adopted" in refusal.reason
    assert "rotated-at-3am-value" not in str(refusal)
    assert git(shop.path, "branch", "--list") == branches


def test_controller_owned_fields_are_not_written(sandbox: Any, kubeconfig: Path,
                                                 kubectl: Any, shop: RepoBuilder,
                                                 tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    # A controller scales (its own field manager), a person sets the image.
    subprocess.run(  # a controller's own client: server-side apply as horizontal-pod-autoscaler
        [tool("kubectl"), "--kubeconfig", str(kubeconfig), "apply", "--server-side",
         "--force-conflicts", "--field-manager=horizontal-pod-autoscaler", "-f", "-"],
        input="apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
              "spec: {replicas: 6}\n", text=True, check=True, capture_output=True)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.4.3")
    report = adopt(Request(target="Deployment.apps/shop/web", desired=str(apps)), cfg)
    assert [a.item.path for a in report.adopted] == [
        "spec.template.spec.containers[name=web].image"]
    (refusal,) = report.refusals
    assert refusal.path == "spec.replicas"
    assert "horizontal-pod-autoscaler (controller)" in refusal.reason
    new = show(shop.path, report.branch, "apps/shop.yaml")
    assert diff_lines(SHOP, new) == ['-          image: "shop/web:1.4.2"',
                                     '+          image: "shop/web:1.4.3"']


BASE_DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: shop/api:2.0.0
        args: ["--port=8080"]
"""

OVERLAY = """\
# Production overlay.
namespace: shop
resources:
- ../../base
images:
- name: shop/api
  newTag: 2.0.1
patches:
- path: scale.yaml
"""

SCALE_PATCH = """\
# Production runs three replicas.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 3
"""


def test_kustomize_overlay_patch_is_edited_and_a_transformer_value_is_refused(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("ns.yaml", NAMESPACE)
    repo.write("base/deployment.yaml", BASE_DEPLOY)
    repo.write("base/kustomization.yaml", "resources:\n- deployment.yaml\n")
    repo.write("overlays/prod/kustomization.yaml", OVERLAY)
    repo.write("overlays/prod/scale.yaml", SCALE_PATCH)
    repo.commit("api: base and prod overlay")
    prod = repo.path / "overlays" / "prod"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(repo.path / "ns.yaml"))
    apply_as_gitops(kubectl, "-k", str(prod))
    run_once(cfg, desired_path=str(prod), tools_dir=str(TOOLS))
    kubectl("-n", "shop", "scale", "deployment/api", "--replicas=6")
    kubectl("-n", "shop", "set", "image", "deployment/api", "api=shop/api:2.0.2")
    kubectl("-n", "shop", "set", "env", "deployment/api", "GOMAXPROCS=4")
    run_once(cfg, desired_path=str(prod), tools_dir=str(TOOLS))

    report = adopt(Request(target="Deployment/api", desired=str(prod),
                             tools_dir=str(TOOLS)), cfg)

    adopted = {a.item.path: a.file for a in report.adopted}
    assert adopted == {
        "spec.replicas": "overlays/prod/scale.yaml",
        "spec.template.spec.containers[name=api].env[name=GOMAXPROCS]": "overlays/prod/scale.yaml"}
    (refusal,) = report.refusals
    assert refusal.path == "spec.template.spec.containers[name=api].image"
    assert refusal.file == "overlays/prod/kustomization.yaml"
    assert "edit overlays/prod/kustomization.yaml" in refusal.reason
    new = show(repo.path, report.branch, "overlays/prod/scale.yaml")
    assert diff_lines(SCALE_PATCH, new) == [
        "-  replicas: 3", "+  replicas: 6",
        "+  template:", "+    spec:", "+      containers:", "+      - name: api",
        "+        env:", "+        - name: GOMAXPROCS", '+          value: "4"']
    # The base, shared with any other overlay, is not touched.
    assert show(repo.path, report.branch, "base/deployment.yaml") == BASE_DEPLOY

    repo.merge(report.branch, "Merge adoption")
    after = run_once(cfg, desired_path=str(prod), tools_dir=str(TOOLS))
    (result,) = [r for r in after.audit.results if r.key.name == "api"]
    assert [d.path for d in result.drifts] == ["spec.template.spec.containers[name=api].image"]


def test_a_base_shared_with_another_overlay_is_refused(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("ns.yaml", NAMESPACE)
    repo.write("base/deployment.yaml", BASE_DEPLOY)
    repo.write("base/kustomization.yaml", "resources:\n- deployment.yaml\n")
    repo.write("overlays/prod/kustomization.yaml", "namespace: shop\nresources:\n- ../../base\n")
    repo.write("overlays/staging/kustomization.yaml",
               "namespace: staging\nresources:\n- ../../base\n")
    repo.commit("api: base, prod and staging")
    prod = repo.path / "overlays" / "prod"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(repo.path / "ns.yaml"))
    apply_as_gitops(kubectl, "-k", str(prod))
    kubectl("-n", "shop", "scale", "deployment/api", "--replicas=2")
    branches = git(repo.path, "branch", "--list")

    report = adopt(Request(target="Deployment/shop/api", desired=str(prod),
                             tools_dir=str(TOOLS)), cfg)

    assert report.adopted == [] and report.branch == ""
    (refusal,) = report.refusals
    assert refusal.path == "spec.replicas"
    assert refusal.file == "overlays/prod/kustomization.yaml"
    assert "base/deployment.yaml (shared with overlays/staging)" in refusal.reason
    assert git(repo.path, "branch", "--list") == branches


CHART = """\
apiVersion: v2
name: web
version: 0.1.0
"""

CHART_VALUES = """\
# Defaults for the web chart.
replicaCount: 2
image:
  repository: shop/web
  tag: "1.0.0"   # bumped by CI
"""

CHART_DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"""


def test_helm_values_are_mapped_when_a_render_proves_it_else_refused(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    helm = tool("helm")
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("web/Chart.yaml", CHART)
    repo.write("web/values.yaml", CHART_VALUES)
    repo.write("web/templates/deployment.yaml", CHART_DEPLOY)
    repo.commit("web chart")
    chart = repo.path / "web"
    apply_as_gitops(kubectl, "-f", "-", input=NAMESPACE)
    rendered = subprocess.run([helm, "template", "web", str(chart), "--namespace", "shop"],
                              capture_output=True, text=True, check=True).stdout
    apply_as_gitops(kubectl, "-n", "shop", "-f", "-", input=rendered)
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=4")
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.0.1")
    kubectl("-n", "shop", "set", "env", "deployment/web", "DEBUG=1")
    cfg = make_config(kubeconfig, tmp_path)

    report = adopt(Request(target="Deployment/shop/web", desired=str(chart), namespace="shop",
                             tools_dir=str(TOOLS)), cfg)

    assert {a.item.path: a.file for a in report.adopted} == {
        "spec.replicas": "web/values.yaml",
        "spec.template.spec.containers[name=web].image": "web/values.yaml"}
    new = show(repo.path, report.branch, "web/values.yaml")
    assert diff_lines(CHART_VALUES, new) == [
        "-replicaCount: 2", "+replicaCount: 4",
        '-  tag: "1.0.0"   # bumped by CI', '+  tag: "1.0.1"   # bumped by CI']
    assert show(repo.path, report.branch, "web/templates/deployment.yaml") == CHART_DEPLOY
    # An added env var: no value adds it, the template writes the container's fields (it
    # has no env at all): refused, naming the template.
    (refusal,) = report.refusals
    assert refusal.path == "spec.template.spec.containers[name=web].env[name=DEBUG]"
    assert refusal.file == "web/templates/deployment.yaml"
    assert "edit web/templates/deployment.yaml by hand" in refusal.reason

    repo.merge(report.branch, "Merge adoption")
    after = audit(cfg, desired_path=str(chart), namespace="shop", tools_dir=str(TOOLS))
    (result,) = [r for r in after.results if r.key.kind == "Deployment"]
    assert (result.status, [d.path for d in result.drifts]) == ("drifted", [refusal.path])


def test_a_helm_value_used_twice_is_refused(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                            tmp_path: Path) -> None:
    helm = tool("helm")
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("web/Chart.yaml", CHART)
    repo.write("web/values.yaml", CHART_VALUES)
    # The tag also names the release label: adopting the image would change the label too.
    repo.write("web/templates/deployment.yaml", CHART_DEPLOY.replace(
        "  name: {{ .Release.Name }}\n",
        "  name: {{ .Release.Name }}\n  labels: {version: \"{{ .Values.image.tag }}\"}\n"))
    repo.commit("web chart")
    chart = repo.path / "web"
    apply_as_gitops(kubectl, "-f", "-", input=NAMESPACE)
    rendered = subprocess.run([helm, "template", "web", str(chart), "--namespace", "shop"],
                              capture_output=True, text=True, check=True).stdout
    apply_as_gitops(kubectl, "-n", "shop", "-f", "-", input=rendered)
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.0.1")
    cfg = make_config(kubeconfig, tmp_path)
    branches = git(repo.path, "branch", "--list")
    report = adopt(Request(target="Deployment/shop/web", desired=str(chart), namespace="shop",
                             tools_dir=str(TOOLS)), cfg)
    assert report.adopted == [] and report.branch == ""
    (refusal,) = report.refusals
    assert refusal.file == "web/values.yaml"
    assert "no single value in the values files provably sets it" in refusal.reason
    assert git(repo.path, "branch", "--list") == branches


LITERAL_VALUES = """\
# Defaults for the web chart.
image:
  repository: shop/web
  tag: "1.0.0"
workers: 3   # the WORKERS variable, not the replica count
"""

LITERAL_DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {team: shop}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        env:
        - {name: WORKERS, value: "{{ .Values.workers }}"}
"""


def test_a_literal_in_a_helm_template_is_refused_naming_the_template(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path) -> None:
    """`replicas: 3` and `team: shop` are written in the template: no values key changes
    them (`workers: 3` holds the same number but feeds something else), so the refusal
    sends the user to the template helm's `# Source:` names, not to values.yaml."""
    helm = tool("helm")
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("web/Chart.yaml", CHART)
    repo.write("web/values.yaml", LITERAL_VALUES)
    repo.write("web/templates/deployment.yaml", LITERAL_DEPLOY)
    repo.commit("web chart")
    chart = repo.path / "web"
    apply_as_gitops(kubectl, "-f", "-", input=NAMESPACE)
    rendered = subprocess.run([helm, "template", "web", str(chart), "--namespace", "shop"],
                              capture_output=True, text=True, check=True).stdout
    assert "# Source: web/templates/deployment.yaml" in rendered
    apply_as_gitops(kubectl, "-n", "shop", "-f", "-", input=rendered)
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=5")
    kubectl("-n", "shop", "label", "deployment/web", "team=payments", "--overwrite")
    (tmp_path / "cfg.yaml").write_text(f"cluster: {{kubeconfig: {kubeconfig}}}\n"
                                       f"ledger: {{path: {tmp_path / 'ledger.db'}}}\n")
    branches = git(repo.path, "branch", "--list")

    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", str(tmp_path / "cfg.yaml"), "adopt",
         "Deployment/shop/web", "--desired", str(chart), "-n", "shop", "-o", "json"],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"),
             "DRIFT_AUDITOR_TOOLS": str(TOOLS), "GIT_CONFIG_NOSYSTEM": "1"})

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["adopted"] == [] and doc["branch"] is None
    refused = {r["path"]: r for r in doc["refused"]}
    assert set(refused) == {"spec.replicas", "metadata.labels.team"}
    for refusal in refused.values():
        assert refusal["file"] == "web/templates/deployment.yaml", refusal
        assert "edit web/templates/deployment.yaml by hand" in refusal["reason"]
        assert "edit web/values.yaml" not in refusal["reason"]
    assert show(repo.path, "HEAD", "web/values.yaml") == LITERAL_VALUES
    assert git(repo.path, "branch", "--list") == branches


def test_a_failed_push_keeps_the_commit_and_the_record(sandbox: Any, kubeconfig: Path,
                                                       kubectl: Any, shop: RepoBuilder,
                                                       tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=3")
    run_once(cfg, desired_path=str(apps))
    git(shop.path, "remote", "add", "origin", str(tmp_path / "no-such-remote"))
    with pytest.raises(GitError, match="but the push failed") as failed:
        adopt(Request(target="Deployment/web", desired=str(apps), push=True,
                        branch="adopt/scale"), cfg)
    assert f"push it by hand: git -C {shop.path} push origin adopt/scale" in str(failed.value)
    assert git(shop.path, "branch", "--list", "adopt/scale").strip() == "adopt/scale"
    with reading(cfg.ledger.path) as conn:
        (adoption,) = adoptions.adoptions(conn)
    assert (adoption["branch"], adoption["pushed"]) == ("adopt/scale", False)
    # No --by: the commit's author is recorded as who adopted.
    assert adoption["by"] == git(shop.path, "log", "-1", "--format=%an <%ae>", "adopt/scale")


def test_a_removed_env_var_is_removed_from_git(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                               shop: RepoBuilder, tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "set", "env", "deployment/web", "MODE-")
    report = adopt(Request(target="Deployment/web", desired=str(apps)), cfg)
    # The engine reports the list itself gone (its only item was removed).
    assert [(a.item.path, a.item.op) for a in report.adopted] == [
        ("spec.template.spec.containers[name=web].env", "removed")]
    new = show(shop.path, report.branch, "apps/shop.yaml")
    assert diff_lines(SHOP, new) == ["-          env:", "-            - name: MODE",
                                     "-              value: 'prod'"]
    shop.merge(report.branch, "Merge adoption")
    assert audit(cfg, desired_path=str(apps)).counts["drifted"] == 0


def test_a_configured_helm_source_writes_the_overriding_values_file(
        sandbox: Any, kubeconfig: Path, kubectl: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the source's cache clone goes here
    helm = tool("helm")
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("web/Chart.yaml", CHART)
    repo.write("web/values.yaml", CHART_VALUES)
    repo.write("web/templates/deployment.yaml", CHART_DEPLOY)
    prod_values = "# Production.\nreplicaCount: 2  # same as the chart default, for now\n"
    repo.write("env/prod.yaml", prod_values)
    repo.commit("web chart, prod values")
    cfg = config_mod.load("/dev/null", env={}, overrides={
        "cluster": {"kubeconfig": str(kubeconfig)},
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "sources": [{"url": str(repo.path), "paths": ["web"], "namespace": "shop",
                     "helm": {"release": "web", "values": ["env/prod.yaml"]}}]})
    apply_as_gitops(kubectl, "-f", "-", input=NAMESPACE)
    rendered = subprocess.run([helm, "template", "web", str(repo.path / "web"), "--namespace",
                               "shop", "-f", str(repo.path / "env/prod.yaml")],
                              capture_output=True, text=True, check=True).stdout
    apply_as_gitops(kubectl, "-n", "shop", "-f", "-", input=rendered)
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=5")

    report = adopt(Request(target="Deployment/web", tools_dir=str(TOOLS)), cfg)

    # The chart's values.yaml says 2 as well, but the prod file wins: editing it is what
    # renders 5 (editing values.yaml would render nothing new, and is not done).
    assert [(a.item.path, a.file) for a in report.adopted] == [("spec.replicas",
                                                                "env/prod.yaml")]
    assert report.refusals == []
    clone = Path(report.repo)
    assert clone.is_relative_to(tmp_path / "home" / ".cache" / "drift-auditor" / "repos")
    assert diff_lines(prod_values, show(clone, report.branch, "env/prod.yaml")) == [
        "-replicaCount: 2  # same as the chart default, for now",
        "+replicaCount: 5  # same as the chart default, for now"]
    assert show(clone, report.branch, "web/values.yaml") == CHART_VALUES


def test_a_json_manifest_is_refused_naming_it(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                              shop: RepoBuilder, tmp_path: Path) -> None:
    shop.write("apps/flags.json", json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "flags", "namespace": "shop"}, "data": {"checkout": "off"}},
        indent=2))
    shop.commit("flags")
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps / "namespace.yaml"))
    apply_as_gitops(kubectl, "-f", str(apps))
    kubectl("-n", "shop", "patch", "configmap/flags", "-p", '{"data":{"checkout":"on"}}')
    report = adopt(Request(target="ConfigMap/flags", desired=str(apps)), cfg)
    assert report.adopted == [] and report.branch == ""
    (refusal,) = report.refusals
    assert (refusal.path, refusal.file) == ("data.checkout", "apps/flags.json")
    assert "JSON is not edited" in refusal.reason and "edit it by hand" in refusal.reason


def test_a_squash_merge_is_linked_by_the_trailer(sandbox: Any, kubeconfig: Path, kubectl: Any,
                                                 shop: RepoBuilder, tmp_path: Path) -> None:
    apps = shop.path / "apps"
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(apps))
    run_once(cfg, desired_path=str(apps))
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=3")
    run_once(cfg, desired_path=str(apps))
    report = adopt(Request(target="Deployment/web", desired=str(apps)), cfg)
    # GitHub's "squash and merge": a new commit on main, the branch's message in its body.
    message = git(shop.path, "log", "-1", "--format=%B", report.branch)
    git(shop.path, "merge", "--squash", report.branch)
    squashed = shop.commit(f"Adopt the 3 a.m. scale (#31)\n\n* {message}")
    assert squashed != report.commit

    run_once(cfg, desired_path=str(apps))
    with reading(cfg.ledger.path) as conn:
        (adoption,) = adoptions.adoptions(conn)
    assert adoption["resolution"] == "git-changed"
    assert adoption["merged_commit"] == squashed
    assert adoption["outcome"] == f"resolved: Git changed to match (commit {squashed[:12]})"


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: tenants.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: tenants, singular: tenant, kind: Tenant}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"""

TENANT = """\
apiVersion: example.com/v1
kind: Tenant
metadata:
  name: acme
spec:
  plan: basic   # upgraded on request only
"""


def test_a_cluster_scoped_custom_resource_is_adopted(sandbox: Any, kubeconfig: Path,
                                                     kubectl: Any, tmp_path: Path) -> None:
    repo = RepoBuilder(tmp_path / "gitops")
    repo.write("crds/tenant.yaml", CRD)
    repo.write("tenants/acme.yaml", TENANT)
    repo.commit("tenants")
    cfg = make_config(kubeconfig, tmp_path)
    apply_as_gitops(kubectl, "-f", str(repo.path / "crds"))
    apply_as_gitops(kubectl, "-f", str(repo.path / "tenants"))
    kubectl("patch", "tenant", "acme", "--type=merge", "-p", '{"spec":{"plan":"gold"}}')
    report = adopt(Request(target="Tenant.example.com/acme", desired=str(repo.path)), cfg)
    assert report.refusals == []
    new = show(repo.path, report.branch, "tenants/acme.yaml")
    assert diff_lines(TENANT, new) == ["-  plan: basic   # upgraded on request only",
                                       "+  plan: gold   # upgraded on request only"]
