"""Table-driven cases from live objects as real API servers return them.

Each file in ``tests/data/realistic/`` holds a Git manifest (``desired``), the live object a
real API server returns after a GitOps apply (``live``: server defaults, status,
managedFields as kube-apiserver writes them), and ``variants``: one real change each, given
as a JSON Patch on the live object (the value change and the managedFields bookkeeping the
server does for it), with the drift expected (``[path, op, manager, category]``).

The base pair must be in sync (or report the file's top-level ``expect``); each variant must report exactly its drift. Provenance of
the shapes: ``tests/data/realistic/README.md``.
"""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from auditor.engine.compare import CompareSettings, compare_object
from auditor.engine.records import ResourceKey

DATA = pathlib.Path(__file__).parent / "data" / "realistic"
SETTINGS = CompareSettings(secret_key=b"realistic-secret-key-0123456789ab")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A small RFC 6902 applier (add/replace/remove) for the fixtures."""
    out = copy.deepcopy(obj)
    for op in ops:
        tokens = [_unescape(t) for t in op["path"].split("/")[1:]]
        parent: Any = out
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last = tokens[-1]
        kind = op["op"]
        if isinstance(parent, list):
            if kind == "remove":
                del parent[int(last)]
            elif last == "-":
                parent.append(copy.deepcopy(op["value"]))
            elif kind == "add":
                parent.insert(int(last), copy.deepcopy(op["value"]))
            else:
                parent[int(last)] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        else:
            if kind == "replace" and last not in parent:
                raise KeyError(op["path"])
            parent[last] = copy.deepcopy(op["value"])
    return out


def _cases() -> list[Any]:
    out = []
    for path in sorted(DATA.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        base = [tuple(e) for e in doc.get("expect") or ()]
        out.append(pytest.param(doc["desired"], doc["live"], None, base, id=f"{path.stem}"))
        for variant in doc.get("variants") or ():
            expect = [tuple(e) for e in variant["expect"]]
            out.append(pytest.param(doc["desired"], doc["live"], variant["patch"], expect,
                                    id=f"{path.stem}:{variant['name']}"))
    return out


def _unowned_expectations() -> dict[str, list[tuple[str, ...]]]:
    """Variants whose drift reads differently without managedFields (``unowned_expect``)."""
    out = {}
    for path in sorted(DATA.glob("*.yaml")):
        for variant in yaml.safe_load(path.read_text()).get("variants") or ():
            if "unowned_expect" in variant:
                out[f"{path.stem}:{variant['name']}"] = [tuple(e) for e in variant["unowned_expect"]]
    return out


UNOWNED = _unowned_expectations()


def drifts_of(desired: dict[str, Any], live: dict[str, Any],
              settings: CompareSettings = SETTINGS) -> list[tuple[str, str, str, str]]:
    result = compare_object(ResourceKey.of(desired), desired, live, settings=settings)
    return [(d.path, d.op, d.manager, d.category) for d in result.drifts]


@pytest.mark.parametrize(("desired", "live", "patch", "expect"), _cases())
def test_realistic(desired: dict[str, Any], live: dict[str, Any],
                   patch: list[dict[str, Any]] | None, expect: list[tuple[str, ...]]) -> None:
    if patch is not None:
        live = apply_patch(live, patch)
    assert drifts_of(desired, live) == sorted(expect)


@pytest.mark.parametrize(("desired", "live", "patch", "expect"), _cases())
def test_realistic_without_managed_fields(request: pytest.FixtureRequest,
                                          desired: dict[str, Any], live: dict[str, Any],
                                          patch: list[dict[str, Any]] | None,
                                          expect: list[tuple[str, ...]]) -> None:
    """``kubectl get -o yaml`` (no managedFields): declared changes are still found, with an
    unknown owner; server defaults and controller bookkeeping are still not drift."""
    if patch is not None:
        live = apply_patch(live, patch)
    live = copy.deepcopy(live)
    live["metadata"].pop("managedFields", None)
    got = drifts_of(desired, live)
    name = request.node.callspec.id
    if name in UNOWNED:
        assert got == sorted(UNOWNED[name])
        return
    declared = [(p, op, "", "unknown") for p, op, _m, _c in expect if op != "added"]
    assert [d for d in got if d[1] != "added"] == sorted(declared)
    if patch is None and not expect:
        assert got == []


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DATA / f"{name}.yaml").read_text())
    return doc


def _without_managed_fields(live: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(live)
    out["metadata"].pop("managedFields", None)
    return out


def test_job_labels_copied_from_template_without_managed_fields() -> None:
    # The Job's labels are its template's (plus the generated controller-uid/job-name): not
    # drift; a label beyond the template's, on a snapshot with no owners, is.
    doc = _load("job-generated-selector")
    live = _without_managed_fields(doc["live"])
    assert drifts_of(doc["desired"], live) == []
    live["metadata"]["labels"]["owner"] = "alice"
    assert drifts_of(doc["desired"], live) == [("metadata.labels.owner", "added", "", "unknown")]


def test_job_labels_of_a_job_created_by_a_human() -> None:
    # `kubectl create -f job.yaml` is an Update: kubectl-create owns the copied labels. The
    # copy is still a default.
    doc = _load("job-generated-selector")
    live = copy.deepcopy(doc["live"])
    live["metadata"]["managedFields"][0] = {
        "apiVersion": "batch/v1", "fieldsType": "FieldsV1", "manager": "kubectl-create",
        "operation": "Update", "time": "2026-11-20T09:00:00Z",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                     "f:spec": {"f:backoffLimit": {}, "f:completionMode": {}}}}
    assert drifts_of(doc["desired"], live) == []


def test_gitops_bookkeeping_metadata_without_owners_is_not_drift() -> None:
    # A `kubectl get -o json` snapshot: Flux's labels, Argo CD's tracking annotation, Helm's
    # release annotations and the last-applied annotation (Argo CD's default client-side
    # sync writes it too) cannot be told from a human's without managedFields.
    doc = _load("configmap")
    live = _without_managed_fields(doc["live"])
    live["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "shop:/ConfigMap:shop/checkout-config",
        "meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": "shop",
        "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1"}\n'}
    assert drifts_of(doc["desired"], live) == []
    live["metadata"]["annotations"]["example.com/note"] = "hand-made"
    assert drifts_of(doc["desired"], live) == [
        ('metadata.annotations["example.com/note"]', "added", "", "unknown")]


def test_helm_release_annotations_owned_by_helm_are_not_drift() -> None:
    doc = _load("deployment-helm-cli")
    assert drifts_of(doc["desired"], doc["live"]) == []
    # ... but the same annotation written with kubectl is a human's change
    live = copy.deepcopy(doc["live"])
    live["metadata"]["annotations"]["meta.helm.sh/release-name"] = "other"
    live["metadata"]["managedFields"].append({
        "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kubectl-annotate",
        "operation": "Update", "time": "2026-11-22T13:30:00Z",
        "fieldsV1": {"f:metadata": {"f:annotations": {"f:meta.helm.sh/release-name": {}}}}})
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:annotations"].pop(
        "f:meta.helm.sh/release-name")
    assert drifts_of(doc["desired"], live) == [
        ('metadata.annotations["meta.helm.sh/release-name"]', "added", "kubectl-annotate", "human")]


def test_finalizers_are_set_items() -> None:
    # metadata.finalizers is `list-type: set`: items are reported one by one, in
    # structured-merge-diff's `[="…"]` form, never as a change of the whole list.
    doc = _load("configmap")
    desired = copy.deepcopy(doc["desired"])
    desired["metadata"]["finalizers"] = ["example.com/keep"]
    live = copy.deepcopy(doc["live"])
    live["metadata"]["finalizers"] = ["example.com/hold"]
    live["metadata"]["managedFields"].append({
        "apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl-patch",
        "operation": "Update", "time": "2026-11-22T13:40:00Z",
        "fieldsV1": {"f:metadata": {"f:finalizers": {".": {}, 'v:"example.com/hold"': {}}}}})
    assert drifts_of(desired, live) == [
        ('metadata.finalizers[="example.com/hold"]', "added", "kubectl-patch", "human"),
        ('metadata.finalizers[="example.com/keep"]', "removed", "", "unknown"),
    ]


def test_before_first_apply_is_unknown() -> None:
    # The entry the API server makes up for fields that predate the first server-side apply
    # on an object without managedFields: their writer is lost.
    doc = _load("configmap")
    live = copy.deepcopy(doc["live"])
    live["data"]["LOG_FORMAT"] = "text"
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:data"].pop("f:LOG_FORMAT")
    live["metadata"]["managedFields"].append({
        "apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "before-first-apply",
        "operation": "Update", "fieldsV1": {"f:data": {"f:LOG_FORMAT": {}}}})
    assert drifts_of(doc["desired"], live) == [
        ("data.LOG_FORMAT", "changed", "before-first-apply", "unknown")]


def test_chart_zero_values_the_server_omits_are_not_drift() -> None:
    # Helm charts render `readOnly: false`, `hostNetwork: false`, `initialDelaySeconds: 0`,
    # `minReadySeconds: 0`: plain omitempty fields the API server never returns.
    doc = _load("deployment-argocd-ssa")
    desired = copy.deepcopy(doc["desired"])
    desired["spec"]["minReadySeconds"] = 0
    desired["spec"]["paused"] = False
    pod = desired["spec"]["template"]["spec"]
    pod.update(hostNetwork=False, hostPID=False, hostIPC=False)
    container = pod["containers"][0]
    container.update(stdin=False, tty=False)
    container["volumeMounts"][0]["readOnly"] = False
    container["readinessProbe"]["initialDelaySeconds"] = 0
    container["ports"][0]["hostPort"] = 0
    assert drifts_of(desired, doc["live"]) == []
    # a real value is still compared
    container["volumeMounts"][0]["readOnly"] = True
    assert drifts_of(desired, doc["live"]) == [(
        "spec.template.spec.containers[name=checkout].volumeMounts[mountPath=/etc/checkout].readOnly",
        "removed", "", "unknown")]


def test_zero_meaning_not_unset_is_still_compared() -> None:
    # automountServiceAccountToken is a pointer whose unset means true: an explicit false in
    # Git that is gone live is drift.
    doc = _load("deployment-argocd-ssa")
    desired = copy.deepcopy(doc["desired"])
    desired["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    assert drifts_of(desired, doc["live"]) == [
        ("spec.template.spec.automountServiceAccountToken", "removed", "", "unknown")]


def test_resource_field_ref_divisor_printed_as_zero() -> None:
    # ResourceFieldSelector.divisor is a struct Quantity: unset, the server prints "0"
    # (which means 1), and a human who owns it by creating the object does not change that.
    doc = _load("deployment-argocd-ssa")
    desired = copy.deepcopy(doc["desired"])
    live = copy.deepcopy(doc["live"])
    ref = {"containerName": "checkout", "resource": "limits.memory"}
    desired["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "MEM", "valueFrom": {"resourceFieldRef": dict(ref)}})
    live["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {**ref, "divisor": "0"}}})
    live["metadata"]["managedFields"].append({
        "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "manager": "kubectl-create",
        "operation": "Update", "time": "2026-11-02T08:14:09Z",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
            'k:{"name":"checkout"}': {"f:env": {'k:{"name":"MEM"}': {"f:valueFrom": {
                "f:resourceFieldRef": {"f:divisor": {}}}}}}}}}}}})
    assert drifts_of(desired, live) == []
    assert drifts_of(desired, _without_managed_fields(live)) == []
    desired["spec"]["template"]["spec"]["containers"][0]["env"][-1]["valueFrom"][
        "resourceFieldRef"]["divisor"] = "1024Ki"
    live["spec"]["template"]["spec"]["containers"][0]["env"][-1]["valueFrom"][
        "resourceFieldRef"]["divisor"] = "1Mi"
    assert drifts_of(desired, live) == []


def test_controller_bookkeeping_without_managed_fields() -> None:
    # A snapshot without owners: an AWS load balancer controller's finalizer and MetalLB's
    # pool annotation are controllers' and not reported; a hand-made annotation is.
    doc = _load("service-types")
    live = _without_managed_fields(doc["live"])
    live["metadata"]["finalizers"].append("service.k8s.aws/resources")
    live["metadata"]["annotations"]["metallb.universe.tf/ip-allocated-from-pool"] = "public"
    assert drifts_of(doc["desired"], live) == []
    desired = copy.deepcopy(doc["desired"])
    desired["metadata"]["finalizers"] = ["example.com/keep"]
    assert drifts_of(desired, live) == [
        ('metadata.finalizers[="example.com/keep"]', "removed", "", "unknown")]


def _orphan_results(live: dict[str, Any]) -> list[str]:
    from auditor.engine.compare import compare_all
    return [r.status for r in compare_all({}, [live], settings=SETTINGS,
                                          managed_namespaces={"shop"})]


def test_controller_made_objects_are_not_orphans() -> None:
    # cert-manager's certificate Secret (no ownerReferences by default), written only by
    # cert-manager's field managers; Istio's root-cert ConfigMap in every namespace.
    tls = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": "shop-tls", "namespace": "shop",
                        "annotations": {"cert-manager.io/certificate-name": "shop-tls"},
                        "managedFields": [
                            {"manager": "cert-manager-certificates-issuing", "operation": "Apply",
                             "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {}},
                            {"manager": "cert-manager-certificates-key-manager",
                             "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
                             "fieldsV1": {}}]},
           "data": {"tls.crt": "", "tls.key": ""}}
    istio = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "istio-ca-root-cert", "namespace": "shop",
                          "managedFields": [{"manager": "pilot-discovery", "operation": "Update",
                                             "apiVersion": "v1", "fieldsType": "FieldsV1"}]},
             "data": {"root-cert.pem": "x"}}
    release = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
               "metadata": {"name": "sh.helm.release.v1.redis.v3", "namespace": "shop",
                            "labels": {"owner": "helm", "name": "redis"}}}
    assert _orphan_results(tls) == [] and _orphan_results(istio) == []
    assert _orphan_results(release) == []
    # made by hand (kubectl create), or unknown (no managedFields): an orphan
    by_hand = copy.deepcopy(istio)
    by_hand["metadata"]["name"] = "hand-made"
    by_hand["metadata"]["managedFields"] = [{"manager": "kubectl-create", "operation": "Update"}]
    assert _orphan_results(by_hand) == ["orphan"]
    del by_hand["metadata"]["managedFields"]
    assert _orphan_results(by_hand) == ["orphan"]
    # touched by a human after a controller made it: an orphan too
    touched = copy.deepcopy(istio)
    touched["metadata"]["managedFields"].append({"manager": "kubectl-edit", "operation": "Update"})
    assert _orphan_results(touched) == ["orphan"]
