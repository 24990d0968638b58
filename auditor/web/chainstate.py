"""Chain verification for serve's fleet overview, kept off the request path.

Verifying a cluster's chain walks every event: about 0.6 s for a quarter of hourly runs, so
12 s for a fleet of 20 such clusters, which the first request of the overview used to wait
for (and every request after a cluster's run, for that cluster). Here each ledger's last
verification is kept with the ledger signature it covered (:func:`auditor.ledger.readonly.
signature`: files' size, mtime and inode; a store cluster's newest event). When a page finds
it older than the ledger, one background thread verifies the ledger again, ledgers one at a
time (a walk is CPU-bound Python: two at once would only share the interpreter). The page
waits for it at most :data:`VERIFY_WAIT_S` in all, so a small fleet shows fresh results on
its first request, and otherwise says what it shows: not verified yet, or verified up to an
earlier event while the newer ones are being verified. A ledger that changed is always
verified again in full (an append does not vouch for the rows before it).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass

from auditor.errors import LedgerError
from auditor.ledger.backend import Target
from auditor.ledger.readonly import reading, signature
from auditor.ledger.verify import verify as verify_ledger

log = logging.getLogger(__name__)

# What a page waits, in all, for verifications it found stale before it renders what it has.
VERIFY_WAIT_S = 0.25
# Seconds the verifying thread waits for more work before it ends.
IDLE_S = 2.0

Signature = tuple[int, ...]


@dataclass(frozen=True)
class Verdict:
    """What a page shows of one ledger's chain."""

    ok: bool | None  # None: not verified yet
    message: str
    state: str  # current | stale (newer events not yet verified) | pending (never verified)
    took: float | None = None  # seconds the walk took


class ChainState:
    """One ledger's last verification, refreshed through a :class:`Verifier`."""

    def __init__(self, path: Target, verifier: Verifier) -> None:
        self.path = path
        self._verifier = verifier
        self._cond = threading.Condition()
        # (signature covered, chain verifies, message, last event covered, seconds taken)
        self._last: tuple[Signature, bool, str, int, float] | None = None
        self._pending = False

    def refresh(self, current: Signature) -> None:
        """Ask for a verification when the last one does not cover ``current``."""
        with self._cond:
            if self._pending or (self._last is not None and self._last[0] == current):
                return
            self._pending = True
        self._verifier.submit(self)

    def verdict(self, current: Signature, deadline: float) -> Verdict:
        """The verification covering ``current`` if it is (or becomes, before ``deadline``,
        a :func:`time.monotonic` time) available, else the last one, said to be older."""
        self.refresh(current)
        with self._cond:
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            last = self._last
        if last is None:
            return Verdict(None, "verifying the hash chain (first check since serve started)",
                           "pending")
        covered, ok, message, head, took = last
        if covered == current or not covered:  # not covered: the walk itself failed
            return Verdict(ok, message, "current", took)
        return Verdict(ok, f"{message}; verified up to event #{head}, the newer events are "
                       "being verified", "stale", took)

    def for_metrics(self, current: Signature, deadline: float
                    ) -> tuple[bool | None, float | None]:
        """``ledger_verify_ok`` and its duration for a scrape: the result covering
        ``current`` if it comes before ``deadline``, else the last one (absent until the
        first walk ends); the next scrape has the new result."""
        verdict = self.verdict(current, deadline)
        return verdict.ok, verdict.took

    def run(self) -> None:
        """Verify the ledger now (the verifier's thread)."""
        started = time.perf_counter()
        entry: tuple[Signature, bool, str, int, float] | None
        try:
            covered = signature(self.path)  # before our connection touches the WAL
            with reading(self.path) as conn:
                result = verify_ledger(conn)
            entry = (covered, result.ok, result.message, result.head_seq,
                     time.perf_counter() - started)
        except (sqlite3.Error, LedgerError) as exc:
            entry = ((), False, f"cannot be walked: {exc}", 0, time.perf_counter() - started)
        except Exception:  # a bug or a lost server: logged, and asked again by the next page
            log.exception("serve: verifying %s failed", self.path)
            entry = None
        with self._cond:
            if entry is not None:
                self._last = entry
            self._pending = False
            self._cond.notify_all()


class Verifier:
    """One daemon thread running the verifications asked for, in the order asked. It ends
    after :data:`IDLE_S` without work and starts again with the next: an idle serve (or a
    test, or an embedding program) keeps no thread, so :func:`~auditor.support.parallel.
    fork_map` may still fork there."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[ChainState] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, state: ChainState) -> None:
        with self._lock:
            self._queue.put(state)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="drift-auditor-verify")
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                state = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:  # submit puts under the lock: nothing can slip in between
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            state.run()
