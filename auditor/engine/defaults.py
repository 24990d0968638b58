"""The server-default table: which live values the API server (or its built-in controllers and
admission plugins) fills in on its own, so that they are never drift when Git leaves them out.

Owns one question, :func:`is_server_default`, asked for every live field Git does not declare.

Path convention (shared with the comparison engine): a path is the tuple of field names from
the object root; an item of a list is the literal ``"[]"``; keys of string maps (labels,
annotations, ``matchLabels``, resource names) are path elements as they are. ``parent`` is the
live mapping that holds the value: the list item for fields of list items, and the mapping
holding the list for scalar list items (``spec.policyTypes[]``'s parent is ``spec``).

A value that is itself a mapping or list counts as a default when it is a default as a whole
(``securityContext: {}``, ``finalizers: [kubernetes]``) or when every leaf under it is one, so
the engine may ask about a whole undeclared subtree in one call.

The sections mirror each group's current API version. An object served at an older version
whose defaults differ (a v1beta1 webhook's ``timeoutSeconds: 30``, an apps/v1beta1
Deployment's ``revisionHistoryLimit: 2``) gets that version's section instead, chosen by the
live object's ``apiVersion``.

Every table section cites the Kubernetes source it mirrors. The sandbox API server has its own
table on purpose: the two must not share one, or a shared mistake would pass every test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

Path = tuple[str, ...]
Rule = Callable[[Any, Mapping[str, Any]], bool]

_ITEM: Final = "[]"


# --------------------------------------------------------------------------- rule builders


def _same(value: Any, expected: Any) -> bool:
    # bool is an int in Python; `suspend: 0` is not the default `suspend: false`.
    return value == expected and isinstance(value, bool) == isinstance(expected, bool) and \
        isinstance(value, str) == isinstance(expected, str)


class eq:  # lower case: it reads as a rule in the tables
    """The value is exactly ``expected`` (no int/str or bool/int coercion)."""

    __slots__ = ("expected",)

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def __call__(self, value: Any, _parent: Mapping[str, Any]) -> bool:
        return _same(value, self.expected)


class one_of:
    """The value is one of ``allowed``."""

    __slots__ = ("allowed",)

    def __init__(self, *allowed: Any) -> None:
        self.allowed = allowed

    def __call__(self, value: Any, _parent: Mapping[str, Any]) -> bool:
        return any(_same(value, a) for a in self.allowed)


def _empty_mapping(value: Any, _parent: Mapping[str, Any]) -> bool:
    return isinstance(value, Mapping) and not value


def _anything(_value: Any, _parent: Mapping[str, Any]) -> bool:
    return True


EMPTY: Final[Rule] = _empty_mapping
# Server-populated: allocated or written by the server itself, whatever the value. Marks the
# whole subtree under the path.
ANY: Final[Rule] = _anything


# --------------------------------------------------------------------------- conditional rules


def image_tag(image: str) -> str:
    """The tag ``parsers.ParseImageName`` finds: ``latest`` when there is neither tag nor digest.

    Source: kubernetes/kubernetes ``pkg/util/parsers/parsers.go``.
    """
    if "@" in image:
        name, _, _digest = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        return last.partition(":")[2]
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return tag or "latest"


def _pull_policy_for(image: Any) -> str:
    # An unparsable or missing image still gets IfNotPresent: ParseImageName's error is
    # ignored and the empty tag is not "latest".
    if not isinstance(image, str) or not image:
        return "IfNotPresent"
    return _pull_policy_for_image(image)


@lru_cache(maxsize=4096)
def _pull_policy_for_image(image: str) -> str:
    return "Always" if image_tag(image) == "latest" else "IfNotPresent"


def _image_pull_policy(value: Any, parent: Mapping[str, Any]) -> bool:
    return _same(value, _pull_policy_for(parent.get("image")))


def _image_volume_pull_policy(value: Any, parent: Mapping[str, Any]) -> bool:
    return _same(value, _pull_policy_for(parent.get("reference")))


def _equals_sibling(sibling: str) -> Rule:
    def rule(value: Any, parent: Mapping[str, Any]) -> bool:
        return sibling in parent and _same(value, parent[sibling])
    return rule


def _service_target_port(value: Any, parent: Mapping[str, Any]) -> bool:
    # SetDefaults_Service: an empty targetPort becomes the port *number* (never its name).
    port = parent.get("port")
    return isinstance(port, int) and _same(value, port)


def _service_type(parent: Mapping[str, Any]) -> str:
    return str(parent.get("type") or "ClusterIP")


def _external_traffic_policy(value: Any, parent: Mapping[str, Any]) -> bool:
    # service.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs.
    accessible = _service_type(parent) in ("NodePort", "LoadBalancer") or (
        _service_type(parent) == "ClusterIP" and bool(parent.get("externalIPs")))
    return accessible and _same(value, "Cluster")


def _internal_traffic_policy(value: Any, parent: Mapping[str, Any]) -> bool:
    return _service_type(parent) in ("NodePort", "LoadBalancer", "ClusterIP") and \
        _same(value, "Cluster")


def _allocate_lb_node_ports(value: Any, parent: Mapping[str, Any]) -> bool:
    return _service_type(parent) == "LoadBalancer" and value is True


def _ip_family_policy(value: Any, parent: Mapping[str, Any]) -> bool:
    # pkg/registry/core/service/storage/alloc.go: unset means SingleStack, except a headless
    # Service without selector, which gets RequireDualStack on a dual-stack cluster.
    if _same(value, "SingleStack"):
        return True
    headless_no_selector = parent.get("clusterIP") == "None" and not parent.get("selector")
    return headless_no_selector and _same(value, "RequireDualStack")


def _session_affinity_timeout(value: Any, _parent: Mapping[str, Any]) -> bool:
    return _same(value, 10800)  # v1.DefaultClientIPServiceAffinitySeconds


def _job_completions(value: Any, parent: Mapping[str, Any]) -> bool:
    # Completions is defaulted only together with parallelism, when both were unset.
    return _same(value, 1) and _same(parent.get("parallelism", 1), 1)


def _job_backoff_limit(value: Any, parent: Mapping[str, Any]) -> bool:
    # With backoffLimitPerIndex the global limit defaults to "unlimited" (math.MaxInt32).
    return _same(value, 2**31 - 1 if parent.get("backoffLimitPerIndex") is not None else 6)


def _job_pod_replacement_policy(value: Any, parent: Mapping[str, Any]) -> bool:
    expected = "Failed" if parent.get("podFailurePolicy") else "TerminatingOrFailed"
    return _same(value, expected)


def _job_selector(_value: Any, parent: Mapping[str, Any]) -> bool:
    # pkg/registry/batch/job/strategy.go generateSelector: unless manualSelector is true.
    return parent.get("manualSelector") is not True


def _rbac_subject_api_group(value: Any, parent: Mapping[str, Any]) -> bool:
    kind = parent.get("kind")
    if kind == "ServiceAccount":
        return _same(value, "")
    if kind in ("User", "Group"):
        return _same(value, "rbac.authorization.k8s.io")
    return False


def _copied_labels(value: Any, _parent: Mapping[str, Any]) -> bool:
    # SetDefaults_Job / SetDefaults_ReplicationController copy the template's labels to an
    # object that has none. The engine asks about the whole `labels` mapping only when Git
    # declares no labels at all, which is exactly when the copy happens.
    return isinstance(value, Mapping) and bool(value)


def _rc_selector(value: Any, parent: Mapping[str, Any]) -> bool:
    template = parent.get("template")
    meta = template.get("metadata") if isinstance(template, Mapping) else None
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return isinstance(value, Mapping) and bool(value) and value == labels


def _token_secret_data(_value: Any, parent: Mapping[str, Any]) -> bool:
    # The token controller fills ca.crt/namespace/token of a service-account-token Secret.
    return parent.get("type") == "kubernetes.io/service-account-token"


def _crd_singular(value: Any, parent: Mapping[str, Any]) -> bool:
    kind = parent.get("kind")
    return isinstance(kind, str) and _same(value, kind.lower())


def _crd_list_kind(value: Any, parent: Mapping[str, Any]) -> bool:
    kind = parent.get("kind")
    return isinstance(kind, str) and bool(kind) and _same(value, kind + "List")


def _aggregated_rules(_value: Any, parent: Mapping[str, Any]) -> bool:
    # The clusterrole-aggregation controller owns `rules` of an aggregated ClusterRole.
    return bool(parent.get("aggregationRule"))


def _network_policy_types(value: Any, parent: Mapping[str, Any]) -> bool:
    expected = ["Ingress", "Egress"] if parent.get("egress") else ["Ingress"]
    return value == expected


def _network_policy_type_item(value: Any, parent: Mapping[str, Any]) -> bool:
    if _same(value, "Ingress"):
        return True
    return _same(value, "Egress") and bool(parent.get("egress"))


def _pvc_data_source_ref(value: Any, parent: Mapping[str, Any]) -> bool:
    # The PVC strategy mirrors dataSource and dataSourceRef into each other (AnyVolumeDataSource).
    src = parent.get("dataSource")
    return isinstance(value, Mapping) and isinstance(src, Mapping) and \
        {k: v for k, v in value.items() if k != "namespace"} == dict(src)


def _pvc_data_source(value: Any, parent: Mapping[str, Any]) -> bool:
    ref = parent.get("dataSourceRef")
    return isinstance(value, Mapping) and isinstance(ref, Mapping) and \
        dict(value) == {k: v for k, v in ref.items() if k != "namespace"}


_HPA_SCALE_UP_POLICIES: Final = (
    {"type": "Pods", "value": 4, "periodSeconds": 15},
    {"type": "Percent", "value": 100, "periodSeconds": 15},
)
_HPA_SCALE_DOWN_POLICIES: Final = ({"type": "Percent", "value": 100, "periodSeconds": 15},)
_HPA_CPU_TARGET: Final = {"type": "Utilization", "averageUtilization": 80}
_HPA_CPU_RESOURCE: Final = {"name": "cpu", "target": _HPA_CPU_TARGET}
_HPA_DEFAULT_METRIC: Final = {"type": "Resource", "resource": _HPA_CPU_RESOURCE}


def _whole_list(expected: Iterable[Mapping[str, Any]]) -> Rule:
    items = [dict(e) for e in expected]
    return lambda value, _parent: isinstance(value, list) and value == items


def _parent_in(expected: Iterable[Mapping[str, Any]]) -> Rule:
    """A leaf of a list item is default when the whole item is one of the default items."""
    items = [dict(e) for e in expected]
    return lambda _value, parent: dict(parent) in items


def _parent_is(expected: Mapping[str, Any]) -> Rule:
    want = dict(expected)
    return lambda _value, parent: dict(parent) == want


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _limit_range_default(value: Any, parent: Mapping[str, Any]) -> bool:
    # SetDefaults_LimitRangeItem (Container type): default ← max.
    return parent.get("type") == "Container" and isinstance(value, Mapping) and \
        bool(value) and dict(value) == _mapping(parent.get("max"))


def _limit_range_default_request(value: Any, parent: Mapping[str, Any]) -> bool:
    # defaultRequest ← default, then ← min for what is still missing.
    if parent.get("type") != "Container" or not isinstance(value, Mapping) or not value:
        return False
    expected = _mapping(parent.get("min"))
    expected.update(_mapping(parent.get("default")))
    return dict(value) == expected


# --------------------------------------------------------------------------- table sections

Rules = list[tuple[Path, Rule]]


def _p(dotted: str) -> Path:
    """``"containers.[].ports.[].protocol"`` → a path tuple (map keys with dots use tuples)."""
    return tuple(dotted.split(".")) if dotted else ()


def _mount(prefix: Path, rules: Iterable[tuple[Path, Rule]]) -> Iterator[tuple[Path, Rule]]:
    for path, rule in rules:
        yield prefix + path, rule


# pkg/apis/core/v1/defaults.go: SetDefaults_Probe, SetDefaults_HTTPGetAction; the `+default=""`
# of GRPCAction.Service in staging/src/k8s.io/api/core/v1/types.go (zz_generated.defaults.go).
_HTTP_GET: Final[Rules] = [
    (_p("httpGet.scheme"), eq("HTTP")),
    (_p("httpGet.path"), eq("/")),
]
_PROBE: Final[Rules] = [
    (_p("timeoutSeconds"), eq(1)),
    (_p("periodSeconds"), eq(10)),
    (_p("successThreshold"), eq(1)),
    (_p("failureThreshold"), eq(3)),
    (_p("grpc.service"), eq("")),
    *_HTTP_GET,
]

# pkg/apis/core/v1/defaults.go: SetDefaults_Container, SetDefaults_ObjectFieldSelector,
# defaultHostNetworkPorts; ContainerPort.Protocol `+default="TCP"` (zz_generated.defaults.go).
_CONTAINER: Final[Rules] = [
    (_p("imagePullPolicy"), _image_pull_policy),
    (_p("terminationMessagePath"), eq("/dev/termination-log")),
    (_p("terminationMessagePolicy"), eq("File")),
    # `resources` is a plain struct, which omitempty never drops: an empty one shows as {}.
    (_p("resources"), EMPTY),
    (_p("ports.[].protocol"), eq("TCP")),
    # Pods on the host network get hostPort = containerPort (older servers did it for
    # templates too, so live Deployments from those clusters carry it).
    (_p("ports.[].hostPort"), _equals_sibling("containerPort")),
    (_p("env.[].valueFrom.fieldRef.apiVersion"), eq("v1")),
    *_mount(_p("livenessProbe"), _PROBE),
    *_mount(_p("readinessProbe"), _PROBE),
    *_mount(_p("startupProbe"), _PROBE),
    *_mount(_p("lifecycle.postStart"), _HTTP_GET),
    *_mount(_p("lifecycle.preStop"), _HTTP_GET),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_Volume (no source → emptyDir {}), SetDefaults_
# {Secret,ConfigMap,DownwardAPI,Projected}VolumeSource (mode 0644 = 420),
# SetDefaults_HostPathVolumeSource, SetDefaults_ServiceAccountTokenProjection (3600 s),
# SetDefaults_PersistentVolumeClaimSpec; `+default` tags of ISCSI/RBD/AzureDisk sources.
_PVC_SPEC: Final[Rules] = [(_p("volumeMode"), eq("Filesystem"))]
_VOLUME: Final[Rules] = [
    (_p("emptyDir"), EMPTY),
    (_p("configMap.defaultMode"), eq(420)),
    (_p("secret.defaultMode"), eq(420)),
    (_p("downwardAPI.defaultMode"), eq(420)),
    (_p("downwardAPI.items.[].fieldRef.apiVersion"), eq("v1")),
    (_p("projected.defaultMode"), eq(420)),
    (_p("projected.sources.[].serviceAccountToken.expirationSeconds"), eq(3600)),
    (_p("projected.sources.[].downwardAPI.items.[].fieldRef.apiVersion"), eq("v1")),
    (_p("hostPath.type"), eq("")),
    (_p("image.pullPolicy"), _image_volume_pull_policy),
    (_p("iscsi.iscsiInterface"), eq("default")),
    (_p("rbd.pool"), eq("rbd")),
    (_p("rbd.user"), eq("admin")),
    (_p("rbd.keyring"), eq("/etc/ceph/keyring")),
    (_p("azureDisk.cachingMode"), eq("ReadWrite")),
    (_p("azureDisk.fsType"), eq("ext4")),
    (_p("azureDisk.readOnly"), eq(False)),
    (_p("azureDisk.kind"), eq("Shared")),
    (_p("scaleIO.storageMode"), eq("ThinProvisioned")),
    (_p("scaleIO.fsType"), eq("xfs")),
    *_mount(_p("ephemeral.volumeClaimTemplate.spec"), _PVC_SPEC),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_PodSpec. Only the PodSpec defaults reach pod
# *templates*; SetDefaults_Pod (enableServiceLinks, requests ← limits) runs on Pods alone.
_POD_SPEC: Final[Rules] = [
    (_p("dnsPolicy"), eq("ClusterFirst")),
    (_p("restartPolicy"), eq("Always")),
    (_p("schedulerName"), eq("default-scheduler")),
    (_p("securityContext"), EMPTY),
    (_p("terminationGracePeriodSeconds"), eq(30)),
    # v1 conversion mirrors the deprecated serviceAccount and serviceAccountName into each
    # other (pkg/apis/core/v1/conversion.go, Convert_core_PodSpec_To_v1_PodSpec).
    (_p("serviceAccount"), _equals_sibling("serviceAccountName")),
    (_p("serviceAccountName"), _equals_sibling("serviceAccount")),
    *_mount(_p("containers.[]"), _CONTAINER),
    *_mount(_p("initContainers.[]"), _CONTAINER),
    *_mount(_p("volumes.[]"), _VOLUME),
]

# The metadata of a template is an ObjectMeta: the API server writes `creationTimestamp: null`.
_POD_TEMPLATE: Final[Rules] = [
    (_p("metadata.creationTimestamp"), ANY),
    *_mount(_p("spec"), _POD_SPEC),
]

# The garbage collector adds these while it deletes an object in the foreground / orphaning
# its dependents (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go).
_DELETION_FINALIZERS: Final = ("foregroundDeletion", "orphan")


def _finalizers(*names: str) -> tuple[Path, Rule]:
    """The rule for items of metadata.finalizers: the kind's own and the deletion ones."""
    return _p("metadata.finalizers.[]"), one_of(*names, *_DELETION_FINALIZERS)


