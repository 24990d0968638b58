"""Benchmark: the cold path as a pull request's CI job runs it, whole process.

``drift-auditor diff --desired DIR --live FILE -o json`` over 9,999 pairs, 5% drifted: the
desired side as YAML files the way repositories hold them (about 20 objects a file, one
folder per namespace), the live side as one ``kubectl get -o json`` List file (what
``drift-auditor snapshot`` writes), each object as the API server returns it after a
server-side apply (:mod:`bench.compare_bench`). Timed from process start to exit: start-up,
imports, reading and parsing both sides, comparing, writing the JSON report. Every run's
report is checked against the known answer (``misreported`` must be 0).

Cold (``--no-cache``: every file parsed, a CI job's first diff) and warm (the parse cache
holding every file, as for a second diff of mostly unchanged files). Also timed, in the same
run for ratios: ``drift-auditor --version`` (start-up alone) and a plain decode of the live
file (``json.loads`` and ``orjson.loads`` in a fresh interpreter, and ``json.loads`` with the
garbage collector off): the floor any diff of this file pays.

Run: ``python -m bench diff`` (part of ``make bench``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.compare_bench import DRIFT_EVERY, drift, serverise
from bench.synth import objects

PAIRS = 9_999
PER_FILE = 20


def generate(directory: Path, pairs: int = PAIRS) -> tuple[Path, Path, dict[str, str]]:
    """The desired folder, the live file and the expected status of every object."""
    desired_dir = directory / "desired"
    live: list[dict[str, Any]] = []
    expected: dict[str, str] = {}
    files: dict[str, list[dict[str, Any]]] = {}
    for i, obj in enumerate(objects(pairs)):
        meta = obj["metadata"]
        files.setdefault(meta["namespace"], []).append(obj)
        server = serverise(obj, i)
        drifted = i % DRIFT_EVERY == DRIFT_EVERY - 1
        live.append(drift(server) if drifted else server)
        expected[f"{obj['kind']}/{meta['namespace']}/{meta['name']}"] = (
            "drifted" if drifted else "in-sync")
    for ns, items in files.items():
        for start in range(0, len(items), PER_FILE):
            path = desired_dir / ns / f"part-{start // PER_FILE:03d}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump_all(items[start:start + PER_FILE], sort_keys=False))
    live_file = directory / "live.json"
    live_file.write_bytes(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": live}))
    return desired_dir, live_file, expected


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_AUDITOR_")}
    env["XDG_CACHE_HOME"] = str(cwd / "cache")  # the parse cache of this benchmark only
    # An installed package has its bytecode compiled: without it every run compiles the
    # modules it imports (~0.15 s). The first, untimed run writes it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cpu = _child_cpu()
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, cwd=cwd, env=env, timeout=600)
    return time.perf_counter() - started, _child_cpu() - cpu, proc


_DECODE = """
import gc, json, sys, time
import orjson
raw = open(sys.argv[1], "rb").read()
out = {}
for name, loads in (("json", json.loads), ("orjson", orjson.loads)):
    started = time.perf_counter()
    loads(raw)
    out[name] = time.perf_counter() - started
gc.disable()
started = time.perf_counter()
json.loads(raw)
out["json_nogc"] = time.perf_counter() - started
print(json.dumps(out))
"""


def _decode_times(live_file: Path) -> dict[str, float]:
    """A plain decode of the live file in a fresh interpreter, as a user's script does it
    (the collector on: most of the cost is its passes over the new objects), and with the
    collector off; in this process the figures would follow whatever else it holds."""
    proc = subprocess.run([sys.executable, "-c", _DECODE, str(live_file)], capture_output=True,
                          text=True, check=True, timeout=120)
    return {k: float(v) for k, v in json.loads(proc.stdout).items()}


def misreported(report: bytes, expected: dict[str, str]) -> int:
    doc = orjson.loads(report)
    got = {f"{r['kind']}/{r['namespace']}/{r['name']}": r["status"] for r in doc["resources"]}
    return sum(1 for key, status in expected.items() if got.get(key) != status) + sum(
        1 for key in got if key not in expected)


def bench_diff(tmpdir: str | Path, pairs: int = PAIRS, repeat: int = 3) -> dict[str, Any]:
    tmp = Path(tmpdir)
    desired_dir, live_file, expected = generate(tmp, pairs)
    cli = [sys.executable, "-m", "auditor.cli"]
    diff = [*cli, "diff", "--desired", str(desired_dir), "--live", str(live_file), "-o", "json"]
    raw = live_file.read_bytes()
    walls, cpus, versions, warm_walls = [], [], [], []
    wrong = 0
    json_decode = orjson_decode = json_nogc = float("inf")
    _timed(diff, tmp)  # fills the parse cache for the warm runs
    for _ in range(repeat):  # interleaved, so a busy moment hits every measure alike
        # Cold: a CI job's first diff, every file parsed (no parse cache).
        wall, cpu, proc = _timed([*diff, "--no-cache"], tmp)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"diff failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
        wrong = max(wrong, misreported(proc.stdout, expected))
        walls.append(wall)
        cpus.append(cpu)
        # Warm: the same files seen before, read back from the parse cache.
        warm, _, proc = _timed(diff, tmp)
        wrong = max(wrong, misreported(proc.stdout, expected))
        warm_walls.append(warm)
        versions.append(_timed([*cli, "--version"], tmp)[0])
        decoded = _decode_times(live_file)
        json_decode = min(json_decode, decoded["json"])
        orjson_decode = min(orjson_decode, decoded["orjson"])
        json_nogc = min(json_nogc, decoded["json_nogc"])
    wall, cpu = min(walls), min(cpus)
    return {
        "pairs": pairs,
        "misreported": wrong,
        "diff_wall_s": round(wall, 3),
        "diff_cpu_s": round(cpu, 3),
        "pairs_per_s": round(pairs / wall),
        "warm_cache_wall_s": round(min(warm_walls), 3),
        "warm_cache_pairs_per_s": round(pairs / min(warm_walls)),
        "version_wall_s": round(min(versions), 3),
        "live_file_mib": round(len(raw) / 2**20, 1),
        "json_loads_s": round(json_decode, 3),
        "orjson_loads_s": round(orjson_decode, 3),
        "json_loads_no_gc_s": round(json_nogc, 3),
        "ratio_to_json_loads": round(wall / json_decode, 1),
        "ratio_to_json_loads_no_gc": round(wall / json_nogc, 1),
        "ratio_to_orjson_loads": round(wall / orjson_decode, 1),
        "goal_pairs_per_s": 20_000,
        "goal_met": pairs / wall >= 20_000 and wrong == 0,
    }


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = bench_diff(tmp)
    for key, value in result.items():
        print(f"{key:26} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
