"""The GitOps kit against the sandbox: CRDs install and are discovered, each kind's object
is created with the status its controller writes, and both kubectl and the Python client
read spec and status back unpruned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditor.config import ClusterConfig
from auditor.live.client import Cluster
from auditor.sandbox import Sandbox
from tests.gitfixtures import RepoBuilder, git
from tests.gitops import kit

pytestmark = pytest.mark.kubectl


def _repo(tmp_path: Path) -> tuple[str, str]:
    """A real local repository with a kustomize app and a chart; its URL and HEAD sha."""
    repo = RepoBuilder(tmp_path / "gitops-repo")
    repo.write("apps/web/kustomization.yaml", "resources: [cm.yaml]\n")
    repo.write("apps/web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
    repo.write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "-q", "-m", "init", env={
        "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@x"})
    return repo.path.as_uri(), git(repo.path, "rev-parse", "HEAD")


def _within(sent: Any, stored: Any) -> bool:
    """``sent`` is kept in ``stored``: same scalars and lists, maps may have gained keys."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(
            k in stored and _within(v, stored[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(sent) == len(stored) and all(
            map(_within, sent, stored))
    return bool(sent == stored)


def _objects(url: str, sha: str) -> dict[str, dict[str, Any]]:
    appset = kit.argo_applicationset(
        "shop", generators=[{"list": {"elements": [{"env": "dev"}]}}],
        template={"metadata": {"name": "shop-{{.env}}"},
                  "spec": {"project": "default", "source": {"repoURL": url, "path": "apps/web"},
                           "destination": {"namespace": "{{.env}}"}}})
    return {
        "Application": kit.argo_application(
            "web", repo_url=url, path="apps/web", dest_namespace="shop", synced_revision=sha,
            kustomize={"namePrefix": "p-", "images": ["nginx=nginx:1.27"],
                       "commonLabels": {"team": "shop"}},
            resources=[{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop",
                        "name": "web"},
                       {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop",
                        "name": "web"}]),
        "ApplicationSet": appset,
        "GitRepository": kit.flux_gitrepository("shop", url=url, revision_sha=sha),
        "Kustomization": kit.flux_kustomization(
            "web", source="shop", path="./apps/web", target_namespace="shop", applied_sha=sha,
            images=[{"name": "nginx", "newTag": "1.27"}], name_prefix="p-",
            inventory=[("v1", "ConfigMap", "shop", "p-web"),
                       ("apps/v1", "Deployment", "shop", "p-web")]),
        "HelmRelease": kit.flux_helmrelease(
            "web", chart_path="./charts/web", source="shop", target_namespace="shop",
            values={"replicas": 2, "image": {"tag": "1.27"}}, applied_sha=sha),
    }


def test_crds_install_and_are_discovered(sandbox: Sandbox, kubectl: Any,
                                         kubeconfig: Path) -> None:
    kit.install_crds(kubectl)
    with Cluster(ClusterConfig(kubeconfig=str(kubeconfig), retries=1)) as cluster:
        found = {(r.group, r.kind): r for r in cluster.discover()}
    expected = {
        ("argoproj.io", "Application"): ("v1alpha1", "applications"),
        ("argoproj.io", "ApplicationSet"): ("v1alpha1", "applicationsets"),
        ("argoproj.io", "AppProject"): ("v1alpha1", "appprojects"),
        ("source.toolkit.fluxcd.io", "GitRepository"): ("v1", "gitrepositories"),
        ("source.toolkit.fluxcd.io", "HelmRepository"): ("v1", "helmrepositories"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization"): ("v1", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "HelmRelease"): ("v2", "helmreleases"),
    }
    for key, (version, plural) in expected.items():
        res = found[key]
        assert (res.version, res.plural, res.namespaced) == (version, plural, True), key
    out = kubectl("api-resources", "--api-group=argoproj.io").stdout
    assert "app,apps" in out and "appset,appsets" in out
    assert "ks" in kubectl("api-resources", "--api-group=kustomize.toolkit.fluxcd.io").stdout


def test_objects_keep_spec_and_status(sandbox: Sandbox, kubectl: Any, kubeconfig: Path,
                                      tmp_path: Path) -> None:
    url, sha = _repo(tmp_path)
    kit.install_crds(kubectl)
    objects = _objects(url, sha)
    created = {kind: kit.create(kubectl, obj) for kind, obj in objects.items()}
    generated = kit.create(kubectl, kit.argo_application(
        "shop-dev", repo_url=url, path="apps/web", dest_namespace="dev", synced_revision=sha,
        owner_appset=created["ApplicationSet"]))
    for kind, obj in objects.items():
        back = created[kind]
        # every field sent is kept (server defaults such as chart.spec.version may be added)
        assert _within(obj["spec"], back["spec"]), (kind, back["spec"])
        assert back["status"] == obj["status"], kind

    app = created["Application"]
    assert app["status"]["sync"]["revision"] == sha
    assert app["status"]["sync"]["comparedTo"]["source"] == app["spec"]["source"]
    assert app["status"]["resources"][1] == {
        "group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop",
        "name": "web", "status": "Synced", "health": {"status": "Healthy"}}
    # no status subresource on Application (as published): status written by the controller
    app_managers = {(m["manager"], m["operation"], m.get("subresource", ""))
                    for m in app["metadata"]["managedFields"]}
    assert app_managers == {("argocd-server", "Apply", ""),
                            ("argocd-application-controller", "Update", "")}
    owner = generated["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("ApplicationSet",
                                              created["ApplicationSet"]["metadata"]["uid"])
    assert {m["manager"] for m in generated["metadata"]["managedFields"]} == {
        kit.APPSET_CONTROLLER, kit.ARGO_APP_CONTROLLER}

    ks = created["Kustomization"]
    assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert ks["status"]["conditions"][0]["message"] == f"Applied revision: main@sha1:{sha}"
    assert ks["status"]["inventory"]["entries"] == [
        {"id": "shop_p-web__ConfigMap", "v": "v1"},
        {"id": "shop_p-web_apps_Deployment", "v": "v1"}]
    ks_managers = {(m["manager"], m["operation"], m.get("subresource", ""))
                   for m in ks["metadata"]["managedFields"]}
    assert ks_managers == {("kustomize-controller", "Apply", ""),
                           ("kustomize-controller", "Update", "status")}
    hr = created["HelmRelease"]
    assert hr["spec"]["values"] == {"replicas": 2, "image": {"tag": "1.27"}}
    hist = hr["status"]["history"][0]
    assert (hist["name"], hist["namespace"], hist["status"], hist["version"]) == (
        "shop-web", "shop", "deployed", 1)
    assert hist["chartVersion"] == f"0.1.0+{sha[:12]}"
    gr = created["GitRepository"]
    assert gr["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    assert {(m["manager"], m.get("subresource", "")) for m in gr["metadata"]["managedFields"]} \
        == {("kustomize-controller", ""), ("source-controller", "status")}

    # the Python client lists them with spec and status intact
    with Cluster(ClusterConfig(kubeconfig=str(kubeconfig), retries=1)) as cluster:
        by_kind = {(r.group, r.kind): r for r in cluster.discover()}
        for kind, obj in objects.items():
            group = obj["apiVersion"].split("/")[0]
            items = [i for page in cluster.list_pages(by_kind[(group, kind)]) for i in page.items]
            match = [i for i in items if i["metadata"]["name"] == obj["metadata"]["name"]]
            assert len(match) == 1, kind
            assert match[0]["status"] == obj["status"], kind
            assert match[0]["spec"] == created[kind]["spec"], kind
    # kubectl's printer columns come from the CRDs
    table = kubectl("get", "applications", "-n", "argocd", "-o", "wide").stdout
    assert "Synced" in table and "Healthy" in table and sha in table
    # (the sandbox leaves printer-column cells with JSONPath filters such as Flux's
    # `.status.conditions[?(@.type=="Ready")].status` empty: read the condition directly)
    ready = kubectl("get", "kustomizations", "web", "-n", "flux-system", "-o",
                    'jsonpath={.status.conditions[?(@.type=="Ready")].message}').stdout
    assert ready == f"Applied revision: main@sha1:{sha}"


def test_status_cannot_be_set_through_the_main_resource_of_flux_kinds(
        sandbox: Sandbox, kubectl: Any, tmp_path: Path) -> None:
    """With a status subresource, status in an apply of the object is ignored."""
    url, sha = _repo(tmp_path)
    kit.install_crds(kubectl)
    kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}))
    obj = kit.flux_gitrepository("shop", url=url, revision_sha=sha)
    kubectl("apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-",
            input=json.dumps(obj))
    back = json.loads(kubectl("get", "gitrepositories.source.toolkit.fluxcd.io", "shop", "-n",
                              "flux-system", "-o", "json").stdout)
    assert "artifact" not in back.get("status", {})


def test_controller_labels() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web",
                                                                "namespace": "shop"}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "shop"}}
    assert kit.controller_labels("Application", "web", obj=cm) == {
        "labels": {}, "annotations": {"argocd.argoproj.io/tracking-id": "web:/ConfigMap:shop/web"}}
    assert kit.controller_labels("Application", ("web", "team-a"), obj=deploy,
                                 tracking="annotation+label") == {
        "labels": {"app.kubernetes.io/instance": "team-a_web"},
        "annotations": {"argocd.argoproj.io/tracking-id": "team-a_web:apps/Deployment:shop/web"}}
    assert kit.controller_labels("Application", "web", tracking="label")["labels"] == {
        "app.kubernetes.io/instance": "web"}
    assert kit.controller_labels("Kustomization", "web")["labels"] == {
        "kustomize.toolkit.fluxcd.io/name": "web",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    hr = kit.flux_helmrelease("web", chart_path="./charts/web", source="shop",
                              target_namespace="shop")
    assert kit.controller_labels("HelmRelease", hr) == {
        "labels": {"helm.toolkit.fluxcd.io/name": "web",
                   "helm.toolkit.fluxcd.io/namespace": "flux-system",
                   "app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "shop-web",
                        "meta.helm.sh/release-namespace": "shop"}}
    assert kit.inventory_id("rbac.authorization.k8s.io/v1", "ClusterRole", "", "x") == \
        "_x_rbac.authorization.k8s.io_ClusterRole"
    with pytest.raises(ValueError):
        kit.argo_application("a", repo_url="file:///r", dest_namespace="d",
                             synced_revision="abc")
