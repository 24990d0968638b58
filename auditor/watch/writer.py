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
from auditor.ledger import Ledger


class LedgerWriter:
    """The ledger opened for one write at a time by any thread of this process."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def open(self) -> Iterator[Ledger]:
        cfg = self._cfg
        with self._lock, Ledger.open(cfg.ledger.path, tool_version=__version__,
                                     config_hash=cfg.digest(),
                                     signing_key_file=cfg.ledger.signing_key_file or None,
                                     lock_wait=cfg.ledger.lock_wait_seconds) as ledger:
            yield ledger
