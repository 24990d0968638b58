"""A child process for the ledger crash suite: a real run (or a ledger open) that SIGKILLs
itself at a chosen point. Run as ``python -m tests.faults.ledgerkill MODE ...``.

``run CONFIG DESIRED KILL_AT PHASE BATCH_SIZE``
    ``run_once`` with the ledger's batch size set to BATCH_SIZE. Every committed batch write
    prints ``committed N SEQ`` (the write's number and the chain head it committed). Write
    KILL_AT is killed ``before`` its COMMIT (everything of it executed, nothing committed) or
    ``after`` it; KILL_AT 0 runs to the end and prints ``done RUN_ID STATUS``.

``hold CONFIG DESIRED GATE``
    ``run_once`` that, once its run has begun (the writer lock held), prints ``begun`` and
    waits until the file GATE exists before going on.

``migrate LEDGER STEP``
    ``Ledger.open`` with migration step STEP run in full and the process killed before the
    step's COMMIT (its tables created, its user_version set, nothing committed).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _KillOnCommit:
    """The batch's connection, except that its COMMIT kills the process instead."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.strip().upper() == "COMMIT":
            _die()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _instrument(kill_at: int, phase: str, batch_size: int) -> None:
    from auditor.ledger import store, writer

    original_write = writer.Batch.write
    writes = 0

    def write(self: writer.Batch, conn: sqlite3.Connection) -> None:
        nonlocal writes
        if not len(self):
            return
        writes += 1
        if writes == kill_at and phase == "before":
            original_write(self, _KillOnCommit(conn))  # type: ignore[arg-type]
            raise AssertionError("the kill did not happen")
        original_write(self, conn)
        print(f"committed {writes} {self.head.seq}", flush=True)
        if writes == kill_at:
            _die()

    writer.Batch.write = write  # type: ignore[method-assign]
    original_open = store.Ledger.open.__func__  # type: ignore[attr-defined]

    def open_(cls: type[store.Ledger], path: Any, **kw: Any) -> store.Ledger:
        return original_open(cls, path, **{**kw, "batch_size": batch_size})

    store.Ledger.open = classmethod(open_)  # type: ignore[assignment,method-assign]


def _run(config: str, desired: str) -> None:
    from auditor import config as config_mod
    from auditor.pipeline import run_once

    outcome = run_once(config_mod.load(config, env={}), desired_path=desired)
    print(f"done {outcome.run_id} {outcome.status}", flush=True)


def _hold(gate: Path) -> None:
    from auditor.ledger import store

    original_begin = store.Ledger.begin_run

    def begin_run(self: store.Ledger, *args: Any, **kw: Any) -> store.Run:
        run = original_begin(self, *args, **kw)
        print("begun", flush=True)
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return run

    store.Ledger.begin_run = begin_run  # type: ignore[method-assign]


def _migrate(ledger: str, step_number: int) -> None:
    from auditor.ledger import schema
    from auditor.ledger.store import Ledger

    def killing(step: Any) -> Any:
        def run(db: Any) -> None:
            step(db)
            db.conn.execute(f"PRAGMA user_version = {step_number}")
            _die()
        return run

    schema.MIGRATIONS = tuple((n, killing(s) if n == step_number else s)
                              for n, s in schema.MIGRATIONS)
    Ledger.open(ledger)
    raise AssertionError("the kill did not happen")


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "run":
        config, desired, kill_at, phase, batch_size = argv[1:6]
        _instrument(int(kill_at), phase, int(batch_size))
        _run(config, desired)
    elif mode == "hold":
        config, desired, gate = argv[1:4]
        _hold(Path(gate))
        _run(config, desired)
    elif mode == "migrate":
        _migrate(argv[1], int(argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
