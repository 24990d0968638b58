"""The resource catalog: which group/version/resources exist, for routing and discovery.

Built-in entries mirror what ``kubectl api-resources`` prints on a 1.35 cluster (names,
short names, categories, verbs, scope). Creating a CustomResourceDefinition registers its
served versions; deleting it unregisters them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Resource:
    """One served resource (a kind at one group/version)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale"
    verbs: tuple[str, ...] = _ALL_VERBS
    storage_version: str = ""  # version objects are stored at, when several are served
    builtin: bool = True
    scale_paths: tuple[str, str, str] = (".spec.replicas", ".status.replicas", ".status.selector")
    printer_columns: str = ""  # JSON of a CRD version's additionalPrinterColumns

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: the same objects whichever served version is asked for."""
        return (self.group, self.plural)


def _r(gv: str, kind: str, plural: str, namespaced: bool, short: tuple[str, ...] = (),
       cats: tuple[str, ...] = (), sub: tuple[str, ...] = (), verbs: tuple[str, ...] = _ALL_VERBS,
       storage: str = "") -> Resource:
    group, _, version = gv.rpartition("/")
    return Resource(group, version, kind, plural, namespaced, short, cats, sub, verbs,
                    storage or version)


_ALL = ("all",)
_STATUS = ("status",)
_SCALE = ("status", "scale")

BUILTINS: tuple[Resource, ...] = (
    _r("v1", "Namespace", "namespaces", False, ("ns",), sub=_STATUS,
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("v1", "ConfigMap", "configmaps", True, ("cm",)),
    _r("v1", "Secret", "secrets", True),
    _r("v1", "Service", "services", True, ("svc",), _ALL, _STATUS,
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update",
              "watch")),
    _r("v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    _r("v1", "Pod", "pods", True, ("po",), _ALL, _STATUS),
    _r("v1", "PodTemplate", "podtemplates", True),
    _r("v1", "Endpoints", "endpoints", True, ("ep",)),
    _r("v1", "Event", "events", True, ("ev",)),
    _r("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), sub=_STATUS),
    _r("v1", "PersistentVolume", "persistentvolumes", False, ("pv",), sub=_STATUS),
    _r("v1", "Node", "nodes", False, ("no",), sub=_STATUS),
    _r("v1", "LimitRange", "limitranges", True, ("limits",)),
    _r("v1", "ResourceQuota", "resourcequotas", True, ("quota",), sub=_STATUS),
    _r("v1", "ReplicationController", "replicationcontrollers", True, ("rc",), _ALL, _SCALE),
    _r("apps/v1", "Deployment", "deployments", True, ("deploy",), _ALL, _SCALE),
    _r("apps/v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL, _SCALE),
    _r("apps/v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL, _STATUS),
    _r("apps/v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, _SCALE),
    _r("apps/v1", "ControllerRevision", "controllerrevisions", True),
    _r("batch/v1", "Job", "jobs", True, (), _ALL, _STATUS),
    _r("batch/v1", "CronJob", "cronjobs", True, ("cj",), _ALL, _STATUS),
    _r("networking.k8s.io/v1", "Ingress", "ingresses", True, ("ing",), sub=_STATUS),
    _r("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    _r("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    _r("rbac.authorization.k8s.io/v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",),
       _ALL, _STATUS, storage="v2"),
    _r("autoscaling/v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",),
       _ALL, _STATUS, storage="v2"),
    _r("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), sub=_STATUS),
    _r("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True),
    _r("coordination.k8s.io/v1", "Lease", "leases", True),
    _r("events.k8s.io/v1", "Event", "events", True, ("ev",)),
    _r("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions",
       False, ("crd", "crds"), ("api-extensions",), _STATUS),
    _r("storage.k8s.io/v1", "StorageClass", "storageclasses", False, ("sc",)),
    _r("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    _r("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
       "validatingwebhookconfigurations", False, (), ("api-extensions",)),
    _r("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
       "mutatingwebhookconfigurations", False, (), ("api-extensions",)),
)

# Group preference order as the real server lists groups in /apis.
_PREFERRED = {"autoscaling": "v2"}


@dataclass
class Catalog:
    """The resources currently served, built-ins plus those registered by CRDs."""

    resources: list[Resource] = field(default_factory=lambda: list(BUILTINS))
    lock: threading.RLock = field(default_factory=threading.RLock)
    # (group, plural) of each CRD name -> its resources, to unregister on delete
    by_crd: dict[str, list[Resource]] = field(default_factory=dict)

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        """The resource served at ``group/version`` under ``plural``."""
        with self.lock:
            for r in self.resources:
                if r.group == group and r.version == version and r.plural == plural:
                    return r
        return None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        """The resource for an object's ``apiVersion`` and ``kind``."""
        group, _, version = api_version.rpartition("/")
        with self.lock:
            for r in self.resources:
                if r.group == group and r.version == version and r.kind == kind:
                    return r
        return None

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred first, in first-registration order."""
        out: dict[str, list[str]] = {}
        with self.lock:
            for r in self.resources:
                versions = out.setdefault(r.group, [])
                if r.version not in versions:
                    versions.append(r.version)
        for group, versions in out.items():
            pref = _PREFERRED.get(group)
            if pref in versions:
                versions.remove(pref)
                versions.insert(0, pref)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        with self.lock:
            return [r for r in self.resources if r.group == group and r.version == version]

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Serve the versions a CustomResourceDefinition declares."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = str(spec.get("group", ""))
        plural = str(names.get("plural", ""))
        kind = str(names.get("kind", ""))
        if not (group and plural and kind):
            return
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")),
                       versions[0]["name"] if versions else "v1")
        out: list[Resource] = []
        for v in versions:
            sub = v.get("subresources") or {}
            subs = tuple(s for s in ("status", "scale") if s in sub)
            scale = sub.get("scale") or {}
            out.append(Resource(
                group=group, version=str(v["name"]), kind=kind, plural=plural,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subs, storage_version=storage, builtin=False,
                scale_paths=(str(scale.get("specReplicasPath", ".spec.replicas")),
                             str(scale.get("statusReplicasPath", ".status.replicas")),
                             str(scale.get("labelSelectorPath", ""))),
                printer_columns=json.dumps(v.get("additionalPrinterColumns") or []),
            ))
        name = str((crd.get("metadata") or {}).get("name", ""))
        with self.lock:
            self.unregister_crd(name)
            self.by_crd[name] = out
            self.resources.extend(out)

    def unregister_crd(self, name: str) -> None:
        with self.lock:
            gone = self.by_crd.pop(name, [])
            self.resources = [r for r in self.resources if r not in gone]


def api_resource(r: Resource) -> list[dict[str, Any]]:
    """APIResourceList entries for ``r`` and its subresources."""
    main: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    digest = hashlib.sha256(f"{r.group}/{r.storage_version}/{r.kind}".encode()).digest()
    main["storageVersionHash"] = base64.b64encode(digest[:8]).decode()
    out = [main]
    if "status" in r.subresources:
        out.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get", "patch", "update"]})
    if "scale" in r.subresources:
        out.append({"name": f"{r.plural}/scale", "singularName": "", "namespaced": r.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale",
                    "verbs": ["get", "patch", "update"]})
    return out
