"""End to end: Git manifests applied to the sandbox API server the way Argo CD applies them,
changed with the real kubectl 1.35, read back over HTTP with ``kubectl get -o json``, and
compared. The manager names asserted here are the ones kubectl and the server produced."""

from __future__ import annotations

import pathlib
import stat
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml

from auditor.engine.compare import CompareSettings, compare_all
from auditor.engine.records import ObjectResult, ResourceKey

pytestmark = pytest.mark.kubectl

SETTINGS = CompareSettings(secret_key=b"e2e-secret-key-0123456789abcdef")

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app.kubernetes.io/name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
        - name: web
          image: shop/web:1.4.2
          ports:
            - name: http
              containerPort: 8080
          env:
            - name: LOG_LEVEL
              value: info
          resources:
            requests:
              cpu: "0.1"
              memory: 128Mi
            limits:
              memory: 256Mi
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app.kubernetes.io/name: web
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  LOG_FORMAT: json
  app.properties: |
    server.port=8080
    cache.ttl=300
---
apiVersion: v1
kind: Secret
metadata:
  name: web-db
  namespace: shop
type: Opaque
stringData:
  password: s3cr3t
"""

WEB = "spec.template.spec.containers[name=web]"


class App:
    """The applied manifests and helpers to change and read back the live state."""

    def __init__(self, kubectl: Any, root: pathlib.Path) -> None:
        self.kubectl = kubectl
        self.edits = root / "edits.sed"
        self.editor = root / "editor.sh"
        self.editor.write_text(f'#!/bin/sh\nexec sed -i -f "{self.edits}" "$@"\n')
        self.editor.chmod(self.editor.stat().st_mode | stat.S_IXUSR)
        self.manifest = root / "manifests.yaml"
        self.manifest.write_text(MANIFESTS)
        self.desired = {ResourceKey.of(d): d for d in yaml.safe_load_all(MANIFESTS)}

    def apply(self, manager: str = "argocd-controller") -> None:
        self.kubectl("apply", "--server-side", f"--field-manager={manager}", "-f", str(self.manifest))

    def edit(self, target: str, *sed: str) -> None:
        """A real ``kubectl edit``: the editor is sed with these expressions."""
        self.edits.write_text("\n".join(sed) + "\n")
        self.kubectl("edit", "-n", "shop", target, env={"KUBE_EDITOR": str(self.editor)})

    def live(self, managed_fields: bool = True) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        flags = ["--show-managed-fields"] if managed_fields else []
        for kinds, ns in (("deployments,services,configmaps,secrets", ["-n", "shop"]),
                          ("namespaces", [])):
            proc = self.kubectl("get", kinds, *ns, "-o", "json", *flags)
            out.extend(orjson.loads(proc.stdout)["items"])
        return out

    def compare(self, managed_fields: bool = True) -> dict[tuple[str, str], ObjectResult]:
        results = compare_all(self.desired, self.live(managed_fields), settings=SETTINGS)
        return {(r.key.kind, r.key.name): r for r in results}

    def drifts(self, kind: str = "Deployment", name: str = "web") -> list[tuple[str, str, str, str]]:
        result = self.compare()[(kind, name)]
        return [(d.path, d.op, d.manager, d.category) for d in result.drifts]


@pytest.fixture
def app(kubectl: Any, tmp_path: pathlib.Path) -> Iterator[App]:
    application = App(kubectl, tmp_path)
    application.apply()
    yield application


def test_applied_state_is_in_sync(app: App) -> None:
    results = app.compare()
    statuses = {k: r.status for k, r in results.items()}
    assert statuses == {("Namespace", "shop"): "in-sync", ("Deployment", "web"): "in-sync",
                        ("Service", "web"): "in-sync", ("ConfigMap", "web-config"): "in-sync",
                        ("Secret", "web-db"): "in-sync"}, [r.drifts for r in results.values()]


def test_kubectl_set_image(app: App) -> None:
    app.kubectl("set", "image", "-n", "shop", "deployment/web", "web=shop/web:1.5.0-rc1")
    assert app.drifts() == [(f"{WEB}.image", "changed", "kubectl-set", "human")]


def test_kubectl_scale(app: App) -> None:
    app.kubectl("scale", "-n", "shop", "deployment/web", "--replicas=5")
    result = app.compare()[("Deployment", "web")]
    assert [(d.path, d.op, d.manager, d.operation, d.category) for d in result.drifts] == [
        ("spec.replicas", "changed", "kubectl", "Update", "human")]
    assert (result.drifts[0].desired, result.drifts[0].live) == (3, 5)


def test_autoscaler_on_scale_subresource(app: App) -> None:
    app.kubectl("patch", "-n", "shop", "deployment/web", "--subresource=scale", "--type=merge",
                "-p", '{"spec":{"replicas":7}}', "--field-manager=kube-controller-manager")
    assert app.drifts() == [("spec.replicas", "changed", "kube-controller-manager", "controller")]


def test_autoscaler_with_replicas_omitted_in_git_is_not_drift(app: App) -> None:
    deployment = app.desired[ResourceKey("apps", "Deployment", "shop", "web")]
    del deployment["spec"]["replicas"]
    app.manifest.write_text(yaml.safe_dump_all(app.desired.values()))
    app.apply()  # Argo CD applies the new revision: it gives up ownership of replicas
    app.kubectl("patch", "-n", "shop", "deployment/web", "--subresource=scale", "--type=merge",
                "-p", '{"spec":{"replicas":7}}', "--field-manager=kube-controller-manager")
    assert app.drifts() == []


def test_kubectl_label_and_annotate(app: App) -> None:
    app.kubectl("label", "-n", "shop", "deployment/web", "team=payments")
    app.kubectl("annotate", "-n", "shop", "deployment/web", "example.com/owner=bob")
    assert app.drifts() == [
        ('metadata.annotations["example.com/owner"]', "added", "kubectl-annotate", "human"),
        ("metadata.labels.team", "added", "kubectl-label", "human"),
    ]


def test_kubectl_rollout_restart(app: App) -> None:
    app.kubectl("rollout", "restart", "-n", "shop", "deployment/web")
    assert app.drifts() == [('spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]',
                             "added", "kubectl-rollout", "human")]


def test_kubectl_set_env(app: App) -> None:
    app.kubectl("set", "env", "-n", "shop", "deployment/web", "LOG_LEVEL=debug", "DEBUG=1")
    assert app.drifts() == [
        (f"{WEB}.env[name=DEBUG]", "added", "kubectl-set", "human"),
        (f"{WEB}.env[name=LOG_LEVEL].value", "changed", "kubectl-set", "human"),
    ]


def test_kubectl_patch_adds_a_sidecar(app: App) -> None:
    app.kubectl("patch", "-n", "shop", "deployment/web", "-p",
                '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}')
    assert app.drifts() == [("spec.template.spec.containers[name=sidecar]", "added", "kubectl-patch", "human")]


def test_kubectl_edit(app: App) -> None:
    app.edit("deployment/web", "s/memory: 256Mi/memory: 512Mi/")
    assert app.drifts() == [(f"{WEB}.resources.limits.memory", "changed", "kubectl-edit", "human")]


def test_kubectl_edit_configmap(app: App) -> None:
    app.edit("configmap/web-config", "s/cache.ttl=300/cache.ttl=5/")
    assert app.drifts("ConfigMap", "web-config") == [
        ('data["app.properties"]', "changed", "kubectl-edit", "human")]


def test_kubectl_edit_secret_reports_key_names_only(app: App) -> None:
    # base64("hunter2") replaces base64("s3cr3t")
    app.edit("secret/web-db", "s/czNjcjN0/aHVudGVyMg==/")
    result = app.compare()[("Secret", "web-db")]
    assert [(d.path, d.op, d.manager, d.category) for d in result.drifts] == [
        ("data.password", "changed", "kubectl-edit", "human")]
    text = repr(result)
    assert not any(raw in text for raw in ("s3cr3t", "czNjcjN0", "hunter2", "aHVudGVyMg=="))


def test_terminal_server_side_apply_is_human(app: App) -> None:
    deployment = app.desired[ResourceKey("apps", "Deployment", "shop", "web")]
    changed = yaml.safe_load(yaml.safe_dump(deployment))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/web:local"
    app.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(changed))
    assert app.drifts() == [(f"{WEB}.image", "changed", "kubectl", "human")]


def test_service_port_added_with_kubectl_patch(app: App) -> None:
    app.kubectl("patch", "-n", "shop", "service/web", "-p",
                '{"spec":{"ports":[{"name":"https","port":443,"targetPort":8443}]}}')
    assert app.drifts("Service", "web") == [("spec.ports[port=443,protocol=TCP]", "added",
                                             "kubectl-patch", "human")]


def test_orphan_created_by_hand(app: App) -> None:
    app.kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hand-made", "namespace": "shop"},
         "data": {"k": "v"}}))
    results = app.compare()
    assert results[("ConfigMap", "hand-made")].status == "orphan"
    assert results[("ConfigMap", "web-config")].status == "in-sync"


def test_snapshot_without_managed_fields(app: App) -> None:
    # `kubectl get -o json` omits managedFields: additions are reported with an unknown owner,
    # server defaults still are not, and declared changes are still drift.
    app.kubectl("label", "-n", "shop", "deployment/web", "team=payments")
    app.kubectl("set", "image", "-n", "shop", "deployment/web", "web=shop/web:1.5.0-rc1")
    results = app.compare(managed_fields=False)
    assert all("managedFields" not in o["metadata"] for o in app.live(managed_fields=False))
    assert [(d.path, d.op, d.manager, d.category) for d in results[("Deployment", "web")].drifts] == [
        ("metadata.labels.team", "added", "", "unknown"),
        (f"{WEB}.image", "changed", "", "unknown"),
    ]
    assert {k: r.status for k, r in results.items() if k[0] != "Deployment"} == {
        ("Namespace", "shop"): "in-sync", ("Service", "web"): "in-sync",
        ("ConfigMap", "web-config"): "in-sync", ("Secret", "web-db"): "in-sync"}


# --------------------------------------------------------------------------- more kinds, more verbs

MORE = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: postgres
          image: postgres:16.4
          env:
            - {name: DEBUG, value: "0"}
            - {name: PGDATA, value: /data}
          ports:
            - {containerPort: 5432, name: pg}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 20Gi}}
---
apiVersion: v1
kind: Service
metadata:
  name: edge
  namespace: shop
spec:
  type: NodePort
  selector: {app: db}
  ports:
    - {name: pg, port: 5432}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
  namespace: shop
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: shop
spec:
  template:
    metadata:
      labels: {app: migrate}
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: busybox:1.36
"""


