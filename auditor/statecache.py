"""The desired state of the last run, reused while everything it was built from is the same.

A steady run audits the same Git commit as the run before it, most of the time. Rendering
it again gave the same objects, yet cost a tenth of the run: one parse-cache file per
manifest, a record per object, the keys worked out and sorted, and for a Git source a walk
of the history to attribute every file. This cache keeps the assembled objects (packed
bytes, key, apiVersion and where each came from) in one file per desired-state location,
and hands them back when the digest of the inputs matches.

What the inputs are is the caller's to say (:mod:`auditor.desired`): commits, paths, render
settings and discovered kind scopes for Git sources; the content of every file for a
folder. Only states without problems are stored, and only renders of plain manifests:
kustomize and Helm can read remote bases and chart repositories that no commit pins. Like
the parse cache it is an optimisation only: whatever cannot be read means rendering again.

File layout: one JSON line ``{"format", "inputs", "infos": [source info, …], "objects":
[[group, kind, namespace, name, apiVersion, info, digest, length], …]}`` (objects in key
order), then their packed bytes back to back.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import astuple
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from auditor import packed
from auditor.records import ResourceKey, SourceInfo, new_key

log = logging.getLogger(__name__)

# Bump when what a state holds, or how it is assembled from the same inputs, changes.
FORMAT = 2


class Packed(Protocol):
    """What is kept of each desired object (:class:`auditor.desired.DesiredObject`)."""

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

    def _path(self, slot: str) -> Path:
        return self.folder / f"{hashlib.sha256(slot.encode()).hexdigest()[:32]}.bin"

    def lookup(self, slot: str, inputs: str, kind: type[_T]) -> dict[ResourceKey, _T] | None:
        """The objects ``slot`` assembled to from inputs digesting to ``inputs``, in key
        order, each a ``kind`` (a named tuple of key, raw, source, apiVersion and digest),
        if this cache holds them."""
        try:
            blob = self._path(slot).read_bytes()
            cut = blob.index(b"\n")
            head = orjson.loads(blob[:cut])
            if head.get("format") != FORMAT or head.get("inputs") != inputs:
                self.misses += 1
                return None
            infos = [_source_info(fields) for fields in head["infos"]]
            # apiVersion, group, kind and namespace repeat across thousands of objects.
            shared: dict[str, str] = {}
            share = shared.setdefault
            out: dict[ResourceKey, _T] = {}
            at = cut + 1
            make = tuple.__new__  # the named tuple's own __new__ is Python, this is C
            for group, kind_, namespace, name, api_version, info, digest, length in \
                    head["objects"]:
                key = new_key(ResourceKey, (share(group, group), share(kind_, kind_),
                                            share(namespace, namespace), name))
                end = at + length
                out[key] = make(kind, (key, blob[at:end], infos[info],
                                       share(api_version, api_version), digest))
                at = end
            if at != len(blob):
                raise ValueError("length mismatch")
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

    def store(self, slot: str, inputs: str, objects: Mapping[ResourceKey, Packed]) -> None:
        """Keep ``objects`` (in key order) as what ``inputs`` assemble to."""
        if not self._writable or not all(packed.portable(o.raw) for o in objects.values()):
            return  # a value JSON cannot hold: assemble again next time
        index: dict[int, int] = {}  # id(SourceInfo) → position; objects of a file share one
        infos: list[list[Any]] = []
        rows: list[list[Any]] = []
        for key, obj in objects.items():
            at = index.get(id(obj.source))
            if at is None:
                at = index[id(obj.source)] = len(infos)
                infos.append(list(astuple(obj.source)))
            rows.append([*key, obj.api_version, at, obj.digest, len(obj.raw)])
        try:
            head = orjson.dumps({"format": FORMAT, "inputs": inputs, "infos": infos,
                                 "objects": rows})
        except TypeError as exc:
            log.info("desired-state cache for %s not written: %s", slot, exc)
            return
        path = self._path(slot)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(b"".join([head, b"\n", *(o.raw for o in objects.values())]))
            tmp.replace(path)
        except OSError as exc:
            self._writable = False
            log.info("desired-state cache disabled: %s", exc)
