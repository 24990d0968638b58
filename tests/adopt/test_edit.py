"""The YAML editing core of `adopt`, on files: paths parsed as the contract prints them,
values written where they belong, and nothing else in the file moves."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from auditor.adopt.edit import adopt_into
from auditor.adopt.model import CannotEdit, RenderSpec
from auditor.adopt.selection import strip_defaults
from auditor.adopt.steps import Idx, Sel, Val, parse_path
from auditor.adopt.yamledit import edit_text, guess_indent, merge3
from auditor.engine.records import DriftItem, ResourceKey

DEPLOY = """\
# Web front end. Owned by team shop.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app.kubernetes.io/name: web}   # flow style stays
spec:
  replicas: 2  # two is enough by day
  selector:
    matchLabels: {app.kubernetes.io/name: web}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
        - name: web
          image: "shop/web:1.4.2"
          ports: [{containerPort: 8080}]
          env:
            - name: MODE
              value: 'prod'
        - name: sidecar
          image: shop/proxy:2
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  namespace: shop
data:
  greeting: hello
"""


def changed_lines(old: str, new: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="",
                                              n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def is_web(doc: object) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "Deployment"


def test_parse_path_follows_the_contract() -> None:
    assert parse_path("spec.template.spec.containers[name=web].image") == (
        "spec", "template", "spec", "containers", Sel((("name", "web"),)), "image")
    assert parse_path("spec.ports[containerPort=80,protocol=TCP]") == (
        "spec", "ports", Sel((("containerPort", 80), ("protocol", "TCP"))))
    assert parse_path('metadata.labels["app.kubernetes.io/name"]') == (
        "metadata", "labels", "app.kubernetes.io/name")
    assert parse_path('spec.finalizers["a/b"]') == ("spec", "finalizers", "a/b")
    assert parse_path("x[3]") == ("x", Idx(3))
    assert parse_path("x[foo]") == ("x", Val("foo"))
    # Set items as the engine renders them (server-side apply's own notation).
    assert parse_path('metadata.finalizers[="example.com/x"]') == (
        "metadata", "finalizers", Val("example.com/x"))
    assert parse_path("spec.externalIPs[=\"10.0.0.1\"]") == ("spec", "externalIPs", Val("10.0.0.1"))


def test_guess_indent_reads_the_file_style() -> None:
    assert guess_indent(DEPLOY) == (2, 4, 2)
    assert guess_indent("a:\n  b:\n  - c\n") == (2, 2, 0)


@pytest.mark.parametrize(("item", "expected"), [
    (DriftItem("spec.template.spec.containers[name=web].image", "changed", "shop/web:1.4.2",
               "shop/web:1.5.0"),
     ['-          image: "shop/web:1.4.2"', '+          image: "shop/web:1.5.0"']),
    (DriftItem("spec.replicas", "changed", 2, 4),
     ["-  replicas: 2  # two is enough by day", "+  replicas: 4  # two is enough by day"]),
    (DriftItem("spec.template.spec.containers[name=web].env[name=DEBUG]", "added", None,
               {"name": "DEBUG", "value": "1"}),
     ["+            - name: DEBUG", '+              value: "1"']),
    (DriftItem("spec.template.metadata.labels.hotfix", "added", None, "true"),
     ['+        hotfix: "true"']),
    (DriftItem("metadata.labels.tier", "added", None, "web"),
     ["-  labels: {app.kubernetes.io/name: web}   # flow style stays",
      "+  labels: {app.kubernetes.io/name: web, tier: web}   # flow style stays"]),
    (DriftItem("spec.template.spec.containers[name=web].ports[containerPort=9090,protocol=TCP]",
               "added", None, {"containerPort": 9090, "protocol": "TCP"}),
     ["-          ports: [{containerPort: 8080}]",
      "+          ports: [{containerPort: 8080}, {containerPort: 9090, protocol: TCP}]"]),
    (DriftItem("spec.template.spec.containers[name=web].env[name=MODE]", "removed",
               {"name": "MODE", "value": "prod"}, None),
     # The list it leaves empty goes too: empty and absent are the same to the comparison.
     ["-          env:", "-            - name: MODE", "-              value: 'prod'"]),
])
def test_only_the_adopted_lines_change(item: DriftItem, expected: list[str]) -> None:
    new = edit_text(DEPLOY, is_web, [item])
    assert changed_lines(DEPLOY, new) == expected


def test_other_documents_of_the_file_are_untouched() -> None:
    new = edit_text(DEPLOY, lambda d: isinstance(d, dict) and d.get("kind") == "ConfigMap",
                    [DriftItem("data.greeting", "changed", "hello", "on")])
    # "on" is a boolean to YAML 1.1 (and to Kubernetes): it must be written quoted.
    assert changed_lines(DEPLOY, new) == ["-  greeting: hello", '+  greeting: "on"']


def test_a_value_not_written_in_the_document_is_refused() -> None:
    with pytest.raises(CannotEdit, match="not written"):
        edit_text(DEPLOY, is_web, [DriftItem("spec.paused", "changed", False, True)])


def test_merge3_keeps_original_text_where_ruamel_rerenders() -> None:
    original = "a: [{x: 1}]\nb: 1\n"
    base = "a: [x: 1]\nb: 1\n"
    edited = "a: [x: 1]\nb: 2\n"
    assert merge3(original, base, edited) == "a: [{x: 1}]\nb: 2\n"


def test_server_defaults_in_added_items_are_not_written() -> None:
    key = ResourceKey("apps", "Deployment", "shop", "web")
    live = {"image": "busybox", "name": "side", "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}
    assert strip_defaults(key, "spec.template.spec.containers[name=side]", live) == {
        "image": "busybox", "name": "side"}
    # A pull policy the server would not have chosen is the person's: kept.
    assert strip_defaults(key, "spec.template.spec.containers[name=side]",
                          {**live, "imagePullPolicy": "IfNotPresent"})["imagePullPolicy"] == \
        "IfNotPresent"
    assert strip_defaults(
        key, "spec.template.spec.containers[name=web].ports[containerPort=9090,protocol=TCP]",
        {"containerPort": 9090, "protocol": "TCP"}) == {"containerPort": 9090}


ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: shop-readonly
rules:
  - apiGroups: ["", apps]
    resources: [pods, deployments, services]   # no secrets here
    verbs: [get, list, watch]
"""


