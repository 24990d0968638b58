"""Ignore rules from the configuration and DriftIgnore policy files."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.config import IgnoreRule
from auditor.engine.ignore import IgnoreSet, load_policies
from auditor.engine.paths import glob_regex
from auditor.engine.records import DriftItem, ResourceKey
from auditor.errors import PolicyError

WEB = ResourceKey("apps", "Deployment", "shop", "web")


def drift(path: str, manager: str = "kubectl-edit") -> DriftItem:
    return DriftItem(path=path, op="changed", manager=manager, category="human")


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("spec.replicas", "spec.replicas", True),
    ("spec.replicas", "spec.replicasX", False),
    ("spec.template", "spec.template.spec.containers[name=web].image", True),
    ("spec.template.spec.containers[name=*].image", "spec.template.spec.containers[name=web].image", True),
    ("spec.template.spec.containers[name=*].image", "spec.template.spec.containers[name=web].env", False),
    ("spec.*.spec", "spec.template.spec.dnsPolicy", True),
    ("spec.*", "spec.template.spec.dnsPolicy", True),
    ('metadata.annotations["example.com/*"]', 'metadata.annotations["example.com/owner"]', True),
    ('metadata.annotations["example.com/*"]', 'metadata.annotations["other.io/owner"]', False),
    ("**.image", "spec.template.spec.containers[name=web].image", True),
    ("spec.ports[port=80,protocol=TCP]", "spec.ports[port=80,protocol=TCP].targetPort", True),
    ("data", 'data["app.properties"]', True),
])
def test_path_globs(pattern: str, path: str, hit: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is hit


def test_selectors_and_whole_objects() -> None:
    rules = IgnoreSet([
        IgnoreRule(kind="Deployment", namespace="shop", name="w*", paths=("spec.replicas",)),
        IgnoreRule(group="", kind="ConfigMap", reason="generated"),
        IgnoreRule(managers=("keda-*",)),
    ])
    assert rules.object_rule(ResourceKey("", "ConfigMap", "x", "y")) is not None
    assert rules.object_rule(WEB) is None
    bound = rules.for_object(WEB)
    assert bound.drops(drift("spec.replicas"))
    assert bound.drops(drift("spec.template.spec.containers[name=web].image", "keda-operator"))
    assert not bound.drops(drift("spec.template.spec.containers[name=web].image"))
    other = rules.for_object(ResourceKey("apps", "Deployment", "prod", "web"))
    assert not other.drops(drift("spec.replicas"))
    # a removed field has no manager: manager rules never drop it
    assert not other.drops(DriftItem(path="spec.x", op="removed"))


POLICY = """\
apiVersion: drift-auditor.io/v1
kind: DriftIgnore
metadata: {name: keda}
spec:
  match: {group: apps, kind: Deployment, namespace: "shop-*"}
  paths: [spec.replicas]
  managers: [keda-operator]
  reason: KEDA owns the replica count
---
apiVersion: drift-auditor.io/v1
kind: SomeOtherPolicy
spec: {anything: goes}
"""


def test_load_policies(tmp_path: Path) -> None:
    (tmp_path / "keda.yaml").write_text(POLICY)
    (tmp_path / "notes.txt").write_text("not: yaml: at: all:")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cm.yml").write_text(
        "apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {match: {kind: ConfigMap}}\n")
    rules = load_policies(tmp_path)
    assert rules == (
        IgnoreRule(group="apps", kind="Deployment", namespace="shop-*", paths=("spec.replicas",),
                   managers=("keda-operator",), reason="KEDA owns the replica count"),
        IgnoreRule(kind="ConfigMap"),
    )
    assert load_policies(tmp_path / "absent") == ()


@pytest.mark.parametrize(("text", "message"), [
    ("apiVersion: drift-auditor.io/v2\nkind: DriftIgnore\nspec: {}\n", "apiVersion"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\n", "spec: expected a mapping"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {pathz: [a]}\n", "spec.pathz: unknown key"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {match: {labels: x}}\n",
     "spec.match.labels: unknown key"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {match: {kind: [a]}}\n",
     "spec.match.kind: expected a string"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {paths: [1]}\n",
     "spec.paths: expected a list of non-empty strings"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {managers: {a: b}}\n", "spec.managers"),
    ("apiVersion: drift-auditor.io/v1\nkind: DriftIgnore\nspec: {reason: [x]}\n", "spec.reason"),
    ("kind: DriftIgnore\nspec: [\n", "invalid YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_policies_name_file_document_and_key(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("---\n" + text if "invalid" not in message else text)
    with pytest.raises(PolicyError) as exc:
        load_policies(tmp_path)
    assert str(file) in str(exc.value)
    assert message in str(exc.value)
    if "invalid YAML" not in message:
        assert "document 1" in str(exc.value)


def test_settings_merge_config_rules_and_policy_files(tmp_path: Path) -> None:
    from auditor.config import CompareConfig
    from auditor.engine.compare import CompareSettings

    (tmp_path / "keda.yaml").write_text(POLICY)
    settings = CompareSettings.from_config(
        CompareConfig(ignore=(IgnoreRule(kind="ConfigMap"),)), secret_key=b"k" * 32,
        policies_dir=tmp_path)
    assert settings.ignore.rules == (
        IgnoreRule(kind="ConfigMap"),
        IgnoreRule(group="apps", kind="Deployment", namespace="shop-*", paths=("spec.replicas",),
                   managers=("keda-operator",), reason="KEDA owns the replica count"))
    bound = settings.ignore.for_object(ResourceKey("apps", "Deployment", "shop-eu", "web"))
    assert bound.drops(drift("spec.replicas", "kubectl"))
