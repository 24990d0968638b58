"""The ledger opened for one write at a time by any thread of the watch process.

The ledger's writer lock is an ``flock`` (:mod:`auditor.ledger.lock`): a second open from
another thread of the same process waits for it by polling. A thread lock in front of it
makes the batch writer, the audit log tailer and the audit webhook queue for each other
instead, and leaves the file lock to keep other processes (the scheduled ``run``) out.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from auditor import __version__
from auditor.config import Config
from auditor.ledger import Ledger, backend
from auditor.pipeline import ledger_signing_key


class LedgerWriter:
    """The ledger opened for one write at a time by any thread of this process."""

    def __init__(self, cfg: Config, *, config_hash: str = "") -> None:
        self._cfg = cfg
        # The watch's configuration version (auditor.ledger.configlog), DriftIgnore files in.
        self._config_hash = config_hash or cfg.digest()
        self._lock = threading.Lock()
        # Resolved (and created, on the ledger's first write) once: every batch signs alike.
        self._signing_key = ledger_signing_key(cfg)

    @contextlib.contextmanager
    def open(self) -> Iterator[Ledger]:
        cfg = self._cfg
        # ledger.target: the SQLite file, or this cluster's ledger in the fleet store (whose
        # lock is an advisory lock of the session, so threads queue on the thread lock too).
        target, store = backend.location(backend.configured_ledger(cfg.ledger))
        with self._lock, Ledger.open(target, tool_version=__version__,
                                     config_hash=self._config_hash,
                                     signing_key_file=self._signing_key,
                                     sign=cfg.ledger.sign,
                                     lock_wait=cfg.ledger.lock_wait_seconds, **store) as ledger:
            yield ledger
