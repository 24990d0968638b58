"""Audit-cycle benchmark: `drift-auditor run` over N objects in the sandbox with a Git folder
to match (5% drifted by a human), then a steady-state run after 1% further changes.

Each run is a child process (its own CPU and peak RSS); the cost of a plain snapshot of the
same cluster is measured the same way, so the steady-state ratio is run ÷ snapshot in one go.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.childproc import run_child
from bench.floor import SYNTH_PATHS, decode_floor
from bench.synth import jobs, objects

CHILD = r"""
import json, sys, time
t0 = time.process_time(); w0 = time.perf_counter()
from auditor import config
cfg = config.load(sys.argv[1], env={})
mode = sys.argv[2]
if mode == "run":
    from auditor.pipeline import run_once
    out = run_once(cfg, desired_path=sys.argv[3])
    from auditor.ledger import reading, runs
    with reading(cfg.ledger.path) as conn:
        phases = runs(conn, limit=1)[0]["counts"].get("seconds", {})
    extra = {"status": out.status, "observed": out.observed, "unchanged": out.unchanged,
             "counts": out.audit.counts, "phases": phases}
else:
    from auditor.live.client import Cluster, ListStats
    from auditor.live.snapshot import take
    stats = ListStats()
    with Cluster(cfg.cluster) as cluster, open(sys.argv[3], "wb") as fh:
        take(cluster, cfg.scope, fh, secret_key=b"k" * 32, stats=stats)
    extra = {"objects": stats.objects}
print(json.dumps({"cpu_s": time.process_time() - t0, "wall_s": time.perf_counter() - w0,
                  "peak_rss_mib": peak_mib(), **extra}))
"""


def _child(cfg: Path, mode: str, arg: str) -> dict[str, Any]:
    return run_child(CHILD, str(cfg), mode, arg)


def _drift(obj: dict[str, Any], tag: str) -> dict[str, Any]:
    """What an on-call human does: a new image (workloads) or a changed value (the rest)."""
    changed = copy.deepcopy(obj)
    spec = changed.get("spec", {})
    template = spec.get("template") or (spec.get("jobTemplate", {}).get("spec", {})
                                         .get("template"))
    if template:
        template["spec"]["containers"][0]["image"] += f"-{tag}"
    elif changed["kind"] in ("ConfigMap",):
        changed["data"]["mode"] = tag
    else:
        changed.setdefault("metadata", {}).setdefault("labels", {})["hotfix"] = tag
    return changed


def bench_run(count: int = 10_000, outside_git: int = 0) -> dict[str, Any]:
    """``outside_git``: that many more live objects (Jobs a controller made) that no Git
    file declares, as real clusters hold far more of those than of Git's objects."""
    from auditor.sandbox import Sandbox

    with tempfile.TemporaryDirectory() as tmp_name, Sandbox() as sb:
        tmp = Path(tmp_name)
        desired = list(objects(count))
        apps = tmp / "apps"
        apps.mkdir()
        for i in range(0, count, 20):  # 20 objects a file, as repos tend to group them
            (apps / f"app-{i // 20:04d}.yaml").write_text(
                yaml.safe_dump_all(desired[i:i + 20], sort_keys=False))
        t = time.perf_counter()
        for ns in sorted({o["metadata"]["namespace"] for o in desired}):
            sb.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                     field_manager="argocd-controller")
        for obj in desired:
            sb.apply(obj, field_manager="argocd-controller")
        if outside_git:
            sb.load(jobs(outside_git), field_manager="kube-controller-manager")
        setup_s = time.perf_counter() - t
        for i, obj in enumerate(desired[::20]):  # 5% drifted by a terminal user
            sb.apply(_drift(obj, f"d{i}"), field_manager="kubectl", force=True)
        kubeconfig = sb.write_kubeconfig(tmp / "kubeconfig")
        cfg = tmp / "drift-auditor.yaml"
        cfg.write_text(f"cluster: {{kubeconfig: {kubeconfig}}}\nledger: {{path: {tmp}/l.db}}\n"
                       f"policies: {{directory: {tmp}/none}}\n")
        snap = _child(cfg, "snapshot", str(tmp / "snap.json"))
        floor_s, _ = decode_floor(sb.url, SYNTH_PATHS + (("/apis/batch/v1/jobs",) if outside_git
                                                        else ()))
        first = _child(cfg, "run", str(apps))
        size_1 = (tmp / "l.db").stat().st_size + _wal(tmp)
        for i, obj in enumerate(desired[7::100]):  # 1% further changes
            sb.apply(_drift(obj, f"s{i}"), field_manager="kubectl-edit", force=True)
        second = _child(cfg, "run", str(apps))
        size_2 = (tmp / "l.db").stat().st_size + _wal(tmp)
    return {
        "objects": count,
        "live_objects_outside_git": outside_git,
        "sandbox_setup_s": round(setup_s, 2),
        "snapshot_cpu_s": round(snap["cpu_s"], 2),
        "first_run_wall_s": round(first["wall_s"], 2),
        "first_run_cpu_s": round(first["cpu_s"], 2),
        "first_run_peak_rss_mib": round(first["peak_rss_mib"]),
        "first_run_counts": first["counts"],
        "steady_run_wall_s": round(second["wall_s"], 2),
        "steady_run_cpu_s": round(second["cpu_s"], 2),
        "steady_run_peak_rss_mib": round(second["peak_rss_mib"]),
        "first_run_phases_s": first["phases"],
        "steady_run_phases_s": second["phases"],
        "steady_observed_versions": second["observed"],
        "steady_cpu_ratio_to_snapshot": round(second["cpu_s"] / snap["cpu_s"], 2),
        "json_decode_floor_cpu_s": round(floor_s, 2),
        "first_run_cpu_ratio_to_decode": round(first["cpu_s"] / floor_s, 1),
        "steady_run_cpu_ratio_to_decode": round(second["cpu_s"] / floor_s, 1),
        "ledger_mib_after_first": round(size_1 / 2**20, 2),
        "ledger_growth_steady_mib": round((size_2 - size_1) / 2**20, 2),
    }


def _wal(folder: Path) -> int:
    wal = folder / "l.db-wal"
    return wal.stat().st_size if wal.exists() else 0


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(bench_run(n), indent=2))
