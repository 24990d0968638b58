"""Benchmark: compare 10,000 desired/live pairs from files, 5% of them drifted.

The desired side is :mod:`bench.synth`'s mix of kinds as users write them; the live side is
what an API server returns for them after an Argo CD server-side apply: server defaults,
uid/resourceVersion/creationTimestamp, ``managedFields`` (the applier's FieldsV1 plus the
controllers' status entries) and ``status``. Every 20th object was then changed by a human
(``kubectl set image`` or ``kubectl label``), recorded in managedFields as the server does.

Timed end to end: reading both files (orjson), normalising and comparing every pair. The
result is reported as pairs/s and as a ratio to a plain ``orjson.loads`` of the live file.

Run: ``python -m bench.compare_bench`` (or ``python -m bench compare``).
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from auditor.engine.compare import CompareSettings, compare_all
from auditor.engine.records import ResourceKey
from bench.synth import objects

PAIRS = 10_000
DRIFT_EVERY = 20  # 5%
APPLIED = "2026-11-20T08:00:00Z"
EDITED = "2026-11-21T09:12:44Z"

_CONTAINER_DEFAULTS = {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                       "terminationMessagePolicy": "File"}
_POD_DEFAULTS = {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "securityContext": {}, "terminationGracePeriodSeconds": 30}
_PROBE_DEFAULTS = {"failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1}


def _fields(value: Any) -> dict[str, Any]:
    """The FieldsV1 an applier of ``value`` owns (maps granular, keyed lists by key)."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, dict) and v and k not in ("selector",):
            out[f"f:{k}"] = _fields(v)
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v) and (
                all("name" in i for i in v) or all("containerPort" in i for i in v)
                or all("port" in i for i in v)):
            items: dict[str, Any] = {}
            for item in v:
                if "containerPort" in item:
                    key = {"containerPort": item["containerPort"], "protocol": item.get("protocol", "TCP")}
                elif "port" in item:
                    key = {"port": item["port"], "protocol": item.get("protocol", "TCP")}
                else:
                    key = {"name": item["name"]}
                items["k:" + orjson.dumps(key).decode()] = {".": {}, **_fields(item)}
            out[f"f:{k}"] = items
        else:
            out[f"f:{k}"] = {}
    return out


def _default_pod(spec: dict[str, Any], restart: str = "Always") -> None:
    for key, value in _POD_DEFAULTS.items():
        spec.setdefault(key, copy.deepcopy(value))
    spec["restartPolicy"] = spec.get("restartPolicy", restart)
    if "serviceAccountName" in spec:
        spec["serviceAccount"] = spec["serviceAccountName"]
    for c in spec.get("containers", []):
        for key, value in _CONTAINER_DEFAULTS.items():
            c.setdefault(key, value)
        for port in c.get("ports", []):
            port.setdefault("protocol", "TCP")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in c:
                for key, value in _PROBE_DEFAULTS.items():
                    c[probe].setdefault(key, value)
                if "httpGet" in c[probe]:
                    c[probe]["httpGet"].setdefault("scheme", "HTTP")


