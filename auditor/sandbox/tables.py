"""Server-side printing: ``meta.k8s.io/v1`` Tables for ``kubectl get`` without ``-o``.

Columns follow kube-apiserver's printers (``pkg/printers/internalversion/printers.go``) for
the common kinds; other kinds and custom resources without ``additionalPrinterColumns``
get Name and Age (Created At for CRDs), as on a real server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, str]  # name, type, format
Printer = Callable[[Obj], list[Any]]


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery ``duration.HumanDuration``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _age(obj: Obj) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return human_duration((dt.datetime.now(dt.UTC) - created).total_seconds())


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _ports(svc: Obj) -> str:
    parts = []
    for p in _spec(svc).get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        parts.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _external_ip(svc: Obj) -> str:
    spec = _spec(svc)
    ips = list(spec.get("externalIPs") or [])
    for ing in (_status(svc).get("loadBalancer") or {}).get("ingress") or []:
        ips.append(ing.get("ip") or ing.get("hostname") or "")
    if ips:
        return ",".join(ips)
    if spec.get("type") == "LoadBalancer":
        return "<pending>"
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<none>"


def _pod_ready(pod: Obj) -> str:
    containers = _spec(pod).get("containers") or []
    ready = sum(1 for c in _status(pod).get("containerStatuses") or [] if c.get("ready"))
    return f"{ready}/{len(containers)}"


def _restarts(pod: Obj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in _status(pod).get("containerStatuses") or [])


def _job_status(job: Obj) -> str:
    for cond in _status(job).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed",
                                                                  "Suspended"):
            return str(cond["type"])
    return "Running"


def _hpa_target(hpa: Obj) -> str:
    ref = _spec(hpa).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


_TEXT = "string"
_PRINTERS: dict[str, tuple[list[Column], Printer]] = {
    "Deployment": (
        [("Ready", _TEXT, ""), ("Up-to-date", "integer", ""), ("Available", "integer", "")],
        lambda o: [f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}",
                   _status(o).get("updatedReplicas", 0), _status(o).get("availableReplicas", 0)]),
    "ReplicaSet": (
        [("Desired", "integer", ""), ("Current", "integer", ""), ("Ready", "integer", "")],
        lambda o: [_spec(o).get("replicas", 0), _status(o).get("replicas", 0),
                   _status(o).get("readyReplicas", 0)]),
    "StatefulSet": (
        [("Ready", _TEXT, "")],
        lambda o: [f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}"]),
    "DaemonSet": (
        [("Desired", "integer", ""), ("Current", "integer", ""), ("Ready", "integer", ""),
         ("Up-to-date", "integer", ""), ("Available", "integer", ""),
         ("Node Selector", _TEXT, "")],
        lambda o: [_status(o).get("desiredNumberScheduled", 0),
                   _status(o).get("currentNumberScheduled", 0),
                   _status(o).get("numberReady", 0), _status(o).get("updatedNumberScheduled", 0),
                   _status(o).get("numberAvailable", 0),
                   ",".join(f"{k}={v}" for k, v in ((_spec(o).get("template") or {}).get(
                       "spec", {}).get("nodeSelector") or {}).items()) or "<none>"]),
    "Pod": (
        [("Ready", _TEXT, ""), ("Status", _TEXT, ""), ("Restarts", _TEXT, "")],
        lambda o: [_pod_ready(o), _status(o).get("phase", "Pending"), str(_restarts(o))]),
    "Service": (
        [("Type", _TEXT, ""), ("Cluster-IP", _TEXT, ""), ("External-IP", _TEXT, ""),
         ("Port(s)", _TEXT, "")],
        lambda o: [_spec(o).get("type", "ClusterIP"), _spec(o).get("clusterIP", "<none>"),
                   _external_ip(o), _ports(o)]),
    "ConfigMap": (
        [("Data", "integer", "")],
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})]),
    "Secret": (
        [("Type", _TEXT, ""), ("Data", "integer", "")],
        lambda o: [o.get("type", "Opaque"), len(o.get("data") or {})]),
    "Namespace": ([("Status", _TEXT, "")], lambda o: [_status(o).get("phase", "Active")]),
    "ServiceAccount": ([("Secrets", "integer", "")], lambda o: [len(o.get("secrets") or [])]),
    "Job": (
        [("Status", _TEXT, ""), ("Completions", _TEXT, ""), ("Duration", _TEXT, "")],
        lambda o: [_job_status(o),
                   f"{_status(o).get('succeeded', 0)}/{_spec(o).get('completions', 1)}", ""]),
    "CronJob": (
        [("Schedule", _TEXT, ""), ("Timezone", _TEXT, ""), ("Suspend", "boolean", ""),
         ("Active", "integer", ""), ("Last Schedule", _TEXT, "")],
        lambda o: [_spec(o).get("schedule", ""), _spec(o).get("timeZone", "<none>"),
                   bool(_spec(o).get("suspend")), len(_status(o).get("active") or []),
                   "<none>"]),
    "Ingress": (
        [("Class", _TEXT, ""), ("Hosts", _TEXT, ""), ("Address", _TEXT, ""),
         ("Ports", _TEXT, "")],
        lambda o: [_spec(o).get("ingressClassName", "<none>"),
                   ",".join(r.get("host", "*") for r in _spec(o).get("rules") or []) or "*",
                   "", "443" if _spec(o).get("tls") else "80"]),
    "HorizontalPodAutoscaler": (
        [("Reference", _TEXT, ""), ("Targets", _TEXT, ""), ("MinPods", _TEXT, ""),
         ("MaxPods", "integer", ""), ("Replicas", "integer", "")],
        lambda o: [_hpa_target(o), "<unknown>", str(_spec(o).get("minReplicas", 1)),
                   _spec(o).get("maxReplicas", 0), _status(o).get("currentReplicas", 0)]),
    "PersistentVolumeClaim": (
        [("Status", _TEXT, ""), ("Volume", _TEXT, ""), ("Capacity", _TEXT, ""),
         ("Access Modes", _TEXT, ""), ("StorageClass", _TEXT, ""),
         ("VolumeAttributesClass", _TEXT, "")],
        lambda o: [_status(o).get("phase", "Pending"), _spec(o).get("volumeName", ""),
                   (_status(o).get("capacity") or {}).get("storage", ""),
                   ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX",
                             "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}.get(m, m)
                            for m in _spec(o).get("accessModes") or []),
                   _spec(o).get("storageClassName", "<unset>"), "<unset>"]),
}


def _no_cells(obj: Obj) -> list[Any]:
    return []


def _template_containers(obj: Obj) -> list[Obj]:
    spec = _spec(obj)
    if "jobTemplate" in spec:
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return [c for c in pod.get("containers") or [] if isinstance(c, dict)]


def _selector(obj: Obj) -> str:
    selector = _spec(obj).get("selector") or {}
    labels = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    text = ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str))
    return text or "<none>"


def _workload_wide(obj: Obj) -> list[Any]:
    containers = _template_containers(obj)
    return [",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers), _selector(obj)]


_WIDE: dict[str, tuple[list[str], Printer]] = {
    kind: (["Containers", "Images", "Selector"], _workload_wide)
    for kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")
}
_WIDE["Service"] = (["Selector"], lambda o: [_selector(o)])
_WIDE["Pod"] = (["IP", "Node", "Nominated Node", "Readiness Gates"],
                lambda o: [_status(o).get("podIP", "<none>"),
                           _spec(o).get("nodeName", "<none>"), "<none>", "<none>"])


def _metadata_row(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def table(kind: str, objects: list[Obj], resource_version: str, include: str,
          continue_token: str = "", printer_columns: list[Obj] | None = None) -> Obj:
    """A Table of ``objects``; ``include`` is the ``includeObject`` query parameter."""
    name_col = {"name": "Name", "type": "string", "format": "name", "priority": 0,
                "description": "Name must be unique within a namespace."}
    extra: list[Column]
    cells: Printer
    if kind in _PRINTERS:
        extra, cells = _PRINTERS[kind]
        age: list[Column] = [("Age", "string", "")]
    elif printer_columns:
        extra = [(str(c.get("name")), str(c.get("type", "string")), str(c.get("format", "")))
                 for c in printer_columns]
        paths = [str(c.get("jsonPath", "")) for c in printer_columns]

        def cells(o: Obj) -> list[Any]:
            return [_json_path(o, p) for p in paths]

        age = [("Age", "date", "")]
    elif kind == "CustomResourceDefinition":
        extra, age = [("Created At", "date", "")], []

        def cells(o: Obj) -> list[Any]:
            return [(o.get("metadata") or {}).get("creationTimestamp", "")]
    else:
        extra, age = [], [("Age", "string", "")]

        def cells(o: Obj) -> list[Any]:
            return []

    wide_columns, wide_cells = _WIDE.get(kind, ([], _no_cells))
    columns = [name_col] + [{"name": n, "type": t, "format": f, "description": "", "priority": 0}
                            for n, t, f in [*extra, *age]]
    # priority 1: shown by `kubectl get -o wide` only
    columns += [{"name": n, "type": "string", "format": "", "description": "", "priority": 1}
                for n in wide_columns]
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        age_cells = [] if not age else [
            meta.get("creationTimestamp", "") if age[0][1] == "date" else _age(obj)]
        row: Obj = {"cells": [meta.get("name", ""), *cells(obj), *age_cells, *wide_cells(obj)]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = _metadata_row(obj)
        rows.append(row)
    list_meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        list_meta["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}


def _json_path(obj: Obj, path: str) -> Any:
    node: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
