"""FieldsV1 parsing into an ownership index."""

from __future__ import annotations

from typing import Any

import yaml
from compare_support import DATA, load_pair

from auditor.engine.fieldsv1 import Owner, OwnershipIndex, ownership, walk
from auditor.engine.paths import Index, Key, Value

C = ("spec", "template", "spec", "containers")


def test_walk_tokens() -> None:
    fields = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:finalizers": {".": {}, 'v:"example.com/x"': {}}},
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}},
                   "f:args": {"i:0": {}}, "f:selector": {}},
        "bogus": {}, "k:not-json": {},
    }
    got = set(walk(fields))
    assert got == {
        (("metadata", "labels"), False), (("metadata", "labels", "app"), True),
        (("metadata", "finalizers"), False), (("metadata", "finalizers", Value("example.com/x")), True),
        (("spec", "ports", Key([("port", 80), ("protocol", "TCP")])), False),
        (("spec", "ports", Key([("protocol", "TCP"), ("port", 80)]), "port"), True),
        (("spec", "args", Index(0)), True),
        (("spec", "selector"), True),
    }


def test_key_equality_ignores_key_order() -> None:
    assert Key([("a", 1), ("b", "x")]) == Key([("b", "x"), ("a", 1)])
    assert hash(Key([("a", 1), ("b", "x")])) == hash(Key([("b", "x"), ("a", 1)]))
    assert Key([("a", 1)]) != Key([("a", "1")])


def test_ownership_of_realistic_deployment() -> None:
    live = yaml.safe_load((DATA.parent / "live" / "deployment-web.yaml").read_text())
    index = ownership(live)
    assert [o.manager for o in index.entries] == ["kubectl-client-side-apply", "kubectl-set",
                                                  "kube-controller-manager"]
    image = (*C, Key([("name", "web")]), "image")
    assert [o.manager for o in index.owners(image)] == ["kubectl-set"]
    assert index.owners(image)[0] == Owner("kubectl-set", "Update", "2026-11-20T09:12:44Z", "", "apps/v1")
    status = index.owners(("status", "replicas"))[0]
    assert (status.manager, status.subresource) == ("kube-controller-manager", "status")
    # The item's existence (".") is the applier's, the image inside it kubectl-set's.
    item_owners = {o.manager for o in index.owners_within((*C, Key([("name", "web")])))}
    assert item_owners == {"kubectl-client-side-apply", "kubectl-set"}


def test_atomic_values_are_owned_by_their_leaf_owner() -> None:
    _desired, live = load_pair("service-web")
    index = ownership(live)
    # `f:selector: {}` is a leaf: the atomic map and everything in it belongs to argocd.
    owners = index.owners_of_value(("spec", "selector", "app.kubernetes.io/name"))
    assert [o.manager for o in owners] == ["argocd-controller"]
    # `.` only marks existence: it does not make the children owned.
    assert index.owners_of_value(("spec", "ports", Key([("port", 80), ("protocol", "TCP")]), "protocol")) == ()


def test_scale_subresource_and_missing_time() -> None:
    managed: list[dict[str, Any]] = [
        {"manager": "argocd-controller", "operation": "Apply", "apiVersion": "apps/v1",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {}}}},
        {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"},
    ]
    index = OwnershipIndex(managed)
    (owner,) = index.owners(("spec", "replicas"))
    assert owner == Owner("kubectl", "Update", "", "scale", "apps/v1")
    assert index.owners(("spec", "template"))[0].time == ""


def test_shared_ownership_lists_every_manager() -> None:
    managed = [
        {"manager": "a", "operation": "Apply", "fieldsV1": {"f:data": {"f:k": {}}}},
        {"manager": "b", "operation": "Apply", "fieldsV1": {"f:data": {"f:k": {}}}},
    ]
    assert [o.manager for o in OwnershipIndex(managed).owners(("data", "k"))] == ["a", "b"]


def test_no_or_malformed_managed_fields() -> None:
    for value in (None, "x", [], [None, {"manager": "m"}], [{"manager": "m", "fieldsV1": "nope"}]):
        index = OwnershipIndex(value)
        assert index.owners(("spec",)) == ()
        assert list(index.paths()) == []
    assert not OwnershipIndex(None)
    assert OwnershipIndex([{"manager": "m"}])