# Every kind: status and the metadata the server owns (normalise drops them too; these make
# the predicate right when asked about a raw live object).
_COMMON: Final[Rules] = [
    (_p("status"), ANY),
    *[(("metadata", f), ANY) for f in (
        "uid", "resourceVersion", "generation", "creationTimestamp", "selfLink",
        "managedFields")],
    _finalizers(),
]


def _annotation(key: str) -> Path:
    return ("metadata", "annotations", key)


def _label(key: str) -> Path:
    return ("metadata", "labels", key)


# pkg/apis/apps/v1/defaults.go: SetDefaults_Deployment; the revision annotation is written by
# pkg/controller/deployment/util/deployment_util.go.
_DEPLOYMENT: Final[Rules] = [
    (_p("spec.replicas"), eq(1)),
    (_p("spec.strategy.type"), eq("RollingUpdate")),
    (_p("spec.strategy.rollingUpdate.maxSurge"), eq("25%")),
    (_p("spec.strategy.rollingUpdate.maxUnavailable"), eq("25%")),
    (_p("spec.revisionHistoryLimit"), eq(10)),
    (_p("spec.progressDeadlineSeconds"), eq(600)),
    (_annotation("deployment.kubernetes.io/revision"), ANY),
    *_mount(_p("spec.template"), _POD_TEMPLATE),
]