@pytest.fixture
def more(app: App) -> App:
    (app.manifest.parent / "more.yaml").write_text(MORE)
    app.kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f",
                str(app.manifest.parent / "more.yaml"))
    app.desired.update({ResourceKey.of(d): d for d in yaml.safe_load_all(MORE)})
    return app


def _more_drifts(app: App, kind: str, name: str) -> list[tuple[str, str, str, str]]:
    resource = {"StatefulSet": "statefulset", "Service": "service", "Role": "role",
                "Job": "job", "Deployment": "deployment"}[kind]
    live = orjson.loads(app.kubectl("get", "-n", "shop", f"{resource}/{name}", "-o", "json",
                                    "--show-managed-fields").stdout)
    results = list(compare_all({k: v for k, v in app.desired.items()
                                if (k.kind, k.name) == (kind, name)}, [live], settings=SETTINGS))
    return [(d.path, d.op, d.manager, d.category) for d in results[0].drifts]


def test_more_kinds_applied_are_in_sync(more: App) -> None:
    for kind, name in (("StatefulSet", "db"), ("Service", "edge"), ("Role", "reader"),
                       ("Job", "migrate")):
        assert _more_drifts(more, kind, name) == [], (kind, name)


def test_kubectl_scale_statefulset(more: App) -> None:
    more.kubectl("scale", "-n", "shop", "statefulset/db", "--replicas=1")
    assert _more_drifts(more, "StatefulSet", "db") == [("spec.replicas", "changed", "kubectl", "human")]


