"""Files replaced whole: a reader (another run, a crash's restart) sees the old content or
the new, never a half-written file. The caches beside the ledger are written this way."""

from __future__ import annotations

import os
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
