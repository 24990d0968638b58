"""The server-default table, against recorded live objects and their Git manifests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from live_fixtures import Key, desired_objects, live_objects

from auditor.engine.defaults import covered_kinds, image_tag, is_server_default
from auditor.engine.normalise import normalise

KEY = b"test-key"
LIVE = live_objects()
DESIRED = desired_objects()

# Live fields that are NOT server defaults although Git leaves them out: the evidence of a
# terminal `kubectl apply`, and an HPA scale-down window someone set with `kubectl edit`.
LAST_APPLIED = ("metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
HUMAN_EDITS: dict[Key, set[tuple[str, ...]]] = {
    ("apps", "Deployment", "shop", "web"): {LAST_APPLIED},
    ("", "Secret", "shop", "db-credentials"): {LAST_APPLIED},
    ("autoscaling", "HorizontalPodAutoscaler", "shop", "web"): {
        ("spec", "behavior", "scaleDown", "stabilizationWindowSeconds")},
}

_MERGE_KEYS = ("name", "containerPort", "port", "mountPath", "type")


def _match(item: Any, candidates: list[Any], index: int) -> Any:
    if not isinstance(item, Mapping):
        return item if item in candidates else None
    for key in _MERGE_KEYS:
        if key in item:
            same = [c for c in candidates if isinstance(c, Mapping) and c.get(key) == item[key]]
            if len(same) > 1 and index < len(candidates) and candidates[index] in same:
                return candidates[index]
            return same[0] if same else None
    return candidates[index] if index < len(candidates) else None


def undeclared(live: Any, desired: Any, path: tuple[str, ...] = (),
               parent: Mapping[str, Any] | None = None,
               ) -> Iterator[tuple[tuple[str, ...], Any, Mapping[str, Any]]]:
    """The topmost live nodes Git does not declare: (path, value, parent)."""
    if isinstance(live, Mapping):
        for key, value in live.items():
            if not isinstance(desired, Mapping) or key not in desired:
                yield (*path, key), value, live
            else:
                yield from undeclared(value, desired[key], (*path, key), live)
    elif isinstance(live, list) and isinstance(desired, list):
        for i, item in enumerate(live):
            match = _match(item, desired, i)
            if match is None:
                yield (*path, "[]"), item, parent or {}
            else:
                yield from undeclared(item, match, (*path, "[]"), parent)


def leaves(path: tuple[str, ...], value: Any, parent: Mapping[str, Any],
           ) -> Iterator[tuple[tuple[str, ...], Any, Mapping[str, Any]]]:
    if isinstance(value, Mapping) and value:
        for key, sub in value.items():
            yield from leaves((*path, key), sub, value)
    elif isinstance(value, list) and value:
        for item in value:
            yield from leaves((*path, "[]"), item, parent)
    else:
        yield path, value, parent


def _pairs() -> list[Key]:
    assert set(DESIRED) == set(LIVE), "every live fixture needs its Git manifest"
    return sorted(LIVE)


@pytest.mark.parametrize("mode", ["raw", "normalised"])
@pytest.mark.parametrize("key", _pairs(), ids=lambda k: f"{k[1]}/{k[3]}")
def test_every_undeclared_live_leaf_is_a_default_or_a_known_edit(key: Key, mode: str) -> None:
    live, desired = LIVE[key], DESIRED[key]
    if mode == "normalised":
        live, desired = normalise(live, secret_key=KEY), normalise(desired, secret_key=KEY)
    elif key[1] == "Secret":
        pytest.skip("raw stringData vs data is normalise's job")
    group, kind = key[0], key[1]
    expected = HUMAN_EDITS.get(key, set())
    flagged = {path for top in undeclared(live, desired) for path, value, parent in leaves(*top)
               if not is_server_default(group, kind, path, value, parent)}
    assert flagged == expected


@pytest.mark.parametrize("key", _pairs(), ids=lambda k: f"{k[1]}/{k[3]}")
def test_whole_undeclared_subtrees_are_judged_like_their_leaves(key: Key) -> None:
    live = normalise(LIVE[key], secret_key=KEY)
    desired = normalise(DESIRED[key], secret_key=KEY)
    edits = HUMAN_EDITS.get(key, set())
    for path, value, parent in undeclared(live, desired):
        has_edit = any(edit[:len(path)] == path for edit in edits)
        assert is_server_default(key[0], key[1], path, value, parent) is not has_edit, path


def test_fixtures_cover_the_kinds_the_brief_names() -> None:
    kinds = {(g, k) for g, k, _, _ in LIVE}
    for needed in [("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
                   ("", "Service"), ("batch", "Job"), ("batch", "CronJob"),
                   ("", "PersistentVolumeClaim"), ("", "ServiceAccount"), ("", "Namespace"),
                   ("", "ConfigMap"), ("", "Secret"), ("policy", "PodDisruptionBudget"),
                   ("rbac.authorization.k8s.io", "Role"),
                   ("rbac.authorization.k8s.io", "RoleBinding"),
                   ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                   ("networking.k8s.io", "NetworkPolicy"), ("networking.k8s.io", "Ingress"),
                   ("autoscaling", "HorizontalPodAutoscaler")]:
        assert needed in kinds
        assert needed in covered_kinds()


# --------------------------------------------------------------------------- table cases

POD_TEMPLATE_AT = {
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("", "PodTemplate"): ("template", "spec"),
}

C = ("containers", "[]")
# (path under the pod spec, default, a non-default value, parent)
POD_SPEC_CASES: list[tuple[tuple[str, ...], Any, Any, dict[str, Any]]] = [
    (("dnsPolicy",), "ClusterFirst", "Default", {}),
    (("restartPolicy",), "Always", "OnFailure", {}),
    (("schedulerName",), "default-scheduler", "my-scheduler", {}),
    (("securityContext",), {}, {"runAsNonRoot": True}, {}),
    (("terminationGracePeriodSeconds",), 30, 60, {}),
    ((*C, "terminationMessagePath"), "/dev/termination-log", "/tmp/log", {}),
    ((*C, "terminationMessagePolicy"), "File", "FallbackToLogsOnError", {}),
    ((*C, "resources"), {}, {"requests": {"cpu": "1"}}, {}),
    ((*C, "ports", "[]", "protocol"), "TCP", "UDP", {"containerPort": 53}),
    ((*C, "ports", "[]", "hostPort"), 9100, 9200, {"containerPort": 9100}),
    ((*C, "env", "[]", "valueFrom", "fieldRef", "apiVersion"), "v1", "v2", {}),
    ((*C, "livenessProbe", "timeoutSeconds"), 1, 5, {}),
    ((*C, "readinessProbe", "periodSeconds"), 10, 5, {}),
    ((*C, "startupProbe", "successThreshold"), 1, 2, {}),
    ((*C, "livenessProbe", "failureThreshold"), 3, 30, {}),
    ((*C, "livenessProbe", "httpGet", "scheme"), "HTTP", "HTTPS", {}),
    ((*C, "readinessProbe", "httpGet", "path"), "/", "/ready", {}),
    ((*C, "livenessProbe", "grpc", "service"), "", "health", {}),
    ((*C, "lifecycle", "preStop", "httpGet", "scheme"), "HTTP", "HTTPS", {}),
    (("initContainers", "[]", "terminationMessagePolicy"), "File", "FallbackToLogsOnError", {}),
    (("initContainers", "[]", "imagePullPolicy"), "IfNotPresent", "Always",
     {"image": "busybox:1.36"}),
    (("volumes", "[]", "configMap", "defaultMode"), 420, 493, {}),
    (("volumes", "[]", "secret", "defaultMode"), 420, 256, {}),
    (("volumes", "[]", "projected", "defaultMode"), 420, 384, {}),
    (("volumes", "[]", "downwardAPI", "defaultMode"), 420, 256, {}),
    (("volumes", "[]", "hostPath", "type"), "", "Directory", {}),
    (("volumes", "[]", "emptyDir"), {}, {"medium": "Memory"}, {}),
    (("volumes", "[]", "projected", "sources", "[]", "serviceAccountToken",
      "expirationSeconds"), 3600, 7200, {}),
    (("volumes", "[]", "ephemeral", "volumeClaimTemplate", "spec", "volumeMode"),
     "Filesystem", "Block", {}),
]


@pytest.mark.parametrize("kind", sorted(POD_TEMPLATE_AT), ids=lambda gk: gk[1])
@pytest.mark.parametrize(("sub", "default", "other", "parent"), POD_SPEC_CASES,
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else None)
def test_pod_template_defaults_apply_wherever_a_pod_template_is(
        kind: tuple[str, str], sub: tuple[str, ...], default: Any, other: Any,
        parent: dict[str, Any]) -> None:
    path = POD_TEMPLATE_AT[kind] + sub
    assert is_server_default(*kind, path, default, parent)
    assert not is_server_default(*kind, path, other, parent)


def test_pod_only_defaults_do_not_reach_templates() -> None:
    # SetDefaults_Pod (enableServiceLinks) runs on Pods, not on PodTemplateSpecs.
    assert not is_server_default("apps", "Deployment",
                                 ("spec", "template", "spec", "enableServiceLinks"), True, {})


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("docker.io/library/nginx", "Always"),
    ("registry.local:5000/team/nginx", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("registry.local:5000/team/nginx:1.25", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ("", "IfNotPresent"),
])
def test_image_pull_policy_follows_the_image_tag(image: str, policy: str) -> None:
    path = ("spec", "template", "spec", "containers", "[]", "imagePullPolicy")
    other = "IfNotPresent" if policy == "Always" else "Always"
    assert is_server_default("apps", "Deployment", path, policy, {"image": image})
    assert not is_server_default("apps", "Deployment", path, other, {"image": image})
    assert not is_server_default("apps", "Deployment", path, "Never", {"image": image})


def test_image_tag_parsing() -> None:
    assert image_tag("nginx") == "latest"
    assert image_tag("host:5000/nginx") == "latest"
    assert image_tag("host:5000/nginx:1.2") == "1.2"
    assert image_tag("nginx@sha256:abc") == ""


# (group, kind, path, default, non-default, parent)
KIND_CASES: list[tuple[str, str, tuple[str, ...], Any, Any, dict[str, Any]]] = [
    ("apps", "Deployment", ("spec", "replicas"), 1, 3, {}),
    ("apps", "Deployment", ("spec", "progressDeadlineSeconds"), 600, 300, {}),
    ("apps", "Deployment", ("spec", "revisionHistoryLimit"), 10, 3, {}),
    ("apps", "Deployment", ("spec", "strategy", "type"), "RollingUpdate", "Recreate", {}),
    ("apps", "Deployment", ("spec", "strategy", "rollingUpdate", "maxSurge"), "25%", 1, {}),
    ("apps", "Deployment", ("spec", "strategy", "rollingUpdate", "maxUnavailable"), "25%",
     "0", {}),
    ("apps", "Deployment", ("spec", "strategy"),
     {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
     {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "25%"}},
     {}),
    ("apps", "StatefulSet", ("spec", "podManagementPolicy"), "OrderedReady", "Parallel", {}),
    ("apps", "StatefulSet", ("spec", "updateStrategy", "rollingUpdate", "partition"), 0, 2, {}),
    ("apps", "StatefulSet", ("spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted"),
     "Retain", "Delete", {}),
    ("apps", "StatefulSet", ("spec", "volumeClaimTemplates", "[]", "spec", "volumeMode"),
     "Filesystem", "Block", {}),
    ("apps", "StatefulSet", ("spec", "volumeClaimTemplates", "[]", "kind"),
     "PersistentVolumeClaim", "Pod", {}),
    ("apps", "DaemonSet", ("spec", "updateStrategy", "rollingUpdate", "maxUnavailable"), 1,
     "10%", {}),
    ("apps", "DaemonSet", ("spec", "updateStrategy", "rollingUpdate", "maxSurge"), 0, 1, {}),
    ("batch", "Job", ("spec", "backoffLimit"), 6, 2, {}),
    ("batch", "Job", ("spec", "backoffLimit"), 2**31 - 1, 6, {"backoffLimitPerIndex": 1}),
    ("batch", "Job", ("spec", "completions"), 1, 5, {"parallelism": 1}),
    ("batch", "Job", ("spec", "parallelism"), 1, 4, {}),
    ("batch", "Job", ("spec", "completionMode"), "NonIndexed", "Indexed", {}),
    ("batch", "Job", ("spec", "suspend"), False, True, {}),
    ("batch", "Job", ("spec", "manualSelector"), False, True, {}),
    ("batch", "Job", ("spec", "podReplacementPolicy"), "TerminatingOrFailed", "Failed", {}),
    ("batch", "Job", ("spec", "podReplacementPolicy"), "Failed", "TerminatingOrFailed",
     {"podFailurePolicy": {"rules": [{"action": "FailJob"}]}}),
    ("batch", "Job", ("spec", "template", "metadata", "labels", "job-name"), "migrate", None,
     {}),
    ("batch", "CronJob", ("spec", "concurrencyPolicy"), "Allow", "Forbid", {}),
    ("batch", "CronJob", ("spec", "successfulJobsHistoryLimit"), 3, 1, {}),
    ("batch", "CronJob", ("spec", "failedJobsHistoryLimit"), 1, 0, {}),
    ("batch", "CronJob", ("spec", "suspend"), False, True, {}),
    ("", "Service", ("spec", "type"), "ClusterIP", "NodePort", {}),
    ("", "Service", ("spec", "sessionAffinity"), "None", "ClientIP", {}),
    ("", "Service", ("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"), 10800,
     600, {}),
    ("", "Service", ("spec", "ports", "[]", "protocol"), "TCP", "UDP", {"port": 53}),
    ("", "Service", ("spec", "ports", "[]", "targetPort"), 80, 8080, {"port": 80}),
    ("", "Service", ("spec", "ports", "[]", "targetPort"), 80, "80", {"port": 80}),
    ("", "Service", ("spec", "ipFamilyPolicy"), "SingleStack", "PreferDualStack",
     {"type": "ClusterIP"}),
    ("", "Service", ("spec", "externalTrafficPolicy"), "Cluster", "Local", {"type": "NodePort"}),
    ("", "Service", ("spec", "internalTrafficPolicy"), "Cluster", "Local",
     {"type": "ClusterIP"}),
    ("", "Service", ("spec", "allocateLoadBalancerNodePorts"), True, False,
     {"type": "LoadBalancer"}),
    ("", "Namespace", ("spec", "finalizers"), ["kubernetes"], ["kubernetes", "x/y"], {}),
    ("", "PersistentVolumeClaim", ("spec", "volumeMode"), "Filesystem", "Block", {}),
    ("", "Secret", ("type",), "Opaque", "kubernetes.io/tls", {}),
    ("rbac.authorization.k8s.io", "RoleBinding", ("roleRef", "apiGroup"),
     "rbac.authorization.k8s.io", "example.com", {}),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", ("subjects", "[]", "apiGroup"),
     "rbac.authorization.k8s.io", "", {"kind": "User", "name": "jane"}),
    ("rbac.authorization.k8s.io", "RoleBinding", ("subjects", "[]", "apiGroup"), "",
     "rbac.authorization.k8s.io", {"kind": "ServiceAccount", "name": "web"}),
    ("networking.k8s.io", "NetworkPolicy", ("spec", "policyTypes"), ["Ingress"],
     ["Ingress", "Egress"], {"ingress": [{}]}),
    ("networking.k8s.io", "NetworkPolicy", ("spec", "policyTypes"), ["Ingress", "Egress"],
     ["Ingress"], {"egress": [{}]}),
    ("networking.k8s.io", "NetworkPolicy", ("spec", "policyTypes", "[]"), "Ingress", "Egress",
     {"ingress": [{}]}),
    ("networking.k8s.io", "NetworkPolicy", ("spec", "egress", "[]", "ports", "[]", "protocol"),
     "TCP", "SCTP", {"port": 53}),
    ("networking.k8s.io", "IngressClass", ("spec", "parameters", "scope"), "Cluster",
     "Namespace", {}),
    ("autoscaling", "HorizontalPodAutoscaler", ("spec", "minReplicas"), 1, 2, {}),
    ("autoscaling", "HorizontalPodAutoscaler", ("spec", "targetCPUUtilizationPercentage"), 80,
     50, {}),
    ("autoscaling", "HorizontalPodAutoscaler", ("spec", "behavior", "scaleUp", "selectPolicy"),
     "Max", "Min", {}),
    ("autoscaling", "HorizontalPodAutoscaler",
     ("spec", "behavior", "scaleUp", "stabilizationWindowSeconds"), 0, 60, {}),
    ("autoscaling", "HorizontalPodAutoscaler", ("spec", "metrics"),
     [{"type": "Resource", "resource": {"name": "cpu",
                                        "target": {"type": "Utilization",
                                                   "averageUtilization": 80}}}],
     [{"type": "Resource", "resource": {"name": "cpu",
                                        "target": {"type": "Utilization",
                                                   "averageUtilization": 60}}}], {}),
    ("", "LimitRange", ("spec", "limits", "[]", "default"), {"cpu": "1"}, {"cpu": "2"},
     {"type": "Container", "max": {"cpu": "1"}}),
    ("scheduling.k8s.io", "PriorityClass", ("preemptionPolicy",), "PreemptLowerPriority",
     "Never", {}),
    ("storage.k8s.io", "StorageClass", ("volumeBindingMode",), "Immediate",
     "WaitForFirstConsumer", {}),
    ("apps", "Deployment", ("spec", "template", "spec", "serviceAccount"), "web", "other",
     {"serviceAccountName": "web"}),
    ("apps", "Deployment", ("spec", "template", "spec", "serviceAccountName"), "web", "other",
     {"serviceAccount": "web"}),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration",
     ("webhooks", "[]", "timeoutSeconds"), 10, 30, {}),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration",
     ("webhooks", "[]", "failurePolicy"), "Fail", "Ignore", {}),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration",
     ("webhooks", "[]", "namespaceSelector"), {}, {"matchLabels": {"a": "b"}}, {}),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration",
     ("webhooks", "[]", "reinvocationPolicy"), "Never", "IfNeeded", {}),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration",
     ("webhooks", "[]", "rules", "[]", "scope"), "*", "Namespaced", {}),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration",
     ("webhooks", "[]", "clientConfig", "service", "port"), 443, 8443, {}),
    ("apiextensions.k8s.io", "CustomResourceDefinition", ("spec", "names", "singular"),
     "widget", "gadget", {"kind": "Widget", "plural": "widgets"}),
    ("apiextensions.k8s.io", "CustomResourceDefinition", ("spec", "names", "listKind"),
     "WidgetList", "Widgets", {"kind": "Widget", "plural": "widgets"}),
    ("apiextensions.k8s.io", "CustomResourceDefinition", ("spec", "conversion", "strategy"),
     "None", "Webhook", {}),
]


@pytest.mark.parametrize(("group", "kind", "path", "default", "other", "parent"), KIND_CASES,
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else None)
def test_kind_defaults(group: str, kind: str, path: tuple[str, ...], default: Any, other: Any,
                       parent: dict[str, Any]) -> None:
    assert is_server_default(group, kind, path, default, parent)
    if other is not None:
        assert not is_server_default(group, kind, path, other, parent)


@pytest.mark.parametrize(("group", "kind", "path"), [
    ("", "Service", ("spec", "clusterIP")),
    ("", "Service", ("spec", "clusterIPs")),
    ("", "Service", ("spec", "ipFamilies")),
    ("", "Service", ("spec", "ports", "[]", "nodePort")),
    ("", "Service", ("spec", "healthCheckNodePort")),
    ("", "PersistentVolumeClaim", ("spec", "volumeName")),
    ("", "PersistentVolumeClaim", ("metadata", "annotations", "pv.kubernetes.io/bind-completed")),
    ("", "PersistentVolumeClaim",
     ("metadata", "annotations", "volume.kubernetes.io/storage-provisioner")),
    ("", "Namespace", ("metadata", "labels", "kubernetes.io/metadata.name")),
    ("", "ServiceAccount", ("secrets",)),
    ("", "ServiceAccount", ("secrets", "[]", "name")),
    ("apps", "Deployment", ("metadata", "annotations", "deployment.kubernetes.io/revision")),
    ("apps", "StatefulSet", ("spec", "volumeClaimTemplates", "[]", "status")),
    ("batch", "Job", ("spec", "selector", "matchLabels", "batch.kubernetes.io/controller-uid")),
    ("batch", "Job", ("metadata", "labels", "controller-uid")),
    ("networking.k8s.io", "Ingress", ("spec", "ingressClassName")),
    ("example.com", "Widget", ("status",)),
    ("example.com", "Widget", ("metadata", "managedFields")),
])
def test_server_populated_values_are_defaults_whatever_they_are(
        group: str, kind: str, path: tuple[str, ...]) -> None:
    for value in ("10.96.0.1", 31000, ["IPv4"], {"phase": "Pending"}):
        assert is_server_default(group, kind, path, value, {})


def test_populated_values_stay_specific_to_their_kind() -> None:
    assert not is_server_default("apps", "Deployment", ("spec", "clusterIP"), "10.0.0.1", {})
    assert not is_server_default("", "ConfigMap", ("metadata", "annotations",
                                                   "pv.kubernetes.io/bind-completed"), "yes", {})
    assert not is_server_default("example.com", "Widget", ("spec", "replicas"), 1, {})


def test_conditional_service_defaults_depend_on_the_service() -> None:
    path = ("spec", "externalTrafficPolicy")
    assert not is_server_default("", "Service", path, "Cluster", {"type": "ClusterIP"})
    assert is_server_default("", "Service", path, "Cluster",
                             {"type": "ClusterIP", "externalIPs": ["203.0.113.5"]})
    assert not is_server_default("", "Service", ("spec", "internalTrafficPolicy"), "Cluster",
                                 {"type": "ExternalName"})
    assert not is_server_default("", "Service", ("spec", "allocateLoadBalancerNodePorts"), True,
                                 {"type": "NodePort"})
    assert not is_server_default("", "Service", ("spec", "ports", "[]", "targetPort"), "http",
                                 {"port": 80})
    assert is_server_default("", "Service", ("spec", "ipFamilyPolicy"), "RequireDualStack",
                             {"clusterIP": "None"})
    assert not is_server_default("", "Service", ("spec", "ipFamilyPolicy"), "RequireDualStack",
                                 {"clusterIP": "None", "selector": {"app": "db"}})


def test_job_selector_is_generated_only_without_manual_selector() -> None:
    selector = {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}
    assert is_server_default("batch", "Job", ("spec", "selector"), selector, {})
    custom = {"matchLabels": {"app": "x"}}
    assert not is_server_default("batch", "Job", ("spec", "selector"), custom,
                                 {"manualSelector": True})


def test_hpa_behavior_policies_are_defaults_only_as_the_default_items() -> None:
    item = {"type": "Pods", "value": 4, "periodSeconds": 15}
    path = ("spec", "behavior", "scaleUp", "policies", "[]", "value")
    assert is_server_default("autoscaling", "HorizontalPodAutoscaler", path, 4, item)
    changed = {"type": "Pods", "value": 8, "periodSeconds": 15}
    assert not is_server_default("autoscaling", "HorizontalPodAutoscaler", path, 8, changed)


def test_clusterrole_rules_are_the_controller_s_only_when_aggregated() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    assert is_server_default("rbac.authorization.k8s.io", "ClusterRole", ("rules",), rules,
                             {"aggregationRule": {"clusterRoleSelectors": [{}]}})
    assert not is_server_default("rbac.authorization.k8s.io", "ClusterRole", ("rules",), rules,
                                 {})


def test_empty_containers_are_defaults_only_where_the_server_writes_them() -> None:
    assert not is_server_default("apps", "Deployment", ("spec", "template", "spec", "affinity"),
                                 {}, {})
    assert not is_server_default("apps", "Deployment", ("spec", "template", "spec",
                                                        "tolerations"), [], {})


def test_job_labels_copied_from_the_template_count_only_as_a_whole() -> None:
    labels = {"app": "migrate", "job-name": "migrate"}
    assert is_server_default("batch", "Job", ("metadata", "labels"), labels,
                             {"name": "migrate"})
    # Once Git declares some labels the server copies nothing: a further label is someone's.
    assert not is_server_default("batch", "Job", ("metadata", "labels", "app"), "migrate",
                                 labels)
    assert is_server_default("batch", "Job", ("metadata", "labels", "job-name"), "migrate",
                             labels)


def test_replication_controller_selector_defaults_to_the_template_labels() -> None:
    spec = {"template": {"metadata": {"labels": {"app": "old"}}}}
    assert is_server_default("", "ReplicationController", ("spec", "selector"),
                             {"app": "old"}, spec)
    assert not is_server_default("", "ReplicationController", ("spec", "selector"),
                                 {"app": "other"}, spec)


def test_token_controller_data_counts_only_on_token_secrets() -> None:
    data = {"ca.crt": "hmac-sha256:1", "namespace": "hmac-sha256:2", "token": "hmac-sha256:3"}
    assert is_server_default("", "Secret", ("data",), data,
                             {"type": "kubernetes.io/service-account-token"})
    assert not is_server_default("", "Secret", ("data",), data, {"type": "Opaque"})


def test_deletion_finalizers_are_the_garbage_collector_s_on_every_kind() -> None:
    path = ("metadata", "finalizers", "[]")
    for group, kind in [("apps", "Deployment"), ("", "Service"), ("example.com", "Widget"),
                        ("", "PersistentVolumeClaim")]:
        assert is_server_default(group, kind, path, "foregroundDeletion", {})
        assert not is_server_default(group, kind, path, "example.com/cleanup", {})
    assert is_server_default("", "PersistentVolumeClaim", path, "kubernetes.io/pvc-protection",
                             {})
    assert not is_server_default("apps", "Deployment", path, "kubernetes.io/pvc-protection", {})


def test_hpa_v1_status_annotations_are_the_server_s() -> None:
    for name in ("autoscaling.alpha.kubernetes.io/conditions",
                 "autoscaling.alpha.kubernetes.io/current-metrics"):
        assert is_server_default("autoscaling", "HorizontalPodAutoscaler",
                                 ("metadata", "annotations", name), "[]", {})


def test_predicate_is_fast() -> None:
    import time
    path = ("spec", "template", "spec", "containers", "[]", "imagePullPolicy")
    other = ("spec", "template", "spec", "containers", "[]", "image")
    parent = {"image": "shop/web:1.4.2"}
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        is_server_default("apps", "Deployment", path, "IfNotPresent", parent)
        is_server_default("apps", "Deployment", other, "shop/web:1.4.2", parent)
    per_call = (time.perf_counter() - start) / (2 * n)
    assert per_call < 20e-6, f"{per_call * 1e6:.1f} µs per call"


def test_predicate_never_fails_on_odd_shapes() -> None:
    import random
    rng = random.Random(7)
    scalars: tuple[Any, ...] = ("", "x", 0, 1, True, None, "TCP", "nginx", 80)
    names = ("spec", "template", "containers", "[]", "ports", "targetPort", "port", "image",
             "imagePullPolicy", "metrics", "policyTypes", "egress", "selector", "data", "type",
             "metadata", "labels", "finalizers", "behavior", "scaleUp", "policies", "max", "min",
             "default", "defaultRequest", "limits", "dataSource", "dataSourceRef", "template",
             "parallelism", "backoffLimitPerIndex", "podFailurePolicy", "clusterIP")

    def tree(depth: int) -> Any:
        roll = rng.random()
        if depth == 0 or roll < 0.4:
            return rng.choice(scalars)
        if roll < 0.7:
            return {rng.choice(names): tree(depth - 1) for _ in range(rng.randint(0, 3))}
        return [tree(depth - 1) for _ in range(rng.randint(0, 3))]

    for group, kind in covered_kinds():
        for _ in range(200):
            path = tuple(rng.choice(names) for _ in range(rng.randint(1, 7)))
            parent = tree(2)
            is_server_default(group, kind, path, tree(3), parent if isinstance(parent, dict) else {})
    # Malformed siblings the conditional rules read must not raise either.
    assert not is_server_default("", "LimitRange", ("spec", "limits", "[]", "default"),
                                 {"cpu": "1"}, {"type": "Container", "max": "x"})
    assert not is_server_default("", "LimitRange", ("spec", "limits", "[]", "defaultRequest"),
                                 {"cpu": "1"}, {"type": "Container", "default": ["x"]})
    assert not is_server_default("", "ReplicationController", ("spec", "selector"), {"a": "b"},
                                 {"template": "x"})


def _perturbed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    return None


@pytest.mark.parametrize("kind", covered_kinds(), ids=lambda gk: gk[1])
def test_every_constant_default_in_the_table_is_recognised_and_only_it(
        kind: tuple[str, str]) -> None:
    from auditor.engine.defaults import eq, one_of, table
    checked = 0
    for path, rule in table(*kind):
        values = (rule.expected,) if isinstance(rule, eq) else \
            rule.allowed if isinstance(rule, one_of) else ()
        for value in values:
            assert is_server_default(*kind, path, value, {}), (path, value)
            other = _perturbed(value)
            if other is not None and other not in values:
                assert not is_server_default(*kind, path, other, {}), (path, other)
            # Same value, other type: "30" is not 30, 1 is not True.
            if isinstance(value, int) and not isinstance(value, bool):
                assert not is_server_default(*kind, path, str(value), {}), path
            checked += 1
    assert checked > 0
