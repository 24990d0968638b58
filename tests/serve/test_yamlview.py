"""Git's side of a drift rebuilt from live content and the drift's items, the YAML lines and
their diff (:mod:`auditor.web.yamlview`), on the path forms the engine writes."""

from __future__ import annotations

from auditor.support import yamlsafe
from auditor.web import yamlview

LIVE = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web", "extra": "x"},
                 "finalizers": ["a", "b"]},
    "spec": {"replicas": 5, "template": {"spec": {"containers": [
        {"name": "web", "image": "web:2", "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "args": ["--a", "multi\nline\n"]}]}}},
}
ITEMS = [
    {"path": "spec.replicas", "op": "changed", "desired": 2, "live": 5, "manager": "hpa"},
    {"path": "metadata.labels.extra", "op": "added", "desired": None, "live": "x"},
    {"path": 'metadata.labels["app.kubernetes.io/name"]', "op": "changed", "desired": "w",
     "live": "web"},
    {"path": 'metadata.finalizers[="b"]', "op": "added", "live": "b"},
    {"path": "spec.template.spec.containers[name=web].env", "op": "removed",
     "desired": [{"name": "MODE", "value": "prod"}]},
    {"path": "spec.template.spec.containers[name=web].ports[containerPort=80,protocol=TCP]"
             ".containerPort", "op": "changed", "desired": 8080, "live": 80},
    {"path": "spec.template.spec.containers[name=sidecar]", "op": "removed",
     "desired": {"name": "sidecar", "image": "side:1"}},
]


def test_git_side_puts_every_desired_value_back() -> None:
    git, unplaced = yamlview.git_side(LIVE, ITEMS)
    assert unplaced == []
    assert git["spec"]["replicas"] == 2
    assert git["metadata"]["labels"] == {"app.kubernetes.io/name": "w"}
    assert git["metadata"]["finalizers"] == ["a"]
    web, sidecar = git["spec"]["template"]["spec"]["containers"]
    assert web["env"] == [{"name": "MODE", "value": "prod"}]
    assert web["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert sidecar == {"name": "sidecar", "image": "side:1"}
    assert LIVE["spec"]["replicas"] == 5, "live is not changed"


def test_lines_are_yaml_and_the_diff_labels_changed_lines() -> None:
    git, _ = yamlview.git_side(LIVE, ITEMS)
    for obj in (git, LIVE):
        text = yamlview.as_yaml(yamlview.lines_of(obj, "apps", "Deployment"))
        assert yamlsafe.load(text) == obj
    marks = [(p, {"manager": i.get("manager", "")}) for p, i in yamlview.places(LIVE, ITEMS)]
    diff = yamlview.diff(yamlview.lines_of(git, "apps", "Deployment"),
                         yamlview.lines_of(LIVE, "apps", "Deployment"), [], marks)
    replicas = [r for r in diff.rows if r.right.text.strip() == "replicas: 5"]
    assert replicas and replicas[0].changed and replicas[0].left.text.strip() == "replicas: 2"
    assert replicas[0].labels == [{"manager": "hpa"}]
    assert any(u.sign == "+" and "extra: x" in u.text for u in diff.unified)
    assert any(u.sign == "-" and "image: side:1" in u.text for u in diff.unified)


def test_unplaceable_paths_are_named_and_secrets_redacted() -> None:
    _, unplaced = yamlview.git_side({"a": 1}, [{"path": "b[name=x].c", "op": "changed"},
                                               {"path": "not a path!", "op": "changed"}])
    assert unplaced == ["b[name=x].c", "not a path!"]
    secret = {"kind": "Secret", "data": {"k": "hmac-sha256:" + "0" * 32, "raw": "cGxhaW4="},
              "stringData": {"s": "plain"}}
    shown = yamlview.redact_secret(secret)
    assert shown["data"] == {"k": "hmac-sha256:" + "0" * 32, "raw": yamlview.HIDDEN_SECRET}
    assert shown["stringData"] == {"s": yamlview.HIDDEN_SECRET}
