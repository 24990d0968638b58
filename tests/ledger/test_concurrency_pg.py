"""Many clusters writing one fleet store at once, as separate processes (PostgreSQL only: the
SQLite ledgers of different clusters are different files and cannot share anything).

Each writer process times its own writer-lock acquisitions (:class:`AdvisoryWriterLock`
wrapped: a first non-waiting try tells whether it had to wait at all) and the wall-clock span
of each run, and prints them as JSON; the test checks that the clusters never waited on each
other, that one cluster's two writers did wait and did not overlap, and that every chain
verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from auditor.ledger import Ledger
from tests.pgkit import PgDatabase

from .backends import pg_url

ROOT = Path(__file__).resolve().parents[2]

# argv: url cluster runs objects tag. Prints "ready", waits for a line on stdin (so every
# writer starts at once, after its imports), writes `runs` runs of `objects` observations,
# one Ledger.open per run as scheduled runs do, then prints its measurements as JSON.
WRITER = r"""
import json, sys, time
from auditor.errors import LedgerLockedError
from auditor.ledger import Ledger, pgconn
from tests.ledger.helpers import at, drifted, in_sync, key, obs

url, cluster = sys.argv[1], sys.argv[2]
runs, objects, tag = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
waits = []
acquire = pgconn.AdvisoryWriterLock.acquire

def timed(self, wait_seconds=0.0):
    started = time.monotonic()
    try:
        acquire(self, 0.0)
        contended = False
    except LedgerLockedError:
        contended = True
        acquire(self, wait_seconds)
    waits.append([time.monotonic() - started, contended])

pgconn.AdvisoryWriterLock.acquire = timed
schemas = []
ensure = pgconn.ensure_schema

def timed_schema(conn):
    started = time.monotonic()
    found = ensure(conn)
    schemas.append([time.monotonic() - started, found == 0])
    return found

pgconn.ensure_schema = timed_schema
print("ready", flush=True)
sys.stdin.readline()
spans = []
for r in range(runs):
    with Ledger.open(url, cluster=cluster, lock_wait=120, batch_size=100) as ledger:
        run = ledger.begin_run(started_at=at(tag * 10 + r))
        begun = time.time()
        for i in range(objects):
            k = key(f"app-{i}")
            run.observe(obs(k, {"replicas": r, "i": i}, rv=str(r + 1)))
            run.record(drifted(k, ("spec.replicas", 1, r)) if i % 7 == 0 else in_sync(k))
        run.finish()
        spans.append([begun, time.time(), run.id])
print(json.dumps({"waits": waits, "spans": spans, "schemas": schemas}), flush=True)
"""


def _writers(url: str, jobs: list[tuple[str, int, int, int]]) -> list[dict[str, Any]]:
    """Start one writer process per (cluster, runs, objects, tag), release them together,
    and return each one's measurements (in ``jobs`` order)."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, cluster, str(runs),
                               str(objects), str(tag)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for cluster, runs, objects, tag in jobs]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", proc.stderr.read() if proc.stderr else line
        for proc in procs:  # the "go" line: as close to simultaneous as processes get
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# The largest lock wait that still means "did not wait": one pg_try_advisory_lock round trip
# on a loaded two-core machine. A writer blocked by another would wait a whole run (seconds).
NO_WAIT = 0.5


def test_eight_clusters_write_at_once_without_waiting_on_each_other(
        pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    clusters = [f"c{n}" for n in range(8)]
    started = time.monotonic()
    results = _writers(url, [(c, 3, 300, n) for n, c in enumerate(clusters)])
    elapsed = time.monotonic() - started
    waits = [w for r in results for w, _ in r["waits"]]
    # Opening an existing cluster's schema (runs 2 and 3) takes no store-wide lock.
    checks = [t for r in results for t, created in r["schemas"] if not created]
    print(f"\n8 clusters x 3 runs x 300 observations in {elapsed:.1f}s; writer-lock wait "
          f"max {max(waits) * 1000:.1f} ms, mean {sum(waits) / len(waits) * 1000:.1f} ms; "
          f"schema check of an existing cluster max {max(checks) * 1000:.1f} ms")
    for cluster, result in zip(clusters, results, strict=True):
        assert len(result["waits"]) == 3
        assert not any(contended for _, contended in result["waits"]), (cluster, result)
        assert max(w for w, _ in result["waits"]) < NO_WAIT, (cluster, result)
        assert [created for _, created in result["schemas"]] == [True, False, False]
        assert max(t for t, created in result["schemas"] if not created) < NO_WAIT, result
    # The runs really overlapped in time, else "no waiting" would prove nothing. (Not every
    # cluster need overlap another: the first opens create the schemas one at a time, under
    # the store's schema lock, and on a loaded machine one cluster may be done by then.)
    edges = sorted([(s[0], 1) for r in results for s in r["spans"]]
                   + [(s[1], -1) for r in results for s in r["spans"]])
    running = busiest = 0
    for _, step in edges:
        running += step
        busiest = max(busiest, running)
    print(f"at most {busiest} runs at the same moment")
    assert busiest >= 2, results
    for cluster in clusters:
        with Ledger.open(url, cluster=cluster, lock_wait=0) as ledger:
            verified = ledger.verify()
            assert verified.ok, (cluster, verified.message)
            rows = ledger.conn.execute("SELECT id, status FROM runs ORDER BY id").fetchall()
            assert [tuple(r) for r in rows] == [(1, "complete"), (2, "complete"),
                                                (3, "complete")]
            assert ledger.conn.execute("SELECT count(*) FROM objects").fetchone()[0] == 300


def test_two_writers_of_one_cluster_started_at_once_serialise(pg_database: PgDatabase) -> None:
    url = pg_url(pg_database)
    first, second = _writers(url, [("shared", 1, 400, 0), ("shared", 1, 400, 1)])
    (w1, c1), = first["waits"]
    (w2, c2), = second["waits"]
    (a_start, a_end, a_id), = first["spans"]
    (b_start, b_end, b_id), = second["spans"]
    # Exactly one of them found the lock taken and waited for the other's whole run.
    assert c1 != c2, (first, second)
    (lead_start, lead_end), (late_start, _late_end) = sorted(
        [(a_start, a_end), (b_start, b_end)], key=lambda span: span[0])
    waited = w2 if c2 else w1
    print(f"\nsame cluster: the second writer waited {waited:.2f}s for the lock; "
          f"the first's run took {lead_end - lead_start:.2f}s")
    assert late_start >= lead_end, "the second run began before the first had finished"
    assert waited >= (lead_end - lead_start) * 0.9
    assert sorted([a_id, b_id]) == [1, 2]
    with Ledger.open(url, cluster="shared", lock_wait=0) as ledger:
        result = ledger.verify()
        assert result.ok, result.message
        rows = ledger.conn.execute(
            "SELECT id, status, seq_begin, seq_end FROM runs ORDER BY id").fetchall()
        assert [r[1] for r in rows] == ["complete", "complete"]
        assert rows[0][3] < rows[1][2]  # the chain holds one run, then the other
