"""Policy benchmark: the shipped pack (≥ 30 policies) over 10,000 synthetic objects.

- cold: load and compile every policy, evaluate every object, no cache;
- steady state: the same objects with 1% changed, reusing the first pass's cache (only the
  changed objects, and the namespace-inventory policy, are evaluated again);
- ledger: the same two passes through the ledger (results written as transitions), as a
  ``run`` would do them.

Run with ``python -m bench.policy_bench``.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from auditor.config import Config, LedgerConfig, PoliciesConfig
from auditor.ledger import Ledger
from auditor.policies import PolicyEngine, evaluate_objects
from auditor.policies.hook import PolicyRun
from bench.synth import objects

COUNT = 10_000
NAMESPACES = 20
CHANGED = 0.01
POLICIES = Path(__file__).resolve().parents[1] / "policies"


def corpus(changed_round: int = 0) -> list[dict[str, Any]]:
    """Namespaces plus ``COUNT`` objects; round ``n`` changes ``n``% of the workloads."""
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": f"bench-{n:02d}", "labels": {"team": "platform"}}}
        for n in range(NAMESPACES)]
    step = int(1 / CHANGED)
    for i, obj in enumerate(objects(COUNT, NAMESPACES)):
        if changed_round and i % step == 0:
            obj = copy.deepcopy(obj)
            obj["metadata"].setdefault("annotations", {})["bench/round"] = str(changed_round)
        out.append(obj)
    return out


def _ledger_pass(cfg: Config, items: list[dict[str, Any]]) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    with Ledger.open(cfg.ledger.path) as ledger:
        policy_run = PolicyRun.start(cfg, ledger)
        assert policy_run is not None
        run = ledger.begin_run()
        for obj in items:
            policy_run.add(obj)
        outcome = policy_run.finish(run)
        run.finish("complete")
    return {"wall_s": round(time.perf_counter() - started, 3),
            "cpu_s": round(time.process_time() - cpu, 3),
            "evaluated": outcome.evaluation.evaluated, "reused": outcome.evaluation.reused,
            "rows_written": outcome.ledger.changed if outcome.ledger else 0}


def bench_policies(tmpdir: str) -> dict[str, Any]:
    first = corpus(0)
    started, cpu = time.perf_counter(), time.process_time()
    engine = PolicyEngine.load(POLICIES)
    load_s = time.perf_counter() - started
    cold = evaluate_objects(engine, first)
    cold_s, cold_cpu = time.perf_counter() - started, time.process_time() - cpu
    previous = cold.cache
    changed = corpus(1)
    started, cpu = time.perf_counter(), time.process_time()
    steady = evaluate_objects(PolicyEngine.load(POLICIES), changed, previous=previous)
    steady_s, steady_cpu = time.perf_counter() - started, time.process_time() - cpu

    cfg = Config(ledger=LedgerConfig(path=str(Path(tmpdir) / "policy-ledger.db")),
                 policies=PoliciesConfig(directory=str(POLICIES)))
    ledger_cold = _ledger_pass(cfg, first)
    ledger_steady = _ledger_pass(cfg, changed)
    return {
        "policies": len(engine.compiled),
        "objects": len(first),
        "results": len(cold.results),
        "load_compile_s": round(load_s, 3),
        "cold_s": round(cold_s, 3),
        # The machine is shared: CPU time is the steadier figure.
        "cold_cpu_s": round(cold_cpu, 3),
        "cold_us_per_object": round(cold_s / len(first) * 1e6, 1),
        "cold_evaluations": cold.evaluated,
        "steady_changed_objects": sum(1 for i in range(COUNT) if i % int(1 / CHANGED) == 0),
        "steady_s": round(steady_s, 3),
        "steady_cpu_s": round(steady_cpu, 3),
        "steady_evaluations": steady.evaluated,
        "steady_reused": steady.reused,
        "ledger_cold": ledger_cold,
        "ledger_steady": ledger_steady,
        "cold_under_15s": cold_s < 15.0,
    }


if __name__ == "__main__":  # pragma: no cover
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(bench_policies(tmp), indent=2))
