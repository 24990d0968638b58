"""Synthetic but realistic cluster content for benchmarks: a mix of the kinds a real
application namespace holds, in the shape users write them in Git."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

MIX = ("Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount", "Role",
       "RoleBinding", "StatefulSet", "CronJob", "Ingress")


def _labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "bench",
            "team": "platform"}


def make(kind: str, ns: str, i: int) -> dict[str, Any]:
    app = f"app-{i:05d}"
    meta = {"name": app, "namespace": ns, "labels": _labels(app)}
    container = {
        "name": "main", "image": f"registry.example.com/team/{app}:1.{i % 7}.{i % 13}",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "INDEX", "value": str(i)}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
    }
    template = {"metadata": {"labels": {"app.kubernetes.io/name": app}},
                "spec": {"serviceAccountName": app, "containers": [container]}}
    selector = {"matchLabels": {"app.kubernetes.io/name": app}}
    if kind == "Deployment":
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
                "spec": {"replicas": 2, "selector": selector, "template": template}}
    if kind == "StatefulSet":
        return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
                "spec": {"serviceName": app, "replicas": 1, "selector": selector,
                         "template": template,
                         "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                             "accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}]}}
    if kind == "CronJob":
        job_tpl = {"metadata": template["metadata"],
                   "spec": {**template["spec"], "restartPolicy": "OnFailure"}}
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta,
                "spec": {"schedule": f"{i % 60} * * * *",
                         "jobTemplate": {"spec": {"template": job_tpl}}}}
    if kind == "Service":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta,
                "spec": {"selector": {"app.kubernetes.io/name": app},
                         "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    if kind == "ConfigMap":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta,
                "data": {"app.properties": f"index={i}\nfeature.x=true\n", "mode": "prod"}}
    if kind == "Secret":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta, "type": "Opaque",
                "data": {"password": base64.b64encode(f"pw-{i}".encode()).decode()}}
    if kind == "ServiceAccount":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta}
    if kind == "Role":
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
                "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                           "verbs": ["get", "list", "watch"]}]}
    if kind == "RoleBinding":
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app},
                "subjects": [{"kind": "ServiceAccount", "name": app, "namespace": ns}]}
    if kind == "Ingress":
        return {"apiVersion": "networking.k8s.io/v1", "kind": kind, "metadata": meta,
                "spec": {"rules": [{"host": f"{app}.example.com", "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": app, "port": {"number": 80}}}}]}}]}}
    raise ValueError(kind)


def objects(count: int, namespaces: int = 20) -> Iterator[dict[str, Any]]:
    """``count`` objects spread over ``namespaces`` namespaces, kinds in a fixed rotation."""
    for i in range(count):
        yield make(MIX[i % len(MIX)], f"bench-{i % namespaces:02d}", i // len(MIX))



def jobs(count: int, namespaces: int = 20) -> Iterator[dict[str, Any]]:
    """Jobs as the CronJob controller leaves them (owner reference, status): live objects no
    Git repository declares, of a kind audited by default, in the namespaces of
    :func:`objects`. (Pods and ReplicaSets, the bulk of a real cluster, are not even listed
    by default.)"""
    for i in range(count):
        app = f"app-{i // 10:05d}"
        name = f"{app}-{29000000 + i}"
        yield {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": name, "namespace": f"bench-{i % namespaces:02d}",
                "labels": {"app.kubernetes.io/name": app},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": app,
                                     "uid": f"cj-{i // 10:08d}", "controller": True,
                                     "blockOwnerDeletion": True}]},
            "spec": {"backoffLimit": 6, "completions": 1, "parallelism": 1,
                     "template": {"metadata": {"labels": {"job-name": name}}, "spec": {
                         "restartPolicy": "OnFailure", "containers": [{
                             "name": "main", "image": f"registry.example.com/team/{app}:1.0",
                             "args": ["--once"]}]}}},
            "status": {"succeeded": 1, "startTime": "2026-11-25T10:00:00Z",
                       "completionTime": "2026-11-25T10:00:42Z"},
        }