# pkg/apis/apps/v1/defaults.go: SetDefaults_StatefulSet. volumeClaimTemplates are full PVC
# objects: the server writes apiVersion/kind, a `status: {phase: Pending}` and PVC spec defaults.
_STATEFULSET: Final[Rules] = [
    (_p("spec.replicas"), eq(1)),
    (_p("spec.podManagementPolicy"), eq("OrderedReady")),
    (_p("spec.updateStrategy.type"), eq("RollingUpdate")),
    (_p("spec.updateStrategy.rollingUpdate.partition"), eq(0)),
    (_p("spec.revisionHistoryLimit"), eq(10)),
    (_p("spec.persistentVolumeClaimRetentionPolicy.whenDeleted"), eq("Retain")),
    (_p("spec.persistentVolumeClaimRetentionPolicy.whenScaled"), eq("Retain")),
    (_p("spec.volumeClaimTemplates.[].apiVersion"), eq("v1")),
    (_p("spec.volumeClaimTemplates.[].kind"), eq("PersistentVolumeClaim")),
    (_p("spec.volumeClaimTemplates.[].status"), ANY),
    (_p("spec.volumeClaimTemplates.[].metadata.creationTimestamp"), ANY),
    *_mount(_p("spec.volumeClaimTemplates.[].spec"), _PVC_SPEC),
    *_mount(_p("spec.template"), _POD_TEMPLATE),
]

# pkg/apis/apps/v1/defaults.go: SetDefaults_DaemonSet; the generation annotation is written by
# pkg/registry/apps/daemonset/strategy.go.
_DAEMONSET: Final[Rules] = [
    (_p("spec.updateStrategy.type"), eq("RollingUpdate")),
    (_p("spec.updateStrategy.rollingUpdate.maxUnavailable"), eq(1)),
    (_p("spec.updateStrategy.rollingUpdate.maxSurge"), eq(0)),
    (_p("spec.revisionHistoryLimit"), eq(10)),
    (_annotation("deprecated.daemonset.template.generation"), ANY),
    *_mount(_p("spec.template"), _POD_TEMPLATE),
]

