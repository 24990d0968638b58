"""A passing and a failing example for every shipped policy.

Each example starts from a hardened object that passes every policy and changes one thing:
the failing example shows what the policy catches, the passing one what it accepts.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


def hardened_pod_spec() -> Obj:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "web", "image": "ghcr.io/shop/web:1.4.2",
            "ports": [{"containerPort": 8080}],
            "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "500m", "memory": "256Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        }],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


LABELS = {"app.kubernetes.io/name": "web", "owner": "team-shop"}


def deployment(namespace: str = "shop", name: str = "web") -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": hardened_pod_spec()}}}


def cronjob() -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "shop", "labels": dict(LABELS)},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
                "spec": {**hardened_pod_spec(), "restartPolicy": "OnFailure"}}}}}}


def pod() -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "shop", "labels": dict(LABELS)},
            "spec": hardened_pod_spec()}


def namespace(name: str = "shop") -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {**LABELS, "app.kubernetes.io/name": name}}}


def network_policy(namespace: str = "shop") -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def service(type_: str = "ClusterIP") -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "labels": dict(LABELS)},
            "spec": {"type": type_, "selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": 8080}]}}


def ingress(tls: bool = True) -> Obj:
    spec: Obj = {"rules": [{"host": "shop.example.com", "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": spec}


def role(rules: list[Obj], kind: str = "Role") -> Obj:
    meta: Obj = {"name": "reader"}
    if kind == "Role":
        meta["namespace"] = "shop"
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "rules": rules}


def binding(role_name: str, name: str = "ops-admins") -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role_name},
            "subjects": [{"kind": "Group", "name": "ops",
                          "apiGroup": "rbac.authorization.k8s.io"}]}


def container(obj: Obj) -> Obj:
    """The first container of a hardened workload, to edit in place."""
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        return spec["containers"][0]  # type: ignore[no-any-return]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]
    return spec["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def pod_spec(obj: Obj) -> Obj:
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        return spec  # type: ignore[no-any-return]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def _with(base: Obj, edit: Any) -> Obj:
    obj = copy.deepcopy(base)
    edit(obj)
    return obj


def _set(path: str, value: Any, where: str = "container") -> Any:
    def edit(obj: Obj) -> None:
        target = container(obj) if where == "container" else pod_spec(obj)
        *parents, last = path.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    return edit


def _del(path: str, where: str = "container") -> Any:
    def edit(obj: Obj) -> None:
        target = container(obj) if where == "container" else pod_spec(obj)
        *parents, last = path.split(".")
        for p in parents:
            target = target[p]
        del target[last]
    return edit


# policy → (passing objects, failing objects, a fragment of the failure message)
EXAMPLES: dict[str, tuple[list[Obj], list[Obj], str]] = {
    "disallow-privileged": (
        [deployment(), _with(pod(), _del("securityContext.privileged"))],
        [_with(deployment(), _set("securityContext.privileged", True)),
         _with(cronjob(), _set("securityContext.privileged", True))],
        "privileged containers: web"),
    "disallow-privilege-escalation": (
        [deployment()],
        [_with(deployment(), _del("securityContext.allowPrivilegeEscalation")),
         _with(pod(), _set("securityContext.allowPrivilegeEscalation", True))],
        "may escalate privileges: web"),
    "require-run-as-non-root": (
        [deployment(), _with(deployment(), _del("securityContext.runAsNonRoot", "pod"))],
        [_with(deployment(), _set("securityContext", {}, "pod")),
         _with(_with(deployment(), _set("securityContext.runAsNonRoot", False)),
               _set("securityContext.runAsUser", 0))],
        "may run as root: web"),
    "disallow-host-network": (
        [deployment(), _with(deployment(), _set("hostNetwork", False, "pod"))],
        [_with(deployment(), _set("hostNetwork", True, "pod"))], "hostNetwork: true"),
    "disallow-host-pid": (
        [deployment()], [_with(deployment(), _set("hostPID", True, "pod"))], "hostPID: true"),
    "disallow-host-ipc": (
        [deployment()], [_with(cronjob(), _set("hostIPC", True, "pod"))], "hostIPC: true"),
    "disallow-host-path": (
        [deployment()],
        [_with(deployment(), _set("volumes", [{"name": "docker",
                                               "hostPath": {"path": "/var/run/docker.sock"}}],
                                  "pod"))],
        "hostPath volumes: docker (/var/run/docker.sock)"),
    "disallow-host-ports": (
        [deployment()],
        [_with(deployment(), _set("ports", [{"containerPort": 80, "hostPort": 80}]))],
        "host ports: web"),
    "disallow-dangerous-capabilities": (
        [deployment(), _with(deployment(), _set("securityContext.capabilities.add",
                                                ["NET_BIND_SERVICE"]))],
        [_with(deployment(), _set("securityContext.capabilities.add",
                                  ["NET_BIND_SERVICE", "SYS_ADMIN"]))],
        "web adds SYS_ADMIN"),
    "require-drop-all-capabilities": (
        [deployment()],
        [_with(deployment(), _set("securityContext.capabilities", {"drop": ["NET_RAW"]}))],
        "do not drop ALL capabilities: web"),
    "require-read-only-root-filesystem": (
        [deployment()],
        [_with(deployment(), _set("securityContext.readOnlyRootFilesystem", False))],
        "writable root filesystem: web"),
    "disallow-latest-tag": (
        [deployment(), _with(deployment(), _set("image", "ghcr.io/shop/web@sha256:" + "a" * 64)),
         _with(deployment(), _set("image", "registry.k8s.io:5000/web:1.0"))],
        [_with(deployment(), _set("image", "ghcr.io/shop/web:latest")),
         _with(deployment(), _set("image", "ghcr.io/shop/web")),
         _with(deployment(), _set("image", "localhost:5000/web"))],
        "images without a pinned tag: web="),
    "restrict-image-registries": (
        [deployment()],
        [_with(deployment(), _set("image", "nginx:1.25")),
         _with(deployment(), _set("image", "evil.example.com/ghcr.io/web:1"))],
        "registries not allowed:"),
    "require-resource-requests": (
        [deployment()],
        [_with(deployment(), _del("resources.requests")),
         _with(deployment(), _set("resources.requests", {"cpu": "100m"}))],
        "without cpu and memory requests: web"),
    "require-resource-limits": (
        [deployment()], [_with(deployment(), _set("resources", {}))],
        "without cpu and memory limits: web"),
    "require-liveness-probe": (
        [deployment()], [_with(deployment(), _del("livenessProbe"))],
        "without a liveness probe: web"),
    "require-readiness-probe": (
        [deployment(), _with(cronjob(), _del("readinessProbe"))],
        [_with(deployment(), _del("readinessProbe"))], "without a readiness probe: web"),
    "disable-automount-service-account-token": (
        [deployment()], [_with(deployment(), _del("automountServiceAccountToken", "pod"))],
        "automounts its service account token"),
    "disallow-wildcard-rbac": (
        [role([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])],
        [role([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], "ClusterRole"),
         role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}])],
        "wildcard rules: verbs="),
    "disallow-secret-access-rbac": (
        [role([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["shop-tls"],
                "verbs": ["get"]}]),
         role([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}])],
        [role([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])],
        "can read Secrets"),
    "disallow-cluster-admin-binding": (
        [binding("view"), binding("cluster-admin", name="system:masters-admin")],
        [binding("cluster-admin")], "binds cluster-admin to Group ops"),
    "disallow-service-loadbalancer": (
        [service()], [service("LoadBalancer")], "of type LoadBalancer"),
    "disallow-service-nodeport": (
        [service(), service("LoadBalancer")], [service("NodePort")], "of type NodePort"),
    "require-ingress-tls": (
        [ingress()],
        [ingress(tls=False),
         _with(ingress(), lambda o: o["spec"]["rules"].append({"host": "admin.example.com"}))],
        ""),
    "require-networkpolicy": (
        [namespace()], [namespace("bare")], "has no NetworkPolicy"),
    "disallow-secrets-in-env": (
        [deployment()],
        [_with(deployment(), _set("env", [{"name": "DB_PASSWORD", "valueFrom": {
            "secretKeyRef": {"name": "db", "key": "password"}}}]))],
        "web/DB_PASSWORD"),
    "disallow-credentials-in-env-values": (
        [deployment(), _with(deployment(), _set("env", [{"name": "LOG_LEVEL", "value": "debug"},
                                                        {"name": "API_TOKEN", "value": ""}]))],
        [_with(deployment(), _set("env", [{"name": "API_TOKEN", "value": "s3cr3t-value"}]))],
        "web/API_TOKEN"),
    "require-ownership-labels": (
        [deployment(), service(), namespace()],
        [_with(deployment(), lambda o: o["metadata"]["labels"].pop("owner"))],
        "missing labels: owner"),
    "require-seccomp-profile": (
        [deployment(), _with(deployment(), _set("securityContext.seccompProfile",
                                                {"type": "Localhost",
                                                 "localhostProfile": "p.json"}))],
        [_with(deployment(), _del("securityContext.seccompProfile", "pod")),
         _with(deployment(), _set("securityContext.seccompProfile", {"type": "Unconfined"}))],
        "seccomp profile"),
    "disallow-default-namespace": (
        [deployment(), {"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "kubernetes", "namespace": "default"},
                        "spec": {"ports": [{"port": 443}]}}],
        [deployment(namespace="default")], "default namespace"),
    "require-replicas-ha": (
        [deployment()], [_with(deployment(), lambda o: o["spec"].pop("replicas"))],
        "replicas: 1 (default)"),
}
