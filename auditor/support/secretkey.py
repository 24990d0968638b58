"""The key for hashing Secret values: Secret values never leave the process, only keyed
hashes of them do, so that a changed value is visible as a changed hash without the value
being recoverable from reports, the ledger or JSON output.

The key comes from a configured file; failing that it is created once beside the ledger
(mode 0600) so that hashes stay comparable from run to run. A ledger in the PostgreSQL fleet
store has no "beside": its writers require the configured file (:func:`for_ledger`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from auditor.errors import ConfigError


def load_key(path: str | Path) -> bytes:
    try:
        data = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"compare.secret-hash-key-file: cannot read {path}: {exc.strerror}") from None
    if len(data) < 16:
        raise ConfigError(f"compare.secret-hash-key-file: {path} holds {len(data)} bytes; "
                          "at least 16 are needed")
    return data


def load_or_create(path: str | Path) -> bytes:
    """The key in ``path``, creating a random one there first if the file does not exist."""
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
    return load_key(target)


def ephemeral() -> bytes:
    """A key for one process: hashes compare within a single `diff`, never across runs."""
    return secrets.token_bytes(32)


STORE_NEEDS_KEY = ("compare.secret-hash-key-file: required with a PostgreSQL ledger "
                   "(ledger.url): every pod writing the store must hash Secret values with one "
                   "key (a key made on one pod's disk makes every Secret look changed)")


def for_ledger(key_file: str | Path | None, ledger_path: str | Path, *,
               create: bool = False, store: bool = False) -> bytes:
    """The Secret hash key: ``key_file`` (``compare.secret-hash-key-file``) when set, else the
    one beside the ledger (created there on first use by ``run`` and ``snapshot``, so hashes
    stay comparable across runs), else one for this process only.

    ``store``: the ledger is in the PostgreSQL fleet store (``ledger.url``). Its writers may
    run on any pod, with or without the volume ``ledger.path`` is on, and compare-clusters
    compares the hashes of several clusters: a writer (``create``) then requires
    ``key_file`` rather than make a key of its own (:class:`ConfigError`, one line). The key
    is never put in the store itself: the keyed hashes there would then be as good as
    unkeyed to whoever reads the store."""
    if key_file:
        return load_key(key_file)
    if store:
        if create:
            raise ConfigError(STORE_NEEDS_KEY)
        return ephemeral()  # a diff: hashes compared within this process only
    beside = Path(ledger_path).with_suffix(".key")
    if create:
        return load_or_create(beside)
    if beside.exists():
        return load_key(beside)
    return ephemeral()