# pkg/apis/apps/v1/defaults.go: SetDefaults_ReplicaSet; the deployment controller's
# annotations and pod-template-hash label (pkg/controller/deployment/sync.go).
_REPLICASET: Final[Rules] = [
    (_p("spec.replicas"), eq(1)),
    (_annotation("deployment.kubernetes.io/revision"), ANY),
    (_annotation("deployment.kubernetes.io/desired-replicas"), ANY),
    (_annotation("deployment.kubernetes.io/max-replicas"), ANY),
    (_label("pod-template-hash"), ANY),
    (("spec", "selector", "matchLabels", "pod-template-hash"), ANY),
    (("spec", "template", "metadata", "labels", "pod-template-hash"), ANY),
    *_mount(_p("spec.template"), _POD_TEMPLATE),
]

# pkg/apis/batch/v1/defaults.go: SetDefaults_Job (podReplacementPolicy when JobPodReplacementPolicy
# is on, beta and on since 1.29; manualSelector false), SetDefaults_PodFailurePolicyOnPod
# ConditionsPattern; generated selector and labels from
# pkg/registry/batch/job/strategy.go (generateSelector, both legacy and batch.kubernetes.io/).
_JOB_LABELS: Final = ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid",
                      "batch.kubernetes.io/job-name")
_JOB: Final[Rules] = [
    (_p("spec.completions"), _job_completions),
    (_p("spec.parallelism"), eq(1)),
    (_p("spec.backoffLimit"), _job_backoff_limit),
    (_p("spec.completionMode"), eq("NonIndexed")),
    (_p("spec.manualSelector"), eq(False)),
    (_p("spec.podFailurePolicy.rules.[].onPodConditions.[].status"), eq("True")),
    (_p("spec.suspend"), eq(False)),
    (_p("spec.podReplacementPolicy"), _job_pod_replacement_policy),
    (_p("spec.selector"), _job_selector),
    *[(("spec", "selector", "matchLabels", k), ANY) for k in _JOB_LABELS],
    *[(("spec", "template", "metadata", "labels", k), ANY) for k in _JOB_LABELS],
    *[(_label(k), ANY) for k in _JOB_LABELS],
    (_p("metadata.labels"), _copied_labels),
    # Written while Jobs were tracked with finalizers (1.23-1.26).
    (_annotation("batch.kubernetes.io/job-tracking"), ANY),
    *_mount(_p("spec.template"), _POD_TEMPLATE),
]

