"""The `drift-auditor diff` JSON contract, text output and exit status."""

from __future__ import annotations

import orjson
import pytest

from auditor.engine.records import DriftItem, ObjectResult, Problem, ResourceKey, SourceInfo
from auditor.outputs.diffout import exit_code, to_json, to_text

WEB = ResourceKey("apps", "Deployment", "shop", "web")
IMAGE = DriftItem(path="spec.template.spec.containers[name=web].image", op="changed",
                  desired="shop/web:1.4.2", live="shop/web:1.5.0-rc1", manager="kubectl-set",
                  operation="Update", time="2026-11-20T09:12:44Z", category="human")
REPLICAS = DriftItem(path="spec.replicas", op="changed", desired=3, live=5, manager="kubectl",
                     operation="Update", time="2026-11-20T09:13:00Z", category="human")
SOURCE = SourceInfo(file="apps/web.yaml", commit="3f2c1ab9d0", author="Ana", date="2026-11-19T10:00:00Z",
                    subject="web 1.4.2")


def results() -> list[ObjectResult]:
    return [
        ObjectResult(ResourceKey("", "Service", "shop", "web"), "v1", "in-sync"),
        ObjectResult(ResourceKey("", "ConfigMap", "shop", "gone"), "v1", "missing",
                     source=SourceInfo(file="apps/cm.yaml")),
        ObjectResult(WEB, "apps/v1", "drifted", drifts=(REPLICAS, IMAGE), source=SOURCE),
    ]


def test_json_contract() -> None:
    doc = orjson.loads(to_json(results(), []))
    assert list(doc) == ["summary", "resources"]
    assert doc["summary"] == {"resources": 3, "in_sync": 1, "drifted": 1, "missing": 1, "orphan": 0}
    # sorted by key: (group, kind, namespace, name)
    assert [(r["kind"], r["name"]) for r in doc["resources"]] == [
        ("ConfigMap", "gone"), ("Service", "web"), ("Deployment", "web")]
    web = doc["resources"][2]
    assert list(web) == ["apiVersion", "kind", "namespace", "name", "status", "source", "drifts"]
    assert web["source"] == {"file": "apps/web.yaml", "commit": "3f2c1ab9d0", "author": "Ana",
                             "date": "2026-11-19T10:00:00Z", "committer": "", "commit_date": "",
                             "subject": "web 1.4.2", "pr": None, "trailers": {}}
    assert web["drifts"][0] == {
        "path": "spec.replicas", "op": "changed", "desired": 3, "live": 5, "manager": "kubectl",
        "operation": "Update", "time": "2026-11-20T09:13:00Z", "category": "human"}
    assert web["drifts"][1]["path"] == "spec.template.spec.containers[name=web].image"
    assert doc["resources"][1]["source"] is None


def test_json_is_deterministic() -> None:
    a = results()
    first = to_json(a, [])
    assert to_json(list(reversed(a)), []) == first
    nested = ObjectResult(WEB, "apps/v1", "drifted", drifts=(
        DriftItem(path="x", op="added", live={"b": 1, "a": {"d": 1, "c": 2}}),))
    assert to_json([nested]).decode().index('"a"') < to_json([nested]).decode().index('"b"')


def test_problems_and_exit_codes() -> None:
    in_sync = [ObjectResult(WEB, "apps/v1", "in-sync"), ObjectResult(WEB, "apps/v1", "ignored")]
    assert exit_code(in_sync, []) == 0
    assert exit_code(results(), []) == 1
    assert exit_code([ObjectResult(WEB, "apps/v1", "orphan")], []) == 1
    problem = Problem(where="apps/bad.yaml (document 2)", message="metadata.name: missing")
    assert exit_code(in_sync, [problem]) == 2
    assert exit_code(in_sync, [Problem(where="x", message="slow", kind="warning")]) == 0
    doc = orjson.loads(to_json(in_sync, [problem]))
    assert doc["summary"] == {"resources": 2, "in_sync": 1, "drifted": 0, "missing": 0, "orphan": 0,
                              "ignored": 1}
    assert doc["problems"] == [{"where": "apps/bad.yaml (document 2)", "message": "metadata.name: missing",
                                "kind": "error"}]


def test_a_partial_audit_exits_3_unless_opted_out_and_an_error_still_wins() -> None:
    in_sync = [ObjectResult(WEB, "apps/v1", "in-sync")]
    skipped = Problem(where="ConfigMap", message="HTTP 500", kind="list-failed")
    error = Problem(where="apps/bad.yaml", message="bad")
    assert exit_code(in_sync, [skipped], partial=True) == 3
    assert exit_code(results(), [skipped], partial=True) == 3, "partial outranks drift"
    assert exit_code(results(), [skipped], partial=True, zero_on_drift=True) == 3
    assert exit_code(results(), [skipped], partial=True, zero_on_partial=True) == 1
    assert exit_code(in_sync, [skipped], partial=True, zero_on_partial=True) == 0
    assert exit_code(results(), [skipped], partial=True, zero_on_partial=True,
                     zero_on_drift=True) == 0
    assert exit_code(in_sync, [skipped, error], partial=True, zero_on_partial=True) == 2


