"""The audit ledger: an append-only, hash-chained record in SQLite of every run, every object
version, every live change with its actor, every drift's lifecycle and every Git commit
audited. This package is the only place that touches SQLite.

    with Ledger.open(path, tool_version=..., config_hash=...) as ledger:
        run = ledger.begin_run(cluster="prod", git_commits={"apps": sha})
        known = run.listed(keys_of_page)  # per page of live objects: what the ledger holds
        run.observe(Observation(...))     # only changed objects
        run.record(result)                # every comparison result
        run.finish("complete", counts={...}, skipped_kinds=[...], problems=[...])

    with reading(path) as conn:            # outputs: no lock, never writes
        open_now = drifts(conn)
"""

from __future__ import annotations

from .auditlog import AuditLog
from .history import HistoryFilter, drifts, query, runs
from .lifecycle import HOWS
from .schema import SCHEMA_VERSION, reading
from .store import Ledger, Observation, Run, RunSummary, content_hash
from .verify import VerifyResult

__all__ = ["HOWS", "SCHEMA_VERSION", "AuditLog", "HistoryFilter", "Ledger", "Observation", "Run",
           "RunSummary", "VerifyResult", "content_hash", "drifts", "query", "reading", "runs"]