def test_kubectl_set_env_removes_declared_var(more: App) -> None:
    more.kubectl("set", "env", "-n", "shop", "statefulset/db", "DEBUG-")
    assert _more_drifts(more, "StatefulSet", "db") == [
        ("spec.template.spec.containers[name=postgres].env[name=DEBUG]", "removed", "", "unknown")]


def test_kubectl_set_resources(more: App) -> None:
    more.kubectl("set", "resources", "-n", "shop", "statefulset/db", "-c", "postgres",
                 "--limits=memory=2Gi")
    assert _more_drifts(more, "StatefulSet", "db") == [
        ("spec.template.spec.containers[name=postgres].resources.limits.memory", "added",
         "kubectl-set", "human")]


def test_kubectl_patch_json_removes_declared_field(more: App) -> None:
    more.kubectl("patch", "-n", "shop", "deployment/web", "--type=json", "-p",
                 '[{"op":"remove","path":"/spec/template/spec/containers/0/env"}]')
    assert more.drifts() == [(f"{WEB}.env", "removed", "", "unknown")]


def test_kubectl_label_overwrite_declared_label(more: App) -> None:
    more.kubectl("label", "--overwrite", "-n", "shop", "deployment/web", "app.kubernetes.io/name=api")
    assert more.drifts() == [('metadata.labels["app.kubernetes.io/name"]', "changed",
                              "kubectl-label", "human")]