# pkg/apis/batch/v1/defaults.go: SetDefaults_CronJob. A jobTemplate is a JobTemplateSpec, not a
# Job, so SetDefaults_Job does not reach it; only the pod template inside is defaulted.
_CRONJOB: Final[Rules] = [
    (_p("spec.concurrencyPolicy"), eq("Allow")),
    (_p("spec.suspend"), eq(False)),
    (_p("spec.successfulJobsHistoryLimit"), eq(3)),
    (_p("spec.failedJobsHistoryLimit"), eq(1)),
    (_p("spec.jobTemplate.metadata.creationTimestamp"), ANY),
    *_mount(_p("spec.jobTemplate.spec.template"), _POD_TEMPLATE),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_Service; allocation of clusterIP(s), ipFamilies,
# ipFamilyPolicy, nodePort and healthCheckNodePort in pkg/registry/core/service/storage/
# (alloc.go, storage.go); the load-balancer-cleanup finalizer from the service controller
# (staging/src/k8s.io/cloud-provider/controllers/service/controller.go).
_SERVICE: Final[Rules] = [
    (_p("spec.type"), eq("ClusterIP")),
    (_p("spec.sessionAffinity"), eq("None")),
    (_p("spec.sessionAffinityConfig.clientIP.timeoutSeconds"), _session_affinity_timeout),
    (_p("spec.ports.[].protocol"), eq("TCP")),
    (_p("spec.ports.[].targetPort"), _service_target_port),
    (_p("spec.ports.[].nodePort"), ANY),
    (_p("spec.clusterIP"), ANY),
    (_p("spec.clusterIPs"), ANY),
    (_p("spec.ipFamilies"), ANY),
    (_p("spec.ipFamilyPolicy"), _ip_family_policy),
    (_p("spec.externalTrafficPolicy"), _external_traffic_policy),
    (_p("spec.internalTrafficPolicy"), _internal_traffic_policy),
    (_p("spec.allocateLoadBalancerNodePorts"), _allocate_lb_node_ports),
    (_p("spec.healthCheckNodePort"), ANY),
    _finalizers("service.kubernetes.io/load-balancer-cleanup"),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_Namespace (kubernetes.io/metadata.name label);
# the `kubernetes` finalizer from pkg/registry/core/namespace/strategy.go PrepareForCreate.
_NAMESPACE: Final[Rules] = [
    (_label("kubernetes.io/metadata.name"), ANY),
    (_p("spec.finalizers"), lambda value, _p: value == ["kubernetes"]),
    (_p("spec.finalizers.[]"), eq("kubernetes")),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_PersistentVolumeClaimSpec; volumeName and the
# pv.kubernetes.io / volume.kubernetes.io annotations from the PV controller
# (pkg/controller/volume/persistentvolume/pv_controller.go); storageClassName from the
# DefaultStorageClass admission plugin; the pvc-protection finalizer from its admission plugin.
_PVC: Final[Rules] = [
    *_mount(_p("spec"), _PVC_SPEC),
    (_p("spec.volumeName"), ANY),
    (_p("spec.storageClassName"), ANY),
    (_p("spec.dataSourceRef"), _pvc_data_source_ref),
    (_p("spec.dataSource"), _pvc_data_source),
    _finalizers("kubernetes.io/pvc-protection"),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_PersistentVolume; claimRef written on binding.
_PV: Final[Rules] = [
    (_p("spec.volumeMode"), eq("Filesystem")),
    (_p("spec.persistentVolumeReclaimPolicy"), eq("Retain")),
    (_p("spec.claimRef"), ANY),
    _finalizers("kubernetes.io/pv-protection",
                "external-provisioner.volume.kubernetes.io/finalizer"),
]

# The legacy token controller (pkg/controller/serviceaccount/tokens_controller.go) lists the
# token Secrets it created in `secrets`.
_SERVICEACCOUNT: Final[Rules] = [(_p("secrets"), ANY)]

# pkg/apis/core/v1/defaults.go: SetDefaults_Secret; the token controller's annotation and data
# (pkg/controller/serviceaccount/tokens_controller.go).
_SECRET: Final[Rules] = [
    (_p("type"), eq("Opaque")),
    (_annotation("kubernetes.io/service-account.uid"), ANY),
    (_p("data"), _token_secret_data),
]

# pkg/apis/rbac/v1/defaults.go: SetDefaults_{Cluster,}RoleBinding, SetDefaults_Subject;
# aggregated ClusterRole rules from pkg/controller/clusterroleaggregation.
_BINDING: Final[Rules] = [
    (_p("roleRef.apiGroup"), eq("rbac.authorization.k8s.io")),
    (_p("subjects.[].apiGroup"), _rbac_subject_api_group),
]
_CLUSTERROLE: Final[Rules] = [(_p("rules"), _aggregated_rules)]

# pkg/apis/networking/v1/defaults.go: SetDefaults_NetworkPolicy(Port), SetDefaults_IngressClass.
# Ingress has no defaults in networking/v1 (pathType is required there; it was defaulted to
# ImplementationSpecific only in v1beta1); ingressClassName comes from the DefaultIngressClass
# admission plugin (plugin/pkg/admission/network/defaultingressclass).
_NETWORKPOLICY: Final[Rules] = [
    (_p("spec.policyTypes"), _network_policy_types),
    (_p("spec.policyTypes.[]"), _network_policy_type_item),
    (_p("spec.ingress.[].ports.[].protocol"), eq("TCP")),
    (_p("spec.egress.[].ports.[].protocol"), eq("TCP")),
]
_INGRESS: Final[Rules] = [(_p("spec.ingressClassName"), ANY)]
_INGRESSCLASS: Final[Rules] = [(_p("spec.parameters.scope"), eq("Cluster"))]

# pkg/apis/autoscaling/v2/defaults.go: SetDefaults_HorizontalPodAutoscaler(Behavior); the v1
# view of the same object shows the defaulted CPU metric as targetCPUUtilizationPercentage 80
# (pkg/apis/autoscaling/v1/conversion.go, autoscaling.DefaultCPUUtilization).
_HPA: Final[Rules] = [
    (_p("spec.minReplicas"), eq(1)),
    (_p("spec.targetCPUUtilizationPercentage"), eq(80)),
    (_p("spec.metrics"), _whole_list([_HPA_DEFAULT_METRIC])),
    (_p("spec.metrics.[].type"), _parent_is(_HPA_DEFAULT_METRIC)),
    (_p("spec.metrics.[].resource.name"), _parent_is(_HPA_CPU_RESOURCE)),
    (_p("spec.metrics.[].resource.target.type"), _parent_is(_HPA_CPU_TARGET)),
    (_p("spec.metrics.[].resource.target.averageUtilization"), _parent_is(_HPA_CPU_TARGET)),
    (_p("spec.behavior.scaleUp.stabilizationWindowSeconds"), eq(0)),
    (_p("spec.behavior.scaleUp.selectPolicy"), eq("Max")),
    (_p("spec.behavior.scaleUp.policies"), _whole_list(_HPA_SCALE_UP_POLICIES)),
    *[(_p("spec.behavior.scaleUp.policies.[]." + f), _parent_in(_HPA_SCALE_UP_POLICIES))
      for f in ("type", "value", "periodSeconds")],
    (_p("spec.behavior.scaleDown.selectPolicy"), eq("Max")),
    (_p("spec.behavior.scaleDown.policies"), _whole_list(_HPA_SCALE_DOWN_POLICIES)),
    *[(_p("spec.behavior.scaleDown.policies.[]." + f), _parent_in(_HPA_SCALE_DOWN_POLICIES))
      for f in ("type", "value", "periodSeconds")],
    (_p("spec.selectionStrategy"), eq("LabelSelector")),
    # autoscaling/v1 carries v2 status that has no v1 field in annotations
    # (pkg/apis/autoscaling/v1/conversion.go).
    (_annotation("autoscaling.alpha.kubernetes.io/conditions"), ANY),
    (_annotation("autoscaling.alpha.kubernetes.io/current-metrics"), ANY),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_LimitRangeItem.
_LIMITRANGE: Final[Rules] = [
    (_p("spec.limits.[].default"), _limit_range_default),
    (_p("spec.limits.[].defaultRequest"), _limit_range_default_request),
]

# pkg/apis/scheduling/v1/defaults.go: SetDefaults_PriorityClass.
_PRIORITYCLASS: Final[Rules] = [(_p("preemptionPolicy"), eq("PreemptLowerPriority"))]

# pkg/apis/storage/v1/defaults.go: SetDefaults_StorageClass.
_STORAGECLASS: Final[Rules] = [
    (_p("reclaimPolicy"), eq("Delete")),
    (_p("volumeBindingMode"), eq("Immediate")),
]

# pkg/apis/admissionregistration/v1/defaults.go: SetDefaults_{Validating,Mutating}Webhook,
# SetDefaults_Rule, SetDefaults_ServiceReference.
_WEBHOOK: Final[Rules] = [
    (_p("failurePolicy"), eq("Fail")),
    (_p("matchPolicy"), eq("Equivalent")),
    (_p("namespaceSelector"), EMPTY),
    (_p("objectSelector"), EMPTY),
    (_p("timeoutSeconds"), eq(10)),
    (_p("rules.[].scope"), eq("*")),
    (_p("clientConfig.service.port"), eq(443)),
]
_VALIDATING_WEBHOOKS: Final[Rules] = list(_mount(_p("webhooks.[]"), _WEBHOOK))
_MUTATING_WEBHOOKS: Final[Rules] = [
    *_mount(_p("webhooks.[]"), _WEBHOOK),
    (_p("webhooks.[].reinvocationPolicy"), eq("Never")),
]

# staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1/defaults.go:
# SetDefaults_CustomResourceDefinitionSpec, SetDefaults_ServiceReference.
_CRD: Final[Rules] = [
    (_p("spec.names.singular"), _crd_singular),
    (_p("spec.names.listKind"), _crd_list_kind),
    (_p("spec.conversion.strategy"), eq("None")),
    (_p("spec.conversion.webhook.clientConfig.service.port"), eq(443)),
    (_p("spec.conversion.webhook.conversionReviewVersions"), lambda value, _p: value == ["v1"]),
]

# pkg/apis/core/v1/defaults.go: SetDefaults_ReplicationController; PodTemplate objects.
_REPLICATIONCONTROLLER: Final[Rules] = [
    (_p("spec.replicas"), eq(1)),
    (_p("spec.selector"), _rc_selector),
    (_p("metadata.labels"), _copied_labels),
    *_mount(_p("spec.template"), _POD_TEMPLATE),
]
_PODTEMPLATE: Final[Rules] = list(_mount(_p("template"), _POD_TEMPLATE))

# Annotation key prefixes the server and its controllers write (the PV controller's
# pv.kubernetes.io/bind-completed, volume.kubernetes.io/storage-provisioner, ...).
_PVC_ANNOTATION_PREFIXES: Final = ("pv.kubernetes.io/", "volume.kubernetes.io/",
                                   "volume.beta.kubernetes.io/storage-provisioner")

_SECTIONS: Final[dict[tuple[str, str], Rules]] = {
    ("apps", "Deployment"): _DEPLOYMENT,
    ("apps", "StatefulSet"): _STATEFULSET,
    ("apps", "DaemonSet"): _DAEMONSET,
    ("apps", "ReplicaSet"): _REPLICASET,
    ("batch", "Job"): _JOB,
    ("batch", "CronJob"): _CRONJOB,
    ("", "Service"): _SERVICE,
    ("", "Namespace"): _NAMESPACE,
    ("", "PersistentVolumeClaim"): _PVC,
    ("", "PersistentVolume"): _PV,
    ("", "ServiceAccount"): _SERVICEACCOUNT,
    ("", "Secret"): _SECRET,
    ("", "ConfigMap"): [],
    ("", "LimitRange"): _LIMITRANGE,
    ("", "ReplicationController"): _REPLICATIONCONTROLLER,
    ("", "PodTemplate"): _PODTEMPLATE,
    ("rbac.authorization.k8s.io", "Role"): [],
    ("rbac.authorization.k8s.io", "ClusterRole"): _CLUSTERROLE,
    ("rbac.authorization.k8s.io", "RoleBinding"): _BINDING,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _BINDING,
    ("networking.k8s.io", "NetworkPolicy"): _NETWORKPOLICY,
    ("networking.k8s.io", "Ingress"): _INGRESS,
    ("networking.k8s.io", "IngressClass"): _INGRESSCLASS,
    ("autoscaling", "HorizontalPodAutoscaler"): _HPA,
    # policy/v1 PodDisruptionBudget has no defaulting function: only the common rules apply.
    ("policy", "PodDisruptionBudget"): [],
    ("scheduling.k8s.io", "PriorityClass"): _PRIORITYCLASS,
    ("storage.k8s.io", "StorageClass"): _STORAGECLASS,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _VALIDATING_WEBHOOKS,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _MUTATING_WEBHOOKS,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _CRD,
}

_ANNOTATION_PREFIXES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("", "PersistentVolumeClaim"): _PVC_ANNOTATION_PREFIXES,
    ("", "PersistentVolume"): ("pv.kubernetes.io/",),
}


# --------------------------------------------------------------------------- older API versions

# The sections above mirror each group's current version. The sections below are for the older
# versions whose defaults differ (an apps/v1beta1 Deployment keeps 2 old ReplicaSets, not 10),
# chosen by the live object's apiVersion. A kind at a version with no section here has the
# current version's defaults: that version's defaults.go was checked and sets the same.


def _revise(rules: Iterable[tuple[Path, Rule]], changes: Iterable[tuple[Path, Rule]] = (),
            drop: Iterable[str] = ()) -> Rules:
    """``rules`` with ``changes`` in place of the rules for the same paths, ``drop`` removed."""
    new = list(changes)
    gone = {path for path, _rule in new} | {_p(d) for d in drop}
    return [(path, rule) for path, rule in rules if path not in gone] + new


def _strings(*items: str) -> Rule:
    """The value is exactly this list of strings."""
    expected = list(items)
    return lambda value, _parent: isinstance(value, list) and value == expected


def _spec_template_labels(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    template = spec.get("template")
    meta = template.get("metadata") if isinstance(template, Mapping) else None
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _template_selector(value: Any, parent: Mapping[str, Any]) -> bool:
    # The beta workload versions default a missing selector to {matchLabels: <the pod
    # template's labels>} (apps/v1 and apps/v1beta2 require it instead).
    labels = _spec_template_labels(parent)
    return isinstance(value, Mapping) and bool(labels) and \
        dict(value) == {"matchLabels": dict(labels)}


def _crd_version(value: Any, parent: Mapping[str, Any]) -> bool:
    # The deprecated `version` is set to the first item of `versions`.
    versions = parent.get("versions")
    first = versions[0] if isinstance(versions, list) and versions else None
    return isinstance(first, Mapping) and isinstance(value, str) and _same(value, first.get("name"))


def _crd_versions(value: Any, parent: Mapping[str, Any]) -> bool:
    # A CRD that gives only the deprecated `version` gets it as its one served, stored version.
    version = parent.get("version")
    if not isinstance(version, str) or not version or not isinstance(value, list) or \
            len(value) != 1 or not isinstance(value[0], Mapping):
        return False
    item = value[0]
    return set(item) == {"name", "served", "storage"} and _same(item["name"], version) and \
        item["served"] is True and item["storage"] is True


# Where a beta workload version copies the pod template's labels: the selector, and the object's
# labels when it has none (checked against the whole live object, see _TEMPLATE_LABEL_KINDS).
_TEMPLATE_DEFAULTED: Final[Rules] = [
    (_p("spec.selector"), _template_selector),
    (_p("metadata.labels"), _copied_labels),
]

# pkg/apis/admissionregistration/v1beta1/defaults.go: SetDefaults_{Validating,Mutating}Webhook
# default failurePolicy to Ignore, matchPolicy to Exact, timeoutSeconds to 30, and also
# sideEffects (Unknown) and admissionReviewVersions ([v1beta1]), which v1 requires instead.
_WEBHOOK_V1BETA1: Final[Rules] = _revise(_WEBHOOK, [
    (_p("failurePolicy"), eq("Ignore")),
    (_p("matchPolicy"), eq("Exact")),
    (_p("timeoutSeconds"), eq(30)),
    (_p("sideEffects"), eq("Unknown")),
    (_p("admissionReviewVersions"), _strings("v1beta1")),
])
_VALIDATING_WEBHOOKS_V1BETA1: Final[Rules] = list(_mount(_p("webhooks.[]"), _WEBHOOK_V1BETA1))
_MUTATING_WEBHOOKS_V1BETA1: Final[Rules] = [
    *_mount(_p("webhooks.[]"), _WEBHOOK_V1BETA1),
    (_p("webhooks.[].reinvocationPolicy"), eq("Never")),
]

# staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1beta1/defaults.go:
# SetDefaults_CustomResourceDefinitionSpec also defaults scope (Namespaced),
# preserveUnknownFields (true) and version/versions from each other; its conversion webhook
# sits at conversion.webhookClientConfig and reviews [v1beta1].
_CRD_V1BETA1: Final[Rules] = _revise(_CRD, [
    (_p("spec.scope"), eq("Namespaced")),
    (_p("spec.preserveUnknownFields"), eq(True)),
    (_p("spec.version"), _crd_version),
    (_p("spec.versions"), _crd_versions),
    (_p("spec.conversion.webhookClientConfig.service.port"), eq(443)),
    (_p("spec.conversion.conversionReviewVersions"), _strings("v1beta1")),
], drop=["spec.conversion.webhook.clientConfig.service.port",
         "spec.conversion.webhook.conversionReviewVersions"])

# pkg/apis/apps/v1beta1/defaults.go: SetDefaults_Deployment keeps 2 old ReplicaSets;
# SetDefaults_StatefulSet updates OnDelete; both default selector and labels from the template.
# (apps/v1beta1 serves no DaemonSet or ReplicaSet. pkg/apis/apps/v1beta2/defaults.go defaults
# all four kinds as apps/v1 does: no section.)
_DEPLOYMENT_APPS_V1BETA1: Final[Rules] = _revise(_DEPLOYMENT, [
    (_p("spec.revisionHistoryLimit"), eq(2)),
    *_TEMPLATE_DEFAULTED,
])
_STATEFULSET_APPS_V1BETA1: Final[Rules] = _revise(_STATEFULSET, [
    (_p("spec.updateStrategy.type"), eq("OnDelete")),
    *_TEMPLATE_DEFAULTED,
])

# pkg/apis/extensions/v1beta1/defaults.go: SetDefaults_Deployment (maxSurge and maxUnavailable
# 1, revisionHistoryLimit and progressDeadlineSeconds math.MaxInt32 meaning "unlimited"),
# SetDefaults_DaemonSet (OnDelete; maxUnavailable 1 only, no maxSurge), SetDefaults_ReplicaSet,
# all with selector and labels from the template; SetDefaults_HTTPIngressPath, the
# NetworkPolicy defaults of networking/v1, and SetDefaults_PodSecurityPolicySpec. The DaemonSet
# registry strategy sets templateGeneration (pkg/registry/apps/daemonset/strategy.go,
# PrepareForCreate), a field only this version shows.
_MAX_INT32: Final = 2**31 - 1
_DEPLOYMENT_EXTENSIONS_V1BETA1: Final[Rules] = _revise(_DEPLOYMENT, [
    (_p("spec.strategy.rollingUpdate.maxSurge"), eq(1)),
    (_p("spec.strategy.rollingUpdate.maxUnavailable"), eq(1)),
    (_p("spec.revisionHistoryLimit"), eq(_MAX_INT32)),
    (_p("spec.progressDeadlineSeconds"), eq(_MAX_INT32)),
    *_TEMPLATE_DEFAULTED,
])
_DAEMONSET_EXTENSIONS_V1BETA1: Final[Rules] = _revise(_DAEMONSET, [
    (_p("spec.updateStrategy.type"), eq("OnDelete")),
    (_p("spec.templateGeneration"), ANY),
    *_TEMPLATE_DEFAULTED,
], drop=["spec.updateStrategy.rollingUpdate.maxSurge"])
_REPLICASET_EXTENSIONS_V1BETA1: Final[Rules] = _revise(_REPLICASET, _TEMPLATE_DEFAULTED)

# pkg/apis/networking/v1beta1/defaults.go (and extensions/v1beta1's, which served Ingress
# until 1.22): SetDefaults_HTTPIngressPath; networking/v1 requires pathType instead.
_INGRESS_V1BETA1: Final[Rules] = [
    *_INGRESS,
    (_p("spec.rules.[].http.paths.[].pathType"), eq("ImplementationSpecific")),
]

# pkg/apis/policy/v1beta1/defaults.go: SetDefaults_PodSecurityPolicySpec (PodSecurityPolicy
# never left v1beta1). The policy/v1beta1 PodDisruptionBudget has no defaults, as in v1.
_PSP: Final[Rules] = [(_p("spec.allowPrivilegeEscalation"), eq(True))]

# pkg/apis/autoscaling/v2beta1/defaults.go: the default CPU metric in v2beta1's own shape
# (targetAverageUtilization), and no behavior. (pkg/apis/autoscaling/v2beta2/defaults.go
# defaults as v2 does; batch/v1beta1's CronJob defaults are batch/v1's: no sections.)
_HPA_V2BETA1_CPU_RESOURCE: Final = {"name": "cpu", "targetAverageUtilization": 80}
_HPA_V2BETA1_DEFAULT_METRIC: Final = {"type": "Resource", "resource": _HPA_V2BETA1_CPU_RESOURCE}
_HPA_V2BETA1: Final[Rules] = [
    (_p("spec.minReplicas"), eq(1)),
    (_p("spec.metrics"), _whole_list([_HPA_V2BETA1_DEFAULT_METRIC])),
    (_p("spec.metrics.[].type"), _parent_is(_HPA_V2BETA1_DEFAULT_METRIC)),
    (_p("spec.metrics.[].resource.name"), _parent_is(_HPA_V2BETA1_CPU_RESOURCE)),
    (_p("spec.metrics.[].resource.targetAverageUtilization"),
     _parent_is(_HPA_V2BETA1_CPU_RESOURCE)),
]

_VERSION_SECTIONS: Final[dict[tuple[str, str, str], Rules]] = {
    ("admissionregistration.k8s.io", "v1beta1", "ValidatingWebhookConfiguration"):
        _VALIDATING_WEBHOOKS_V1BETA1,
    ("admissionregistration.k8s.io", "v1beta1", "MutatingWebhookConfiguration"):
        _MUTATING_WEBHOOKS_V1BETA1,
    ("apiextensions.k8s.io", "v1beta1", "CustomResourceDefinition"): _CRD_V1BETA1,
    ("apps", "v1beta1", "Deployment"): _DEPLOYMENT_APPS_V1BETA1,
    ("apps", "v1beta1", "StatefulSet"): _STATEFULSET_APPS_V1BETA1,
    ("extensions", "v1beta1", "Deployment"): _DEPLOYMENT_EXTENSIONS_V1BETA1,
    ("extensions", "v1beta1", "DaemonSet"): _DAEMONSET_EXTENSIONS_V1BETA1,
    ("extensions", "v1beta1", "ReplicaSet"): _REPLICASET_EXTENSIONS_V1BETA1,
    ("extensions", "v1beta1", "Ingress"): _INGRESS_V1BETA1,
    ("extensions", "v1beta1", "NetworkPolicy"): _NETWORKPOLICY,
    ("extensions", "v1beta1", "PodSecurityPolicy"): _PSP,
    ("networking.k8s.io", "v1beta1", "Ingress"): _INGRESS_V1BETA1,
    ("policy", "v1beta1", "PodSecurityPolicy"): _PSP,
    ("autoscaling", "v2beta1", "HorizontalPodAutoscaler"): _HPA_V2BETA1,
}


# --------------------------------------------------------------------------- compiled table


class _Compiled:
    """One kind's rules as dict lookups: exact paths, and ANY subtrees by path length."""

    __slots__ = ("annotation_prefixes", "any_by_len", "exact", "template_label_items",
                 "template_labels")

    def __init__(self, rules: Rules, annotation_prefixes: tuple[str, ...],
                 template_label_items: bool = False) -> None:
        self.exact: dict[Path, Rule] = {}
        any_by_len: dict[int, set[Path]] = {}
        for path, rule in rules:
            if rule is ANY:
                any_by_len.setdefault(len(path), set()).add(path)
            else:
                self.exact[path] = rule
        self.any_by_len: tuple[tuple[int, frozenset[Path]], ...] = tuple(
            sorted((n, frozenset(paths)) for n, paths in any_by_len.items()))
        self.annotation_prefixes = annotation_prefixes
        # Kinds whose labels SetDefaults_* copy from the pod template when the object has
        # none: with the whole live object at hand, labels are checked against the template's
        # (see _TEMPLATE_LABEL_KINDS).
        self.template_labels = any(rule is _copied_labels for _path, rule in rules)
        self.template_label_items = template_label_items


# Kinds whose labels SetDefaults_* copy from the pod template when the object has none
# (pkg/apis/batch/v1/defaults.go SetDefaults_Job; pkg/apis/core/v1/defaults.go
# SetDefaults_ReplicationController; the beta workload versions' sections). For a Job the copy
# is the template's very map, so the labels the registry generates into the template afterwards
# (controller-uid, job-name) show up on the Job too; a Job's or a ReplicationController's
# single label also counts when the template has it. A beta workload's single label does not:
# it is asked about when Git declares labels of its own (then the server copied none; a label
# Git dropped is drift) or when the labels as a whole are not the template's.
_TEMPLATE_LABEL_KINDS: Final = frozenset({("batch", "Job"), ("", "ReplicationController")})

_Current = dict[tuple[str, str], _Compiled]
_Versioned = dict[tuple[str, str, str], _Compiled]


def _compile() -> tuple[_Current, _Versioned, _Compiled]:
    current = {key: _Compiled([*_COMMON, *rules], _ANNOTATION_PREFIXES.get(key, ()),
                              key in _TEMPLATE_LABEL_KINDS)
               for key, rules in _SECTIONS.items()}
    versioned = {(g, v, k): _Compiled([*_COMMON, *rules], _ANNOTATION_PREFIXES.get((g, k), ()))
                 for (g, v, k), rules in _VERSION_SECTIONS.items()}
    # A group whose only version is an old one (extensions/v1beta1; policy/v1beta1 for
    # PodSecurityPolicy): that version is the current one, with or without the live object.
    for (g, _v, k), compiled in versioned.items():
        current.setdefault((g, k), compiled)
    return current, versioned, _Compiled(list(_COMMON), ())


_TABLE, _VERSIONED, _GENERIC = _compile()

# (group, kind, the live object's apiVersion or None) -> its section. The predicate runs for
# every undeclared live field: the section is resolved once per object version, not per field.
_BY_API_VERSION: dict[tuple[str, str, str | None], _Compiled] = {}
_BY_API_VERSION_MAX: Final = 4096


def _section(group: str, kind: str, api_version: object) -> _Compiled:
    """The section for a live object at ``api_version`` (the current one when ``None``)."""
    version = api_version.rpartition("/")[2] if isinstance(api_version, str) else ""
    found = _VERSIONED.get((group, version, kind)) or _TABLE.get((group, kind), _GENERIC)
    if api_version is None or isinstance(api_version, str):
        if len(_BY_API_VERSION) >= _BY_API_VERSION_MAX:
            _BY_API_VERSION.clear()
        _BY_API_VERSION[(group, kind, api_version)] = found
    return found


def covered_kinds() -> tuple[tuple[str, str], ...]:
    """The ``(group, kind)`` pairs that have a defaults section of their own."""
    return tuple(_TABLE)


def covered_versions() -> tuple[tuple[str, str, str], ...]:
    """The ``(group, version, kind)`` triples whose defaults differ from the current version's."""
    return tuple(_VERSION_SECTIONS)


def table(group: str, kind: str, version: str | None = None) -> tuple[tuple[Path, Rule], ...]:
    """One kind's rules at ``version`` (default: the current one), common ones included (for
    documentation and tests)."""
    compiled = _section(group, kind, None if version is None else f"{group}/{version}")
    populated = tuple((path, ANY) for _n, paths in compiled.any_by_len for path in sorted(paths))
    return (*compiled.exact.items(), *populated)


# Values the server allocates or admission fills in when a client leaves them out, but that a
# client may later set to a value of its choosing: a node port moved with `kubectl edit`, an
# Ingress switched to another class. Whatever their value they are defaults, unless a human
# owns them (then the human chose the value: drift). Immutable allocations (clusterIP,
# ipFamilies, a PVC's volumeName or storageClassName) are not here: a human can own them
# only by recreating the object with the same values (`kubectl replace --force` of a dump).
_CHOSEN_WHEN_OWNED: Final[dict[tuple[str, str], frozenset[Path]]] = {
    ("", "Service"): frozenset({_p("spec.ports.[].nodePort"), _p("spec.healthCheckNodePort")}),
    ("networking.k8s.io", "Ingress"): frozenset({_p("spec.ingressClassName")}),
    ("extensions", "Ingress"): frozenset({_p("spec.ingressClassName")}),
}


def chosen_when_owned(group: str, kind: str, path: tuple[str, ...]) -> bool:
    """Whether a server-filled value at ``path`` is a client's choice when a client owns it
    in managedFields (a node port, an ingress class): see :data:`_CHOSEN_WHEN_OWNED`."""
    paths = _CHOSEN_WHEN_OWNED.get((group, kind))
    return paths is not None and path in paths


def _template_labels(root: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = root.get("spec")
    return _spec_template_labels(spec) if isinstance(spec, Mapping) else {}


def _copied_from_template(path: Path, value: Any, root: Mapping[str, Any],
                          items: bool) -> bool | None:
    """With the whole live object at hand: whether labels are the template's copy (a single
    label only when ``items``)."""
    if len(path) == 2:
        template = _template_labels(root)
        return isinstance(value, Mapping) and bool(value) and all(
            k in template and _same(v, template[k]) for k, v in value.items())
    if len(path) == 3 and items:
        template = _template_labels(root)
        return path[2] in template and _same(value, template[path[2]])
    return None


def is_server_default(group: str, kind: str, path: tuple[str, ...], value: Any,
                      parent: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> bool:
    """Whether the live ``value`` at ``path`` is what the server fills in by itself.

    ``group`` is ``""`` for the core API. See the module docstring for ``path``/``parent``.
    ``root``, the whole live object, answers what ``parent`` cannot: which API version's
    defaults apply (its ``apiVersion``; without it, the current version's), and whether a
    Job's labels are the copy of its template's (without it any labels of a Job Git gives none
    count).
    """
    if root is None:
        table = _TABLE.get((group, kind), _GENERIC)
    else:
        api_version = root.get("apiVersion")
        try:
            table = _BY_API_VERSION[(group, kind, api_version)]
        except (KeyError, TypeError):  # not resolved yet, or an apiVersion that is no string
            table = _section(group, kind, api_version)
    if table.template_labels and root is not None and path[:2] == ("metadata", "labels"):
        copied = _copied_from_template(path, value, root, table.template_label_items)
        if copied is not None:
            return copied
    return _check(table, path, value, parent)


def _check(table: _Compiled, path: Path, value: Any, parent: Mapping[str, Any]) -> bool:
    rule = table.exact.get(path)
    if rule is not None:
        # A rule for the path itself is final: `policyTypes: [Ingress]` is not the default
        # when there are egress rules, even though its one item could be.
        return rule(value, parent)
    n = len(path)
    for length, paths in table.any_by_len:
        if length > n:
            break
        if path[:length] in paths:
            return True
    if table.annotation_prefixes and n == 3 and path[0] == "metadata" and \
            path[1] == "annotations" and path[2].startswith(table.annotation_prefixes):
        return True
    # A container counts when everything in it does; an empty one only via an EMPTY rule.
    if isinstance(value, Mapping):
        if not value:
            return False
        return all(_check(table, (*path, str(k)), v, value) for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return False
        item_path = (*path, _ITEM)
        # A mapping item keeps the list's holder as parent; its own fields get the item.
        return all(_check(table, item_path, item, parent) for item in value)
    return False