def test_an_atomic_list_keeps_the_text_of_its_unchanged_items() -> None:
    old = [{"apiGroups": ["", "apps"], "resources": ["pods", "deployments", "services"],
            "verbs": ["get", "list", "watch"]}]
    live = [*old, {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    new = edit_text(ROLE, lambda d: True, [DriftItem("rules", "changed", old, live)])
    # The new rule takes the flow style of its sibling's fields.
    assert changed_lines(ROLE, new) == ['+  - apiGroups: [""]', "+    resources: [secrets]",
                                        "+    verbs: [get]"]


def test_crlf_and_byte_order_mark_are_kept() -> None:
    text = "\ufeff" + DEPLOY.replace("\n", "\r\n")
    new = edit_text(text, is_web, [DriftItem("spec.replicas", "changed", 2, 3)])
    assert new.startswith("\ufeff")
    assert new.count("\r\n") == text.count("\r\n") and "\n" not in new.replace("\r\n", "")
    # (splitlines() drops the \r of each line)
    assert changed_lines(text, new) == ["-  replicas: 2  # two is enough by day",
                                        "+  replicas: 3  # two is enough by day"]


def test_adopt_into_keeps_a_crlf_file_crlf(tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_bytes(DEPLOY.replace("\n", "\r\n").encode())
    key = ResourceKey("apps", "Deployment", "shop", "web")
    outcome = adopt_into(tmp_path, RenderSpec(), [(key, [DriftItem("spec.replicas", "changed",
                                                                   2, 3)])])
    assert [a.file for a in outcome.adopted] == ["web.yaml"]
    assert manifest.read_bytes() == DEPLOY.replace("replicas: 2", "replicas: 3").replace(
        "\n", "\r\n").encode()


def test_a_broken_file_elsewhere_does_not_stop_an_adoption(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(DEPLOY)
    (tmp_path / "broken.yaml").write_text("kind: ConfigMap\nmetadata: {name: [unclosed\n")
    key = ResourceKey("apps", "Deployment", "shop", "web")
    outcome = adopt_into(tmp_path, RenderSpec(), [(key, [DriftItem("spec.replicas", "changed",
                                                                   2, 3)])])
    assert outcome.refusals == []
    assert list(outcome.files) == ["web.yaml"]


CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: nginx
data:
  # Served as /etc/nginx/conf.d/default.conf
  default.conf: |
    server {
      listen 80;
    }
  mode: prod
"""


def test_multi_line_text_stays_a_literal_block() -> None:
    live = "server {\n  listen 8080;\n}\n"
    new = edit_text(CONFIG, lambda d: True, [DriftItem('data["default.conf"]', "changed",
                                                       "server {\n  listen 80;\n}\n", live)])
    assert changed_lines(CONFIG, new) == ["-      listen 80;", "+      listen 8080;"]
