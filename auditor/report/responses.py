"""Management responses to the report's exceptions (``drift-auditor respond``).

A SOC 2 report states, next to each exception, management's response to it. The ledger
holds them (schema step 9, :mod:`auditor.ledger.accountability`), each naming a drift or a
change; the report keeps those that answer a drift or a change it shows, linked to that row.
Responses are read up to the moment the report is made, not only within its period: a
response is usually written after the period closed, while the report is being prepared, and
each one carries its own time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from auditor.ledger import accountability

from .model import ChangeItem, DriftEpisode, ManagementResponse


def build(conn: sqlite3.Connection, changes: Sequence[ChangeItem],
          drifts: Sequence[DriftEpisode]) -> list[ManagementResponse]:
    """The responses to the drifts and changes of this report, oldest first, each with the
    anchor of the row it answers (a drift's first occurrence in the period)."""
    anchors: dict[str, str] = {}
    for d in drifts:
        anchors.setdefault(f"drift:{d.drift_id}", d.anchor)
    for c in changes:
        anchors.setdefault(f"change:{c.id}", c.anchor or f"chg-{c.id}")
    out = []
    for r in accountability.responses(conn):
        ref = f"{r.ref_kind}:{r.ref_id}"
        if ref in anchors:
            out.append(ManagementResponse(r.id, ref, anchors[ref], r.by, r.identity,
                                          r.identity_source, r.at, r.text))
    return out
