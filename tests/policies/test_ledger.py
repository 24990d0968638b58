"""Policy results in the ledger: transitions only, chained events, the steady-state cache."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from auditor.config import Config, LedgerConfig, PoliciesConfig
from auditor.ledger import Ledger, reading
from auditor.ledger import policyresults as pr
from auditor.policies.hook import PolicyRun

from .examples import _set, _with, deployment, namespace, network_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _cfg(tmp_path: Path) -> Config:
    return Config(ledger=LedgerConfig(path=str(tmp_path / "ledger.db")),
                  policies=PoliciesConfig(directory=str(POLICIES)))


def _run(cfg: Config, objects: list[dict[str, Any]]) -> tuple[int, Any]:
    with Ledger.open(cfg.ledger.path) as ledger:
        policy_run = PolicyRun.start(cfg, ledger)
        assert policy_run is not None
        run = ledger.begin_run()
        for obj in objects:
            policy_run.add(copy.deepcopy(obj))
        outcome = policy_run.finish(run)
        run.finish("complete")
        return run.id, outcome


def test_results_are_recorded_as_changes_and_reused_in_steady_state(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    web = deployment()
    objects = [namespace(), network_policy(), web, deployment(name="api")]
    first_id, first = _run(cfg, objects)
    assert first.evaluation.evaluated > 0 and first.evaluation.reused == 0
    assert first.ledger.changed == len(first.evaluation.results)
    assert first.score == 100.0

    # Nothing changed: nothing is evaluated again (but the namespace inventory policy), and
    # nothing is written but the run's summary.
    second_id, second = _run(cfg, objects)
    inventory_policies = 1
    assert second.evaluation.evaluated == inventory_policies
    assert second.evaluation.reused > 0
    assert second.ledger.changed == 0

    # One object turns privileged: only it is evaluated, and one result changes to fail.
    bad = _with(web, _set("securityContext.privileged", True))
    third_id, third = _run(cfg, [namespace(), network_policy(), bad, deployment(name="api")])
    assert third.evaluation.evaluated == len([r for r in third.evaluation.results
                                              if r.key.name == "web"]) + inventory_policies
    assert third.ledger.changed == 1 and third.ledger.newly_failing == 1
    assert third.score < 100.0

    with reading(cfg.ledger.path) as conn:
        newly = pr.newly_failing(conn, third_id)
        assert [(r["policy"], r["name"], r["prev_status"]) for r in newly] == [
            ("disallow-privileged", "web", "pass")]
        assert newly[0]["messages"] == ["privileged containers: web"]
        assert pr.newly_failing(conn, second_id) == []
        summary = pr.run_summary(conn, third_id)
        assert summary is not None
        assert summary["counts"]["disallow-privileged"]["fail"] == 1
        assert summary["counts"]["disallow-privileged"]["severity"] == "critical"
        assert "CC6.1" in summary["counts"]["disallow-privileged"]["controls"]
        assert summary["counts"]["disallow-privileged"]["remediation"]
        # Policies that matched nothing are listed with zero counts.
        assert summary["counts"]["require-ingress-tls"]["pass"] == 0
        assert [s["run_id"] for s in pr.scores(conn)] == [first_id, second_id, third_id]
        assert pr.current(conn, "fail")[0]["policy"] == "disallow-privileged"
        assert pr.verify_rows(conn) == []
    with Ledger.open(cfg.ledger.path) as ledger:
        assert ledger.verify().ok

    # The object is deleted: its results become `absent`, once.
    _fourth_id, fourth = _run(cfg, [namespace(), network_policy(), deployment(name="api")])
    assert fourth.ledger.absent == len([r for r in third.evaluation.results
                                        if r.key.name == "web"])
    with reading(cfg.ledger.path) as conn:
        history = pr.transitions(conn, policy="disallow-privileged", name="web")
        assert [h["status"] for h in history] == ["pass", "fail", "absent"]


def test_an_edited_policy_row_is_detected(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    _run(cfg, [namespace(), network_policy(), deployment()])
    with reading(cfg.ledger.path) as conn:
        conn.execute("DROP TRIGGER policy_results_no_update")
        conn.execute("UPDATE policy_results SET status = 'pass' WHERE id = 1 AND status != 'pass'")
        conn.execute("UPDATE policy_results SET messages = '[]', status = 'fail' WHERE id = 2")
        problems = pr.verify_rows(conn)
    assert problems and "differs from its chained event" in problems[0][1]
