"""The run hook over a live (sandbox) cluster: objects streamed from the API are evaluated,
recorded, and re-evaluated in the next run only when their content changed."""

from __future__ import annotations

import pathlib
from pathlib import Path
from typing import Any

from auditor.config import ClusterConfig, Config, LedgerConfig, PoliciesConfig
from auditor.ledger import Ledger, reading
from auditor.ledger import policyresults as pr
from auditor.live.client import Cluster, ListStats, iter_live
from auditor.policies.hook import PolicyRun
from auditor.sandbox import Sandbox

from .examples import deployment, namespace, network_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _audit(cfg: Config) -> Any:
    with Ledger.open(cfg.ledger.path) as ledger, Cluster(cfg.cluster) as cluster:
        policy_run = PolicyRun.start(cfg, ledger)
        assert policy_run is not None
        run = ledger.begin_run()
        stats = ListStats()
        for page in iter_live(cluster, cfg.scope, stats=stats):
            for obj in page.items:
                policy_run.add(obj)
        outcome = policy_run.finish(run, skipped_kinds=stats.skipped_kinds)
        run.finish("complete")
    return run.id, outcome


def test_live_runs_record_changes_only(sandbox: Sandbox, kubeconfig: pathlib.Path,
                                       tmp_path: Path) -> None:
    sandbox.load([namespace(), network_policy(), deployment()])
    cfg = Config(cluster=ClusterConfig(kubeconfig=str(kubeconfig)),
                 ledger=LedgerConfig(path=str(tmp_path / "l.db")),
                 policies=PoliciesConfig(directory=str(POLICIES)))
    _first, first = _audit(cfg)
    web = [r for r in first.evaluation.results if r.key.name == "web"]
    assert web and all(r.status == "pass" for r in web), [(r.policy, r.messages) for r in web]
    assert not first.problems

    _second, second = _audit(cfg)
    assert second.ledger.changed == 0
    assert second.evaluation.reused >= len(web)

    changed = deployment()
    changed["spec"]["template"]["spec"]["hostPID"] = True
    sandbox.apply(changed, field_manager="kubectl-edit", force=True)
    third_id, third = _audit(cfg)
    assert third.ledger.newly_failing == 1
    with reading(cfg.ledger.path) as conn:
        (row,) = pr.newly_failing(conn, third_id)
        assert (row["policy"], row["kind"], row["namespace"], row["name"]) == (
            "disallow-host-pid", "Deployment", "shop", "web")
        assert pr.verify_rows(conn) == []
