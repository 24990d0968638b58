"""Ledger benchmark: what the audit trail costs a run.

10,000 synthetic objects (the `bench.synth` mix), 5% drifted, written by a first run; then a
steady-state run where 1% of the objects changed (each fixing a drift). Each run does what the
pipeline does against the ledger: open + lock, ``versions_of`` each page of 500, ``observe`` for changed
objects only, ``record`` for every result, ``finish``. Reported per run: wall seconds of the
ledger calls, ledger file growth; for the steady-state run also the peak of Python
allocations (tracemalloc, a separate repeat so tracing does not distort the timing).

The reference is the cost of listing the same 10,000 objects from the sandbox API server in a
child process (`bench.snapshot_bench`); without the sandbox, the CPU of a plain ``orjson``
decode of the same List (a floor no client beats).

Usage: python -m bench.ledger_bench
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation
from bench.synth import objects

COUNT = 10_000
DRIFT_EVERY = 20  # 5%
CHANGE_EVERY = 100  # 1%, each one a drifted object being fixed live
SECRET_KEY = b"bench-secret-key-0123456789abcdef"


def _hash_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """Secret values as the pipeline hands them over: keyed hashes."""
    import hmac

    if obj["kind"] != "Secret":
        return obj
    return {**obj, "data": {k: "hmac-sha256:" + hmac.new(SECRET_KEY, v.encode(), hashlib.sha256)
                            .hexdigest()[:32] for k, v in obj["data"].items()}}


def _corpus(step: int) -> list[tuple[ResourceKey, dict[str, Any], str, ObjectResult]]:
    """The cluster as seen by run ``step`` (0: first run; 1, 2: steady state)."""
    out = []
    for i, raw in enumerate(objects(COUNT)):
        obj = _hash_secret(raw)
        key = ResourceKey.of(obj)
        fixed = step >= 1 and i % CHANGE_EVERY == 0
        # Runs after the second change another 1% so every steady-state run sees new versions.
        if step >= 2 and i % CHANGE_EVERY == 50:
            obj = {**obj, "metadata": {**obj["metadata"], "annotations": {"touched": str(step)}}}
        drifted = i % DRIFT_EVERY == 0 and not fixed
        if drifted:
            obj = {**obj, "metadata": {**obj["metadata"], "labels": {
                **obj["metadata"]["labels"], "team": "hotfix"}}}
        content_hash = hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()
        source = SourceInfo(f"apps/{key.namespace}.yaml", commit="c0ffee")
        result = ObjectResult(key, obj["apiVersion"], "drifted", (DriftItem(
            'metadata.labels["team"]', "changed", "platform", "hotfix", "kubectl-label",
            "Update", "2026-11-20T09:00:00Z", "human"),), source) if drifted else \
            ObjectResult(key, obj["apiVersion"], "in-sync", (), source)
        out.append((key, obj, content_hash, result))
    return out


def _ledger_run(path: Path, corpus: list[tuple[ResourceKey, dict[str, Any], str, ObjectResult]]
                ) -> dict[str, Any]:
    started = time.perf_counter()
    with Ledger.open(path, tool_version="bench", config_hash="0" * 64) as ledger:
        run = ledger.begin_run(cluster="bench", git_commits={"apps": "c0ffee"})
        observed = 0
        known: dict[ResourceKey, tuple[str, str]] = {}
        for i, (key, obj, content_hash, result) in enumerate(corpus):
            if i % 500 == 0:  # the pipeline asks per page of the list
                known = ledger.versions_of([k for k, *_ in corpus[i:i + 500]])
            rv = content_hash[:12]  # a new resourceVersion exactly when the content changed
            if known.get(key) != (rv, content_hash):
                run.observe(Observation(key, obj["apiVersion"], rv, content_hash, obj,
                                        "kubectl-label", "Update", "2026-11-20T09:00:00Z",
                                        "human"))
                observed += 1
            run.record(result)
        summary = run.finish("complete", counts={"objects": len(corpus)})
    return {"wall_s": time.perf_counter() - started, "observed": observed,
            "opened": summary.opened, "resolved": sum(summary.resolved.values()),
            "still_open": summary.still_open, "versions": summary.versions}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")
               if not p.name.endswith(".lock"))


def _listing_reference() -> dict[str, Any]:
    try:
        from bench.snapshot_bench import bench_snapshot

        snap = bench_snapshot(COUNT)
        return {"listing_wall_s": snap["wall_s"], "listing_source": "sandbox list in a child"}
    except Exception as exc:  # the sandbox belongs to another part of the project
        body = orjson.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects(COUNT))})
        best = min(_timed(lambda: orjson.loads(body)) for _ in range(3))
        return {"listing_wall_s": best, "listing_source": f"orjson decode floor ({exc})"}


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_ledger(tmpdir: str, *, reference: bool = True) -> dict[str, Any]:
    path = Path(tmpdir) / "ledger.db"
    first_corpus = _corpus(0)
    first = _ledger_run(path, first_corpus)
    size_first = _size(path)
    steady_corpus = _corpus(1)
    steady = _ledger_run(path, steady_corpus)
    size_steady = _size(path)
    third_corpus = _corpus(2)
    tracemalloc.start()
    third = _ledger_run(path, third_corpus)  # 1% more changes, traced
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size_third = _size(path)
    with Ledger.open(path) as ledger:
        started = time.perf_counter()
        verified = ledger.verify()
        verify_s = time.perf_counter() - started
    out: dict[str, Any] = {
        "objects": COUNT,
        "first_run_s": round(first["wall_s"], 3),
        "first_run_growth_mib": round(size_first / 2**20, 2),
        "first_run_versions": first["versions"],
        "first_run_drifts_opened": first["opened"],
        "steady_run_s": round(steady["wall_s"], 3),
        "steady_run_growth_mib": round((size_steady - size_first) / 2**20, 3),
        "steady_run_versions": steady["versions"],
        "steady_run_drifts_resolved": steady["resolved"],
        "steady_run_drifts_still_open": steady["still_open"],
        "third_run_growth_mib": round((size_third - size_steady) / 2**20, 3),
        "third_run_versions": third["versions"],
        "steady_peak_traced_mib": round(peak / 2**20, 1),
        "verify_ok": verified.ok,
        "verify_events": verified.checked,
        "verify_s": round(verify_s, 3),
    }
    if reference:
        ref = _listing_reference()
        out["listing_reference_s"] = round(ref["listing_wall_s"], 3)
        out["listing_reference"] = ref["listing_source"]
        out["steady_ledger_to_listing"] = round(steady["wall_s"] / ref["listing_wall_s"], 3)
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(bench_ledger(tmp, reference="--no-reference" not in sys.argv), indent=2))
