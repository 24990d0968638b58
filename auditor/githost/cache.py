"""The approval evidence cache: one JSON file per commit, beside the ledger's other caches.

``<cache folder>/approvals/<provider>-<digest of API URL and repository>/<sha>.json`` holds
what the host said about that commit, and ``protection-<digest of branch>.json`` the last
branch-protection snapshot. Nothing secret is in them (the evidence records hold logins,
states, times and shas; never a token or a header). A cached answer lets a run that cannot
reach the host (offline, rate limited) still judge a commit it has judged before, and spares
asking again for a commit a failed run already asked about; it is labelled as cached in the
ledger. Only final answers are cached: a commit the host could not be asked about is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from auditor.support import files

from .model import Check, Evidence, Protection, Review

VERSION = 1
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class EvidenceCache:
    """The cache of one repository on one API."""

    def __init__(self, root: Path, provider: str, api_url: str, repo: str) -> None:
        self.folder = root / f"{provider}-{_digest(api_url.rstrip('/'), repo)}"

    def _path(self, sha: str) -> Path | None:
        return self.folder / f"{sha}.json" if _SHA.match(sha) else None

    def get(self, sha: str) -> Evidence | None:
        path = self._path(sha)
        doc = _read(path) if path else None
        if doc is None:
            return None
        try:
            raw = dict(doc["evidence"])
            raw["reviews"] = tuple(Review(**r) for r in raw.get("reviews") or ())
            raw["checks"] = tuple(Check(**c) for c in raw.get("checks") or ())
            raw["commits"] = tuple(raw.get("commits") or ())
            evidence = Evidence(**raw)
        except (KeyError, TypeError, ValueError):
            return None  # written by another version: asked again
        return evidence if evidence.sha == sha else None

    def put(self, evidence: Evidence) -> None:
        path = self._path(evidence.sha)
        if path is not None:
            _write(path, {"version": VERSION, "evidence": dataclasses.asdict(evidence)})

    def protection(self, branch: str) -> Protection | None:
        doc = _read(self.folder / f"protection-{_digest(branch)}.json")
        if doc is None:
            return None
        try:
            raw = dict(doc["protection"])
            raw["required_checks"] = tuple(raw.get("required_checks") or ())
            return dataclasses.replace(Protection(**raw), cached=True)
        except (KeyError, TypeError, ValueError):
            return None

    def put_protection(self, protection: Protection) -> None:
        _write(self.folder / f"protection-{_digest(protection.branch)}.json",
               {"version": VERSION, "protection": dataclasses.asdict(protection)})


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == VERSION else None


def _write(path: Path, doc: dict[str, Any]) -> None:
    # A cache that cannot be written costs a question to the host next time, nothing more.
    with contextlib.suppress(OSError):
        files.write_whole(path, [json.dumps(doc, sort_keys=True).encode()])


def prune(root: Path, older_than_days: float) -> int:
    """Remove cached answers no run has used for ``older_than_days``."""
    return files.remove_unused(root.glob("*/*.json"), older_than_days)
