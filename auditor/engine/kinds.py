"""Which kinds are cluster-scoped: the built-in table, CRDs found in Git, and discovery.

A desired object's key carries a namespace only when its kind is namespaced, so the desired
side must know the scope of every kind before it can default namespaces. Three sources, in
order of authority:

1. discovery from the live cluster (``APIResource.namespaced``), when the caller has it;
2. ``CustomResourceDefinition`` objects among the desired manifests (``spec.scope``);
3. :data:`CLUSTER_SCOPED`, the kinds Kubernetes itself serves without a namespace
   (``NamespaceScoped() == false`` in the registry strategies of kubernetes/kubernetes and
   kube-aggregator; the tests check it against the non-namespaced ``create_*`` operations
   of the generated ``kubernetes`` client and the kinds of the shipped JSON schemas).

Anything else is assumed namespaced: nearly all custom resources are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GroupKind = tuple[str, str]

# (group, kind) of every built-in cluster-scoped kind up to Kubernetes 1.35, including alpha
# and beta APIs and a few removed ones that old manifests may still carry.
CLUSTER_SCOPED: frozenset[GroupKind] = frozenset({
    # core
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    # rbac.authorization.k8s.io
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    # apiextensions / aggregation
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    # admissionregistration.k8s.io
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
    # storage.k8s.io
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("storagemigration.k8s.io", "StorageVersionMigration"),
    ("internal.apiserver.k8s.io", "StorageVersion"),
    # scheduling / node / networking
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("networking.k8s.io", "ClusterCIDR"),
    # certificates.k8s.io
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    # flowcontrol.apiserver.k8s.io
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    # authentication / authorization reviews (LocalSubjectAccessReview is namespaced)
    ("authentication.k8s.io", "TokenReview"),
    ("authentication.k8s.io", "SelfSubjectReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
    # resource.k8s.io (dynamic resource allocation)
    ("resource.k8s.io", "DeviceClass"),
    ("resource.k8s.io", "ResourceSlice"),
    ("resource.k8s.io", "DeviceTaintRule"),
    ("resource.k8s.io", "ResourcePoolStatusRequest"),
    ("resource.k8s.io", "ResourceClass"),  # v1alpha2, replaced by DeviceClass
    # metrics.k8s.io (served by metrics-server)
    ("metrics.k8s.io", "NodeMetrics"),
    # policy/v1beta1 PodSecurityPolicy, removed in 1.25
    ("policy", "PodSecurityPolicy"),
})


def group_of(api_version: str) -> str:
    """The API group of an ``apiVersion`` ('' for the core group ``v1``)."""
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def scopes_from_crds(objects: Iterable[Mapping[str, Any]]) -> dict[GroupKind, bool]:
    """``(group, kind) → namespaced`` for every well-formed CRD among ``objects``."""
    found: dict[GroupKind, bool] = {}
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition" or \
                group_of(str(obj.get("apiVersion") or "")) != "apiextensions.k8s.io":
            continue
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            continue
        names = spec.get("names")
        kind = names.get("kind") if isinstance(names, Mapping) else None
        group = spec.get("group")
        if isinstance(kind, str) and isinstance(group, str):
            found[(group, kind)] = spec.get("scope", "Namespaced") != "Cluster"
    return found


def is_namespaced(group: str, kind: str,
                  discovered: Mapping[GroupKind, bool] | None = None) -> bool:
    """Whether objects of ``kind`` in ``group`` live in a namespace.

    ``discovered`` maps ``(group, kind)`` to ``namespaced`` and wins over the built-in table;
    pass discovery results merged with :func:`scopes_from_crds` of the desired objects.
    """
    if discovered is not None:
        known = discovered.get((group, kind))
        if known is not None:
            return known
    return (group, kind) not in CLUSTER_SCOPED
