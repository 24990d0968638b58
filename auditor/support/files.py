"""The cache files beside the ledger: replaced whole, so a reader (another run, a crash's
restart) sees the old content or the new, never a half-written file; and removed once no
run has used them for a while."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path


def write_whole(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` through a temporary file in the same folder (created if
    missing), renamed into place. Raises ``OSError`` as the filesystem does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.writelines(chunks)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


# Cache entries unused this long are removed (checked once a day, by the run).
RETENTION_DAYS = 30


def remove_unused(paths: Iterable[Path], older_than_days: float, *,
                  now: float | None = None) -> int:
    """Remove those of ``paths`` no run has used for ``older_than_days``. A cache hit
    rewrites nothing, so "used" goes by the access time where the filesystem keeps one,
    else by when the file was written: on a ``noatime`` mount a live entry may go, which
    costs one rebuild. Returns how many were removed."""
    cut = (now if now is not None else time.time()) - older_than_days * 86400
    removed = 0
    for path in paths:
        try:
            st = path.stat()
            if max(st.st_atime, st.st_mtime) < cut:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def once_a_day(stamp: Path, *, now: float | None = None) -> bool:
    """True at most once a day per ``stamp`` file (touched when it says so): a stat of every
    cache entry is not worth every run. False when the stamp cannot be read or written."""
    now = now if now is not None else time.time()
    try:
        if now - stamp.stat().st_mtime < 86400:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
        os.utime(stamp, (now, now))
    except OSError:
        return False
    return True
