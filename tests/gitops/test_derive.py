"""Argo CD Applications and Flux Kustomizations/HelmReleases turned into Git sources: the
controllers' own rules (defaults, release names, revisions, overrides), what is skipped and
why, and the ``sources: [{from: …}]`` configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditor import config as config_mod
from auditor.config import Credentials
from auditor.errors import ConfigError
from auditor.gitops import argocd, flux
from auditor.gitops.discover import derive_all, from_snapshot
from auditor.gitops.records import Skipped

SHA = "0123456789abcdef0123456789abcdef01234567"
URL = "https://git.example.com/platform/gitops.git"


def none(url: str, *_: Any) -> Credentials:
    return Credentials()


def app(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    meta = spec.pop("metadata", {})
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "namespace": "argocd", **meta},
            "spec": {"project": "default",
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": "shop"}, **spec},
            "status": status}


def test_a_plain_application_at_the_applied_commit() -> None:
    derived, skipped = argocd.derive(app(source={"repoURL": URL, "path": "apps/shop",
                                                 "targetRevision": "main"},
                                         status={"sync": {"status": "Synced",
                                                          "revision": SHA}}), none)
    assert skipped == []
    [d] = derived
    assert d.owner == "Application argocd/shop" and d.name == "argocd:argocd/shop"
    assert d.ref == "main" and d.applied == SHA
    # Audited at what Argo CD applied: commits after it are sync lag, not drift.
    assert d.source.revision == SHA and d.source.paths == ("apps/shop",)
    assert d.source.namespace == "shop" and d.namespace == "shop"
    assert d.source.recurse is False, "Argo CD reads a directory without its subfolders"
    assert d.source.helm.release == "shop"


def test_never_synced_follows_the_target_revision_and_head_by_default() -> None:
    [d], _ = argocd.derive(app(source={"repoURL": URL, "path": "."}), none)
    assert d.ref == "HEAD" and d.applied == "" and d.source.revision == "HEAD"


def test_helm_settings() -> None:
    [d], _ = argocd.derive(app(source={
        "repoURL": URL, "path": "charts/web", "targetRevision": "v2",
        "helm": {"releaseName": "web-prod", "valueFiles": ["values-prod.yaml"],
                 "valuesObject": {"replicas": 3},
                 "parameters": [{"name": "image.tag", "value": "1.4"}]}}), none)
    helm = d.source.helm
    assert helm.release == "web-prod" and helm.values == ("values-prod.yaml",)
    assert helm.set == ("image.tag=1.4",) and '"replicas": 3' in helm.values_yaml
    [d], _ = argocd.derive(app(source={"repoURL": URL, "path": "c", "helm": {
        "values": "replicas: 2\n", "namespace": "web"}}), none)
    assert d.source.helm.values_yaml == "replicas: 2\n" and d.source.namespace == "web"


def test_kustomize_settings() -> None:
    [d], _ = argocd.derive(app(source={"repoURL": URL, "path": "overlays/prod", "kustomize": {
        "images": ["nginx=registry/nginx:1.27"], "namePrefix": "prod-",
        "commonLabels": {"team": "shop"}, "namespace": "shop-prod"}}), none)
    k = d.source.kustomize
    assert k.images == ("nginx=registry/nginx:1.27",) and k.name_prefix == "prod-"
    assert k.labels == ("team=shop",) and k.namespace == "shop-prod"
    assert not k.generate, "Argo CD applies kustomize settings to kustomizations only"


def test_generated_by_an_applicationset() -> None:
    [d], _ = argocd.derive(app(metadata={"ownerReferences": [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "all",
         "uid": "u", "controller": True, "blockOwnerDeletion": True}]},
        source={"repoURL": URL, "path": "a"}), none)
    assert d.via == "ApplicationSet argocd/all"


def test_multiple_sources_with_a_ref_source() -> None:
    derived, skipped = argocd.derive(app(sources=[
        {"repoURL": URL, "path": "apps/a", "targetRevision": "main"},
        {"repoURL": URL, "targetRevision": "main", "ref": "values"},
        {"repoURL": URL, "path": "apps/b"}],
        status={"sync": {"revisions": [SHA, SHA, "not-a-sha"]}}), none)
    assert skipped == []
    assert [(d.name, d.applied) for d in derived] == [("argocd:argocd/shop#0", SHA),
                                                      ("argocd:argocd/shop#2", "")]


@pytest.mark.parametrize(("spec", "reason"), [
    ({"source": {"repoURL": "https://charts.example.com", "chart": "redis",
                 "targetRevision": "18.0.0"}}, "from a Helm repository"),
    ({"source": {"repoURL": URL, "path": "p", "plugin": {"name": "cmp"}}},
     "config management plugin"),
    ({"source": {"repoURL": URL, "path": "p", "directory": {"include": "*.yaml"}}},
     "include/exclude"),
    ({"source": {"repoURL": URL, "path": "p"},
      "destination": {"server": "https://prod.example.com:6443", "namespace": "x"}},
     "another cluster"),
    ({"source": {"repoURL": URL, "path": "p", "helm": {"valueFiles": ["$values/x.yaml"]}}},
     "$ref"),
    ({}, "no spec.source"),
])
def test_what_is_skipped_says_why(spec: dict[str, Any], reason: str) -> None:
    derived, skipped = argocd.derive(app(**spec), none)
    assert derived == []
    [s] = skipped
    assert s.owner == "Application argocd/shop" and reason in s.reason


def gitrepo(ref: dict[str, Any] | None = None, artifact: str = "") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "platform", "namespace": "flux-system"},
        "spec": {"url": URL, "interval": "1m", **({"ref": ref} if ref is not None else {})}}
    if artifact:
        obj["status"] = {"artifact": {"revision": artifact}}
    return obj


def kustomization(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"interval": "10m", "prune": True,
                     "sourceRef": {"kind": "GitRepository", "name": "platform"}, **spec},
            "status": status}


def repos(*objs: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}


def test_flux_revisions_and_refs() -> None:
    assert flux.revision_sha(f"main@sha1:{SHA}") == SHA
    assert flux.revision_sha(f"sha1:{SHA}") == SHA
    assert flux.revision_sha(f"main/{SHA}") == SHA
    assert flux.revision_sha("v1.2.3") == ""
    assert flux.git_ref(gitrepo()) == "master"
    assert flux.git_ref(gitrepo({"branch": "main"})) == "main"
    assert flux.git_ref(gitrepo({"branch": "main", "tag": "v1"})) == "v1"
    assert flux.git_ref(gitrepo({"branch": "main", "commit": SHA})) == SHA
    assert flux.git_ref(gitrepo({"semver": ">=1.0"})) is None


def test_a_flux_kustomization() -> None:
    d = flux.derive_kustomization(kustomization(
        path="./clusters/prod", targetNamespace="shop", namePrefix="p-",
        images=[{"name": "nginx", "newName": "registry/nginx", "newTag": "1.27"},
                {"name": "redis", "digest": "sha256:abc"}],
        commonMetadata={"labels": {"team": "shop"}},
        patches=[{"patch": "- op: add\n  path: /x\n  value: 1", "target": {"kind": "Deployment"}}],
        status={"lastAppliedRevision": f"main@sha1:{SHA}"}),
        repos(gitrepo({"branch": "main"})), none)
    assert not isinstance(d, Skipped)
    assert d.owner == "Kustomization flux-system/apps" and d.ref == "main" and d.applied == SHA
    assert d.source.revision == SHA and d.source.paths == ("clusters/prod",)
    k = d.source.kustomize
    assert k.generate and k.namespace == "shop" and k.name_prefix == "p-"
    assert k.images == ("nginx=registry/nginx:1.27", "redis=redis@sha256:abc")
    assert k.labels == ("team=shop",) and len(k.patches) == 1


@pytest.mark.parametrize(("spec", "reason"), [
    ({"sourceRef": {"kind": "OCIRepository", "name": "x"}}, "not a GitRepository"),
    ({"sourceRef": {"kind": "GitRepository", "name": "missing"}}, "not found"),
    ({"postBuild": {"substitute": {"env": "prod"}}}, "substitution"),
    ({"suspend": True}, "suspended"),
])
def test_flux_kustomizations_skipped(spec: dict[str, Any], reason: str) -> None:
    result = flux.derive_kustomization(kustomization(**spec), repos(gitrepo()), none)
    assert isinstance(result, Skipped) and reason in result.reason


def test_a_flux_helmrelease() -> None:
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "web", "namespace": "flux-system"},
          "spec": {"interval": "5m", "targetNamespace": "shop",
                   "chart": {"spec": {"chart": "./charts/web", "valuesFiles": ["v.yaml"],
                                      "sourceRef": {"kind": "GitRepository",
                                                    "name": "platform"}}},
                   "values": {"replicas": 2}}}
    d = flux.derive_helmrelease(hr, repos(gitrepo({"branch": "main"},
                                                   f"main@sha1:{SHA}")), none)
    assert not isinstance(d, Skipped)
    assert d.source.helm.release == "shop-web", "helm-controller's <targetNamespace>-<name>"
    assert d.source.render == "helm" and d.source.paths == ("charts/web",)
    assert d.source.namespace == "shop" and d.source.helm.values == ("v.yaml",)
    assert d.source.revision == SHA
    helm_repo = {**hr, "spec": {**hr["spec"], "chart": {"spec": {
        "chart": "redis", "sourceRef": {"kind": "HelmRepository", "name": "bitnami"}}}}}
    skipped = flux.derive_helmrelease(helm_repo, repos(gitrepo()), none)
    assert isinstance(skipped, Skipped) and "HelmRepository" in skipped.reason


def config(tmp_path: Path, text: str) -> config_mod.Config:
    file = tmp_path / "drift-auditor.yaml"
    file.write_text(text)
    return config_mod.load(file, env={})


def test_config_sources_from_controllers(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"""\
sources:
  - {{name: extra, url: {URL}, credentials: {{username: u, password-env: TOKEN}}}}
  - from: argocd
    namespaces: [argocd]
  - {{from: flux, controller-credentials: true}}
