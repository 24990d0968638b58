"""Watch mode's own state in the ledger: where each watched kind resumes, and which watch
event is older than what the ledger already holds.

``drift-auditor watch`` records every change between scheduled runs as *watch runs*: each
batch of watch events is one run (``runs.mode = 'watch'``, :meth:`.store.Ledger.begin_run`),
judged only for the objects of its batch. Where each kind's watch resumes is one row per
``group_kind`` (``Deployment.apps``, ``ConfigMap``) in ``watch_positions``, written by
:meth:`.store.Run.finish` in the very transaction that commits the batch's drift lifecycle
and closes the run (:meth:`.store.Run.set_watch_positions`): a watch killed at any moment
resumes exactly after what it last committed — never after events whose drift was not judged
(those are delivered again, and the ledger's content hashes make the replay record nothing
twice), never before events already judged.

The table is **not chained**. A position is a cursor, not evidence: it is rewritten by every
batch (an append-only chain would grow by one row per kind per batch for nothing), and what
it leads to is checked elsewhere. Moving it back only replays events the ledger already holds
(nothing is recorded twice); moving it forward or deleting it makes the watch skip or relist,
and the changes it would have seen still reach the ledger through the next scheduled run, or
show up as writes no ledger change matches when the API server's audit events are recorded
(:mod:`.completeness`) — which is where an auditor looks for missing changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from . import schema

UPSERT = ("INSERT INTO watch_positions (group_kind, resource_version, run_id, updated_at) "
          "VALUES (?, ?, ?, ?) ON CONFLICT(group_kind) DO UPDATE SET "
          "resource_version = excluded.resource_version, run_id = excluded.run_id, "
          "updated_at = excluded.updated_at")
DELETE = "DELETE FROM watch_positions WHERE group_kind = ?"


def positions(conn: sqlite3.Connection) -> dict[str, str]:
    """``{group_kind: resourceVersion}`` as last committed (empty before any watch)."""
    if "watch_positions" not in schema.tables(conn):
        return {}
    return {str(gk): str(rv) for gk, rv in conn.execute(
        "SELECT group_kind, resource_version FROM watch_positions ORDER BY group_kind")}


def checked(positions: Mapping[str, str | None]) -> dict[str, str | None]:
    """``positions`` as strings (``None``: forget the kind's position, e.g. after a 410
    Gone the watch relists it)."""
    return {str(gk): (None if rv is None else str(rv)) for gk, rv in positions.items()}


def older(resource_version: str, than: str) -> bool:
    """Whether a watch event's ``resource_version`` is not newer than ``than`` (what the
    ledger holds for the object): a stale or repeated event.

    kube-apiserver's resourceVersions are etcd revisions: decimal integers that grow with
    every write in the cluster. Anything else is treated as opaque, and then nothing is called
    older. A watch batch waiting for the writer lock while a scheduled run lists the
    cluster delivers, after that run, events older than what the run recorded: without this
    they would be recorded as changes back to old content.
    """
    if not resource_version or not than or not resource_version.isdigit() \
            or not than.isdigit():
        return False
    return int(resource_version) <= int(than)
