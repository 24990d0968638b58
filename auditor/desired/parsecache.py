"""A cache of parsed manifest files, keyed by the SHA-256 of their bytes.

PyYAML builds Python objects in Python even with its C parser: ~0.1 ms per small document,
which made parsing the largest cost of a steady-state run over thousands of manifests.
Parsed documents are stored packed (:mod:`auditor.support.packed`, JSON bytes) behind a small index
of what names each one, so a hit hands the bytes on without decoding them at all. Only clean
parses are stored; a file with any error is parsed afresh each time so its messages stay
exact. The cache is an optimisation only: any failure to read or write it falls back to
parsing.

No document that declares a Secret is stored: the cache sits beside the ledger, where Secret
values must not be (in clear, base64 or their ``last-applied`` annotation). Its index names
such a document as withheld, and a hit parses those documents of the file again (a fraction
of a millisecond each), so a file holding one Secret among other objects still costs one
document's parse, not the file's. Entries of an older layout, which did hold Secrets, are
removed before this layout's first entry is written.

File layout: one JSON line ``[[document, [apiVersion, kind, name, namespace], length], …]``
(``[document, null, 0]`` for a withheld document), then the stored objects' bytes back to
back.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from sys import intern

import orjson

from auditor.support import packed
from auditor.support.files import remove_unused, write_whole

log = logging.getLogger(__name__)

# Bump when the parser's output for the same bytes changes (new normalisation of scalars…)
# or the file layout does, or what may be stored (render-4: documents declaring a Secret
# withheld).
PARSER_VERSION = b"render-4\0"
_LAYOUT_STAMP = ".layout"

# apiVersion, kind, name, namespace: what names an object without decoding it.
Head = tuple[str, str, str, str]
Entry = tuple[int, Head, bytes]


class ParseCache:
    """Parsed documents of manifest files, one small file per distinct content."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self._writable = True
        self._retired = False

    def _path(self, data: bytes) -> Path:
        digest = hashlib.sha256(PARSER_VERSION + data).hexdigest()
        return self.folder / digest[:2] / f"{digest}.bin"

    def lookup(self, data: bytes) -> tuple[list[Entry], tuple[int, ...]] | None:
        """``(document index, head, packed object)`` parsed earlier from the same bytes, and
        the documents withheld (they declare a Secret: parse them again)."""
        try:
            blob = self._path(data).read_bytes()
            cut = blob.index(b"\n")
            index = orjson.loads(blob[:cut])
            out: list[Entry] = []
            withheld: list[int] = []
            at = cut + 1
            for document, head, length in index:
                if head is None:
                    withheld.append(int(document))
                    continue
                end = at + int(length)
                # apiVersion, kind and namespace repeat across thousands of objects.
                out.append((int(document), (intern(head[0]), intern(head[1]), str(head[2]),
                                            intern(head[3])), blob[at:end]))
                at = end
            if at != len(blob):
                raise ValueError("length mismatch")
        except (OSError, ValueError, TypeError, IndexError, orjson.JSONDecodeError):
            self.misses += 1
            return None
        self.hits += 1
        return out, tuple(withheld)

    def store(self, data: bytes, objects: list[Entry]) -> None:
        """Keep what ``data`` parsed to, but for the documents that declare a Secret (see the
        module's docstring); nothing when it holds a value JSON cannot (a 65-bit integer):
        parsed again next time."""
        if not self._writable or not all(packed.portable(raw) for _d, _h, raw in objects):
            return
        withheld = sorted({document for document, head, _r in objects if holds_secret(head)})
        kept = [entry for entry in objects if entry[0] not in withheld]
        self._retire_older()
        path = self._path(data)
        index = orjson.dumps([*([document, head, len(raw)] for document, head, raw in kept),
                              *([document, None, 0] for document in withheld)])
        try:
            write_whole(path, [index, b"\n", *(raw for _d, _h, raw in kept)])
        except OSError as exc:
            # A read-only root filesystem in a pod, say: stop trying for this run.
            self._writable = False
            log.info("manifest parse cache disabled: %s", exc)

    def prune(self, older_than_days: float, *, now: float | None = None) -> int:
        """Remove entries no run has used for ``older_than_days`` (files of manifests long
        gone from Git); see :func:`auditor.support.files.remove_unused`."""
        try:
            entries = list(self.folder.glob("??/*"))
        except OSError:
            return 0
        return remove_unused(entries, older_than_days, now=now)

    def _retire_older(self) -> None:
        if not self._retired:
            self._retired = True
            retire_older_layouts(self.folder, "??/*.bin", PARSER_VERSION)


def holds_secret(head: Head) -> bool:
    """Whether the object named by ``head`` (or a state's key: kind second) carries Secret
    values. Any group's ``Secret``: a look-alike costs one parse, a miss would leak."""
    return head[1] == "Secret"


def retire_older_layouts(folder: Path, pattern: str, layout: bytes) -> None:
    """Remove the entries (``pattern`` under ``folder``) of a cache written in another layout
    than ``layout``, once, before the first entry of this one is written: older layouts
    stored Secret values, and a version bump alone would leave them on disk until they age
    out. A stamp file names the layout in use; any failure leaves things as they are (the
    entries are still never read)."""
    stamp = folder / _LAYOUT_STAMP
    try:
        if stamp.read_bytes() == layout:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        for entry in folder.glob(pattern):
            entry.unlink(missing_ok=True)
        write_whole(stamp, [layout])
    except OSError as exc:
        log.info("cache folder %s: older entries not removed: %s", folder, exc)