def test_text_output() -> None:
    text = to_text(results(), [], color=False)
    lines = text.splitlines()
    assert lines[0] == "ConfigMap shop/gone  missing  (apps/cm.yaml)"
    assert lines[1] == "Deployment.apps shop/web  drifted  (apps/web.yaml @ 3f2c1ab9d0)"
    assert lines[2] == ("  ~ spec.replicas: 3 → 5   kubectl (Update, 2026-11-20T09:13:00Z) human")
    assert lines[3].startswith("  ~ spec.template.spec.containers[name=web].image: shop/web:1.4.2 → "
                               "shop/web:1.5.0-rc1   kubectl-set")
    assert lines[-1] == "3 resources: 1 in-sync, 1 drifted, 1 missing"
    assert "\x1b[" not in text
    coloured = to_text(results(), [], color=True)
    assert "\x1b[31mhuman\x1b[0m" in coloured


def test_text_shows_line_diff_for_multiline_values() -> None:
    old = "a=1\nb=2\nc=3\n"
    new = "a=1\nb=20\nc=3\n"
    r = ObjectResult(ResourceKey("", "ConfigMap", "shop", "cfg"), "v1", "drifted", drifts=(
        DriftItem(path='data["app.properties"]', op="changed", desired=old, live=new,
                  manager="kubectl-edit", operation="Update", category="human"),))
    text = to_text([r])
    assert "      -b=2" in text and "      +b=20" in text
    assert text.count("a=1") == 1  # context line, not both full values


def test_text_shows_item_delta_for_atomic_lists() -> None:
    # RBAC `rules` is atomic: it drifts as a whole, and the text names the rule appended
    # instead of two truncated renderings of the whole list.
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
    extra = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
    r = ObjectResult(ResourceKey("rbac.authorization.k8s.io", "Role", "shop", "reader"),
                     "rbac.authorization.k8s.io/v1", "drifted", drifts=(
        DriftItem(path="rules", op="changed", desired=[rule], live=[rule, extra],
                  manager="kubectl-edit", operation="Update", category="human"),))
    lines = to_text([r]).splitlines()
    assert lines[1] == "  ~ rules   kubectl-edit (Update) human"
    assert lines[2] == '      + {"apiGroups":[""],"resources":["secrets"],"verbs":["get","list","watch"]}'
    assert len(lines) == 4 and "…" not in lines[2]
    # reordered: both orders are shown
    r2 = ObjectResult(r.key, r.api_version, "drifted", drifts=(
        DriftItem(path="spec.args", op="changed", desired=["a", "b"], live=["b", "a"],
                  manager="kubectl-edit", operation="Update", category="human"),))
    assert to_text([r2]).splitlines()[2:4] == ['      - ["a","b"]', '      + ["b","a"]']


@pytest.mark.parametrize("status", ["orphan", "ignored"])
def test_text_headers_for_other_statuses(status: str) -> None:
    r = ObjectResult(WEB, "apps/v1", status, reason="legacy" if status == "ignored" else "")  # type: ignore[arg-type]
    assert to_text([r]).splitlines()[0].startswith(f"Deployment.apps shop/web  {status}")


def test_object_delta_summarises_versions() -> None:
    from auditor.engine.deltas import object_delta

    old = {"spec": {"replicas": 3, "template": {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}}}}
    new = {"spec": {"replicas": 5, "paused": True, "template": {"metadata": {"labels": {}}}}}
    assert object_delta(old, new) == [
        ("spec.paused", "added", None, True),
        ("spec.replicas", "changed", 3, 5),
        ('spec.template.metadata.labels["app.kubernetes.io/name"]', "removed", "web", None),
    ]


@pytest.mark.parametrize(("elements", "text"), [
    (("spec", "replicas"), "spec.replicas"),
    (("metadata", "labels", "app.kubernetes.io/name"), 'metadata.labels["app.kubernetes.io/name"]'),
    (("metadata", "labels", "team-a"), "metadata.labels.team-a"),
    (("data", "my key"), 'data["my key"]'),
    (("spec", "containers", ("name", "web"), "image"), "spec.containers[name=web].image"),
    (("spec", "ports", ("containerPort", 80, "protocol", "TCP")), "spec.ports[containerPort=80,protocol=TCP]"),
    (("spec", "volumeMounts", ("mountPath", "/etc/web")), "spec.volumeMounts[mountPath=/etc/web]"),
    (("spec", "env", ("name", "a,b=c")), 'spec.env[name="a,b=c"]'),
])
def test_path_text_contract(elements: tuple[object, ...], text: str) -> None:
    from auditor.engine.paths import Key, render

    def element(e: object) -> object:
        if isinstance(e, tuple):
            return Key(zip(e[::2], e[1::2], strict=True))
        return e

    assert render(element(e) for e in elements) == text  # type: ignore[misc]
