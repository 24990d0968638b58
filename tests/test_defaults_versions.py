"""Server defaults of older API versions: each version section against objects of that version
(written here, not taken from a corpus), and the same values under the current version."""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest

from auditor.engine import defaults
from auditor.engine.compare import CompareSettings, compare_object
from auditor.engine.defaults import (
    covered_kinds,
    covered_versions,
    eq,
    is_server_default,
    one_of,
    table,
)
from auditor.engine.records import ResourceKey

SETTINGS = CompareSettings(secret_key=b"versions-secret-key-0123456789abc")
ROOT = pathlib.Path(__file__).parents[1]
Obj = dict[str, Any]


def drifts(desired: Obj, live: Obj) -> list[tuple[str, str]]:
    result = compare_object(ResourceKey.of(desired), desired, live, settings=SETTINGS)
    return [(d.path, d.op) for d in result.drifts]


def at(api_version: str, *objs: Obj) -> list[Obj]:
    """Copies of ``objs`` served at ``api_version``."""
    out = []
    for obj in objs:
        moved = copy.deepcopy(obj)
        moved["apiVersion"] = api_version
        out.append(moved)
    return out


def server_meta(**extra: Any) -> Obj:
    return {"creationTimestamp": "2019-11-13T22:18:01Z", "generation": 1,
            "resourceVersion": "4711", "uid": "746a6ca1-0663-11ea-b4b2-42010a800164", **extra}


# --------------------------------------------------------------------------- objects

CONTAINER: Obj = {"name": "web", "image": "shop/web:1.4.2"}
CONTAINER_LIVE: Obj = {**CONTAINER, "imagePullPolicy": "IfNotPresent", "resources": {},
                       "terminationMessagePath": "/dev/termination-log",
                       "terminationMessagePolicy": "File"}
POD_SPEC_LIVE: Obj = {"containers": [CONTAINER_LIVE], "dnsPolicy": "ClusterFirst",
                      "restartPolicy": "Always", "schedulerName": "default-scheduler",
                      "securityContext": {}, "terminationGracePeriodSeconds": 30}
LABELS: Obj = {"app": "web"}
TEMPLATE: Obj = {"metadata": {"labels": LABELS}, "spec": {"containers": [CONTAINER]}}
TEMPLATE_LIVE: Obj = {"metadata": {"creationTimestamp": None, "labels": LABELS},
                      "spec": POD_SPEC_LIVE}


def workload(kind: str, spec: Obj | None = None) -> Obj:
    """A Git manifest of a beta workload: no labels, no selector (the beta versions default
    both from the template), no replicas."""
    return {"apiVersion": "apps/v1beta1", "kind": kind,
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {**(spec or {}), "template": TEMPLATE}}


def workload_live(desired: Obj, spec: Obj, annotations: Obj | None = None) -> Obj:
    meta = server_meta(labels=LABELS, **({"annotations": annotations} if annotations else {}))
    return {"apiVersion": desired["apiVersion"], "kind": desired["kind"],
            "metadata": {**desired["metadata"], **meta},
            "spec": {**desired["spec"], "selector": {"matchLabels": LABELS}, **spec,
                     "template": TEMPLATE_LIVE},
            "status": {"observedGeneration": 1}}


def webhook_configuration(kind: str) -> tuple[Obj, Obj]:
    hook: Obj = {"name": "inject.example.com",
                 "clientConfig": {"service": {"name": "injector", "namespace": "mesh",
                                              "path": "/inject"}},
                 "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                            "resources": ["pods"]}]}
    desired = {"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": kind,
               "metadata": {"name": "injector"}, "webhooks": [hook]}
    live_hook = copy.deepcopy(hook)
    live_hook["clientConfig"]["service"]["port"] = 443
    live_hook["rules"][0]["scope"] = "*"
    live_hook.update({"admissionReviewVersions": ["v1beta1"], "failurePolicy": "Ignore",
                      "matchPolicy": "Exact", "namespaceSelector": {}, "objectSelector": {},
                      "sideEffects": "Unknown", "timeoutSeconds": 30})
    if kind == "MutatingWebhookConfiguration":
        live_hook["reinvocationPolicy"] = "Never"
    live = {**copy.deepcopy(desired), "metadata": {"name": "injector", **server_meta()},
            "webhooks": [live_hook]}
    return desired, live


def _hook_drifts(*fields: str) -> list[tuple[str, str]]:
    return sorted((f"webhooks[name=inject.example.com].{f}", "added") for f in fields)


CRD_DESIRED: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "version": "v1alpha1",
             "names": {"kind": "Widget", "plural": "widgets"}}}
