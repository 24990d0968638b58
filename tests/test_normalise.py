"""normalise(): the canonical form shared by desired and live objects."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from live_fixtures import desired_objects, live_objects

from auditor.engine.normalise import (
    LAST_APPLIED,
    SERVER_OWNED_METADATA,
    normalise,
    secret_hash,
)

KEY = b"0123456789abcdef-test-key"
LIVE = live_objects()
DESIRED = desired_objects()
DEPLOYMENT = LIVE[("apps", "Deployment", "shop", "web")]
SECRET = LIVE[("", "Secret", "shop", "db-credentials")]


def _containers(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _containers(v)
    elif isinstance(obj, list):
        yield obj
        for v in obj:
            yield from _containers(v)


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize("key", sorted(LIVE), ids=lambda k: f"{k[1]}/{k[3]}")
def test_status_and_server_owned_metadata_are_dropped(key: tuple[str, ...]) -> None:
    out = normalise(LIVE[key], secret_key=KEY)
    assert "status" not in out
    assert not SERVER_OWNED_METADATA & set(out["metadata"])
    assert out["metadata"]["name"] == key[3]
    assert out["kind"] == key[1]


@pytest.mark.parametrize("key", sorted(LIVE), ids=lambda k: f"{k[1]}/{k[3]}")
def test_input_is_not_mutated_and_nothing_mutable_is_shared(key: tuple[str, ...]) -> None:
    obj = LIVE[key]
    before = copy.deepcopy(obj)
    out = normalise(obj, secret_key=KEY)
    assert obj == before
    inputs = {id(c) for c in _containers(obj)}
    assert not inputs & {id(c) for c in _containers(out)}


@pytest.mark.parametrize("key", sorted(k for k in LIVE if k[1] != "Secret"),
                         ids=lambda k: f"{k[1]}/{k[3]}")
def test_normalise_is_idempotent(key: tuple[str, ...]) -> None:
    once = normalise(LIVE[key], secret_key=KEY)
    assert normalise(once, secret_key=KEY) == once


def test_server_metadata_and_bookkeeping_annotations_go_last_applied_stays() -> None:
    out = normalise(DEPLOYMENT, secret_key=KEY)
    annotations = out["metadata"]["annotations"]
    assert "deployment.kubernetes.io/revision" not in annotations
    assert annotations[LAST_APPLIED] == DEPLOYMENT["metadata"]["annotations"][LAST_APPLIED]
    assert "managedFields" not in out["metadata"]
    assert "creationTimestamp" not in out["spec"]["template"].get("metadata", {})


def test_owner_references_are_dropped() -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-7d9c5b6f4d", "namespace": "shop", "ownerReferences": [
              {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
               "uid": "6f0c7a8e", "controller": True, "blockOwnerDeletion": True}]},
          "spec": {"replicas": 1}}
    assert "ownerReferences" not in normalise(rs, secret_key=KEY)["metadata"]


def test_generate_name_is_dropped_only_when_a_name_was_given() -> None:
    named = {"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": "report-x7k2p", "generateName": "report-"}}
    unnamed = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "report-"}}
    assert "generateName" not in normalise(named, secret_key=KEY)["metadata"]
    assert normalise(unnamed, secret_key=KEY)["metadata"]["generateName"] == "report-"


def test_statefulset_claim_template_status_is_dropped() -> None:
    out = normalise(LIVE[("apps", "StatefulSet", "shop", "db")], secret_key=KEY)
    claim = out["spec"]["volumeClaimTemplates"][0]
    assert "status" not in claim
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"


# --------------------------------------------------------------------------- quantities


def test_desired_and_live_quantities_meet_in_one_form() -> None:
    live = normalise(DEPLOYMENT, secret_key=KEY)
    desired = normalise(DESIRED[("apps", "Deployment", "shop", "web")], secret_key=KEY)
    live_res = _pod_spec(live)["containers"][0]["resources"]
    desired_res = _pod_spec(desired)["containers"][0]["resources"]
    assert live_res == desired_res == {"limits": {"memory": "512Mi"},
                                       "requests": {"cpu": "250m", "memory": "256Mi"}}
    sts_key = ("apps", "StatefulSet", "shop", "db")
    assert _pod_spec(normalise(LIVE[sts_key], secret_key=KEY))["containers"][0]["resources"] == \
        _pod_spec(normalise(DESIRED[sts_key], secret_key=KEY))["containers"][0]["resources"]


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "q"},
            "spec": {"template": {"spec": spec}}}


QUANTITY_CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    ("container requests", _pod({"containers": [{"name": "a", "resources": {
        "requests": {"cpu": 0.5, "memory": "1024Mi"}}}]}),
     lambda o: _pod_spec(o)["containers"][0]["resources"]["requests"],
     {"cpu": "500m", "memory": "1Gi"}),
    ("init container limits", _pod({"initContainers": [{"name": "a", "resources": {
        "limits": {"cpu": "1000m", "ephemeral-storage": "1e9"}}}]}),
     lambda o: _pod_spec(o)["initContainers"][0]["resources"]["limits"],
     {"cpu": "1", "ephemeral-storage": "1G"}),
    ("requests rounded up to milli", _pod({"containers": [{"name": "a", "resources": {
        "requests": {"cpu": "0.0001"}}}]}),
     lambda o: _pod_spec(o)["containers"][0]["resources"]["requests"], {"cpu": "1m"}),
    ("pod-level resources", _pod({"resources": {"limits": {"memory": "0.5Gi"}}}),
     lambda o: _pod_spec(o)["resources"]["limits"], {"memory": "512Mi"}),
    ("overhead", _pod({"overhead": {"cpu": "0.25"}}),
     lambda o: _pod_spec(o)["overhead"], {"cpu": "250m"}),
    ("emptyDir sizeLimit", _pod({"volumes": [{"name": "t", "emptyDir": {"sizeLimit": "1024Mi"}}]}),
     lambda o: _pod_spec(o)["volumes"][0]["emptyDir"]["sizeLimit"], "1Gi"),
    ("ephemeral volume claim", _pod({"volumes": [{"name": "t", "ephemeral": {
        "volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "2048Mi"}}}}}}]}),
     lambda o: _pod_spec(o)["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"][
         "resources"]["requests"], {"storage": "2Gi"}),
    ("PVC storage", {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"},
                     "spec": {"resources": {"requests": {"storage": "5120Mi"}}}},
     lambda o: o["spec"]["resources"]["requests"], {"storage": "5Gi"}),
    ("ResourceQuota hard", {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                            "spec": {"hard": {"requests.cpu": "4000m", "pods": 10,
                                              "requests.memory": "8192Mi"}}},
     lambda o: o["spec"]["hard"], {"requests.cpu": "4", "pods": "10", "requests.memory": "8Gi"}),
    ("LimitRange", {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
                    "spec": {"limits": [{"type": "Container", "max": {"cpu": "2000m"},
                                         "default": {"memory": "0.5Gi"},
                                         "defaultRequest": {"cpu": 0.1}}]}},
     lambda o: o["spec"]["limits"][0],
     {"type": "Container", "max": {"cpu": "2"}, "default": {"memory": "512Mi"},
      "defaultRequest": {"cpu": "100m"}}),
    ("RuntimeClass overhead", {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                               "metadata": {"name": "kata"}, "handler": "kata",
                               "overhead": {"podFixed": {"memory": "0.125Gi", "cpu": 0.25}}},
     lambda o: o["overhead"], {"podFixed": {"memory": "128Mi", "cpu": "250m"}}),
    ("PV capacity", {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"},
                     "spec": {"capacity": {"storage": "10240Mi"}}},
     lambda o: o["spec"]["capacity"], {"storage": "10Gi"}),
    ("HPA v2 targets", {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": "h"}, "spec": {"metrics": [
                            {"type": "Resource", "resource": {"name": "memory", "target": {
                                "type": "AverageValue", "averageValue": "0.5Gi"}}},
                            {"type": "External", "external": {"metric": {"name": "q"}, "target": {
                                "type": "Value", "value": "1000m"}}}]}},
     lambda o: [m[m["type"].lower()]["target"] for m in o["spec"]["metrics"]],
     [{"type": "AverageValue", "averageValue": "512Mi"}, {"type": "Value", "value": "1"}]),
    ("HPA v2beta1 targets", {"apiVersion": "autoscaling/v2beta1",
                             "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                             "spec": {"metrics": [{"type": "Pods", "pods": {
                                 "metricName": "rps", "targetAverageValue": "1k"}}]}},
     lambda o: o["spec"]["metrics"][0]["pods"]["targetAverageValue"], "1k"),
]


@pytest.mark.parametrize(("name", "obj", "get", "expected"), QUANTITY_CASES,
                         ids=[c[0] for c in QUANTITY_CASES])
def test_quantities_are_canonical_wherever_kubernetes_uses_them(
        name: str, obj: dict[str, Any], get: Any, expected: Any) -> None:
    assert get(normalise(obj, secret_key=KEY)) == expected


def test_non_quantity_fields_that_look_numeric_are_untouched() -> None:
    obj = _pod({"containers": [{"name": "a", "args": ["1000m"], "env": [
        {"name": "X", "value": "1024Mi"}]}]})
    container = _pod_spec(normalise(obj, secret_key=KEY))["containers"][0]
    assert container["args"] == ["1000m"]
    assert container["env"][0]["value"] == "1024Mi"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    assert normalise(role, secret_key=KEY)["rules"] == role["rules"]


def test_invalid_quantities_are_kept_as_written() -> None:
    obj = _pod({"containers": [{"name": "a", "resources": {"requests": {"cpu": "lots"}}}]})
    assert _pod_spec(normalise(obj, secret_key=KEY))["containers"][0]["resources"] == {
        "requests": {"cpu": "lots"}}


def test_int_or_string_values_are_not_coerced() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": "80"}, {"port": 81, "targetPort": 81}]}}
    ports = normalise(svc, secret_key=KEY)["spec"]["ports"]
    assert ports[0]["targetPort"] == "80"
    assert ports[1]["targetPort"] == 81
    out = normalise(DEPLOYMENT, secret_key=KEY)["spec"]["strategy"]["rollingUpdate"]
    assert out == {"maxSurge": "25%", "maxUnavailable": "25%"}


# --------------------------------------------------------------------------- empty vs absent


def test_none_and_empty_values_are_absent() -> None:
    obj = _pod({"containers": [{"name": "a", "resources": {}, "env": [], "args": None,
                                "securityContext": {"capabilities": {}}}],
                "securityContext": {}, "affinity": None, "tolerations": [],
                "nodeSelector": {}})
    obj["metadata"]["labels"] = {}
    obj["metadata"]["annotations"] = None
    out = normalise(obj, secret_key=KEY)
    assert out["metadata"] == {"name": "q"}
    assert _pod_spec(out) == {"containers": [{"name": "a"}]}


def test_empty_strings_in_struct_fields_are_absent_but_map_values_stay() -> None:
    obj = _pod({"containers": [{"name": "a", "workingDir": "", "env": [
        {"name": "EMPTY", "value": ""}]}], "nodeSelector": {"pool": ""}})
    obj["metadata"]["labels"] = {"tier": ""}
    obj["metadata"]["annotations"] = {"note": ""}
    obj["spec"]["template"]["metadata"] = {"labels": {"canary": ""}}
    out = normalise(obj, secret_key=KEY)
    assert _pod_spec(out)["containers"] == [{"name": "a", "env": [{"name": "EMPTY"}]}]
    assert _pod_spec(out)["nodeSelector"] == {"pool": ""}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"selector": {"matchLabels": {"app": "web", "canary": ""}}}}
    assert normalise(deploy, secret_key=KEY)["spec"]["selector"] == {
        "matchLabels": {"app": "web", "canary": ""}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "web", "canary": ""}}}
    assert normalise(svc, secret_key=KEY)["spec"]["selector"] == {"app": "web", "canary": ""}
    assert out["metadata"]["labels"] == {"tier": ""}
    assert out["metadata"]["annotations"] == {"note": ""}
    assert out["spec"]["template"]["metadata"]["labels"] == {"canary": ""}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"EMPTY": "", "X": "1"}}
    assert normalise(cm, secret_key=KEY)["data"] == {"EMPTY": "", "X": "1"}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r",
                                                      "apiGroup": "rbac.authorization.k8s.io"},
               "subjects": [{"kind": "ServiceAccount", "name": "web", "apiGroup": ""}]}
    assert normalise(binding, secret_key=KEY)["subjects"] == [{"kind": "ServiceAccount",
                                                               "name": "web"}]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    assert normalise(role, secret_key=KEY)["rules"][0]["apiGroups"] == [""]
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"},
           "spec": {"storageClassName": "", "volumeName": ""}}
    assert normalise(pvc, secret_key=KEY)["spec"] == {"storageClassName": ""}


def test_empty_mappings_whose_presence_matters_are_kept() -> None:
    out = normalise(DEPLOYMENT, secret_key=KEY)
    assert _pod_spec(out)["volumes"][1] == {"emptyDir": {}, "name": "tmp"}
    netpol = normalise(LIVE[("networking.k8s.io", "NetworkPolicy", "shop", "web-allow-frontend")],
                       secret_key=KEY)
    assert netpol["spec"]["ingress"][0]["from"][0]["podSelector"] == {}
    allow_all = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "allow-all"},
                 "spec": {"podSelector": {}, "ingress": [{}], "egress": [{"to": [
                     {"namespaceSelector": {}}]}]}}
    spec = normalise(allow_all, secret_key=KEY)["spec"]
    assert spec == {"podSelector": {}, "ingress": [{}],
                    "egress": [{"to": [{"namespaceSelector": {}}]}]}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
           "spec": {"maxUnavailable": 1, "selector": {}}}
    assert normalise(pdb, secret_key=KEY)["spec"]["selector"] == {}
    spread = _pod({"topologySpreadConstraints": [{"maxSkew": 1, "labelSelector": {},
                                                  "topologyKey": "zone"}]})
    assert _pod_spec(normalise(spread, secret_key=KEY))["topologySpreadConstraints"][0][
        "labelSelector"] == {}


def test_every_volume_source_keeps_its_presence() -> None:
    obj = _pod({"volumes": [{"name": "a", "downwardAPI": {}}, {"name": "b", "emptyDir": {
        "medium": None}}]})
    assert _pod_spec(normalise(obj, secret_key=KEY))["volumes"] == [
        {"name": "a", "downwardAPI": {}}, {"name": "b", "emptyDir": {}}]


# --------------------------------------------------------------------------- secrets

RAW_VALUES = ("correct-horse-battery-staple", "shop_app")


def _forbidden_strings() -> list[str]:
    out = []
    for raw in RAW_VALUES:
        out.append(raw)
        out.append(base64.b64encode(raw.encode()).decode())
        out.append(base64.b64encode(raw.encode()).decode().rstrip("="))
    return out


def test_secret_values_never_leave_normalise() -> None:
    out = normalise(SECRET, secret_key=KEY)
    dumped = orjson.dumps(out).decode()
    for forbidden in _forbidden_strings():
        assert forbidden not in dumped
    assert set(out["data"]) == {"password", "username"}
    assert all(v.startswith("hmac-sha256:") and len(v) == len("hmac-sha256:") + 32
               for v in out["data"].values())
    # The last-applied annotation repeated the plain values: it is a keyed hash now.
    assert out["metadata"]["annotations"][LAST_APPLIED].startswith("hmac-sha256:")
    assert "stringData" not in out


def test_other_annotations_repeating_a_secret_value_are_hashed_too() -> None:
    secret = copy.deepcopy(SECRET)
    secret["metadata"]["annotations"]["kapp.k14s.io/original"] = (
        '{"stringData":{"password":"correct-horse-battery-staple"}}')
    secret["metadata"]["annotations"]["team"] = "payments"
    out = normalise(secret, secret_key=KEY)
    dumped = orjson.dumps(out).decode()
    for forbidden in _forbidden_strings():
        assert forbidden not in dumped
    assert out["metadata"]["annotations"]["team"] == "payments"
    assert out["metadata"]["annotations"]["kapp.k14s.io/original"].startswith("hmac-sha256:")


def test_string_data_in_git_equals_base64_data_live() -> None:
    live = normalise(SECRET, secret_key=KEY)
    desired = normalise(DESIRED[("", "Secret", "shop", "db-credentials")], secret_key=KEY)
    assert live["data"] == desired["data"]
    assert live["data"]["password"] == secret_hash("correct-horse-battery-staple", KEY)
    assert "stringData" not in desired
    dumped = orjson.dumps(desired).decode()
    for forbidden in _forbidden_strings():
        assert forbidden not in dumped


def test_string_data_wins_over_data_like_the_api_server() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"a": base64.b64encode(b"old").decode(), "b": "Yg=="},
              "stringData": {"a": "new"}}
    data = normalise(secret, secret_key=KEY)["data"]
    assert data == {"a": secret_hash("new", KEY), "b": secret_hash(b"b", KEY)}


def test_equal_values_hash_equally_and_the_key_matters() -> None:
    wrapped = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
               "data": {"x": "c2hv\ncF9h\ncHA="}}  # base64 wrapped over lines
    assert normalise(wrapped, secret_key=KEY)["data"]["x"] == secret_hash("shop_app", KEY)
    assert secret_hash("a", KEY) != secret_hash("b", KEY)
    assert secret_hash("a", KEY) != secret_hash("a", b"another-key")
    assert secret_hash("a", KEY) == secret_hash(b"a", KEY)


@pytest.mark.parametrize("field", ["data", "stringData"])
def test_an_empty_secret_value_is_the_same_as_null_or_absent(field: str) -> None:
    # A chart's optional password left empty: Git writes "", one cluster returns null,
    # another drops the key. All three hold no bytes.
    def secret(value: object) -> dict[str, object]:
        values = {"user": "YWRtaW4=" if field == "data" else "admin"}
        if value != "absent":
            values["password"] = value
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                "type": "Opaque", field: values}

    forms = [normalise(secret(v), secret_key=KEY)["data"] for v in ("", None, "absent")]
    assert forms[0] == forms[1] == forms[2] == {"user": secret_hash("admin", KEY)}
    with_value = normalise(secret("c2VjcmV0" if field == "data" else "secret"), secret_key=KEY)
    assert with_value["data"]["password"] == secret_hash("secret", KEY)


def test_undecodable_data_is_hashed_not_revealed() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"x": "not base64!!"}}
    out = normalise(secret, secret_key=KEY)
    assert "not base64" not in orjson.dumps(out).decode()


def test_secret_hash_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError):
        secret_hash("x", b"")


def test_only_core_secrets_are_hashed() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"a": "plain"}}
    assert normalise(cm, secret_key=KEY)["data"] == {"a": "plain"}


# --------------------------------------------------------------------------- speed


def test_normalise_is_fast_enough_for_the_pipeline() -> None:
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        normalise(DEPLOYMENT, secret_key=KEY)
    rate = n / (time.perf_counter() - start)
    # Target ~10,000/s; the bound leaves room for slow CI machines.
    assert rate > 2000, f"{rate:.0f} objects/s"


# --------------------------------------------------------------------------- robustness

_KEYS = ("resources", "requests", "limits", "volumes", "emptyDir", "selector", "matchLabels",
         "labels", "data", "podSelector", "sizeLimit", "overhead", "podFixed", "spec", "name",
         "storageClassName", "metrics", "target", "averageValue", "value", "hard", "capacity",
         "volumeClaimTemplates", "status", "max", "default", "x")
_SCALARS: tuple[Any, ...] = ("", "0.5", "1Gi", "abc", 0, 1, 0.25, True, False, None, "1e3")


def _random_tree(rng: Any, depth: int) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.35:
        return rng.choice(_SCALARS)
    if roll < 0.7:
        return {rng.choice(_KEYS): _random_tree(rng, depth - 1) for _ in range(rng.randint(0, 4))}
    return [_random_tree(rng, depth - 1) for _ in range(rng.randint(0, 3))]


@pytest.mark.parametrize("kind", ["Deployment", "Secret", "ResourceQuota", "LimitRange",
                                  "HorizontalPodAutoscaler", "PodDisruptionBudget", "RuntimeClass",
                                  "StatefulSet", "PersistentVolume"])
def test_normalise_never_fails_and_is_stable_on_odd_shapes(kind: str) -> None:
    import random
    rng = random.Random(kind)
    api = {"Deployment": "apps/v1", "StatefulSet": "apps/v1",
           "HorizontalPodAutoscaler": "autoscaling/v2",
           "PodDisruptionBudget": "policy/v1", "RuntimeClass": "node.k8s.io/v1"}.get(kind, "v1")
    for _ in range(300):
        obj = {"apiVersion": api, "kind": kind, "metadata": {"name": "n"},
               "spec": _random_tree(rng, 5), "data": _random_tree(rng, 2)}
        before = copy.deepcopy(obj)
        once = normalise(obj, secret_key=KEY)
        assert obj == before
        orjson.dumps(once)
        if kind != "Secret":
            assert normalise(once, secret_key=KEY) == once
