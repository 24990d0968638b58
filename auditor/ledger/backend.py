"""Which backend a ledger target names, and a reader's connection on either.

A target is an SQLite file (``ledger.path``) or a ``postgresql://`` URL (``ledger.url``, one
cluster's ledger in the fleet store, :mod:`.pgconn`). Commands that read a ledger open it
through :func:`reading_checked`, so the file and the URL take one path; psycopg is imported
only when the target is a URL. (Kept out of :mod:`.schema`, which :mod:`.pgconn` builds on.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeGuard

from auditor.errors import LedgerError

from . import schema

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | Path | None) -> TypeGuard[str]:
    """Whether ``target`` names a PostgreSQL ledger rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


@contextmanager
def reading_checked(target: str | Path, *, cluster: str | None = None,
                    password: str | None = None) -> Iterator[sqlite3.Connection]:
    """:func:`.schema.reading_checked` for a file; for a URL, ``cluster``'s ledger in the
    store, read-only (:func:`.pgconn.reading`), whose errors already are one line
    (:class:`.dialect.BackendError`)."""
    if not is_url(target):
        with schema.reading_checked(target) as conn:
            yield conn
        return
    from . import pgconn  # psycopg only for a PostgreSQL ledger

    if not cluster:
        raise LedgerError("a PostgreSQL ledger needs its cluster's name (ledger.cluster)")
    with pgconn.reading(target, cluster, password=password) as pg:
        # The part of sqlite3.Connection the readers use (see pgconn's docstring).
        yield pg  # type: ignore[misc]


def describe(conn: sqlite3.Connection, target: str | Path) -> str:
    """The ledger for messages: ``target`` as given for a file; for a URL the server,
    database and cluster, never a password."""
    return schema.path_of(conn) if is_url(target) else str(target)
