"""Manager names → categories."""

from __future__ import annotations

import pytest

from auditor.config import DEFAULT_GITOPS_MANAGERS
from auditor.engine.managers import Classifier, classify


@pytest.mark.parametrize("name", [
    "kubectl", "kubectl-edit", "kubectl-patch", "kubectl-set", "kubectl-label", "kubectl-annotate",
    "kubectl-rollout", "kubectl-client-side-apply", "kubectl-replace", "kubectl-create",
    "kubectl-scale", "kubectl-autoscale", "kubectl-expose", "kubectl-taint",
    "Mozilla", "node-fetch", "OpenAPI-Generator", "k9s",
    "kubectl/v1.35.0 (linux/amd64) kubernetes/66452ba",
    # the Helm CLI from a terminal (helm/helm#9870 names the manager after the binary)
    "helm",
])
def test_human(name: str) -> None:
    assert classify(name, DEFAULT_GITOPS_MANAGERS) == "human"


@pytest.mark.parametrize("name", ["argocd-controller", "argocd-application-controller",
                                  "kustomize-controller", "helm-controller", "drift-auditor"])
def test_gitops(name: str) -> None:
    assert classify(name, DEFAULT_GITOPS_MANAGERS) == "gitops"


@pytest.mark.parametrize("name", ["Go-http-client", "unknown", "", "python-requests", "curl",
                                  "before-first-apply"])
def test_unknown(name: str) -> None:
    assert classify(name, DEFAULT_GITOPS_MANAGERS) == "unknown"


@pytest.mark.parametrize("name", ["kube-controller-manager", "kube-scheduler", "kubelet",
                                  "horizontal-pod-autoscaler", "cert-manager-cainjector",
                                  "linkerd-proxy-injector", "kubectlish"])
def test_controller(name: str) -> None:
    assert classify(name, DEFAULT_GITOPS_MANAGERS) == "controller"


def test_gitops_globs_and_precedence() -> None:
    # A configured GitOps manager wins even over a human-looking name (a CI job applying
    # Git with `kubectl apply --server-side --field-manager=kubectl-ci`).
    assert classify("kubectl-ci", ("kubectl-ci",)) == "gitops"
    assert classify("flux-system-kustomize", ("flux-*",)) == "gitops"
    assert classify("argocd-controller", ()) == "controller"
    # a pipeline that deploys with `helm upgrade` from Git declares it
    assert classify("helm", ("helm",)) == "gitops"


def test_classifier_caches() -> None:
    c = Classifier(("argocd-controller",))
    assert c("argocd-controller") == "gitops"
    assert c("kubectl-edit") == "human"
    assert c("kubectl-edit") == "human"
