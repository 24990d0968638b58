"""Which backend a ledger target names, and a reader's connection on either.

A target is an SQLite file (``ledger.path``) or a ``postgresql://`` URL (``ledger.url``, one
cluster's ledger in the fleet store, :mod:`.pgconn`). Commands that read a ledger open it
through :func:`reader`, so the file and the URL take one path; psycopg is imported
only when the target is a URL. (Kept out of :mod:`.schema`, which :mod:`.pgconn` builds on.)

Readers (``report``, ``serve``, ``metrics``, ``ledger history``) name a ledger as a
:data:`Target`: a file's :class:`~pathlib.Path`, or a :class:`StoreLedger` (one cluster of
the store). :func:`parse_target` turns a ``--ledger`` value into targets: a file, a store URL
with ``#cluster`` (that cluster), or a store URL alone (every cluster ``da_fleet.clusters``
lists). :func:`reader` opens either for one read; on the store a read-only session whose
transactions are ``REPEATABLE READ`` (one snapshot for verification and report, as SQLite's
deferred ``BEGIN`` gives a file's reader).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, TypeGuard

from auditor.config import LEDGER_CLUSTER, url_has_password
from auditor.errors import LedgerError

from . import schema

if TYPE_CHECKING:
    from auditor.config import LedgerConfig

URL_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class StoreLedger:
    """One cluster's ledger in the fleet store, as a reader names it. ``name``/``stem`` (the
    cluster) and ``str()`` (``URL#cluster``, never a password: a URL carrying one is refused
    by :func:`parse_target`) stand in where a file's :class:`Path` was used."""

    url: str
    cluster: str
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.cluster

    @property
    def stem(self) -> str:
        return self.cluster

    def __str__(self) -> str:
        return f"{self.url}#{self.cluster}"


# What a reader reads: a ledger file, or one cluster of the store.
Target = Path | StoreLedger


def is_url(target: str | Path | None) -> TypeGuard[str]:
    """Whether ``target`` names a PostgreSQL ledger rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def _check_url(url: str, given: str) -> None:
    """A store URL as ``--ledger`` takes it: no password (it would show in the report's
    header and the process list; ``ledger.password-file`` holds it)."""
    if url_has_password(url):
        raise LedgerError(f"--ledger {given.split('://', 1)[0]}://…: the URL carries a "
                          "password; put it in ledger.password-file instead")


def parse_target(text: str | Path, *, password: str | None = None) -> list[Target]:
    """The ledgers one ``--ledger`` value names: a file; ``postgresql://…#NAME``, cluster
    NAME of the store; ``postgresql://…`` alone, every cluster of the store (from
    ``da_fleet.clusters``, by name). Errors are one line."""
    if not is_url(text):
        return [Path(text)]
    url, sep, cluster = text.partition("#")
    _check_url(url, text)
    if sep:
        if not LEDGER_CLUSTER.fullmatch(cluster):
            raise LedgerError(f"--ledger {url}#{cluster}: {cluster!r} is not a cluster name "
                              "(lower-case letters, digits and -)")
        return [StoreLedger(url, cluster, password)]
    from . import pgconn  # psycopg only for a PostgreSQL ledger

    names = pgconn.clusters(url, password=password)
    if not names:
        raise LedgerError(f"--ledger {url}: the store holds no cluster yet")
    return [StoreLedger(url, name, password) for name in names]


def parse_targets(texts: Sequence[str | Path], *,
                  password: str | None = None) -> list[Target]:
    """Every ``--ledger`` value's ledgers, in the order given."""
    return [t for text in texts for t in parse_target(text, password=password)]


def configured(url: str, cluster: str, path: str | Path, *,
               password: str | None = None) -> Target:
    """The configuration's own ledger (``ledger.url`` + ``ledger.cluster``, else
    ``ledger.path``)."""
    if url:
        if not cluster:
            raise LedgerError("a PostgreSQL ledger needs its cluster's name (ledger.cluster)")
        return StoreLedger(url, cluster, password)
    return Path(path)


def configured_ledger(ledger: LedgerConfig) -> Target:
    """The configured ledger as a :data:`Target`: ``ledger.url`` + ``ledger.cluster`` (the
    password read from ``ledger.password-file``), else the file at ``ledger.path``. The one
    way commands and outputs name "the configured ledger"."""
    password = ledger.read_password() if ledger.url else None
    return configured(ledger.url, ledger.cluster, ledger.path, password=password)


