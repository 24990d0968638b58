"""A run killed by SIGKILL at many points of its writes, a migration killed inside each step,
and two runs at once: afterwards the ledger verifies, holds whole batches only (its chain
ends exactly at the last batch the dead process committed), and the next run completes and
records what the killed one did not, so that the ledger ends up recording exactly what an
uninterrupted run would have (nothing lost, nothing twice).

The killed processes are real runs (``run_once`` against the sandbox, from a Git folder)
started by :mod:`tests.faults.ledgerkill`, which kills itself before or after the COMMIT of
its Nth batch write, or inside a migration step."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from auditor.ledger import Ledger
from auditor.ledger.schema import SCHEMA_VERSION, STEP_TABLES, reading, tables, version
from auditor.ledger.verify import verify
from auditor.support import secretkey
from tests.ledger.helpers import at, drifted, in_sync, key, obs

from .ledgershop import (
    ROOT,
    Recorded,
    Shop,
    child_env,
    finish,
    live_changes,
    make_shop,
    one_line,
    recorded,
)


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.faults.ledgerkill", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def _killed_run(shop: Shop, kill_at: int, phase: str, batch: int) -> subprocess.Popen[str]:
    """A run whose batches hold ``batch`` rows (few: many commits to kill around)."""
    return _child("run", str(shop.config), str(shop.apps), str(kill_at), phase, str(batch))


def _committed(out: str) -> list[int]:
    """The chain head after each batch the child committed, in order."""
    return [int(line.split()[2]) for line in out.splitlines() if line.startswith("committed ")]


def _head(db: Path) -> int:
    with reading(db) as conn:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def _verifies(db: Path) -> None:
    with reading(db) as conn:
        result = verify(conn)
    assert result.ok, result.message


def _reference(shop: Shop, folder: Path, batch: int, base_runs: int) -> tuple[int, Recorded]:
    """The run uninterrupted, on a copy: how many batch writes it makes, what it records."""
    ref = shop.copy(folder)
    done = finish(_killed_run(ref, 0, "never", batch))
    assert done.returncode == 0 and "done" in done.stdout, done.stderr
    return len(_committed(done.stdout)), recorded(ref.ledger, after_run=base_runs)


def _points(writes: int) -> list[tuple[int, str]]:
    """Kill points spread over a run: around its begin (before: not even the run is
    recorded), around the first batches, in the middle, and around the finish (before its
    COMMIT: the run never ended; after it: everything is in, the process died before
    exiting)."""
    marks = sorted({1, 2, 3, writes // 2, writes})
    return [(n, phase) for n in marks for phase in ("before", "after")]


def _crash_and_recover(shop: Shop, tmp_path: Path, base_runs: int, batch: int) -> None:
    ref_writes, expected = _reference(shop, tmp_path / "reference", batch, base_runs)
    assert ref_writes >= 6, f"only {ref_writes} batch writes: too few points to kill at"
    points = _points(ref_writes)
    base_head = _head(shop.ledger) if shop.ledger.exists() else 0
    copies = [shop.copy(tmp_path / f"kill-{n}-{phase}") for n, phase in points]
    # The killed runs one after the other would take most of the suite's time: they run
    # at once, each on its own copy (the sandbox serves them all).
    children = [_killed_run(copy, n, phase, batch)
                for copy, (n, phase) in zip(copies, points, strict=True)]
    for copy, (n, phase), child in zip(copies, points, children, strict=True):
        where = f"killed {phase} the COMMIT of write {n} of {ref_writes}"
        out = finish(child, 120)
        assert out.returncode == -signal.SIGKILL, f"{where}: {out.returncode} {out.stderr}"
        heads = _committed(out.stdout)
        assert len(heads) == (n if phase == "after" else n - 1), where
        # Whole batches only: the chain ends at the last batch the process committed.
        assert _head(copy.ledger) == (heads[-1] if heads else base_head), where
        _verifies(copy.ledger)
        with reading(copy.ledger) as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?",
                               (base_runs + 1,)).fetchone()
        finished = n == ref_writes and phase == "after"
        assert (row[0] if row else None) == (
            None if not heads else "complete" if finished else "running"), where

        outcome = copy.run()  # the next run: recovers the dead one, then audits
        assert outcome.status == "complete", where
        _verifies(copy.ledger)
        got = recorded(copy.ledger, after_run=base_runs)
        killed = [(base_runs + 1, "complete" if finished else "failed")] if heads else []
        assert got.runs[base_runs:] == [*killed, (base_runs + 1 + len(killed), "complete")], where
        # Together the killed run and the next one recorded what one run records alone.
        assert got.newest == expected.newest, where
        assert got.open_drifts == expected.open_drifts, where
        assert got.versions == expected.versions, where
        assert got.changes == expected.changes, where
        assert got.drift_events == expected.drift_events, where


@pytest.mark.kubectl
def test_sigkill_during_a_first_run(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    shop = make_shop(tmp_path / "shop", kubeconfig, kubectl)
    # A drift already there when the ledger starts: the first run opens it.
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:1.0.1-hotfix")
    secretkey.load_or_create(shop.ledger.with_suffix(".key"))  # shared by every copy
    _crash_and_recover(shop, tmp_path, base_runs=0, batch=20)


@pytest.mark.kubectl
def test_sigkill_during_a_steady_run(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    shop = make_shop(tmp_path / "shop", kubeconfig, kubectl)
    assert shop.run().status == "complete"
    live_changes(kubectl)
    kubectl("-n", "shop", "delete", "configmap", "settings")  # declared in Git: now missing
    kubectl("apply", "-f", "-", input="".join(  # more objects Git does not declare
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: note-{i}, namespace: shop}}\n"
        f"data: {{n: '{i}'}}\n" for i in range(4)))
    _crash_and_recover(shop, tmp_path, base_runs=1, batch=3)


def _tables_up_to(step: int) -> set[str]:
    return {t for n, names in STEP_TABLES.items() if n <= step for t in names}


def test_sigkill_inside_each_migration_step_of_a_new_ledger(tmp_path: Path) -> None:
    ledgers = {step: tmp_path / f"step-{step}" / "ledger.db" for step in STEP_TABLES}
    for db in ledgers.values():
        db.parent.mkdir()
    children = {step: _child("migrate", str(db), str(step)) for step, db in ledgers.items()}
    for step, db in ledgers.items():
        out = finish(children[step])
        assert out.returncode == -signal.SIGKILL, out.stderr
        conn = sqlite3.connect(db)
        # Nothing of the killed step: the previous version, its tables, exactly.
        assert version(conn) == step - 1
        assert tables(conn) == _tables_up_to(step - 1)
        conn.close()
        proc = subprocess.run([sys.executable, "-m", "auditor.cli", "verify", "--ledger",
                               str(db)], capture_output=True, text=True, cwd=ROOT,
                              env=child_env())
        if step == 1:  # killed while setting the schema up: no ledger yet, said in one line
            assert proc.returncode == 2
            line = one_line(proc.stderr)
            assert str(db) in line and "killed before it set the schema up" in line
        else:  # a ledger at a lower version, verified without migrating it
            assert proc.returncode == 0 and proc.stdout.startswith("ledger OK"), proc.stderr
            assert version(sqlite3.connect(db)) == step - 1, "verify did not migrate"
        with Ledger.open(db) as ledger:  # the next open finishes the schema
            assert ledger.schema_version_found == step - 1
            run = ledger.begin_run(started_at=at(0))
            run.observe(obs(key("web"), {"replicas": 1}))
            run.record(in_sync(key("web")))
            assert run.finish().status == "complete"
            assert ledger.verify().ok
        assert tables(sqlite3.connect(db)) == _tables_up_to(SCHEMA_VERSION)


def _older_ledger(db: Path) -> int:
    """A ledger with history as an older drift-auditor left it: schema version 2 (no policy,
    revert or adoption tables). Returns its number of events."""
    with Ledger.open(db) as ledger:
        for hour in range(3):
            run = ledger.begin_run(started_at=at(hour))
            for i in range(5):
                k = key(f"app-{i}")
                run.observe(obs(k, {"replicas": i + hour}, rv=str(hour + 1)))
                run.record(drifted(k, ("spec.replicas", 1, i + hour)) if i == hour else in_sync(k))
            run.finish()
        ledger.prune(1, now=at(24 * 3))
        head = ledger.head.seq
    conn = sqlite3.connect(db, isolation_level=None)
    for table in _tables_up_to(SCHEMA_VERSION) - _tables_up_to(2):
        conn.execute(f"DROP TABLE {table}")
    # Step 6 added a column to a table of step 1, not a table: an older ledger lacks it too.
    conn.execute("DROP INDEX idx_runs_mode_id")
    conn.execute("DROP INDEX idx_runs_mode_started_at")
    conn.execute("ALTER TABLE runs DROP COLUMN mode")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    return head


def test_sigkill_inside_each_migration_step_of_an_older_ledger(tmp_path: Path) -> None:
    steps = [n for n in STEP_TABLES if n > 2]
    ledgers = {n: tmp_path / f"step-{n}" / "ledger.db" for n in steps}
    heads = {}
    for n, db in ledgers.items():
        db.parent.mkdir()
        heads[n] = _older_ledger(db)
        _verifies(db)  # version 2, read as it is
    for n, db in ledgers.items():  # kill at step n, having done the steps before it
        if n > 3:
            conn = sqlite3.connect(db)
            assert version(conn) == 2
            conn.close()
        out = finish(_child("migrate", str(db), str(n)))
        assert out.returncode == -signal.SIGKILL, out.stderr
        conn = sqlite3.connect(db)
        assert version(conn) == n - 1 and tables(conn) == _tables_up_to(n - 1)
        conn.close()
        _verifies(db)
        assert _head(db) == heads[n], "the history is intact"
        with Ledger.open(db) as ledger:
            assert ledger.schema_version_found == n - 1
            run = ledger.begin_run(started_at=at(5))
            run.record(in_sync(key("app-1")))
            assert run.finish().status == "complete"
            assert ledger.verify().ok


@pytest.mark.kubectl
def test_two_runs_at_once_are_serialised_by_the_writer_lock(
        tmp_path: Path, kubeconfig: Path, kubectl: Any) -> None:
    shop = make_shop(tmp_path / "shop", kubeconfig, kubectl)
    assert shop.run().status == "complete"
    live_changes(kubectl)
    gate = tmp_path / "gate"
    holder = _child("hold", str(shop.config), str(shop.apps), str(gate))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "begun", holder.stderr
        # A second run while the first one writes, told not to wait: refused at once, in one
        # line naming the holder.
        impatient = subprocess.run(
            [sys.executable, "-m", "auditor.cli", "--config", str(shop.config), "run",
             "--desired", str(shop.apps)], capture_output=True, text=True, timeout=60,
            env={**child_env(), "DRIFT_AUDITOR_LEDGER_LOCK_WAIT_SECONDS": "0"})
        assert impatient.returncode == 2
        line = one_line(impatient.stderr)
        assert f"pid {holder.pid}" in line and "only one run may write the ledger" in line
        # By default it waits for the lock (ledger.lock-wait-seconds), writing nothing.
        waiting = shop.start("run", "--desired", str(shop.apps))
        time.sleep(1.0)
        assert waiting.poll() is None, "a second run waits while the first holds the ledger"
    finally:
        gate.touch()
    done = finish(holder)
    assert done.returncode == 0 and "done 2 complete" in done.stdout, done.stderr
    after = finish(waiting)
    assert after.returncode in (0, 1), after.stderr
    # Two more started at the same moment: whoever gets the lock runs, the other waits and
    # runs after it (a refusal would need a wait longer than the lock-wait).
    both = [shop.start("run", "--desired", str(shop.apps)) for _ in range(2)]
    results = [finish(p) for p in both]
    ran = [r for r in results if r.returncode in (0, 1)]
    refused = [r for r in results if r.returncode == 2]
    assert ran and len(ran) + len(refused) == 2, [(r.returncode, r.stderr) for r in results]
    for r in refused:
        assert "only one run may write the ledger" in one_line(r.stderr)
    _verifies(shop.ledger)
    got = recorded(shop.ledger, after_run=1)
    assert got.runs == [(n, "complete") for n in range(1, 4 + len(ran))]
    # The changes were recorded once, by the run that held the lock; none twice or lost.
    assert got.changes and set(got.changes.values()) == {1}
    assert got.versions and set(got.versions.values()) == {1}
    with reading(shop.ledger) as conn:
        later = conn.execute("SELECT count(*) FROM object_versions WHERE run_id > 2").fetchone()[0]
    assert later == 0, "the runs after it found nothing new"
