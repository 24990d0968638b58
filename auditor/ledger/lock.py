"""The single-writer lock: an ``flock`` on ``<ledger>.lock`` holding who took it.

SQLite's own locking serialises transactions, not runs: two runs interleaving their batches
would each see a chain head the other moved. The kernel drops an ``flock`` when its holder
dies, even by SIGKILL, so a crashed run never leaves a stale lock behind. (``flock`` is not
reliable on NFS; keep the ledger on a local or block volume.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from auditor.errors import LedgerError, LedgerLockedError


class WriterLock:
    """Exclusive, non-reentrant, process-wide lock on one ledger file."""

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = ledger_path
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self, wait_seconds: float = 0.0) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot create the ledger lock: {exc.strerror}") from None
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _describe_holder(fd)
                    os.close(fd)
                    raise LedgerLockedError(
                        f"ledger {self.ledger_path} is in use by another drift-auditor process ({holder}); "
                        "only one run may write the ledger at a time — wait for it to finish"
                    ) from None
                time.sleep(0.05)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(info), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _describe_holder(fd: int) -> str:
    try:
        info = orjson.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, orjson.JSONDecodeError):
        info = {}
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
