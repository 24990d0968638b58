"""Scale suite (`make bench BENCH_ARGS=scale`): the audit cycle at 10,000, 50,000 and
100,000 mixed objects (5% drifted), first run and steady state, to show how cost grows.

Goals on the 2-core machine: 100,000 objects first run in under 60 s and under 1 GiB RSS;
steady-state runs at most 1.5× the cost of listing; cost linear in objects. A last row keeps
Git at the smallest size and adds 90,000 Jobs no Git file declares: peak memory should stay
near the smallest row's, as nothing about objects outside Git is held.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.run_bench import bench_run


def bench_scale(sizes: tuple[int, ...] = (10_000, 50_000, 100_000),
                outside_git: int = 90_000) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for n in sizes:
        r = bench_run(n)
        r["first_run_cpu_ms_per_1k_objects"] = round(r["first_run_cpu_s"] / n * 1e6, 1)
        r["steady_run_cpu_ms_per_1k_objects"] = round(r["steady_run_cpu_s"] / n * 1e6, 1)
        rows[str(n)] = r
        print(json.dumps({n: r}), flush=True)
    if outside_git:
        # Memory follows Git and drift, not the cluster: the smallest Git size again, with
        # many more live objects (Jobs) no Git file declares.
        n = sizes[0]
        r = bench_run(n, outside_git=outside_git)
        live = n + outside_git
        r["first_run_cpu_ms_per_1k_live_objects"] = round(r["first_run_cpu_s"] / live * 1e6, 1)
        r["steady_run_cpu_ms_per_1k_live_objects"] = round(r["steady_run_cpu_s"] / live * 1e6, 1)
        name = f"{n}+{outside_git}-outside-git"
        rows[name] = r
        print(json.dumps({name: r}), flush=True)
    return rows


if __name__ == "__main__":
    sizes = tuple(int(a) for a in sys.argv[1:]) or (10_000, 50_000, 100_000)
    print(json.dumps(bench_scale(sizes), indent=2))
