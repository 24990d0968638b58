"""Snapshot benchmark: list N mixed objects from the sandbox the way `drift-auditor snapshot`
does, in a child process, and compare its CPU with a plain ``orjson.loads`` of the same
response bytes (the floor any Python client pays)."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.childproc import run_child
from bench.floor import decode_floor
from bench.synth import objects

CHILD = r"""
import json, sys, time
t0 = time.process_time(); w0 = time.perf_counter()
from auditor.live.client import Cluster, ListStats
from auditor.config import ClusterConfig, ScopeConfig
from auditor.live.snapshot import take
import kubernetes.client  # imported by the first Cluster: start-up, counted as import
t_import = time.process_time() - t0
stats = ListStats()
c0 = time.process_time(); w1 = time.perf_counter()
with Cluster(ClusterConfig(kubeconfig=sys.argv[1])) as cluster:  # default paging and threads
    with open(sys.argv[2], "wb") as fh:
        out = take(cluster, ScopeConfig(), fh, secret_key=b"k" * 32, stats=stats)
cpu = time.process_time() - c0; wall = time.perf_counter() - w1
print(json.dumps({"objects": out.objects, "bytes": stats.bytes, "pages": stats.pages,
                  "cpu_s": cpu, "wall_s": wall, "import_cpu_s": t_import,
                  "peak_rss_mib": peak_mib()}))
"""


def bench_snapshot(count: int = 10_000) -> dict[str, Any]:
    from auditor.sandbox import Sandbox

    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sb:
        t = time.perf_counter()
        sb.load(objects(count))
        load_s = time.perf_counter() - t
        kubeconfig = sb.write_kubeconfig(Path(tmp) / "kubeconfig")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = run_child(CHILD, str(kubeconfig), f"{tmp}/snap.json")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        floor_s, floor_bytes = decode_floor(sb.url)
    return {
        "objects": child["objects"],
        "sandbox_load_s": round(load_s, 3),
        "wall_s": round(child["wall_s"], 3),
        "objects_per_s": round(child["objects"] / child["wall_s"]),
        "auditor_cpu_s": round(child["cpu_s"], 3),
        "orjson_floor_cpu_s": round(floor_s, 3),
        "cpu_ratio_to_orjson": round(child["cpu_s"] / floor_s, 2) if floor_s else None,
        "list_bytes": child["bytes"],
        "floor_bytes": floor_bytes,
        "import_cpu_s": round(child["import_cpu_s"], 3),
        "process_cpu_s": round((after.ru_utime + after.ru_stime)
                               - (before.ru_utime + before.ru_stime), 3),
        "peak_rss_mib": round(child["peak_rss_mib"], 1),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(bench_snapshot(n), indent=2))
