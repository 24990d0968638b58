"""Object references as people type them, one grammar for every command that names an object
(``ack``, ``adopt``, ``history --object``).

The forms, with ``-n NAMESPACE`` where the command has it:

- kubectl's ``TYPE/NAME`` (``deploy/web -n shop``, ``deployment/web``, ``clusterrole/admin``,
  ``ClusterRole.rbac.authorization.k8s.io/admin``);
- ``TYPE/NAMESPACE/NAME`` (``Deployment.apps/shop/web``, ``Deployment/shop/web``);
- the form the tool prints, ``TYPE NAMESPACE/NAME`` or ``TYPE NAME``, as one argument or two
  (``'Deployment.apps shop/web'``, ``Deployment.apps shop/web``);
- ``NAMESPACE/NAME`` and ``NAME``: any kind;
- a ledger drift id (``12``), where the command takes one.

``TYPE`` is a Kind (``Deployment``), ``Kind.group`` (``Deployment.apps``), or a resource
name as kubectl knows it: lower case, plural or short (``deployments``, ``deploy``,
``svc``, ``netpol``, ``deployments.apps``). The built-in ones resolve to their group and Kind
through :data:`BUILTIN`; a type that is not built in, or a Kind two groups serve
(``Event``), matches by kind name alone, case-insensitively, singular or plural. In
``a/b`` the first part is a TYPE when it has a dot or a capital letter (a namespace has
neither), is a built-in name, or differs from the ``-n`` given; else a namespace.

Pure: no I/O. A form that cannot be read raises :class:`ObjectRefError`, one line naming the
argument and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from auditor.engine.kinds import CLUSTER_SCOPED
from auditor.engine.records import ResourceKey
from auditor.errors import AuditorError

# (group, Kind, plural, kubectl's short names) of the built-in kinds users name most. The
# plural is the resource name; kubectl accepts the Kind lower-cased, the plural and the
# short names, each optionally followed by ``.group``.
BUILTIN: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("", "Binding", "bindings", ()),
    ("", "ComponentStatus", "componentstatuses", ("cs",)),
    ("", "ConfigMap", "configmaps", ("cm",)),
    ("", "Endpoints", "endpoints", ("ep",)),
    ("", "Event", "events", ("ev",)),
    ("", "LimitRange", "limitranges", ("limits",)),
    ("", "Namespace", "namespaces", ("ns",)),
    ("", "Node", "nodes", ("no",)),
    ("", "PersistentVolume", "persistentvolumes", ("pv",)),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", ("pvc",)),
    ("", "Pod", "pods", ("po",)),
    ("", "PodTemplate", "podtemplates", ()),
    ("", "ReplicationController", "replicationcontrollers", ("rc",)),
    ("", "ResourceQuota", "resourcequotas", ("quota",)),
    ("", "Secret", "secrets", ()),
    ("", "Service", "services", ("svc",)),
    ("", "ServiceAccount", "serviceaccounts", ("sa",)),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration",
     "mutatingwebhookconfigurations", ()),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy",
     "validatingadmissionpolicies", ()),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding",
     "validatingadmissionpolicybindings", ()),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration",
     "validatingwebhookconfigurations", ()),
    ("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions",
     ("crd", "crds")),
    ("apiregistration.k8s.io", "APIService", "apiservices", ()),
    ("apps", "ControllerRevision", "controllerrevisions", ()),
    ("apps", "DaemonSet", "daemonsets", ("ds",)),
    ("apps", "Deployment", "deployments", ("deploy",)),
    ("apps", "ReplicaSet", "replicasets", ("rs",)),
    ("apps", "StatefulSet", "statefulsets", ("sts",)),
    ("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", ("hpa",)),
    ("batch", "CronJob", "cronjobs", ("cj",)),
    ("batch", "Job", "jobs", ()),
    ("certificates.k8s.io", "CertificateSigningRequest", "certificatesigningrequests",
     ("csr",)),
    ("coordination.k8s.io", "Lease", "leases", ()),
    ("discovery.k8s.io", "EndpointSlice", "endpointslices", ()),
    ("events.k8s.io", "Event", "events", ("ev",)),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema", "flowschemas", ()),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration",
     "prioritylevelconfigurations", ()),
    ("networking.k8s.io", "Ingress", "ingresses", ("ing",)),
    ("networking.k8s.io", "IngressClass", "ingressclasses", ()),
    ("networking.k8s.io", "IPAddress", "ipaddresses", ("ip",)),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies", ("netpol",)),
    ("networking.k8s.io", "ServiceCIDR", "servicecidrs", ()),
    ("node.k8s.io", "RuntimeClass", "runtimeclasses", ()),
    ("policy", "PodDisruptionBudget", "poddisruptionbudgets", ("pdb",)),
    ("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", ()),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", ()),
    ("rbac.authorization.k8s.io", "Role", "roles", ()),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", ()),
    ("scheduling.k8s.io", "PriorityClass", "priorityclasses", ("pc",)),
    ("storage.k8s.io", "CSIDriver", "csidrivers", ()),
    ("storage.k8s.io", "CSINode", "csinodes", ()),
    ("storage.k8s.io", "CSIStorageCapacity", "csistoragecapacities", ()),
    ("storage.k8s.io", "StorageClass", "storageclasses", ("sc",)),
    ("storage.k8s.io", "VolumeAttachment", "volumeattachments", ()),
    ("storage.k8s.io", "VolumeAttributesClass", "volumeattributesclasses", ("vac",)),
)


def _index() -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for group, kind, plural, shorts in BUILTIN:
        for name in {kind.lower(), plural, *shorts}:
            out.setdefault(name, []).append((group, kind))
    return {name: tuple(found) for name, found in out.items()}


_NAMES = _index()
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

FORMS = ("TYPE/NAME, TYPE/NAMESPACE/NAME, 'TYPE [NAMESPACE/]NAME', NAMESPACE/NAME or NAME "
         "(TYPE: Kind, Kind.group or a kubectl name such as deploy)")


class ObjectRefError(AuditorError):
    """An object reference in a form no command reads."""


def plural(kind: str) -> str:
    """The lower-case plural Kubernetes derives from a Kind (``NetworkPolicy`` →
    ``networkpolicies``), for kinds not in :data:`BUILTIN`."""
    low = kind.lower()
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return low + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A possibly partial object key. ``None`` matches anything; ``namespace`` is ``''`` for
    a cluster-scoped kind. ``kind`` is the exact Kind when the type resolved to one;
    otherwise ``kind_text`` (as typed) matches a Kind case-insensitively or its plural."""

    name: str = ""
    namespace: str | None = None
    kind: str | None = None
    group: str | None = None
    kind_text: str | None = None
    drift_id: int | None = None

    def matches(self, key: ResourceKey) -> bool:
        if self.drift_id is not None:
            return False
        return (key.name == self.name
                and (self.namespace is None or key.namespace == self.namespace)
                and (self.group is None or key.group == self.group)
                and self.kind_matches(key.kind))

    def kind_matches(self, kind: str) -> bool:
        """Whether a Kind (or, for audit events without one, a resource plural) fits."""
        if self.kind is not None:
            return kind == self.kind or kind == plural(self.kind)
        if self.kind_text is None:
            return True
        typed = self.kind_text.lower()
        return typed in (kind.lower(), plural(kind))

    @property
    def group_kind(self) -> str | None:
        """``Kind.group`` (``Kind`` for the core group) when both are known, else the kind
        as far as known, else None."""
        kind = self.kind or self.kind_text
        if kind is None:
            return None
        return f"{kind}.{self.group}" if self.group else kind

    def __str__(self) -> str:
        if self.drift_id is not None:
            return f"drift {self.drift_id}"
        where = f"{self.namespace}/" if self.namespace else ""
        gk = self.group_kind
        return f"{gk} {where}{self.name}" if gk else f"{where}{self.name}"


