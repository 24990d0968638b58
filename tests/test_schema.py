"""Merge keys come from the OpenAPI schemas shipped in kubernetes-validate (via the table
tools/gen_listkeys.py makes of the newest one: auditor/engine/listkeys.json)."""

from __future__ import annotations

import time

import pytest

from auditor.engine import schema
from auditor.engine.schema import ListInfo, item_key, list_info, merge_keys

POD = ("spec", "template", "spec")


@pytest.mark.parametrize(("group", "version", "kind", "path", "keys"), [
    ("apps", "v1", "Deployment", (*POD, "containers"), ("name",)),
    ("apps", "v1", "Deployment", (*POD, "initContainers"), ("name",)),
    ("apps", "v1", "Deployment", (*POD, "volumes"), ("name",)),
    ("apps", "v1", "Deployment", (*POD, "containers", "[]", "env"), ("name",)),
    ("apps", "v1", "Deployment", (*POD, "containers", "[]", "volumeMounts"), ("mountPath",)),
    ("apps", "v1", "Deployment", (*POD, "containers", "[]", "ports"), ("containerPort", "protocol")),
    ("apps", "v1", "StatefulSet", (*POD, "containers"), ("name",)),
    ("apps", "v1", "DaemonSet", (*POD, "containers", "[]", "ports"), ("containerPort", "protocol")),
    ("batch", "v1", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec", "containers"), ("name",)),
    ("", "v1", "Service", ("spec", "ports"), ("port", "protocol")),
    ("", "v1", "Pod", ("spec", "containers"), ("name",)),
    ("", "v1", "ConfigMap", ("metadata", "ownerReferences"), ("uid",)),
    # Another version of the same kind shares the keys (apps/v1beta2 is not in 1.37's schemas).
    ("apps", "v1beta2", "Deployment", (*POD, "containers"), ("name",)),
])
def test_merge_keys_from_schema(group: str, version: str, kind: str, path: tuple[str, ...],
                                keys: tuple[str, ...]) -> None:
    assert merge_keys(group, version, kind, path) == keys


@pytest.mark.parametrize(("group", "kind", "path", "info"), [
    ("apps", "Deployment", (*POD, "containers", "[]", "args"), ListInfo("atomic")),
    ("apps", "Deployment", (*POD, "tolerations"), ListInfo("atomic")),
    ("", "ConfigMap", ("metadata", "finalizers"), ListInfo("set")),
    ("rbac.authorization.k8s.io", "Role", ("rules",), ListInfo("atomic")),
    ("networking.k8s.io", "NetworkPolicy", ("spec", "policyTypes"), ListInfo("atomic")),
])
def test_atomic_and_set_lists(group: str, kind: str, path: tuple[str, ...], info: ListInfo) -> None:
    assert list_info(group, "v1", kind, path) == info
    assert merge_keys(group, "v1", kind, path) is None


def test_map_values_are_walked_through_additional_properties() -> None:
    # labels is a map: the key is a path element, there is no list below it
    assert list_info("", "v1", "ConfigMap", ("metadata", "labels", "app.kubernetes.io/name")) == ListInfo("atomic")


def test_crd_falls_back_to_name_only_when_every_item_has_it() -> None:
    named = [{"name": "a", "x": 1}, {"name": "b"}]
    assert merge_keys("example.com", "v1", "Widget", ("spec", "parts"), named) == ("name",)
    assert merge_keys("example.com", "v1", "Widget", ("spec", "parts"), [*named, {"x": 2}]) is None
    assert merge_keys("example.com", "v1", "Widget", ("spec", "tags"), ["a", "b"]) is None
    assert merge_keys("example.com", "v1", "Widget", ("spec", "parts"), []) is None
    assert not schema.known_kind("example.com", "v1", "Widget")
    assert schema.known_kind("apps", "v1", "Deployment")


def test_item_key_defaults_protocol_to_tcp() -> None:
    keys = ("containerPort", "protocol")
    assert item_key({"containerPort": 80}, keys) == item_key({"containerPort": 80, "protocol": "TCP"}, keys)
    assert item_key({"containerPort": 53, "protocol": "UDP"}, keys) == (53, "UDP")


def test_uses_the_newest_schema_version() -> None:
    from importlib import resources
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    versions = sorted(tuple(int(x) for x in e.name[1:].split("-")[0].split(".")) for e in root.iterdir()
                      if e.name.endswith("-local"))
    newest = "v" + ".".join(map(str, versions[-1])) + "-local"
    assert schema._schema_dir() == newest


def test_loading_is_lazy_and_cached() -> None:
    schema.clear_cache()
    started = time.perf_counter()
    merge_keys("apps", "v1", "Deployment", (*POD, "containers"))
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(10_000):
        merge_keys("apps", "v1", "Deployment", (*POD, "containers"))
    repeated = time.perf_counter() - started
    assert first < 2.0
    assert repeated < 0.5  # cached: ~µs per call, so 10,000 objects never reload anything
