"""Server-side defaulting, written from kube-apiserver's own defaulters.

Sources: ``pkg/apis/core/v1/defaults.go``, ``pkg/apis/apps/v1/defaults.go``,
``pkg/apis/batch/v1/defaults.go``, ``pkg/apis/rbac/v1/defaults.go``,
``pkg/apis/autoscaling/v2/defaults.go`` and the registry strategies that allocate
Service IPs / node ports and generate Job selectors. Defaulting runs on every create and
update, as decoding a request does on a real server, so it must be idempotent.

Kept separate from the drift engine's notion of "server defaults" on purpose.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from auditor.sandbox.quantity import canonical, canonical_list

Obj = dict[str, Any]


class Allocator:
    """Hands out ClusterIPs from 10.96.0.0/12 and node ports from 30000-32767."""

    def __init__(self) -> None:
        self._next_ip = 10  # 10.96.0.1 is the kubernetes Service, .10 is usually DNS
        self._next_port = 30000
        self.used_ips: set[str] = set()
        self.used_ports: set[int] = set()

    def cluster_ip(self) -> str:
        while True:
            n = self._next_ip
            self._next_ip += 1
            ip = f"10.{96 + (n >> 16) % 16}.{(n >> 8) & 255}.{n & 255}"
            if n & 255 not in (0, 255) and ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip

    def node_port(self) -> int:
        while True:
            port = self._next_port
            self._next_port = 30000 + (self._next_port - 30000 + 1) % 2768
            if port not in self.used_ports:
                self.used_ports.add(port)
                return port


def _setdefault(d: Obj, key: str, value: Any) -> None:
    if d.get(key) is None:
        d[key] = value


def _probe(p: Any) -> None:
    if not isinstance(p, dict):
        return
    for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                 ("failureThreshold", 3)):
        _setdefault(p, k, v)
    for action in ("httpGet",):
        if isinstance(p.get(action), dict):
            _setdefault(p[action], "path", "/")
            _setdefault(p[action], "scheme", "HTTP")


def _resource_requirements(res: Any) -> None:
    if isinstance(res, dict):
        canonical_list(res.get("limits"))
        canonical_list(res.get("requests"))


def _image_pull_policy(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.split(":", 1)[1] if ":" in name else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container(c: Any) -> None:
    if not isinstance(c, dict):
        return
    _setdefault(c, "terminationMessagePath", "/dev/termination-log")
    _setdefault(c, "terminationMessagePolicy", "File")
    if isinstance(c.get("image"), str):
        _setdefault(c, "imagePullPolicy", _image_pull_policy(c["image"]))
    _setdefault(c, "resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            _setdefault(port, "protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            _setdefault(ref, "apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(probe))


def pod_spec(spec: Any) -> None:
    """PodSpec defaults (``SetDefaults_PodSpec`` and friends)."""
    if not isinstance(spec, dict):
        return
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    _setdefault(spec, "restartPolicy", "Always")
    _setdefault(spec, "schedulerName", "default-scheduler")
    _setdefault(spec, "securityContext", {})
    _setdefault(spec, "terminationGracePeriodSeconds", 30)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            _container(c)
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(vol.get(source), dict):
                _setdefault(vol[source], "defaultMode", 420)
        if isinstance(vol.get("projected"), dict):
            _setdefault(vol["projected"], "defaultMode", 420)
            for source in vol["projected"].get("sources") or []:
                token = source.get("serviceAccountToken") if isinstance(source, dict) else None
                if isinstance(token, dict):
                    _setdefault(token, "expirationSeconds", 3600)
        if isinstance(vol.get("downwardAPI"), dict):
            _setdefault(vol["downwardAPI"], "defaultMode", 420)

        if isinstance(vol.get("hostPath"), dict):
            _setdefault(vol["hostPath"], "type", "")
        sources = {"configMap", "secret", "emptyDir", "persistentVolumeClaim", "hostPath",
                   "projected", "downwardAPI", "csi", "nfs", "ephemeral", "image"}
        if not any(k in vol for k in sources):
            vol["emptyDir"] = {}


def _template(spec: Obj) -> None:
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        pod_spec(tmpl.get("spec"))


def _deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "replicas", 1)
    _setdefault(spec, "revisionHistoryLimit", 10)
    _setdefault(spec, "progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        _setdefault(ru, "maxUnavailable", "25%")
        _setdefault(ru, "maxSurge", "25%")
    _template(spec)


def _statefulset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "replicas", 1)
    _setdefault(spec, "podManagementPolicy", "OrderedReady")
    _setdefault(spec, "revisionHistoryLimit", 10)
    us = spec.setdefault("updateStrategy", {})
    _setdefault(us, "type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        ru = us.setdefault("rollingUpdate", {})
        _setdefault(ru, "partition", 0)
    policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    _setdefault(policy, "whenDeleted", "Retain")
    _setdefault(policy, "whenScaled", "Retain")
    for pvc in spec.get("volumeClaimTemplates") or []:
        if isinstance(pvc, dict):
            _setdefault(pvc, "apiVersion", "v1")
            _setdefault(pvc, "kind", "PersistentVolumeClaim")
            _setdefault(pvc.setdefault("spec", {}), "volumeMode", "Filesystem")
            _setdefault(pvc, "status", {"phase": "Pending"})
    _template(spec)


def _daemonset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "revisionHistoryLimit", 10)
    us = spec.setdefault("updateStrategy", {})
    _setdefault(us, "type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        ru = us.setdefault("rollingUpdate", {})
        _setdefault(ru, "maxUnavailable", 1)
        _setdefault(ru, "maxSurge", 0)
    _template(spec)


def _replicaset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "replicas", 1)
    _template(spec)


def _job_spec(spec: Obj, uid: str | None, name: str | None) -> None:
    _setdefault(spec, "parallelism", 1)
    _setdefault(spec, "completions", 1)
    _setdefault(spec, "backoffLimit", 6)
    _setdefault(spec, "completionMode", "NonIndexed")
    _setdefault(spec, "suspend", False)
    _setdefault(spec, "podReplacementPolicy", "TerminatingOrFailed")
    tmpl = spec.setdefault("template", {})
    if uid is not None and not spec.get("manualSelector"):
        # batch's PrepareForCreate: the selector is generated from the Job's own uid
        labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", name or "")
        labels.setdefault("controller-uid", uid)
        labels.setdefault("job-name", name or "")
        _setdefault(spec, "selector",
                    {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    pod_spec(tmpl.get("spec"))


def _job(obj: Obj, creating: bool) -> None:
    meta = obj.get("metadata") or {}
    spec = obj.setdefault("spec", {})
    # Idempotent on update: the labels and selector derive from the unchanging uid.
    _job_spec(spec, meta.get("uid"), meta.get("name"))


def _cronjob(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "concurrencyPolicy", "Allow")
    _setdefault(spec, "suspend", False)
    _setdefault(spec, "successfulJobsHistoryLimit", 3)
    _setdefault(spec, "failedJobsHistoryLimit", 1)
    jt = spec.setdefault("jobTemplate", {})
    jspec = jt.setdefault("spec", {})
    # SetDefaults_Job is registered for Job, not JobSpec: a job template keeps only the
    # pod template defaults until the controller creates the Job.
    pod_spec((jspec.get("template") or {}).get("spec"))


def _service(obj: Obj, alloc: Allocator, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    _setdefault(spec, "type", "ClusterIP")
    _setdefault(spec, "sessionAffinity", "None")
    stype = spec["type"]
    if stype != "ExternalName":
        if spec.get("clusterIP") is None and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        if spec.get("clusterIP") in (None, ""):
            spec["clusterIP"] = alloc.cluster_ip()
        _setdefault(spec, "clusterIPs", [spec["clusterIP"]])
        if spec["clusterIP"] != "None":
            _setdefault(spec, "ipFamilies", ["IPv4"])
            _setdefault(spec, "ipFamilyPolicy", "SingleStack")
        else:
            _setdefault(spec, "ipFamilies", ["IPv4"])
            _setdefault(spec, "ipFamilyPolicy", "SingleStack")
        _setdefault(spec, "internalTrafficPolicy", "Cluster")
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p
                 for p in old_spec.get("ports") or [] if isinstance(p, dict)}
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        _setdefault(port, "protocol", "TCP")
        _setdefault(port, "targetPort", port.get("port"))
        if stype in ("NodePort", "LoadBalancer") and port.get("nodePort") is None:
            previous = old_ports.get((port.get("port"), port["protocol"]), {}).get("nodePort")
            port["nodePort"] = previous or alloc.node_port()
    if stype in ("NodePort", "LoadBalancer"):
        _setdefault(spec, "externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        _setdefault(spec, "allocateLoadBalancerNodePorts", True)
    obj.setdefault("status", {"loadBalancer": {}})


def _secret(obj: Obj) -> None:
    _setdefault(obj, "type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _namespace(obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    _setdefault(status, "phase", "Active")


def _pvc(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "volumeMode", "Filesystem")
    status = obj.setdefault("status", {})
    _setdefault(status, "phase", "Pending")


def _limit_range(obj: Obj) -> None:
    for item in (obj.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "Container":
            # SetDefaults_LimitRangeItem: default from max, defaultRequest from default/min
            default = item.setdefault("default", {})
            for k, v in (item.get("max") or {}).items():
                default.setdefault(k, v)
            request = item.setdefault("defaultRequest", {})
            for k, v in {**(item.get("min") or {}), **default}.items():
                request.setdefault(k, v)


def _node(obj: Obj) -> None:
    status = obj.setdefault("status", {})
    if status.get("capacity") and not status.get("allocatable"):
        status["allocatable"] = dict(status["capacity"])


def _pv(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "persistentVolumeReclaimPolicy", "Retain")
    _setdefault(spec, "volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _rbac_binding(obj: Obj) -> None:
    for s in obj.get("subjects") or []:
        if isinstance(s, dict) and s.get("kind") in ("User", "Group"):
            _setdefault(s, "apiGroup", "rbac.authorization.k8s.io")


def _scaling_rules(rules: Any, window: int, policies: list[Obj]) -> Obj:
    out: Obj = dict(rules) if isinstance(rules, dict) else {}
    _setdefault(out, "stabilizationWindowSeconds", window)
    _setdefault(out, "selectPolicy", "Max")
    if not out.get("policies"):
        out["policies"] = [dict(p) for p in policies]
    return out


def _hpa(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        # SetDefaults_HorizontalPodAutoscalerBehavior: only a given behavior is completed
        behavior["scaleUp"] = _scaling_rules(behavior.get("scaleUp"), 0, [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}])
        behavior["scaleDown"] = _scaling_rules(behavior.get("scaleDown"), 300, [
            {"type": "Percent", "value": 100, "periodSeconds": 15}])


def _pdb(obj: Obj) -> None:
    obj.setdefault("status", {}).update({k: v for k, v in {
        "currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0,
        "expectedPods": 0, "observedGeneration": 0}.items()
        if k not in (obj.get("status") or {})})


def _pod(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    # SetDefaults_Pod (not PodSpec: templates keep their own): requests default to limits
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            res = c.get("resources") if isinstance(c, dict) else None
            if isinstance(res, dict) and isinstance(res.get("limits"), dict):
                requests = res.setdefault("requests", {})
                for name, value in res["limits"].items():
                    requests.setdefault(name, value)

    _setdefault(spec, "enableServiceLinks", True)
    obj.setdefault("status", {}).setdefault("phase", "Pending")
    obj["status"].setdefault("qosClass", _qos_class(spec))


def _qos_class(spec: Obj) -> str:
    """qos.GetPodQOS, comparing quantities as written (the sandbox does not parse them)."""
    containers = [c for key in ("containers", "initContainers") for c in spec.get(key) or []
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if any(k in requests or k in limits for k in ("cpu", "memory")):
            any_set = True
        if not all(k in limits and requests.get(k, limits[k]) == limits[k]
                   for k in ("cpu", "memory")):
            guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if any_set else "BestEffort"


def _ingress(obj: Obj) -> None:
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _networkpolicy(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _priorityclass(obj: Obj) -> None:
    _setdefault(obj, "preemptionPolicy", "PreemptLowerPriority")


def _storageclass(obj: Obj) -> None:
    _setdefault(obj, "reclaimPolicy", "Delete")
    _setdefault(obj, "volumeBindingMode", "Immediate")


def _crd(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        _setdefault(names, "listKind", names["kind"] + "List")
        _setdefault(names, "singular", names["kind"].lower())
    _setdefault(spec, "conversion", {"strategy": "None"})
    status = obj.setdefault("status", {})
    status["acceptedNames"] = {k: v for k, v in names.items()}
    status["storedVersions"] = [v.get("name") for v in spec.get("versions") or []
                                if isinstance(v, dict) and v.get("storage")]
    status.setdefault("conditions", [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found"},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted"}])


def _webhooks(obj: Obj) -> None:
    for hook in obj.get("webhooks") or []:
        if not isinstance(hook, dict):
            continue
        _setdefault(hook, "failurePolicy", "Fail")
        _setdefault(hook, "matchPolicy", "Equivalent")
        _setdefault(hook, "namespaceSelector", {})
        _setdefault(hook, "objectSelector", {})
        _setdefault(hook, "timeoutSeconds", 10)
        if obj.get("kind") == "MutatingWebhookConfiguration":
            _setdefault(hook, "reinvocationPolicy", "Never")
        svc = (hook.get("clientConfig") or {}).get("service")
        if isinstance(svc, dict):
            _setdefault(svc, "port", 443)
        for rule in hook.get("rules") or []:
            if isinstance(rule, dict):
                _setdefault(rule, "scope", "*")


_SIMPLE: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("batch", "CronJob"): _cronjob,
    ("", "Secret"): _secret,
    ("", "Namespace"): _namespace,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "PersistentVolume"): _pv,
    ("", "Pod"): _pod,
    ("", "LimitRange"): _limit_range,
    ("", "Node"): _node,
    ("rbac.authorization.k8s.io", "RoleBinding"): _rbac_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _rbac_binding,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("policy", "PodDisruptionBudget"): _pdb,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("networking.k8s.io", "NetworkPolicy"): _networkpolicy,
    ("scheduling.k8s.io", "PriorityClass"): _priorityclass,
    ("storage.k8s.io", "StorageClass"): _storageclass,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _webhooks,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _webhooks,
}


def _pod_specs(kind: str, obj: Obj) -> list[Obj]:
    spec: Obj = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    if kind == "Pod":
        found: Any = spec
    elif kind == "PodTemplate":
        found = (obj.get("template") or {}).get("spec")
    elif kind == "CronJob":
        found = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec")
    else:
        found = (spec.get("template") or {}).get("spec")
    return [found] if isinstance(found, dict) else []


def canonicalize_quantities(group: str, kind: str, obj: Obj) -> None:
    """Rewrite every resource quantity of a built-in object in its canonical form.

    Run as part of defaulting and on server-side apply configurations, because the real
    server compares parsed quantities: applying ``cpu: 0.5`` over a stored ``500m``
    changes nothing and conflicts with nobody.
    """
    for ps in _pod_specs(kind, obj):
        canonical_list(ps.get("overhead"))
        _resource_requirements(ps.get("resources"))
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for c in ps.get(key) or []:
                if isinstance(c, dict):
                    _resource_requirements(c.get("resources"))
        for vol in ps.get("volumes") or []:
            empty = vol.get("emptyDir") if isinstance(vol, dict) else None
            if isinstance(empty, dict) and "sizeLimit" in empty:
                empty["sizeLimit"] = canonical(empty["sizeLimit"])
    spec: Obj = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    status: Obj = obj["status"] if isinstance(obj.get("status"), dict) else {}
    if kind == "PersistentVolumeClaim":
        _resource_requirements(spec.get("resources"))
        canonical_list(status.get("capacity"))
        canonical_list(status.get("allocatedResources"))
    elif kind == "StatefulSet":
        for pvc in spec.get("volumeClaimTemplates") or []:
            if isinstance(pvc, dict):
                _resource_requirements((pvc.get("spec") or {}).get("resources"))
    elif kind == "PersistentVolume":
        canonical_list(spec.get("capacity"))
    elif kind == "ResourceQuota":
        canonical_list(spec.get("hard"))
        canonical_list(status.get("hard"))
        canonical_list(status.get("used"))
    elif kind == "LimitRange":
        for item in spec.get("limits") or []:
            if isinstance(item, dict):
                for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                    canonical_list(item.get(key))
    elif kind == "Node":
        canonical_list(status.get("capacity"))
        canonical_list(status.get("allocatable"))
    elif kind == "HorizontalPodAutoscaler":
        for metric in spec.get("metrics") or []:
            for source in (metric or {}).values():
                target = source.get("target") if isinstance(source, dict) else None
                if isinstance(target, dict):
                    for key in ("value", "averageValue"):
                        if key in target:
                            target[key] = canonical(target[key])


def apply_defaults(group: str, kind: str, obj: Obj, alloc: Allocator, *, creating: bool,
                   old: Obj | None = None) -> None:
    """Default ``obj`` in place as the API server would on create/update."""
    _apply_defaults(group, kind, obj, alloc, creating=creating, old=old)
    canonicalize_quantities(group, kind, obj)


def _apply_defaults(group: str, kind: str, obj: Obj, alloc: Allocator, *, creating: bool,
                    old: Obj | None = None) -> None:
    if (group, kind) == ("batch", "Job"):
        _job(obj, creating)
    elif (group, kind) == ("", "Service"):
        _service(obj, alloc, old)
    elif (group, kind) == ("", "PodTemplate"):
        pod_spec((obj.get("template") or {}).get("spec"))
    else:
        fn = _SIMPLE.get((group, kind))
        if fn is not None:
            fn(obj)


def read_defaults(group: str, kind: str, obj: Obj) -> None:
    """Defaults the server applies when it decodes an object from storage.

    SetDefaults_Job copies the pod template's labels to a Job without labels; at create
    time the template has no generated labels yet, so on a real cluster they appear on
    the Job only when it is read back, and belong to no field manager.
    """
    if (group, kind) == ("batch", "Job"):
        meta = obj.setdefault("metadata", {})
        tmpl_labels = ((obj.get("spec") or {}).get("template") or {}).get(
            "metadata", {}).get("labels")
        if tmpl_labels and not meta.get("labels"):
            meta["labels"] = dict(tmpl_labels)


def admit_create(group: str, kind: str, obj: Obj) -> None:
    """Mutating admission on create: after defaulting *and* after the field manager.

    kube-apiserver records managedFields before admission mutates, so these fields belong
    to nobody. StorageObjectInUseProtection puts the protection finalizer on every PVC and
    PV; Pods get their service account, priority and not-ready/unreachable tolerations.
    """
    if (group, kind) == ("", "Pod"):
        spec = obj.setdefault("spec", {})
        # ServiceAccount, Priority and DefaultTolerationSeconds admission plugins
        _setdefault(spec, "serviceAccountName", "default")
        _setdefault(spec, "serviceAccount", spec["serviceAccountName"])
        _setdefault(spec, "preemptionPolicy", "PreemptLowerPriority")
        _setdefault(spec, "priority", 0)
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(isinstance(t, dict) and t.get("key") == key for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
    finalizer = {("", "PersistentVolumeClaim"): "kubernetes.io/pvc-protection",
                 ("", "PersistentVolume"): "kubernetes.io/pv-protection"}.get((group, kind))
    if finalizer:
        finalizers = obj.setdefault("metadata", {}).setdefault("finalizers", [])
        if finalizer not in finalizers:
            finalizers.append(finalizer)