def test_kubectl_label_overwrite_job_label_copied_from_template(more: App) -> None:
    more.kubectl("label", "--overwrite", "-n", "shop", "job/migrate", "app=hacked")
    assert _more_drifts(more, "Job", "migrate") == [
        ("metadata.labels.app", "added", "kubectl-label", "human")]


def test_kubectl_edit_moves_node_port(more: App) -> None:
    more.edit("service/edge", r"s/nodePort: [0-9]*/nodePort: 31111/")
    assert _more_drifts(more, "Service", "edge") == [
        ("spec.ports[port=5432,protocol=TCP].nodePort", "added", "kubectl-edit", "human")]


def test_kubectl_edit_adds_env_var(more: App) -> None:
    more.edit("deployment/web",
              r's/^\(\s*\)- name: LOG_LEVEL/\1- name: DEBUG\n\1  value: "1"\n\1- name: LOG_LEVEL/')
    assert more.drifts() == [(f"{WEB}.env[name=DEBUG]", "added", "kubectl-edit", "human")]


def test_kubectl_edit_appends_a_verb_to_an_rbac_rule(more: App) -> None:
    # `rules` and `verbs` are atomic lists: the verb added is named where it is, owned by
    # whoever owns the rules whole.
    more.edit("role/reader", r"s/^\(\s*\)- list/\1- list\n\1- watch/")
    assert _more_drifts(more, "Role", "reader") == [
        ("rules[0].verbs[2]", "added", "kubectl-edit", "human")]


def test_kubectl_patch_adds_finalizer(more: App) -> None:
    more.kubectl("patch", "-n", "shop", "service/edge", "--type=merge", "-p",
                 '{"metadata":{"finalizers":["example.com/hold"]}}')
    assert _more_drifts(more, "Service", "edge") == [
        ('metadata.finalizers[="example.com/hold"]', "added", "kubectl-patch", "human")]


def test_kubectl_replace_of_a_dump_is_not_drift(more: App) -> None:
    # `kubectl get -o yaml` then `kubectl replace -f`: the dump carries every default and
    # allocation; replacing the object with itself changes nothing anyone should hear about.
    for target in ("deployment/web", "service/edge", "statefulset/db"):
        dump = more.kubectl("get", "-n", "shop", target, "-o", "yaml").stdout
        more.kubectl("replace", "-f", "-", input=dump)
    assert more.drifts() == []
    assert _more_drifts(more, "Service", "edge") == []
    assert _more_drifts(more, "StatefulSet", "db") == []


def test_kubectl_replace_of_an_edited_dump(more: App) -> None:
    dump = more.kubectl("get", "-n", "shop", "deployment/web", "-o", "yaml").stdout
    more.kubectl("replace", "-f", "-", input=dump.replace("shop/web:1.4.2", "shop/web:1.4.3"))
    assert more.drifts() == [(f"{WEB}.image", "changed", "kubectl-replace", "human")]


def test_human_client_side_apply_after_gitops_server_side_apply(more: App) -> None:
    deployment = more.desired[ResourceKey("apps", "Deployment", "shop", "web")]
    changed = yaml.safe_load(yaml.safe_dump(deployment))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/web:hotfix"
    more.kubectl("apply", "-f", "-", input=yaml.safe_dump(changed))
    assert more.drifts() == [
        ('metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]', "added",
         "kubectl-client-side-apply", "human"),
        (f"{WEB}.image", "changed", "kubectl-client-side-apply", "human"),
    ]


def test_gitops_client_side_sync_then_edit_then_resync(kubectl: Any, tmp_path: pathlib.Path) -> None:
    # Argo CD's default sync is a client-side apply (manager argocd-application-controller,
    # Update, writing the last-applied annotation): in sync; a kubectl edit is drift; the
    # next sync puts it back.
    application = App(kubectl, tmp_path)

    def sync() -> None:
        kubectl("apply", "--field-manager=argocd-application-controller", "-f",
                str(application.manifest))

    sync()
    assert {k: r.status for k, r in application.compare().items()} == {
        ("Namespace", "shop"): "in-sync", ("Deployment", "web"): "in-sync",
        ("Service", "web"): "in-sync", ("ConfigMap", "web-config"): "in-sync",
        ("Secret", "web-db"): "in-sync"}
    application.edit("deployment/web", "s/image: shop\\/web:1.4.2/image: shop\\/web:1.4.3/")
    assert application.drifts() == [(f"{WEB}.image", "changed", "kubectl-edit", "human")]
    sync()
    assert application.drifts() == []
