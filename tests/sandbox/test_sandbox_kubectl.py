"""Real kubectl 1.35 against the sandbox, asserting on stored objects and their managers.

Managers kubectl 1.35 records (observed here, relied on by the drift engine):

=================================  =============================  ==========  ===========
command                            manager                        operation   subresource
=================================  =============================  ==========  ===========
apply -f (client-side)             kubectl-client-side-apply      Update
apply --server-side                kubectl                        Apply
apply --server-side --field-manager X   X                         Apply
create -f                          kubectl-create                 Update
replace -f                         kubectl-replace                Update
edit                               kubectl-edit                   Update
patch (strategic/merge/json)       kubectl-patch                  Update
label / annotate                   kubectl-label / kubectl-annotate   Update
set image / set env                kubectl-set                    Update
rollout restart                    kubectl-rollout                Update
scale                              kubectl (User-Agent prefix;    Update      scale
                                   no fieldManager is sent)
apply --server-side over a          kubectl + kubectl-last-applied  Apply
client-side-applied object         (the CSA entry is migrated away)
=================================  =============================  ==========  ===========

``kubectl create <generator>`` (e.g. ``create deployment``) sends protobuf: 415.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from auditor.sandbox import Sandbox

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
"""


def managers(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"]["managedFields"]}


def stored(sb: Sandbox, kind: str = "Deployment", name: str = "web") -> dict[str, Any]:
    api = {"Deployment": "apps/v1", "ConfigMap": "v1"}[kind]
    obj = sb.get(api, kind, "default", name)
    assert obj is not None
    return obj


def test_client_side_apply_owns_defaults_and_last_applied(sandbox: Sandbox, kubectl: Any,
                                                          tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    out = kubectl("apply", "-f", str(manifest))
    assert out.stdout.strip() == "deployment.apps/web created" and out.stderr == ""
    obj = stored(sandbox)
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    fields = managers(obj)[("kubectl-client-side-apply", "Update", "")]
    # Update ownership covers server defaults too, as on a real cluster
    assert "f:progressDeadlineSeconds" in fields["f:spec"]
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in container["f:ports"]
    assert fields["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    manifest.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"))
    out = kubectl("apply", "-f", str(manifest))
    assert out.stdout.strip() == "deployment.apps/web configured"
    obj = stored(sandbox)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert obj["metadata"]["generation"] == 2
    assert list(managers(obj)) == [("kubectl-client-side-apply", "Update", "")]


def test_imperative_commands_record_their_managers(sandbox: Sandbox, kubectl: Any,
                                                   tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    kubectl("apply", "-f", str(manifest))
    kubectl("scale", "deployment/web", "--replicas=3")
    kubectl("label", "deployment", "web", "team=shop")
    kubectl("annotate", "deployment", "web", "owner=alice")
    kubectl("set", "image", "deployment/web", "web=nginx:1.27")
    kubectl("set", "env", "deployment/web", "B=2")
    kubectl("rollout", "restart", "deployment/web")
    kubectl("patch", "deployment", "web", "-p", '{"spec":{"minReadySeconds":5}}')
    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"paused":false}}')
    kubectl("patch", "deployment", "web", "--type=json", "-p",
            '[{"op":"replace","path":"/spec/revisionHistoryLimit","value":5}]')
    obj = stored(sandbox)
    m = managers(obj)
    assert m[("kubectl", "Update", "scale")] == {"f:spec": {"f:replicas": {}}}
    assert m[("kubectl-label", "Update", "")] == {"f:metadata": {"f:labels": {"f:team": {}}}}
    assert m[("kubectl-annotate", "Update", "")] == {
        "f:metadata": {"f:annotations": {"f:owner": {}}}}
    set_fields = m[("kubectl-set", "Update", "")]["f:spec"]["f:template"]["f:spec"]
    web = set_fields["f:containers"]['k:{"name":"web"}']
    assert "f:image" in web and 'k:{"name":"B"}' in web["f:env"]
    restart = m[("kubectl-rollout", "Update", "")]["f:spec"]["f:template"]["f:metadata"]
    assert "f:kubectl.kubernetes.io/restartedAt" in restart["f:annotations"]
    assert m[("kubectl-patch", "Update", "")] == {"f:spec": {
        "f:minReadySeconds": {}, "f:paused": {}, "f:revisionHistoryLimit": {}}}
    # fields taken over by later writers left the client-side apply entry
    csa = m[("kubectl-client-side-apply", "Update", "")]["f:spec"]
    assert "f:replicas" not in csa and "f:revisionHistoryLimit" not in csa
    assert "f:image" not in csa["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    spec = obj["spec"]
    assert (spec["replicas"], spec["minReadySeconds"], spec["revisionHistoryLimit"]) == (3, 5, 5)
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27"
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def test_server_side_apply_conflicts_and_force(sandbox: Sandbox, kubectl: Any,
                                               tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    out = kubectl("apply", "--server-side", "-f", str(manifest))
    assert out.stdout.strip() == "deployment.apps/web serverside-applied"
    m = managers(stored(sandbox))
    assert list(m) == [("kubectl", "Apply", "")]
    applied = m[("kubectl", "Apply", "")]
    # Apply owns exactly what was applied: no defaults, no "." on labels
    assert "f:progressDeadlineSeconds" not in applied["f:spec"]
    assert applied["f:metadata"] == {"f:labels": {"f:app": {}}}
    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    manifest.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"))
    out = kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert out.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: '
            ".spec.replicas") in out.stderr
    assert stored(sandbox)["spec"]["replicas"] == 4
    out = kubectl("apply", "--server-side", "--field-manager=gitops", "-f", str(manifest),
                  check=False)
    assert "conflicts with \"kubectl\":\n- .spec.template.spec.containers[name=\"web\"].image" \
        in out.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    obj = stored(sandbox)
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert ("kubectl-patch", "Update", "") not in managers(obj)


def test_create_replace_edit_delete_and_get(sandbox: Sandbox, kubectl: Any,
                                            tmp_path: pathlib.Path) -> None:
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: default}\n"
                  "data: {a: '1'}\n")
    kubectl("create", "-f", str(cm))
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: default}\n"
                  "data: {a: '2', b: '3'}\n")
    kubectl("replace", "-f", str(cm))
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i \"s/b: \\\"3\\\"/b: \\\"4\\\"/\" \"$1\"\n")
    editor.chmod(0o755)
    kubectl("edit", "configmap", "cfg", env={"KUBE_EDITOR": str(editor)})
    obj = stored(sandbox, "ConfigMap", "cfg")
    assert obj["data"] == {"a": "2", "b": "4"}
    m = managers(obj)
    assert m[("kubectl-replace", "Update", "")] == {"f:data": {"f:a": {}}}
    assert m[("kubectl-edit", "Update", "")] == {"f:data": {"f:b": {}}}
    listing = json.loads(kubectl("get", "configmaps", "-o", "json").stdout)
    names = [i["metadata"]["name"] for i in listing["items"]]
    assert names == ["cfg", "kube-root-ca.crt"]
    assert listing["items"][0]["kind"] == "ConfigMap"  # kubectl fills these in itself
    kubectl("delete", "configmap", "cfg")
    assert sandbox.get("v1", "ConfigMap", "default", "cfg") is None
    out = kubectl("get", "configmap", "cfg", check=False)
    assert out.returncode == 1 and 'configmaps "cfg" not found' in out.stderr
    out = kubectl("create", "configmap", "gen", "--from-literal=a=b", check=False)
    assert out.returncode == 1 and "unknown format" in out.stderr  # protobuf body: 415


