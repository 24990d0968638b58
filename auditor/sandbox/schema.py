"""The sandbox's own knowledge of how built-in object fields merge.

Two merge systems read the same struct tags in Kubernetes' Go types (``k8s.io/api``):

* strategic-merge patch uses ``patchStrategy`` / ``patchMergeKey``;
* server-side apply and ``managedFields`` use ``+listType`` / ``+listMapKey`` /
  ``+structType=atomic`` / ``+mapType=atomic`` (surfaced in OpenAPI as
  ``x-kubernetes-list-type`` etc.).

The table below is hand-written from those tags for the fields where they differ from the
defaults (unlisted dicts are structs with declared fields, unlisted lists are atomic). It is
deliberately private to the sandbox: the drift engine must ground its own tables elsewhere,
so the two cannot agree merely because they share a mistake.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Field:
    """What the sandbox knows about one field of a struct."""

    type: str | None = None  # struct type name of the value, or of each list element
    list: str | None = None  # SSA list type: "map" | "set"; None means atomic
    keys: tuple[str, ...] = ()  # x-kubernetes-list-map-keys
    key_defaults: tuple[tuple[str, Any], ...] = ()  # defaults the server fills in key fields
    granular_map: bool = False  # map[string]T: every key is a member of the field set
    atomic: bool = False  # structType=atomic / mapType=atomic: owned and replaced as a whole
    patch_strategy: str = ""  # patchStrategy struct tag
    patch_key: str = ""  # patchMergeKey struct tag


_REGISTRY_LOCK = threading.Lock()
UNKNOWN = Field()
_MAP = Field(granular_map=True)
_ATOMIC = Field(atomic=True)  # e.g. metav1.LabelSelector is +structType=atomic
_CONDITIONS = Field(list="map", keys=("type",), patch_strategy="merge", patch_key="type")


def _containers() -> Field:
    return Field(type="Container", list="map", keys=("name",), patch_strategy="merge",
                 patch_key="name")


def _template(name: str = "PodTemplateSpec") -> Field:
    return Field(type=name)


TYPES: dict[str, dict[str, Field]] = {
    "ObjectMeta": {
        "labels": _MAP,
        "annotations": _MAP,
        "finalizers": Field(list="set", patch_strategy="merge"),
        "ownerReferences": Field(list="map", keys=("uid",), patch_strategy="merge",
                                 patch_key="uid"),
    },
    "PodTemplateSpec": {"spec": Field(type="PodSpec")},
    "PodSpec": {
        "containers": _containers(),
        "initContainers": _containers(),
        "ephemeralContainers": _containers(),
        "volumes": Field(type="Volume", list="map", keys=("name",),
                         patch_strategy="merge,retainKeys", patch_key="name"),
        "imagePullSecrets": Field(list="map", keys=("name",), patch_strategy="merge",
                                  patch_key="name"),
        "hostAliases": Field(list="map", keys=("ip",), patch_strategy="merge", patch_key="ip"),
        "topologySpreadConstraints": Field(list="map", keys=("topologyKey", "whenUnsatisfiable"),
                                           patch_strategy="merge", patch_key="topologyKey"),
        "schedulingGates": Field(list="map", keys=("name",), patch_strategy="merge",
                                 patch_key="name"),
        "resourceClaims": Field(list="map", keys=("name",), patch_strategy="merge,retainKeys",
                                patch_key="name"),
        "nodeSelector": _ATOMIC,
        "overhead": _MAP,
    },
    "Container": {
        "ports": Field(list="map", keys=("containerPort", "protocol"),
                       key_defaults=(("protocol", "TCP"),), patch_strategy="merge",
                       patch_key="containerPort"),
        "env": Field(list="map", keys=("name",), patch_strategy="merge", patch_key="name"),
        "volumeMounts": Field(list="map", keys=("mountPath",), patch_strategy="merge",
                              patch_key="mountPath"),
        "volumeDevices": Field(list="map", keys=("devicePath",), patch_strategy="merge",
                               patch_key="devicePath"),
        "resources": Field(type="ResourceRequirements"),
    },
    "ResourceRequirements": {
        "limits": _MAP,
        "requests": _MAP,
        "claims": Field(list="map", keys=("name",)),
    },
    "Pod": {"spec": Field(type="PodSpec"), "status": Field(type="PodStatus")},
    "PodStatus": {"conditions": _CONDITIONS},
    "Deployment": {"spec": Field(type="DeploymentSpec"), "status": Field(type="WorkloadStatus")},
    "DeploymentSpec": {
        "selector": _ATOMIC,
        "template": _template(),
        "strategy": Field(patch_strategy="retainKeys"),
    },
    "WorkloadStatus": {"conditions": _CONDITIONS},
    "ReplicaSet": {"spec": Field(type="ReplicaSetSpec"), "status": Field(type="WorkloadStatus")},
    "ReplicaSetSpec": {"selector": _ATOMIC, "template": _template()},
    "StatefulSet": {"spec": Field(type="StatefulSetSpec"),
                    "status": Field(type="WorkloadStatus")},
    "StatefulSetSpec": {"selector": _ATOMIC, "template": _template()},
    "DaemonSet": {"spec": Field(type="DaemonSetSpec"), "status": Field(type="WorkloadStatus")},
    "DaemonSetSpec": {"selector": _ATOMIC, "template": _template()},
    "Job": {"spec": Field(type="JobSpec"), "status": Field(type="JobStatus")},
    "JobSpec": {"selector": _ATOMIC, "template": _template()},
    "JobStatus": {"conditions": Field(patch_strategy="merge", patch_key="type")},
    "CronJob": {"spec": Field(type="CronJobSpec")},
    "CronJobSpec": {"jobTemplate": Field(type="JobTemplateSpec")},
    "JobTemplateSpec": {"spec": Field(type="JobSpec")},
    "Service": {"spec": Field(type="ServiceSpec"), "status": Field(type="ServiceStatus")},
    "ServiceSpec": {
        "ports": Field(list="map", keys=("port", "protocol"), key_defaults=(("protocol", "TCP"),),
                       patch_strategy="merge", patch_key="port"),
        "selector": _ATOMIC,
    },
    "ServiceStatus": {"conditions": _CONDITIONS},
    "ConfigMap": {"data": _MAP, "binaryData": _MAP},
    "Secret": {"data": _MAP, "stringData": _MAP},
    "ServiceAccount": {
        "secrets": Field(list="map", keys=("name",), patch_strategy="merge", patch_key="name"),
    },
    "Namespace": {"status": Field(type="NamespaceStatus")},
    "NamespaceStatus": {"conditions": _CONDITIONS},
    "PersistentVolumeClaim": {"spec": Field(type="PVCSpec"), "status": Field(type="PVCStatus")},
    "PVCSpec": {"resources": Field(type="ResourceRequirements"), "selector": _ATOMIC},
    "PVCStatus": {"capacity": _MAP, "allocatedResources": _MAP, "conditions": _CONDITIONS},
    "PersistentVolume": {"spec": Field(type="PVSpec")},
    "PVSpec": {"capacity": _MAP},
    "Node": {"spec": Field(type="NodeSpec"), "status": Field(type="NodeStatus")},
    "NodeSpec": {"podCIDRs": Field(list="set", patch_strategy="merge")},
    "NodeStatus": {
        "capacity": _MAP,
        "allocatable": _MAP,
        "conditions": _CONDITIONS,
        "addresses": Field(list="map", keys=("type",), patch_strategy="merge", patch_key="type"),
    },
    "ResourceQuota": {"spec": Field(type="ResourceQuotaSpec"),
                      "status": Field(type="ResourceQuotaStatus")},
    "ResourceQuotaSpec": {"hard": _MAP},
    "ResourceQuotaStatus": {"hard": _MAP, "used": _MAP},
    "HorizontalPodAutoscaler": {"status": Field(type="HPAStatus")},
    "HPAStatus": {"conditions": _CONDITIONS},
    "PodDisruptionBudget": {"spec": Field(type="PDBSpec"), "status": Field(type="PDBStatus")},
    "PDBSpec": {"selector": _ATOMIC},
    "PDBStatus": {"conditions": _CONDITIONS, "disruptedPods": _MAP},
    "NetworkPolicy": {"spec": Field(type="NetworkPolicySpec")},
    "NetworkPolicySpec": {"podSelector": _ATOMIC},
    "StorageClass": {"parameters": _MAP},
    "CustomResourceDefinition": {"status": Field(type="CRDStatus")},
    "CRDStatus": {"conditions": _CONDITIONS},
    "ValidatingWebhookConfiguration": {
        "webhooks": Field(list="map", keys=("name",), patch_strategy="merge", patch_key="name"),
    },
    "MutatingWebhookConfiguration": {
        "webhooks": Field(list="map", keys=("name",), patch_strategy="merge", patch_key="name"),
    },
    "PodTemplate": {"template": _template()},
}

# Kinds whose field layout the table describes; anything else (custom resources) is
# "deduced": structs with declared fields and atomic lists, and no strategic-merge support.
KNOWN_KINDS = frozenset({
    "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "Endpoints", "Event",
    "PersistentVolumeClaim", "PersistentVolume", "Node", "LimitRange", "ResourceQuota",
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision", "Job",
    "CronJob", "Ingress", "NetworkPolicy", "IngressClass", "Role", "RoleBinding", "ClusterRole",
    "ClusterRoleBinding", "HorizontalPodAutoscaler", "PodDisruptionBudget", "EndpointSlice",
    "Lease", "CustomResourceDefinition", "StorageClass", "PriorityClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "PodTemplate",
})


def root(kind: str, group: str | None = None) -> Field:
    """The field description of a whole object of ``kind``.

    Built-in kinds use the table above; a custom resource uses the types registered from
    its CRD's schema (:func:`register_crd`), or a deduced layout when there is none.
    """
    if group is not None:
        name = f"crd:{group}/{kind}"
        if name in TYPES:
            return Field(type=name)
        return Field(type="_Custom")
    return Field(type=kind if kind in KNOWN_KINDS else "_Custom")


def register_crd(group: str, kind: str, schema: dict[str, Any] | None) -> None:
    """Field types of a custom resource, from its structural ``openAPIV3Schema``.

    ``properties`` become declared fields, ``additionalProperties`` a granular map, and the
    ``x-kubernetes-list-type`` / ``-list-map-keys`` / ``-map-type`` markers the list and map
    semantics, as structured-merge-diff derives them for CRDs.
    """
    # Types live in this module for the whole process; names are per group/kind and a
    # re-registration replaces them, so sandboxes sharing a CRD name stay consistent.
    name = f"crd:{group}/{kind}"
    with _REGISTRY_LOCK:  # several sandboxes (threads) may register CRDs at once
        for key in [k for k in TYPES if k == name or k.startswith(name + ".")]:
            del TYPES[key]
        _HAS_META.add(name)
        _register_object(name, schema if isinstance(schema, dict) else {})


def _register_object(name: str, node: dict[str, Any]) -> None:
    TYPES[name] = {prop: _field_for(f"{name}.{prop}", sub)
                   for prop, sub in (node.get("properties") or {}).items()
                   if isinstance(sub, dict)}


def _field_for(name: str, node: dict[str, Any]) -> Field:
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        if node.get("x-kubernetes-map-type") == "atomic":
            return _ATOMIC
        if "properties" in node:
            _register_object(name, node)
            return Field(type=name)
        if isinstance(node.get("additionalProperties"), dict):
            return _MAP
        return UNKNOWN
    if kind == "array":
        raw_items = node.get("items")
        items: dict[str, Any] = raw_items if isinstance(raw_items, dict) else {}
        element_type = None
        if "properties" in items:
            element_type = name + "[]"
            _register_object(element_type, items)
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "map":
            return Field(type=element_type, list="map",
                         keys=tuple(node.get("x-kubernetes-list-map-keys") or ()))
        if list_type == "set":
            return Field(list="set")
        return Field(type=element_type)
    return UNKNOWN


def child(parent: Field, key: str) -> tuple[Field, bool]:
    """The description of ``key`` inside a dict described by ``parent``.

    Returns the field and whether ``key`` is a declared struct field (False for the keys of
    a ``map[string]T``, which SSA records as members of the field set).
    """
    if parent.granular_map:
        return UNKNOWN, False
    if key == "metadata" and parent.type is not None and parent.type in _HAS_META:
        return Field(type="ObjectMeta"), True
    fields = TYPES.get(parent.type or "")
    if fields is not None:
        found = fields.get(key)
        if found is not None:
            return found, True
    return UNKNOWN, True


def element(parent: Field) -> Field:
    """The description of one element of a list field."""
    return Field(type=parent.type)


_HAS_META: set[str] = set(KNOWN_KINDS) | {"PodTemplateSpec", "JobTemplateSpec", "_Custom"}