def looks_like_type(text: str) -> bool:
    """A dot or a capital letter (never in a namespace) or a built-in resource name."""
    return "." in text or any(c.isupper() for c in text) or text.lower() in _NAMES


def parse_type(text: str, *, what: str = "TYPE") -> tuple[str | None, str | None, str | None]:
    """``(kind, group, kind_text)`` of a TYPE: kind and group where they are known."""
    typed, dot, group = text.partition(".")
    if not typed or (dot and not group) or not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9.]*", text):
        raise ObjectRefError(f"{what} {text!r}: expected a Kind, Kind.group or a kubectl "
                             "resource name (deploy, deployments.apps)")
    found = _NAMES.get(typed.lower(), ())
    if dot:
        found = tuple(gk for gk in found if gk[0] == group)
    kinds = {kind for _g, kind in found}
    if len(found) == 1:
        return found[0][1], found[0][0], None
    if len(kinds) == 1:  # Event: core and events.k8s.io
        return next(iter(kinds)), (group if dot else None), None
    return None, (group if dot else None), typed


def parse(words: Sequence[str], namespace: str | None = None, *, what: str = "OBJECT",
          allow_id: bool = False, namespace_flag: str = "-n") -> ObjectRef:
    """The reference in ``words`` (one argument, or two: TYPE and [NAMESPACE/]NAME), with
    the command's ``-n`` value as the namespace where the reference names none."""
    shown = " ".join(words).strip()
    parts = shown.split()
    if not parts:
        raise ObjectRefError(f"{what}: empty; expected {FORMS}")
    if len(parts) == 1 and allow_id and parts[0].isdigit():
        if namespace is not None:
            raise ObjectRefError(f"{what} {shown!r}: a drift id names one drift; drop "
                                 f"{namespace_flag}")
        return ObjectRef(drift_id=int(parts[0]))

    def bad(why: str = "") -> ObjectRefError:
        extra = f"{why}; " if why else ""
        ids = " or a drift id" if allow_id else ""
        return ObjectRefError(f"{what} {shown!r}: {extra}expected {FORMS}{ids}")

    type_text: str | None = None
    ns: str | None = None
    if len(parts) == 2:
        type_text, rest = parts
        if "/" in type_text:
            raise bad()
        pieces = rest.split("/")
        if len(pieces) > 2 or not all(pieces):
            raise bad()
        ns, name = (pieces[0], pieces[1]) if len(pieces) == 2 else (None, pieces[0])
    elif len(parts) == 1:
        pieces = parts[0].split("/")
        if not all(pieces) or len(pieces) > 3:
            raise bad()
        if len(pieces) == 1:
            name = pieces[0]
        elif len(pieces) == 2:
            # With -n naming another namespace, a/b is kubectl's TYPE/NAME even for a type
            # that is not built in (widget/gadget -n shop).
            if looks_like_type(pieces[0]) or (namespace is not None and pieces[0] != namespace):
                type_text, name = pieces
            else:
                ns, name = pieces
        else:
            if not looks_like_type(pieces[0]):
                hint = (f"did you mean {pieces[1]}/{pieces[0]}/{pieces[2]}?"
                        if looks_like_type(pieces[1]) else f"{pieces[0]!r} is not a type")
                raise bad(hint)
            type_text, ns, name = pieces
    else:
        raise bad()
    if ns is not None and not _NAMESPACE.match(ns):
        raise bad(f"{ns!r} is not a namespace")
    kind, group, kind_text = parse_type(type_text, what=what) if type_text else (None, None,
                                                                                 None)
    cluster_scoped = kind is not None and group is not None and (group, kind) in CLUSTER_SCOPED
    if cluster_scoped:
        if ns is not None:
            raise bad(f"{kind}.{group} is cluster-scoped, it has no namespace")
        ns = ""  # -n does not apply to a cluster-scoped kind (as in kubectl)
    elif namespace is not None:
        if ns is not None and ns != namespace:
            raise ObjectRefError(f"{what} {shown!r}: names namespace {ns!r} but "
                                 f"{namespace_flag} says {namespace!r}")
        ns = namespace
    return ObjectRef(name, ns, kind, group, kind_text)