def test_diff_uses_dry_run_and_changes_nothing(sandbox: Sandbox, kubectl: Any,
                                               tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    kubectl("apply", "-f", str(manifest))
    rv = sandbox.store.rv
    assert kubectl("diff", "-f", str(manifest)).returncode == 0
    manifest.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"))
    out = kubectl("diff", "-f", str(manifest), check=False)
    assert out.returncode == 1
    changed = [line for line in out.stdout.splitlines() if line[:1] in "+-"
               and not line.startswith(("+++", "---"))]
    assert [line.split()[-1] for line in changed if "image:" in line] == [
        "nginx:1.25", "nginx:1.26"]
    assert any("generation: 2" in line for line in changed)  # dry-run still bumps it
    out = kubectl("diff", "--server-side", "-f", str(manifest), check=False)
    assert out.returncode == 1 and "image: nginx:1.26" in out.stdout
    assert sandbox.store.rv == rv
    assert stored(sandbox)["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_get_prints_server_side_tables(sandbox: Sandbox, kubectl: Any,
                                       tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    out = kubectl("apply", "-f", str(manifest), "-v=6")
    # aggregated discovery: /api and /apis answer everything, no per-group requests
    discovery = [line for line in out.stderr.splitlines()
                 if '"Response"' in line and "verb=\"GET\"" in line
                 and ("/api?" in line or "/apis" in line) and "/namespaces/" not in line
                 and "/openapi/" not in line]
    assert len(discovery) == 2, discovery
    lines = kubectl("get", "deployments").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["web", "0/2", "0", "0"]
    lines = kubectl("get", "services", "-A").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                "PORT(S)", "AGE"]
    assert lines[1].split()[:6] == ["default", "kubernetes", "ClusterIP", "10.96.0.1", "<none>",
                                    "443/TCP"]
    out = kubectl("get", "namespaces", "--show-labels").stdout
    assert "kubernetes.io/metadata.name=kube-system" in out
    lines = kubectl("get", "deployment", "web", "-o", "wide").stdout.splitlines()
    assert lines[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert lines[1].split()[-3:] == ["web", "nginx:1.25", "app=web"]


def test_migrating_from_client_side_to_server_side_apply(sandbox: Sandbox, kubectl: Any,
                                                         tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    kubectl("apply", "-f", str(manifest))
    manifest.write_text(DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"))
    # kubectl applies, updates last-applied as "kubectl-last-applied", then rewrites
    # managedFields with a JSON patch (csaupgrade) so "kubectl" inherits the CSA fields
    out = kubectl("apply", "--server-side", "-f", str(manifest))
    assert out.stdout.strip() == "deployment.apps/web serverside-applied"
    obj = stored(sandbox)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    m = managers(obj)
    assert set(m) == {("kubectl", "Apply", ""), ("kubectl-last-applied", "Apply", "")}
    assert m[("kubectl-last-applied", "Apply", "")] == {"f:metadata": {"f:annotations": {
        "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}
