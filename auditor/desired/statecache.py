"""The desired state of the last run, reused while everything it was built from is the same.

A steady run audits the same Git commit as the run before it, most of the time. Rendering
it again gave the same objects, yet cost a tenth of the run: one parse-cache file per
manifest, a record per object, the keys worked out and sorted, and for a Git source a walk
of the history to attribute every file. This cache keeps the assembled objects (packed
bytes, key, apiVersion and where each came from) in one file per desired-state location,
and hands them back when the digest of the inputs matches.

What the inputs are is the caller's to say (:mod:`auditor.desired.state`): commits, paths, render
settings and discovered kind scopes for Git sources; the content of every file for a
folder. Only states without problems are stored, and only renders of plain manifests:
kustomize and Helm can read remote bases and chart repositories that no commit pins. Like
the parse cache it is an optimisation only: whatever cannot be read means rendering again.

Secrets are kept without their bytes or digest: the cache sits beside the ledger, where no
Secret value may be. The caller says how to find each one again (a JSON *locator*: its file
and document), and re-reads those few on a hit; what the run needs of them, the values a
revert applies included, comes from Git each time.

File layout: one JSON line ``{"format", "inputs", "infos": [source info, …], "words":
[string, …], "group": [word, …], "kind", "namespace", "name", "api_version", "info",
"digest", "length", "withheld": [[position, locator], …]}`` (a list per field, objects in
key order), then their packed bytes back to back (none for a withheld object).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import astuple
from itertools import accumulate, repeat
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from auditor.desired.parsecache import holds_secret, retire_older_layouts
from auditor.engine.records import ResourceKey, SourceInfo, new_key
from auditor.support import packed
from auditor.support.files import remove_unused, write_whole

log = logging.getLogger(__name__)

# Bump when what a state holds, or how it is assembled from the same inputs, changes
# (4: Secrets withheld).
FORMAT = 4

# A withheld object's locator: JSON, the caller's to define and to read.
Locator = list[Any]


class Packed(Protocol):
    """What is kept of each desired object (:class:`auditor.desired.state.DesiredObject`)."""

    @property
    def raw(self) -> bytes: ...
    @property
    def source(self) -> SourceInfo: ...
    @property
    def api_version(self) -> str: ...
    @property
    def digest(self) -> str: ...


_T = TypeVar("_T", bound=tuple[Any, ...])  # a named tuple: DesiredObject


def inputs_digest(*parts: Any) -> str:
    """A digest naming a state's inputs: ``parts`` must be JSON-able (lists, not sets)."""
    return hashlib.sha256(orjson.dumps([FORMAT, *parts])).hexdigest()


# One list per field, an object per position: decoding makes one list per field instead of
# one per object, and the objects are then put together by C-level map and zip.
_COLUMNS = ("group", "kind", "namespace", "name", "api_version", "info", "digest", "length")


def _objects(head: dict[str, Any], blob: bytes, start: int,
             kind: type[_T]) -> tuple[dict[ResourceKey, _T], dict[ResourceKey, Locator]]:
    words = head["words"].__getitem__
    group, kind_, namespace, name, api_version, info, digest, length = (
        head[column] for column in _COLUMNS)
    offsets = list(accumulate(length, initial=start))
    if offsets[-1] != len(blob):
        raise ValueError("length mismatch")
    infos = [_source_info(fields) for fields in head["infos"]]
    # Group, kind, namespace and apiVersion strings come from one table: shared, not copied.
    keys = list(map(new_key, repeat(ResourceKey), zip(
        map(words, group), map(words, kind_), map(words, namespace), name, strict=True)))
    raws = map(blob.__getitem__, map(slice, offsets, offsets[1:]))
    withheld = {keys[int(position)]: locator for position, locator in head["withheld"]}
    # tuple.__new__, not the named tuple's own __new__, which is a Python function.
    return dict(zip(keys, map(tuple.__new__, repeat(kind), zip(
        keys, raws, map(infos.__getitem__, info), map(words, api_version), digest,
        strict=True)), strict=True)), withheld