def writer_target(given: str | Path | None, ledger: LedgerConfig) -> Target:
    """The ledger a writing command (``ack``, ``respond``, ``prune``, ``adopt``) opens: its
    ``--ledger`` (a file; ``URL#CLUSTER``; a URL alone means ``ledger.cluster`` there), else
    the configured ledger. A writer never fans out over a store's clusters."""
    if not given:
        return configured_ledger(ledger)
    if not is_url(given):
        return Path(given)
    url, sep, _ = given.partition("#")
    if not sep:
        if not ledger.cluster:
            raise LedgerError(f"--ledger {url}: name the cluster to write as URL#CLUSTER (or "
                              "set ledger.cluster)")
        given = f"{url}#{ledger.cluster}"
    found = parse_target(given, password=ledger.read_password())
    return found[0]


class StoreArgs(TypedDict, total=False):
    """The keywords ``Ledger.open``/``Outbox.open`` take for a store cluster."""

    cluster: str | None
    password: str | None


def location(target: Target | str | Path) -> tuple[str | Path, StoreArgs]:
    """``Ledger.open``/``Outbox.open``'s arguments for ``target``: the path, or the store URL
    with ``cluster`` and ``password`` keywords (a file needs none)."""
    if isinstance(target, StoreLedger):
        return target.url, {"cluster": target.cluster, "password": target.password}
    return target, {}


def key_location(target: Target | str | Path) -> str | Path:
    """What :func:`.keyfile.signing_key_file` and the like take for ``target``: the file, or
    the store's URL (which has no "beside the ledger")."""
    return target.url if isinstance(target, StoreLedger) else target


def readers(given: Sequence[str | Path], ledger: LedgerConfig) -> list[Target]:
    """What a reading command reads: its ``--ledger`` values (:func:`parse_targets`), else
    the configured ledger; a store's password from ``ledger.password-file``."""
    wants_password = any(is_url(g) for g in given) or (not given and bool(ledger.url))
    password = ledger.read_password() if wants_password else None
    if given:
        return parse_targets(given, password=password)
    return [configured(ledger.url, ledger.cluster, ledger.path, password=password)]


def one_reader(given: str | Path | None, ledger: LedgerConfig) -> Target:
    """:func:`readers` for a command that reads one ledger: a store URL must then name its
    cluster (``URL#CLUSTER``) unless the store holds only one."""
    found = readers([given] if given else [], ledger)
    if len(found) != 1:
        raise LedgerError(f"--ledger {given}: the store holds {len(found)} clusters; name one "
                          "as URL#CLUSTER")
    return found[0]


def as_target(target: str | Path | StoreLedger) -> Target:
    """A reader's argument as a :data:`Target` (a file given as text is a :class:`Path`;
    a URL needs its ``#cluster`` here)."""
    if isinstance(target, StoreLedger | Path):
        return target
    if is_url(target):
        found = parse_target(target)
        if len(found) != 1:
            raise LedgerError(f"{target}: name one cluster (URL#cluster)")
        return found[0]
    return Path(target)


@contextmanager
def reader(target: str | Path | StoreLedger) -> Iterator[sqlite3.Connection]:
    """One read of ``target``: :func:`.schema.reading_checked` for a file; for a store
    cluster a read-only session (:func:`.pgconn.reading`) whose ``BEGIN`` is one
    ``REPEATABLE READ`` snapshot."""
    found = as_target(target)
    if isinstance(found, StoreLedger):
        from . import pgconn

        with pgconn.reading(found.url, found.cluster, password=found.password) as pg:
            yield pg  # type: ignore[misc]
        return
    with schema.reading_checked(found) as conn:
        yield conn


def exists(target: Target) -> bool:
    """Whether ``target`` holds a ledger (for a command that never creates one: ``adopt``):
    the file is there; the store lists the cluster. An unreachable store is an error, not
    "no ledger"."""
    if not isinstance(target, StoreLedger):
        return target.is_file()
    from . import pgconn
    from .dialect import BackendError

    try:
        return target.cluster in pgconn.clusters(target.url, password=target.password)
    except BackendError:
        raise
    except LedgerError:  # the database holds no fleet store (yet)
        return False


def keep_readers(targets: Sequence[Target]) -> None:
    """For a long-lived reader (``serve``): keep the store's reader sessions open for reuse
    (:func:`.pgconn.keep_readers`) when any of ``targets`` is in the store."""
    if any(isinstance(t, StoreLedger) for t in targets):
        from . import pgconn

        pgconn.keep_readers()