def serverise(desired: dict[str, Any], i: int) -> dict[str, Any]:
    """``desired`` as the API server returns it after an Argo CD server-side apply."""
    live = copy.deepcopy(desired)
    kind = live["kind"]
    spec: dict[str, Any] = live.get("spec") or {}
    if kind in ("Deployment", "StatefulSet"):
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        else:
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
            spec.setdefault("persistentVolumeClaimRetentionPolicy",
                            {"whenDeleted": "Retain", "whenScaled": "Retain"})
            for claim in spec.get("volumeClaimTemplates", []):
                claim.update(apiVersion="v1", kind="PersistentVolumeClaim")
                claim["spec"].setdefault("volumeMode", "Filesystem")
                claim["status"] = {"phase": "Pending"}
        spec["template"]["metadata"]["creationTimestamp"] = None
        _default_pod(spec["template"]["spec"])
        live["status"] = {"availableReplicas": spec.get("replicas", 1), "observedGeneration": 1,
                          "readyReplicas": spec.get("replicas", 1), "replicas": spec.get("replicas", 1)}
    elif kind == "CronJob":
        spec.update(concurrencyPolicy="Allow", failedJobsHistoryLimit=1, successfulJobsHistoryLimit=3,
                    suspend=False)
        job = spec["jobTemplate"]
        job["metadata"] = {"creationTimestamp": None}
        _default_pod(job["spec"]["template"]["spec"], "OnFailure")
        job["spec"]["template"]["metadata"]["creationTimestamp"] = None
        live["status"] = {}
    elif kind == "Service":
        ip = f"10.96.{i // 250 % 250}.{i % 250}"
        spec.update(clusterIP=ip, clusterIPs=[ip], internalTrafficPolicy="Cluster", ipFamilies=["IPv4"],
                    ipFamilyPolicy="SingleStack", sessionAffinity="None", type="ClusterIP")
        for port in spec["ports"]:
            port.setdefault("protocol", "TCP")
        live["status"] = {"loadBalancer": {}}
    elif kind == "Ingress":
        live["status"] = {"loadBalancer": {}}
    meta = live["metadata"]
    managed = [{"apiVersion": desired["apiVersion"], "fieldsType": "FieldsV1",
                "fieldsV1": _fields({k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
                                    | {"metadata": {k: v for k, v in desired["metadata"].items()
                                                    if k not in ("name", "namespace")}}),
                "manager": "argocd-controller", "operation": "Apply", "time": APPLIED}]
    if live.get("status"):
        managed.append({"apiVersion": desired["apiVersion"], "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:status": {f"f:{k}": {} for k in live["status"]}},
                        "manager": "kube-controller-manager", "operation": "Update",
                        "subresource": "status", "time": APPLIED})
    meta.update(creationTimestamp=APPLIED, generation=1, managedFields=managed,
                resourceVersion=str(100_000 + i), uid=f"00000000-0000-4000-8000-{i:012d}")
    if kind == "Deployment":
        meta["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    return live


def drift(live: dict[str, Any]) -> dict[str, Any]:
    """A human change, recorded in managedFields as the API server records it."""
    kind = live["kind"]
    template = (live["spec"]["template"] if kind in ("Deployment", "StatefulSet")
                else live["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else None)
    if template is not None:
        container = template["spec"]["containers"][0]
        container["image"] = container["image"] + "-hotfix"
        managed = live["metadata"]["managedFields"][0]["fieldsV1"]
        c = managed["f:spec"]
        for step in (("f:template",) if kind != "CronJob" else ("f:jobTemplate", "f:spec", "f:template")):
            c = c[step]
        c["f:spec"]["f:containers"]['k:{"name":"main"}'].pop("f:image", None)
        fields: dict[str, Any] = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"main"}': {"f:image": {}}}}}}}
        if kind == "CronJob":
            fields = {"f:spec": {"f:jobTemplate": {"f:spec": fields["f:spec"]}}}
        live["metadata"]["managedFields"].append({
            "apiVersion": live["apiVersion"], "fieldsType": "FieldsV1", "fieldsV1": fields,
            "manager": "kubectl-set", "operation": "Update", "time": EDITED})
    else:
        live["metadata"].setdefault("labels", {})["hotfix"] = "true"
        live["metadata"]["managedFields"].append({
            "apiVersion": live["apiVersion"], "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:hotfix": {}}}},
            "manager": "kubectl-label", "operation": "Update", "time": EDITED})
    return live


def generate(directory: Path, pairs: int = PAIRS) -> tuple[Path, Path]:
    desired: list[dict[str, Any]] = []
    live: list[dict[str, Any]] = []
    for i, obj in enumerate(objects(pairs)):
        desired.append(obj)
        server = serverise(obj, i)
        live.append(drift(server) if i % DRIFT_EVERY == DRIFT_EVERY - 1 else server)
    desired_file = directory / "desired.json"
    live_file = directory / "live.json"
    desired_file.write_bytes(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": desired}))
    live_file.write_bytes(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": live}))
    return desired_file, live_file


def _run(desired_file: Path, live_file: Path, settings: CompareSettings) -> Counter[str]:
    desired = {ResourceKey.of(o): o for o in orjson.loads(desired_file.read_bytes())["items"]}
    live = orjson.loads(live_file.read_bytes())["items"]
    return Counter(r.status for r in compare_all(desired, live, settings=settings))


def bench_compare(tmpdir: str | Path, pairs: int = PAIRS, repeat: int = 3) -> dict[str, Any]:
    """Generate the pairs under ``tmpdir`` and time reading + normalising + comparing them."""
    desired_file, live_file = generate(Path(tmpdir), pairs)
    settings = CompareSettings(secret_key=b"bench-key-0123456789abcdef")
    statuses = _run(desired_file, live_file, settings)  # warm-up: schema and imports load once
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        statuses = _run(desired_file, live_file, settings)
        best = min(best, time.perf_counter() - started)
    decode = float("inf")
    raw = live_file.read_bytes()
    for _ in range(repeat):
        started = time.perf_counter()
        orjson.loads(raw)
        decode = min(decode, time.perf_counter() - started)
    return {
        "pairs": pairs,
        "drifted": statuses.get("drifted", 0),
        "in_sync": statuses.get("in-sync", 0),
        "seconds": round(best, 3),
        "pairs_per_s": round(pairs / best),
        "live_file_mib": round(len(raw) / 2**20, 1),
        "orjson_live_decode_s": round(decode, 4),
        "ratio_to_orjson_decode": round(best / decode, 1),
        "goal_pairs_per_s": 5000,
        "goal_met": pairs / best >= 5000,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = bench_compare(tmp)
    for key, value in result.items():
        print(f"{key:26} {value}")
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
