"""Progress reporting for long work: a live status line on a terminal, plain log lines
otherwise (a CronJob's log should read as a list of finished steps, not carriage returns)."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("auditor.support.progress")


class Progress:
    """Counts finished units of a task (kinds listed, files rendered) and shows it."""

    def __init__(self, task: str, total: int | None = None, *, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.task = task
        self.total = total
        self.done = 0
        self.items = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self._started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, label: str, items: int = 0, ok: bool = True) -> None:
        self.done += 1
        self.items += items
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw > 0.05 or (self.total and self.done >= self.total):
                self._last_draw = now
                total = f"/{self.total}" if self.total else ""
                line = f"{self.task}: {self.done}{total} · {self.items:,} objects · {label}"
                self.stream.write("\r\x1b[2K" + line[:120])
                self.stream.flush()
        else:
            state = "ok" if ok else "skipped"
            log.info("%s: %s %s (%d objects)", self.task, label, state, items)

    def finish(self) -> None:
        if self.tty:
            elapsed = time.monotonic() - self._started
            self.stream.write(f"\r\x1b[2K{self.task}: {self.done} done, {self.items:,} objects "
                              f"in {elapsed:.1f}s\n")
            self.stream.flush()
