"""The verdicts of the last run that need not be recomputed: an object found in sync, whose
live ``resourceVersion`` and desired manifest are both unchanged, is still in sync.

A live object cannot change without its resourceVersion changing, and the comparison is a
pure function of the two objects and the settings; so the cache is valid exactly while the
tool version and the comparison settings (config digest, ignore-rule files) are the same,
which its ``stamp`` records. Only in-sync verdicts are kept: drifted objects are compared
afresh so that their drift items (and attribution) are always current. The cache is an
optimisation only; a missing or unreadable file means a full comparison.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from auditor.records import ResourceKey

log = logging.getLogger(__name__)


def desired_digest(obj: Mapping[str, Any]) -> str:
    return hashlib.sha1(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _name(key: ResourceKey) -> str:
    return f"{key.group}|{key.kind}|{key.namespace}|{key.name}"


class CompareCache:
    """In-sync verdicts keyed by object: ``(live resourceVersion, desired digest)``."""

    def __init__(self, path: str | Path, stamp: str) -> None:
        self.path = Path(path)
        self.stamp = stamp
        self._old: dict[str, list[str]] = {}
        self._new: dict[str, list[str]] = {}
        self.hits = 0
        try:
            doc = orjson.loads(self.path.read_bytes())
            if doc.get("stamp") == stamp:
                self._old = doc.get("entries") or {}
        except (OSError, orjson.JSONDecodeError, AttributeError):
            pass

    def in_sync(self, key: ResourceKey, resource_version: str, digest: str) -> bool:
        """Whether the last run found this exact pair in sync (and keep it for the next)."""
        if not resource_version:
            return False
        name = _name(key)
        entry = self._old.get(name)
        if entry is not None and entry[0] == resource_version and entry[1] == digest:
            self.hits += 1
            self._new[name] = entry
            return True
        return False

    def remember(self, key: ResourceKey, resource_version: str, digest: str) -> None:
        if resource_version:
            self._new[_name(key)] = [resource_version, digest]

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps({"stamp": self.stamp, "entries": self._new}))
            tmp.replace(self.path)
        except OSError as exc:
            log.info("compare cache not saved: %s", exc)


class Remaining(Mapping[ResourceKey, dict[str, Any]]):
    """The desired objects still to compare: keys leave it as their verdict is reused, so
    the comparison neither compares them again nor reports them missing."""

    def __init__(self, base: Mapping[ResourceKey, dict[str, Any]]) -> None:
        self._base = base
        self._taken: set[ResourceKey] = set()

    def take(self, key: ResourceKey) -> None:
        self._taken.add(key)

    def taken(self, key: ResourceKey) -> bool:
        return key in self._taken

    def __getitem__(self, key: ResourceKey) -> dict[str, Any]:
        if key in self._taken:
            raise KeyError(key)
        return self._base[key]

    def __iter__(self) -> Iterator[ResourceKey]:
        return (k for k in self._base if k not in self._taken)

    def __len__(self) -> int:
        return len(self._base) - len(self._taken)

    def __contains__(self, key: object) -> bool:
        return key in self._base and key not in self._taken
