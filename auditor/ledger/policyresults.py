"""Ledger tables for policy results per run, policy and object."""

from __future__ import annotations

import sqlite_utils


def migrate(db: sqlite_utils.Database) -> None:
    """Create this feature's tables (schema step; see :mod:`.schema`)."""
