"""The verdicts of the last run that need not be recomputed: a desired object whose live
``resourceVersion`` and desired manifest are both unchanged gets the same verdict (in sync,
or drifted with the same drift items) as last time.

A live object cannot change without its resourceVersion changing, and the comparison is a
pure function of the two objects and the settings; so the cache is valid exactly while the
tool version and the comparison settings (config digest, ignore-rule files) are the same,
which its ``stamp`` records. Drift items carry what the comparison produced (Secret values
already as keyed hashes). The cache is an optimisation only; missing or damaged bytes mean a
full comparison. This module turns verdicts into bytes and back; the run keeps the bytes in a
file beside the ledger.

Most objects are in sync, and an in-sync verdict needs no payload: it is kept as a 16-byte
token of (object, resourceVersion, desired digest), so the cache costs memory by drift
count, not by cluster size. File layout: a JSON header line (stamp, token count), the tokens
back to back, then one JSON document of the other verdicts by object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo

# Verdicts on desired objects that are a pure function of the pair; missing and orphan
# results depend on what else the cluster holds and are always computed.
_CACHEABLE = frozenset({"in-sync", "drifted", "ignored"})
_TOKEN = 16
_FORMAT = 2
_new = tuple.__new__


def _name(key: ResourceKey) -> str:
    return "|".join(key)  # group|kind|namespace|name


def _token(name: str, resource_version: str, digest: str) -> bytes:
    return hashlib.blake2b(f"{name}\0{resource_version}\0{digest}".encode(),
                           digest_size=_TOKEN).digest()


class VerdictCache:
    """Verdicts keyed by object: ``(live resourceVersion, desired digest) → result``.

    Built from last run's bytes (:meth:`chunks` of the cache then), which are ignored when
    made under another ``stamp``, damaged or empty.
    """

    def __init__(self, stamp: str, blob: bytes = b"") -> None:
        self.stamp = stamp
        self._old_in_sync: set[bytes] = set()
        self._old: dict[str, list[Any]] = {}
        self._new_in_sync: list[bytes] = []
        self._new: dict[str, list[Any]] = {}
        self.hits = 0
        try:
            self._load(blob)
        except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
            self._old_in_sync, self._old = set(), {}

    def _load(self, blob: bytes) -> None:
        cut = blob.index(b"\n")
        head = orjson.loads(blob[:cut])
        if head.get("format") != _FORMAT or head.get("stamp") != self.stamp:
            return
        tokens_end = cut + 1 + int(head["tokens"]) * _TOKEN
        if tokens_end > len(blob):
            raise ValueError("truncated")
        view = memoryview(blob)
        self._old_in_sync = {bytes(view[i:i + _TOKEN])
                             for i in range(cut + 1, tokens_end, _TOKEN)}
        entries = orjson.loads(view[tokens_end:])
        if not isinstance(entries, dict):
            raise ValueError("entries")
        self._old = entries

    def lookup(self, key: ResourceKey, resource_version: str, digest: str,
               api_version: str, source: SourceInfo | None) -> ObjectResult | None:
        """Last run's verdict for this exact pair, if any (kept for the next run too)."""
        if not resource_version:
            return None
        name = _name(key)
        token = _token(name, resource_version, digest)
        if token in self._old_in_sync:
            self.hits += 1
            self._new_in_sync.append(token)
            # The named tuple's __new__ is Python; this runs once per desired object.
            return _new(ObjectResult, (key, api_version, "in-sync", (), source, ""))
        entry = self._old.get(name)
        if entry is None or entry[0] != resource_version or entry[1] != digest:
            return None
        try:
            _rv, _digest, status, reason, drifts = entry
            items = tuple(DriftItem(*d) for d in drifts)
        except (TypeError, ValueError):
            return None
        self.hits += 1
        self._new[name] = entry
        return ObjectResult(key, api_version, status, items, source=source, reason=reason)

    def remember(self, result: ObjectResult, resource_version: str, digest: str) -> None:
        if not resource_version or result.status not in _CACHEABLE:
            return
        name = _name(result.key)
        if result.status == "in-sync" and not result.drifts and not result.reason:
            self._new_in_sync.append(_token(name, resource_version, digest))
            return
        # The authenticated user and the spoofed flag follow only when there are any, so
        # that verdicts made without an audit source keep their eight fields.
        drifts = [[d.path, d.op, d.desired, d.live, d.manager, d.operation, d.time, d.category,
                   *((d.user, d.spoofed) if d.user or d.spoofed else ())]
                  for d in result.drifts]
        self._new[name] = [resource_version, digest, result.status, result.reason, drifts]

    def chunks(self) -> list[bytes]:
        """This run's verdicts (those remembered and those reused) as bytes for the next run.
        Raises ``TypeError`` if a drift value cannot be encoded."""
        head = orjson.dumps({"format": _FORMAT, "stamp": self.stamp,
                             "tokens": len(self._new_in_sync)})
        return [head, b"\n", *self._new_in_sync, orjson.dumps(self._new)]


class Remaining(Mapping[ResourceKey, dict[str, Any]]):
    """The desired objects still to compare: keys leave it as their verdict is reused, so
    the comparison neither compares them again nor reports them missing."""

    def __init__(self, base: Mapping[ResourceKey, dict[str, Any]]) -> None:
        self._base = base
        # Public for the pipeline's steady-state loop, which asks once per live object.
        self.taken: set[ResourceKey] = set()

    def __getitem__(self, key: ResourceKey) -> dict[str, Any]:
        if key in self.taken:
            raise KeyError(key)
        return self._base[key]

    def get(self, key: ResourceKey, default: Any = None) -> Any:
        # The comparison asks once per live object, most of them not desired: no KeyError.
        return default if key in self.taken else self._base.get(key, default)

    def __iter__(self) -> Iterator[ResourceKey]:
        if len(self.taken) == len(self._base):
            return iter(())  # a steady run reuses every verdict: nothing is left
        return (k for k in self._base if k not in self.taken)

    def __len__(self) -> int:
        return len(self._base) - len(self.taken)

    def __contains__(self, key: object) -> bool:
        return key in self._base and key not in self.taken