CRD_LIVE: Obj = {
    **CRD_DESIRED, "metadata": {"name": "widgets.example.com", **server_meta()},
    "spec": {"group": "example.com", "version": "v1alpha1", "scope": "Namespaced",
             "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                       "listKind": "WidgetList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
             "conversion": {"strategy": "None"}, "preserveUnknownFields": True},
    "status": {"storedVersions": ["v1alpha1"]}}

INGRESS_DESIRED: Obj = {
    "apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
        {"path": "/", "backend": {"serviceName": "web", "servicePort": 80}}]}}]}}
INGRESS_LIVE: Obj = copy.deepcopy(INGRESS_DESIRED)
INGRESS_LIVE["metadata"].update(server_meta())
INGRESS_LIVE["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "ImplementationSpecific"
INGRESS_LIVE["status"] = {"loadBalancer": {}}

HPA_DESIRED: Obj = {
    "apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
             "maxReplicas": 5}}
HPA_V2BETA1_METRIC: Obj = {"type": "Resource",
                           "resource": {"name": "cpu", "targetAverageUtilization": 80}}
HPA_V2_METRIC: Obj = {"type": "Resource", "resource": {
    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
HPA_LIVE: Obj = copy.deepcopy(HPA_DESIRED)
HPA_LIVE["metadata"].update(server_meta())
HPA_LIVE["spec"].update({"minReplicas": 1, "metrics": [HPA_V2BETA1_METRIC]})


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("kind", ["MutatingWebhookConfiguration",
                                  "ValidatingWebhookConfiguration"])
def test_v1beta1_webhook_defaults_are_in_sync_and_differ_from_v1(kind: str) -> None:
    desired, live = webhook_configuration(kind)
    assert drifts(desired, live) == []
    # The very same values on a v1 object: v1 defaults failurePolicy Fail, matchPolicy
    # Equivalent, timeoutSeconds 10, and never sideEffects or admissionReviewVersions.
    assert drifts(*at("admissionregistration.k8s.io/v1", desired, live)) == _hook_drifts(
        "admissionReviewVersions", "failurePolicy", "matchPolicy", "sideEffects",
        "timeoutSeconds")


def test_v1_webhook_defaults_are_drift_on_a_v1beta1_object() -> None:
    desired, live = webhook_configuration("ValidatingWebhookConfiguration")
    hook = live["webhooks"][0]
    hook.update({"failurePolicy": "Fail", "matchPolicy": "Equivalent", "timeoutSeconds": 10})
    assert drifts(desired, live) == _hook_drifts("failurePolicy", "matchPolicy",
                                                 "timeoutSeconds")


def test_v1beta1_crd_defaults_are_in_sync_and_differ_from_v1() -> None:
    assert drifts(CRD_DESIRED, CRD_LIVE) == []
    got = drifts(*at("apiextensions.k8s.io/v1", CRD_DESIRED, CRD_LIVE))
    assert got == sorted([("spec.preserveUnknownFields", "added"), ("spec.scope", "added"),
                          ("spec.versions", "added")])


WORKLOADS: list[Any] = [
    # pkg/apis/apps/v1beta1/defaults.go
    pytest.param(
        workload("Deployment"),
        {"replicas": 1, "revisionHistoryLimit": 2, "progressDeadlineSeconds": 600,
         "strategy": {"type": "RollingUpdate",
                      "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
        {"deployment.kubernetes.io/revision": "1"},
        ["spec.revisionHistoryLimit"], id="apps-v1beta1-Deployment"),
    pytest.param(
        workload("StatefulSet", {"serviceName": "web"}),
        {"replicas": 1, "revisionHistoryLimit": 10, "podManagementPolicy": "OrderedReady",
         "updateStrategy": {"type": "OnDelete"}},
        None, ["spec.updateStrategy.type"], id="apps-v1beta1-StatefulSet"),
]


@pytest.mark.parametrize(("desired", "spec", "annotations", "current_drifts"), WORKLOADS)
def test_apps_v1beta1_workload_defaults_are_in_sync_and_differ_from_apps_v1(
        desired: Obj, spec: Obj, annotations: Obj | None, current_drifts: list[str]) -> None:
    live = workload_live(desired, spec, annotations)
    assert drifts(desired, live) == []
    # apps/v1 copies neither selector nor labels from the template (it requires a selector).
    expected = [*current_drifts, "spec.selector.matchLabels.app", "metadata.labels.app"]
    assert drifts(*at("apps/v1", desired, live)) == sorted((p, "added") for p in expected)


def test_a_label_git_dropped_is_drift_on_a_beta_workload() -> None:
    # Git declares labels of its own, so the server copied none from the template: a live
    # label Git no longer declares is someone's, even if the template has it too.
    desired = workload("StatefulSet", {"serviceName": "web"})
    desired["metadata"]["labels"] = {"chart": "web-1.0.1"}
    live = workload_live(desired, {"replicas": 1, "revisionHistoryLimit": 10,
                                   "podManagementPolicy": "OrderedReady",
                                   "updateStrategy": {"type": "OnDelete"}})
    live["metadata"]["labels"] = {"chart": "web-1.0.1", **LABELS}
    assert drifts(desired, live) == [("metadata.labels.app", "added")]


def test_v1beta1_ingress_path_type_default_is_in_sync() -> None:
    # The engine reports no undeclared field inside an item of the atomic `rules` list, at
    # any version: the v1 difference (pathType required, never defaulted) shows in the
    # predicate (test_version_sections).
    assert drifts(INGRESS_DESIRED, INGRESS_LIVE) == []


def test_v2beta1_hpa_default_metric_is_in_sync_and_differs_from_v2() -> None:
    assert drifts(HPA_DESIRED, HPA_LIVE) == []
    got = drifts(*at("autoscaling/v2", HPA_DESIRED, HPA_LIVE))
    assert got and all(path.startswith("spec.metrics") for path, _op in got)
    # And v2's default metric on a v2beta1 object is not v2beta1's.
    live = copy.deepcopy(HPA_LIVE)
    live["spec"]["metrics"] = [HPA_V2_METRIC]
    assert drifts(HPA_DESIRED, live)


def _owned_by_kubectl_create(live: Obj, spec_fields: Obj) -> Obj:
    out = copy.deepcopy(live)
    out["metadata"]["managedFields"] = [{
        "apiVersion": out["apiVersion"], "fieldsType": "FieldsV1", "manager": "kubectl-create",
        "operation": "Update", "time": "2019-11-13T22:18:01Z",
        "fieldsV1": {"f:spec": spec_fields}}]
    return out


def test_extensions_v1beta1_deployment_defaults_owned_by_their_creator_are_not_drift() -> None:
    # `kubectl create` of an extensions/v1beta1 Deployment owns what defaulting filled into
    # its request: defaults, not its choices. The same values at apps/v1 are not defaults.
    desired = workload("Deployment")
    desired["apiVersion"] = "extensions/v1beta1"
    live = workload_live(desired, {
        "replicas": 1, "revisionHistoryLimit": 2**31 - 1, "progressDeadlineSeconds": 2**31 - 1,
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}})
    live = _owned_by_kubectl_create(live, {
        "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                       "f:type": {}}})
    assert drifts(desired, live) == []
    assert drifts(*at("apps/v1", desired, live)) == sorted(
        (f"spec.{p}", "added") for p in ("progressDeadlineSeconds", "revisionHistoryLimit",
                                         "strategy.rollingUpdate.maxSurge",
                                         "strategy.rollingUpdate.maxUnavailable"))


def test_extensions_v1beta1_daemonset_defaults_owned_by_their_creator_are_not_drift() -> None:
    desired = workload("DaemonSet")
    desired["apiVersion"] = "extensions/v1beta1"
    live = workload_live(desired, {"revisionHistoryLimit": 10, "templateGeneration": 1,
                                   "updateStrategy": {"type": "OnDelete"}},
                         {"deprecated.daemonset.template.generation": "1"})
    live = _owned_by_kubectl_create(live, {
        "f:revisionHistoryLimit": {}, "f:templateGeneration": {},
        "f:updateStrategy": {"f:type": {}}})
    assert drifts(desired, live) == []
    assert drifts(*at("apps/v1", desired, live)) == [
        ("spec.templateGeneration", "added"), ("spec.updateStrategy.type", "added")]


def test_the_corpus_v1beta1_webhook_reports_only_its_cabundle() -> None:
    # Argo CD's gitops-engine fixture (a 2019 `kubectl get -o json`): the v1beta1 defaults
    # (matchPolicy Exact, sideEffects Unknown, timeoutSeconds 30, admissionReviewVersions
    # [v1beta1]) are not drift; the caBundle cert-manager's cainjector added is.
    scenario = ROOT / "tests" / "data" / "peer-corpus" / "tp-ge-mwc-v1beta1-cabundle-no-managedfields"
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", "/dev/null", "diff", "--desired",
         str(scenario / "desired"), "--live", str(scenario / "live.json"), "--output", "json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    report = json.loads(proc.stdout)
    got = [(d["path"], d["op"]) for r in report["resources"] for d in r["drifts"]]
    assert got == [("webhooks[name=webhook.cert-manager.io].clientConfig.caBundle", "added")]


# --------------------------------------------------------------------------- the predicate

WH = ("webhooks", "[]")
ADM = "admissionregistration.k8s.io"
T = ("spec", "template", "spec")
TEMPLATE_SPEC = {"template": {"metadata": {"labels": LABELS}}}
PATH_TYPE = ("spec", "rules", "[]", "http", "paths", "[]", "pathType")
# (group, kind, old version, current version, path, value, parent,
#  default at the old version, default at the current version)
CASES: list[tuple[Any, ...]] = [
    *[(ADM, kind, "v1beta1", "v1", (*WH, field), value, {}, old, new)
      for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
      for field, value, old, new in [
          ("timeoutSeconds", 30, True, False), ("timeoutSeconds", 10, False, True),
          ("failurePolicy", "Ignore", True, False), ("failurePolicy", "Fail", False, True),
          ("matchPolicy", "Exact", True, False), ("matchPolicy", "Equivalent", False, True),
          ("sideEffects", "Unknown", True, False), ("sideEffects", "None", False, False),
          ("admissionReviewVersions", ["v1beta1"], True, False),
          ("admissionReviewVersions", ["v1"], False, False),
          ("namespaceSelector", {}, True, True), ("objectSelector", {}, True, True),
          ("rules", [{"scope": "*"}], True, True),
          ("clientConfig", {"service": {"port": 443}}, True, True)]],
    (ADM, "MutatingWebhookConfiguration", "v1beta1", "v1", (*WH, "reinvocationPolicy"),
     "Never", {}, True, True),
    *[("apiextensions.k8s.io", "CustomResourceDefinition", "v1beta1", "v1", path, value,
       parent, old, new) for path, value, parent, old, new in [
        (("spec", "scope"), "Namespaced", {}, True, False),
        (("spec", "preserveUnknownFields"), True, {}, True, False),
        (("spec", "version"), "v1alpha1", {"versions": [{"name": "v1alpha1"}]}, True, False),
        (("spec", "version"), "v1", {"versions": [{"name": "v1alpha1"}]}, False, False),
        (("spec", "versions"), [{"name": "v1", "served": True, "storage": True}],
         {"version": "v1"}, True, False),
        (("spec", "versions"), [{"name": "v1", "served": True, "storage": False}],
         {"version": "v1"}, False, False),
        (("spec", "conversion", "conversionReviewVersions"), ["v1beta1"], {}, True, False),
        (("spec", "conversion", "webhookClientConfig", "service", "port"), 443, {}, True,
         False),
        (("spec", "conversion", "webhook", "conversionReviewVersions"), ["v1"], {}, False,
         True),
        (("spec", "conversion", "strategy"), "None", {}, True, True),
        (("spec", "names", "singular"), "widget", {"kind": "Widget"}, True, True)]],
    *[("apps", "Deployment", "v1beta1", "v1", path, value, parent, old, new)
      for path, value, parent, old, new in [
          (("spec", "revisionHistoryLimit"), 2, {}, True, False),
          (("spec", "revisionHistoryLimit"), 10, {}, False, True),
          (("spec", "progressDeadlineSeconds"), 600, {}, True, True),
          (("spec", "strategy", "rollingUpdate", "maxSurge"), "25%", {}, True, True),
          (("spec", "selector"), {"matchLabels": LABELS}, TEMPLATE_SPEC, True, False),
          (("spec", "selector"), {"matchLabels": {"app": "other"}}, TEMPLATE_SPEC, False,
           False),
          ((*T, "containers", "[]", "terminationMessagePath"), "/dev/termination-log", {},
           True, True),
          ((*T, "dnsPolicy"), "ClusterFirst", {}, True, True)]],
    *[("apps", "StatefulSet", "v1beta1", "v1", path, value, parent, old, new)
      for path, value, parent, old, new in [
          (("spec", "updateStrategy", "type"), "OnDelete", {}, True, False),
          (("spec", "updateStrategy", "type"), "RollingUpdate", {}, False, True),
          (("spec", "updateStrategy", "rollingUpdate", "partition"), 0, {}, True, True),
          (("spec", "podManagementPolicy"), "OrderedReady", {}, True, True),
          (("spec", "revisionHistoryLimit"), 10, {}, True, True),
          (("spec", "selector"), {"matchLabels": LABELS}, TEMPLATE_SPEC, True, False),
          (("spec", "volumeClaimTemplates", "[]", "spec", "volumeMode"), "Filesystem", {},
           True, True),
          ((*T, "schedulerName"), "default-scheduler", {}, True, True)]],
    # extensions/v1beta1 against the apps/v1 that replaced it.
    *[(group, kind, "v1beta1", "v1", path, value, parent, old, new)
      for group, kind, path, value, parent, old, new in [
          ("extensions", "Deployment", ("spec", "strategy", "rollingUpdate", "maxSurge"), 1, {},
           True, False),
          ("extensions", "Deployment", ("spec", "strategy", "rollingUpdate", "maxSurge"),
           "25%", {}, False, True),
          ("extensions", "Deployment", ("spec", "strategy", "rollingUpdate", "maxUnavailable"),
           1, {}, True, False),
          ("extensions", "Deployment", ("spec", "revisionHistoryLimit"), 2**31 - 1, {}, True,
           False),
          ("extensions", "Deployment", ("spec", "progressDeadlineSeconds"), 2**31 - 1, {}, True,
           False),
          ("extensions", "Deployment", ("spec", "progressDeadlineSeconds"), 600, {}, False,
           True),
          ("extensions", "Deployment", (*T, "containers", "[]", "imagePullPolicy"), "Always",
           {"image": "nginx"}, True, True),
          ("extensions", "DaemonSet", ("spec", "updateStrategy", "type"), "OnDelete", {}, True,
           False),
          ("extensions", "DaemonSet", ("spec", "updateStrategy", "type"), "RollingUpdate", {},
           False, True),
          ("extensions", "DaemonSet", ("spec", "updateStrategy", "rollingUpdate",
                                       "maxUnavailable"), 1, {}, True, True),
          ("extensions", "DaemonSet", ("spec", "updateStrategy", "rollingUpdate", "maxSurge"),
           0, {}, False, True),
          ("extensions", "DaemonSet", ("spec", "templateGeneration"), 3, {}, True, False),
          ("extensions", "DaemonSet", ("spec", "revisionHistoryLimit"), 10, {}, True, True),
          ("extensions", "DaemonSet", (*T, "restartPolicy"), "Always", {}, True, True),
          ("extensions", "ReplicaSet", ("spec", "selector"), {"matchLabels": LABELS},
           TEMPLATE_SPEC, True, False),
          ("extensions", "ReplicaSet", ("spec", "replicas"), 1, {}, True, True),
          ("extensions", "ReplicaSet", ("metadata", "labels", "pod-template-hash"), "5d8f", {},
           True, True)]],
    *[(group, "Ingress", "v1beta1", "v1", path, value, {}, old, new)
      for group in ("networking.k8s.io", "extensions")
      for path, value, old, new in [
          (PATH_TYPE, "ImplementationSpecific", True, False),
          (PATH_TYPE, "Prefix", False, False),
          (("spec", "ingressClassName"), "nginx", True, True)]],
    *[("extensions", "NetworkPolicy", "v1beta1", "v1", path, value, {}, True, True)
      for path, value in [
          (("spec", "policyTypes"), ["Ingress"]),
          (("spec", "ingress", "[]", "ports", "[]", "protocol"), "TCP")]],
    *[("autoscaling", "HorizontalPodAutoscaler", "v2beta1", "v2", path, value, parent, old,
       new) for path, value, parent, old, new in [
        (("spec", "metrics"), [HPA_V2BETA1_METRIC], {}, True, False),
        (("spec", "metrics"), [HPA_V2_METRIC], {}, False, True),
        (("spec", "metrics", "[]", "resource", "targetAverageUtilization"), 80,
         HPA_V2BETA1_METRIC["resource"], True, False),
        (("spec", "metrics", "[]", "resource", "targetAverageUtilization"), 70,
         {"name": "cpu", "targetAverageUtilization": 70}, False, False),
        (("spec", "minReplicas"), 1, {}, True, True),
        (("spec", "behavior", "scaleUp", "selectPolicy"), "Max", {}, False, True)]],
]


@pytest.mark.parametrize(("group", "kind", "old", "new", "path", "value", "parent",
                          "old_default", "new_default"), CASES,
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else None)
def test_version_sections(group: str, kind: str, old: str, new: str, path: tuple[str, ...],
                          value: Any, parent: Obj, old_default: bool, new_default: bool) -> None:
    assert is_server_default(group, kind, path, value, parent,
                             {"apiVersion": f"{group}/{old}"}) is old_default
    # extensions/v1beta1's kinds live on in networking.k8s.io/v1 and apps/v1.
    current_group = group if group != "extensions" else \
        "networking.k8s.io" if kind in ("Ingress", "NetworkPolicy") else "apps"
    assert is_server_default(current_group, kind, path, value, parent,
                             {"apiVersion": f"{current_group}/{new}"}) is new_default


def test_policy_v1beta1_pod_security_policy() -> None:
    path = ("spec", "allowPrivilegeEscalation")
    for group in ("policy", "extensions"):
        assert is_server_default(group, "PodSecurityPolicy", path, True, {},
                                 {"apiVersion": f"{group}/v1beta1"})
        assert not is_server_default(group, "PodSecurityPolicy", path, False, {},
                                     {"apiVersion": f"{group}/v1beta1"})


@pytest.mark.parametrize(("group", "kind", "version", "path", "value"), [
    # pkg/apis/apps/v1beta2/defaults.go defaults as apps/v1 does.
    ("apps", "Deployment", "v1beta2", ("spec", "revisionHistoryLimit"), 10),
    ("apps", "Deployment", "v1beta2", ("spec", "strategy", "rollingUpdate", "maxSurge"), "25%"),
    ("apps", "StatefulSet", "v1beta2", ("spec", "updateStrategy", "type"), "RollingUpdate"),
    ("apps", "DaemonSet", "v1beta2", ("spec", "updateStrategy", "type"), "RollingUpdate"),
    ("apps", "DaemonSet", "v1beta2", ("spec", "updateStrategy", "rollingUpdate", "maxSurge"), 0),
    ("apps", "ReplicaSet", "v1beta2", ("spec", "replicas"), 1),
    # pkg/apis/batch/v1beta1/defaults.go: CronJob as batch/v1.
    ("batch", "CronJob", "v1beta1", ("spec", "successfulJobsHistoryLimit"), 3),
    ("batch", "CronJob", "v1beta1", ("spec", "concurrencyPolicy"), "Allow"),
    # pkg/apis/autoscaling/v2beta2/defaults.go: metric shape and behavior as v2.
    ("autoscaling", "HorizontalPodAutoscaler", "v2beta2", ("spec", "metrics"), [HPA_V2_METRIC]),
    ("autoscaling", "HorizontalPodAutoscaler", "v2beta2",
     ("spec", "behavior", "scaleUp", "stabilizationWindowSeconds"), 0),
    # autoscaling/v1 reads the same object: its CPU target stays the default.
    ("autoscaling", "HorizontalPodAutoscaler", "v1", ("spec", "targetCPUUtilizationPercentage"),
     80),
])
def test_versions_without_a_section_have_the_current_defaults(
        group: str, kind: str, version: str, path: tuple[str, ...], value: Any) -> None:
    assert (group, version, kind) not in covered_versions()
    assert is_server_default(group, kind, path, value, {}, {"apiVersion": f"{group}/{version}"})
    assert is_server_default(group, kind, path, value, {})


def test_without_the_live_object_the_current_version_applies() -> None:
    path = (*WH, "timeoutSeconds")
    kind = "MutatingWebhookConfiguration"
    assert is_server_default(ADM, kind, path, 10, {})
    assert not is_server_default(ADM, kind, path, 30, {})
    assert is_server_default(ADM, kind, path, 10, {}, {})  # no apiVersion: the same
    # A group whose only version is an old one: that version is its current one.
    assert is_server_default("extensions", "Deployment", ("spec", "revisionHistoryLimit"),
                             2**31 - 1, {})
    assert ("extensions", "Deployment") in covered_kinds()


def test_beta_workload_labels_count_as_the_template_s_copy_only_as_a_whole() -> None:
    root = {"apiVersion": "apps/v1beta1", "spec": TEMPLATE_SPEC,
            "metadata": {"labels": LABELS}}
    labels = ("metadata", "labels")
    assert is_server_default("apps", "Deployment", labels, LABELS, {}, root)
    assert not is_server_default("apps", "Deployment", labels, {**LABELS, "team": "x"}, {},
                                 root)
    assert not is_server_default("apps", "Deployment", (*labels, "app"), "web", LABELS, root)
    # apps/v1 copies nothing.
    assert not is_server_default("apps", "Deployment", labels, LABELS, {},
                                 {**root, "apiVersion": "apps/v1"})


def test_odd_api_versions_do_not_fail() -> None:
    path = ("spec", "revisionHistoryLimit")
    # Not a string: the current version's defaults.
    for odd in (["apps/v1beta1"], {"v": 1}, 7, None):
        assert is_server_default("apps", "Deployment", path, 10, {}, {"apiVersion": odd})
    for api_version in ("", "apps/", "/", "apps/v9", "v1beta1/", "a/b/c"):
        assert is_server_default("apps", "Deployment", path, 10, {},
                                 {"apiVersion": api_version})


@pytest.mark.parametrize("gvk", covered_versions(), ids=lambda t: "/".join(t))
def test_every_constant_default_of_a_version_is_recognised_and_only_it(
        gvk: tuple[str, str, str]) -> None:
    group, version, kind = gvk
    root = {"apiVersion": f"{group}/{version}"}
    checked = 0
    for path, rule in table(group, kind, version):
        values = (rule.expected,) if isinstance(rule, eq) else \
            rule.allowed if isinstance(rule, one_of) else ()
        for value in values:
            assert is_server_default(group, kind, path, value, {}, root), (path, value)
            if isinstance(value, bool):
                assert not is_server_default(group, kind, path, not value, {}, root), path
            elif isinstance(value, int):
                assert not is_server_default(group, kind, path, value + 1, {}, root), path
                assert not is_server_default(group, kind, path, str(value), {}, root), path
            elif isinstance(value, str):
                assert not is_server_default(group, kind, path, value + "-x", {}, root), path
            checked += 1
    assert checked > 0


# --------------------------------------------------------------------------- the hot path


def test_the_section_is_resolved_once_per_object_version(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, object]] = []
    resolve = defaults._section

    def counting(group: str, kind: str, api_version: object) -> Any:
        calls.append((group, kind, api_version))
        return resolve(group, kind, api_version)

    monkeypatch.setattr(defaults, "_section", counting)
    monkeypatch.setattr(defaults, "_BY_API_VERSION", {})
    for api_version in ("apps/v1beta1", "apps/v1"):
        root = {"apiVersion": api_version, "spec": TEMPLATE_SPEC}
        for _ in range(100):
            is_server_default("apps", "Deployment", ("spec", "revisionHistoryLimit"), 2, {}, root)
            is_server_default("apps", "Deployment", (*T, "dnsPolicy"), "ClusterFirst", {}, root)
    assert calls == [("apps", "Deployment", "apps/v1beta1"), ("apps", "Deployment", "apps/v1")]


@pytest.mark.parametrize("api_version", ["apps/v1", "apps/v1beta1"])
def test_predicate_with_the_live_object_is_fast(api_version: str) -> None:
    path = (*T, "containers", "[]", "imagePullPolicy")
    other = (*T, "containers", "[]", "image")
    parent = {"image": "shop/web:1.4.2"}
    root = {"apiVersion": api_version, "spec": TEMPLATE_SPEC}
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        is_server_default("apps", "Deployment", path, "IfNotPresent", parent, root)
        is_server_default("apps", "Deployment", other, "shop/web:1.4.2", parent, root)
    per_call = (time.perf_counter() - start) / (2 * n)
    assert per_call < 20e-6, f"{per_call * 1e6:.1f} µs per call"
