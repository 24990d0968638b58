"""`make bench`: run the benchmark suites and print one table.

Usage: python -m bench [suite ...]   (default: every suite of SUITES;
                                      EXTRA ones only when named)

The machine is shared and noisy: read the figures as ratios within one run (auditor CPU
against a plain JSON decode of the same bytes), not as absolute times.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _snapshot(tmp: str) -> dict[str, Any]:
    from bench.snapshot_bench import bench_snapshot
    return bench_snapshot(10_000)


def _render(tmp: str) -> dict[str, Any]:
    from bench.git_render import bench_render
    return bench_render(tmp)


def _compare(tmp: str) -> dict[str, Any]:
    from bench.compare_bench import bench_compare
    return bench_compare(tmp)


def _diff(tmp: str) -> dict[str, Any]:
    from bench.diff_bench import bench_diff
    return bench_diff(tmp)


def _ledger(tmp: str) -> dict[str, Any]:
    from bench.ledger_bench import bench_ledger
    return bench_ledger(tmp)


def _policies(tmp: str) -> dict[str, Any]:
    from bench.policy_bench import bench_policies
    return bench_policies(tmp)


def _report(tmp: str) -> dict[str, Any]:
    from bench.report_bench import bench_report
    return bench_report(tmp)


def _run(tmp: str) -> dict[str, Any]:
    from bench.run_bench import bench_run
    return bench_run(10_000)


def _watch(tmp: str) -> dict[str, Any]:
    from bench.watch_bench import bench_watch
    return bench_watch(tmp)


def _watch_soak(tmp: str) -> dict[str, Any]:
    from bench.watch_bench import bench_watch_soak
    return bench_watch_soak(tmp)


def _scale(tmp: str) -> dict[str, Any]:
    from bench.scale_bench import bench_scale
    return bench_scale()


def _fleet(tmp: str) -> dict[str, Any]:
    from bench.fleet_bench import bench_fleet
    return bench_fleet()


SUITES: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "snapshot": ("snapshot of 10,000 mixed objects from the sandbox (goal: CPU ≤ 3× orjson, "
                 "RSS < 300 MiB)", _snapshot),
    "render": ("Git: 5,000 manifests in 500 files with attribution (goal: < 5 s)", _render),
    "compare": ("compare 10,000 pairs from files, 5% drifted (goal: ≥ 5,000 pairs/s)", _compare),
    "diff": ("`diff --desired DIR --live FILE -o json`, 9,999 pairs from YAML files, whole "
             "process (goal: ≥ 20,000 pairs/s, 0 misreported)", _diff),
    "ledger": ("ledger: 10,000 objects 5% drifted, then a 1%-change steady-state run", _ledger),
    "policies": ("31 policies over 10,000 objects, cold and steady (goal: cold < 15 s)",
                 _policies),
    "report": ("report over a quarter of hourly runs with 20,000 changes (goal: < 10 s)",
               _report),
    "run": ("`run` over 10,000 objects in the sandbox, 5% drifted, then 1% more (goal: steady "
            "state ≤ 1.5× the snapshot)", _run),
    "watch": ("watch: MTTD over 1,000 changes at 10/s on 10,000 objects, 100 transient changes, "
              "audit webhook ingestion (goals: p99 < 2 s ledger, < 5 s Slack; ≥ 5,000 "
              "events/s)", _watch),
}

# Long suites, run only when named: `make bench BENCH_ARGS=scale`.
EXTRA: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "scale": ("`run` at 10k/50k/100k objects (goal: 100k first run < 60 s, < 1 GiB)", _scale),
    # BENCH_SOAK_SECONDS (600) and BENCH_SOAK_SAMPLE_SECONDS (30) shorten it for a try.
    "watch-soak": ("watch for 10 minutes at 10 changes/s on 10,000 objects: CPU and RSS "
                   "sampled every 30 s (goal: flat RSS)", _watch_soak),
    # Sizes: BENCH_FLEET_CLUSTERS (20), BENCH_FLEET_OBJECTS (10000), BENCH_FLEET_STEADY_ROUNDS
    # (3), BENCH_FLEET_QUARTER_HOURS (the whole quarter); or `python -m bench.fleet_bench -h`.
    "fleet": ("20 clusters × 10,000 objects running at once into one PostgreSQL store, serve's "
              "fleet overview, a quarter's fleet report (goals: slowest steady run ≤ 1.5× "
              "SQLite, overview < 0.5 s, report < 30 s)", _fleet),
}


def main(argv: list[str]) -> int:
    every = {**SUITES, **EXTRA}
    chosen = argv or list(SUITES)
    unknown = [s for s in chosen if s not in every]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(every)}")
        return 2
    results: dict[str, Any] = {}
    for name in chosen:
        title, fn = every[name]
        print(f"== {name}: {title}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            try:
                result = fn(tmp)
            except ImportError as exc:
                result = {"skipped": f"not available: {exc}"}
            result.setdefault("suite_wall_s", round(time.perf_counter() - started, 2))
        results[name] = result
        for key, value in result.items():
            print(f"   {key:28} {value}")
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
