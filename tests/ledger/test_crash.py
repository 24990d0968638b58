"""Crash safety and the single-writer lock, with real processes, on SQLite (a file and its
``flock``) and on PostgreSQL (a cluster of the store and its advisory lock): ``ledger_target``.
The writer children take the ledger's location and, on PostgreSQL, the cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditor.errors import LedgerLockedError

from .backends import LedgerTarget
from .helpers import at, in_sync, key, obs

ROOT = Path(__file__).resolve().parents[2]

# A run that records thousands of observations slowly, in small batches, printing the number
# of observations staged so the test knows commits have happened before it kills it.
WRITER = r"""
import sys, time
from auditor.ledger import Ledger
from tests.ledger.helpers import at, key, obs, drifted
with Ledger.open(sys.argv[1], cluster=(sys.argv[2:] or [None])[0], batch_size=50) as ledger:
    run = ledger.begin_run(started_at=at(1))
    print("begun", flush=True)
    for i in range(5000):
        run.observe(obs(key(f"app-{i}"), {"replicas": i, "n": 2}, rv="2"))
        run.record(drifted(key(f"app-{i}"), ("spec.replicas", 1, i)))
        if i % 100 == 0:
            print(i, flush=True)
        time.sleep(0.001)
    run.finish()
    print("finished", flush=True)
"""

HOLDER = r"""
import sys, time
from auditor.ledger import Ledger
with Ledger.open(sys.argv[1], cluster=(sys.argv[2:] or [None])[0]) as ledger:
    print("locked", flush=True)
    time.sleep(60)
"""


def _child(code: str, db: LedgerTarget) -> subprocess.Popen[str]:
    where = [str(db.location), *([db.cluster] if db.cluster else [])]
    return subprocess.Popen([sys.executable, "-c", code, *where], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = proc.stdout.readline()
        if out.strip() == line:
            return
        if not out and proc.poll() is not None:
            raise AssertionError(f"child exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError(f"child never printed {line!r}")


def test_sigkill_mid_run_leaves_a_consistent_ledger(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with db.open() as ledger:  # a finished baseline run with open drifts
        run = ledger.begin_run(started_at=at(0))
        for i in range(200):
            run.observe(obs(key(f"app-{i}"), {"replicas": i}))
            run.record(in_sync(key(f"app-{i}")))
        run.finish()
        baseline_seq = ledger.head.seq
    proc = _child(WRITER, db)
    try:
        _wait_for(proc, "1000")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # The lock died with the process: no LedgerLockedError (the server may take a moment to
    # notice the dead session and drop its advisory lock: wait for that, not fail on it).
    with db.open(lock_wait=20) as ledger:
        assert ledger.recovered_runs == [2]
        result = ledger.verify()
        assert result.ok, result.message
        assert ledger.head.seq > baseline_seq
        conn = ledger.conn
        status, problems = conn.execute("SELECT status, problems FROM runs WHERE id = 2").fetchone()
        assert status == "failed"
        assert "did not finish" in problems
        # Whole batches only: every staged version has its change, every change its event.
        versions = conn.execute("SELECT count(*) FROM object_versions WHERE run_id = 2").fetchone()[0]
        changes = conn.execute("SELECT count(*) FROM changes WHERE run_id = 2").fetchone()[0]
        # The child had staged 1001 observations; all but the last unflushed batch are in.
        assert 900 <= versions < 5000 and versions == changes
        contents = conn.execute("SELECT count(*) FROM contents c JOIN object_versions v "
                                "ON v.id = c.version_id WHERE v.run_id = 2").fetchone()[0]
        assert contents == versions
        # The killed run never got to its lifecycle: no drift was opened by it.
        assert conn.execute("SELECT count(*) FROM drifts").fetchone()[0] == 0
        # The next run proceeds normally on top of it.
        run = ledger.begin_run(started_at=at(2))
        run.record(in_sync(key("app-1")))
        assert run.finish().status == "complete"
        assert ledger.verify().ok


def test_second_writer_gets_a_clear_lock_error(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    proc = _child(HOLDER, db)
    try:
        _wait_for(proc, "locked")
        with pytest.raises(LedgerLockedError) as err:
            db.open()
        message = str(err.value)
        assert "only one run may write" in message and "\n" not in message
        if db.postgresql:  # the holder's session, by its application_name
            assert f"(cluster {db.cluster})" in message
            assert f"drift-auditor {proc.pid}@{socket.gethostname()[:20]} since 20" in message
        else:
            assert str(db.location) in message
            assert f"pid {proc.pid} on {socket.gethostname()} since 20" in message
    finally:
        proc.kill()
        proc.wait()
    # Released by the kernel (flock) or the server (session gone) on the holder's death.
    with db.open(lock_wait=20) as ledger:
        assert ledger.recovered_runs == []


def test_two_writers_in_one_process_also_conflict(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    holder = f"drift-auditor {os.getpid()}@" if db.postgresql else f"pid {os.getpid()}"
    with db.open(), pytest.raises(LedgerLockedError, match=holder):
        db.open(lock_wait=0.2)
    with db.open():
        pass


def test_exception_inside_the_context_marks_the_run_failed(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    with pytest.raises(RuntimeError), db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(key("web"), {"a": 1}))
        raise RuntimeError("git fetch exploded")
    (status, problems), = db.rows("SELECT status, problems FROM runs")
    assert status == "failed" and "git fetch exploded" in problems
