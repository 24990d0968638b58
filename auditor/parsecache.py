"""A cache of parsed manifest files, keyed by the SHA-256 of their bytes.

PyYAML builds Python objects in Python even with its C parser: ~0.1 ms per small document,
which made parsing the largest cost of a steady-state run over thousands of manifests.
Parsed documents are stored as JSON (orjson reads them back ~30× faster). Only clean parses
are stored; a file with any error is parsed afresh each time so its messages stay exact.
The cache is an optimisation only: any failure to read or write it falls back to parsing.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

# Bump when the parser's output for the same bytes changes (new normalisation of scalars…).
PARSER_VERSION = b"render-1\0"


class ParseCache:
    """Parsed documents of manifest files, one small JSON file per distinct content."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self._writable = True

    def _path(self, data: bytes) -> Path:
        digest = hashlib.sha256(PARSER_VERSION + data).hexdigest()
        return self.folder / digest[:2] / f"{digest}.json"

    def lookup(self, data: bytes) -> list[tuple[int, dict[str, Any]]] | None:
        """``(document index, object)`` pairs parsed earlier from the same bytes, if any."""
        try:
            raw = self._path(data).read_bytes()
            entries = orjson.loads(raw)
        except (OSError, orjson.JSONDecodeError):
            self.misses += 1
            return None
        self.hits += 1
        return [(int(index), obj) for index, obj in entries]

    def store(self, data: bytes, objects: list[tuple[int, dict[str, Any]]]) -> None:
        if not self._writable:
            return
        path = self._path(data)
        try:
            payload = orjson.dumps([[index, obj] for index, obj in objects])
        except TypeError:
            return  # a value JSON cannot hold (a 65-bit integer): parse it again next time
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(payload)
            tmp.replace(path)
        except OSError as exc:
            # A read-only root filesystem in a pod, say: stop trying for this run.
            self._writable = False
            log.info("manifest parse cache disabled: %s", exc)