""")
    assert [s.name for s in cfg.sources] == ["extra"]
    assert [(c.controller, c.namespaces, c.controller_credentials) for c in cfg.controllers] \
        == [("argocd", ("argocd",), False), ("flux", (), True)]
    # Credentials by repository URL, from the configured source of the same URL.
    derivation = derive_all(cfg, from_snapshot([app(source={"repoURL": URL, "path": "a"})]))
    [d] = derivation.derived
    assert d.source.credentials == Credentials(username="u", password_env="TOKEN")


@pytest.mark.parametrize(("text", "message"), [
    ("sources: [{from: jenkins}]", "sources[0].from: 'jenkins' is not a GitOps controller"),
    ("sources: [{from: argocd, url: x}]", "sources[0].url: unknown key"),
    ("sources: [{url: x}, {from: flux, namespaces: 3}]", "sources[1].namespaces"),
])
def test_bad_controller_sources(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config(tmp_path, text + "\n")


def test_the_single_source_override_leaves_controller_entries_alone(tmp_path: Path) -> None:
    file = tmp_path / "drift-auditor.yaml"
    file.write_text("sources: [{from: argocd}]\n")
    cfg = config_mod.load(file, env={"DRIFT_AUDITOR_SOURCE_URL": URL})
    assert [s.url for s in cfg.sources] == [URL]
    assert [c.controller for c in cfg.controllers] == ["argocd"]