def _source_info(fields: list[Any]) -> SourceInfo:
    file, repo, commit, author, email, committer, date, committed, subject, pr, trailers = fields
    return SourceInfo(file, repo, commit, author, email, committer, date, committed, subject,
                      pr, tuple((str(k), str(v)) for k, v in trailers))


class StateCache:
    """One assembled desired state per location (a folder, a set of sources): its slot."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self._writable = True
        self._retired = False

    def _path(self, slot: str) -> Path:
        return self.folder / f"{hashlib.sha256(slot.encode()).hexdigest()[:32]}.bin"

    def lookup(self, slot: str, inputs: str, kind: type[_T],
               ) -> tuple[dict[ResourceKey, _T], dict[ResourceKey, Locator]] | None:
        """The objects ``slot`` assembled to from inputs digesting to ``inputs``, in key
        order, each a ``kind`` (a named tuple of key, raw, source, apiVersion and digest),
        if this cache holds them; and the locators of those withheld, whose raw bytes and
        digest are empty until the caller reads them again."""
        try:
            blob = self._path(slot).read_bytes()
            cut = blob.index(b"\n")
            head = orjson.loads(blob[:cut])
            if head.get("format") != FORMAT or head.get("inputs") != inputs:
                self.misses += 1
                return None
            out = _objects(head, blob, cut + 1, kind)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, TypeError, KeyError, IndexError,
                orjson.JSONDecodeError) as exc:
            log.info("desired-state cache for %s unreadable, rendering again: %s", slot, exc)
            self.misses += 1
            return None
        self.hits += 1
        return out

    def store(self, slot: str, inputs: str, objects: Mapping[ResourceKey, Packed],
              locators: Mapping[ResourceKey, Locator]) -> None:
        """Keep ``objects`` (in key order) as what ``inputs`` assemble to, Secrets withheld:
        ``locators`` must say where each is found again, else nothing is kept."""
        if not self._writable or not all(packed.portable(o.raw) for o in objects.values()):
            return  # a value JSON cannot hold: assemble again next time
        withheld: list[list[Any]] = []
        for position, key in enumerate(objects):
            if holds_secret(key):
                if key not in locators:
                    return
                withheld.append([position, locators[key]])
        secret = {position for position, _locator in withheld}
        self._retire_older()
        sources: dict[int, int] = {}  # id(SourceInfo) → position; objects of a file share one
        infos: list[list[Any]] = []
        words: dict[str, int] = {}  # group, kind, namespace, apiVersion: a few hundred
        columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        group, kind, namespace, name, api_version, info, digest, length = columns.values()
        for position, (key, obj) in enumerate(objects.items()):
            at = sources.get(id(obj.source))
            if at is None:
                at = sources[id(obj.source)] = len(infos)
                infos.append(list(astuple(obj.source)))
            group.append(words.setdefault(key.group, len(words)))
            kind.append(words.setdefault(key.kind, len(words)))
            namespace.append(words.setdefault(key.namespace, len(words)))
            name.append(key.name)
            api_version.append(words.setdefault(obj.api_version, len(words)))
            info.append(at)
            withhold = position in secret
            digest.append("" if withhold else obj.digest)
            length.append(0 if withhold else len(obj.raw))
        try:
            head = orjson.dumps({"format": FORMAT, "inputs": inputs, "infos": infos,
                                 "words": list(words), **columns, "withheld": withheld})
        except TypeError as exc:
            log.info("desired-state cache for %s not written: %s", slot, exc)
            return
        raws = (b"" if position in secret else o.raw
                for position, o in enumerate(objects.values()))
        try:
            write_whole(self._path(slot), [head, b"\n", *raws])
        except OSError as exc:
            self._writable = False
            log.info("desired-state cache disabled: %s", exc)

    def prune(self, older_than_days: float, *, now: float | None = None) -> int:
        """Remove the states of locations no run has audited for ``older_than_days``."""
        try:
            entries = list(self.folder.glob("*.bin"))
        except OSError:
            return 0
        return remove_unused(entries, older_than_days, now=now)

    def _retire_older(self) -> None:
        if not self._retired:
            self._retired = True
            retire_older_layouts(self.folder, "*.bin", b"state-%d" % FORMAT)
