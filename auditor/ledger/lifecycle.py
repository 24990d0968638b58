"""The drift lifecycle, as pure decisions over small records.

A *drift* is one object's set of drifted paths: its fingerprint is the object key, the status
and the sorted ``(path, op, hash(desired), hash(live))`` of its items. The same fingerprint
run after run is the same drift (*still open*); a different one on the same object
*supersedes* it. States: ``open`` → ``resolved`` (how: see :data:`HOWS`) or ``accepted``
(acknowledged until an expiry) → ``open`` again when the acknowledgement expires; a resolved
drift whose fingerprint comes back is *reopened* rather than duplicated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from auditor.engine.records import DriftItem, ObjectResult, ResourceKey

from . import redact
from .chain import canonical

DRIFT_STATUSES = ("drifted", "missing", "orphan")
# How a drift stopped being reported:
#   reverted            the tool reverted the live object (run.reverted)
#   fixed-live          the live object changed back to what Git says (or was created/deleted)
#   git-changed         Git changed to match the live object (or dropped the object)
#   superseded          the object still drifts, but differently (a new drift took over)
#   ignored             an ignore rule now covers the object
#   no-longer-detected  neither side moved: the tool's configuration or rules changed
HOWS = ("reverted", "fixed-live", "git-changed", "superseded", "ignored", "no-longer-detected")
# When an object's items disagree, the drift is filed under the category most worth a look.
_CATEGORY_RANK = {"human": 0, "unknown": 1, "controller": 2, "gitops": 3}


@dataclass(frozen=True, slots=True)
class OpenDrift:
    """A drift currently open or accepted, as the ledger holds it during a run."""

    drift_id: int
    object_id: int
    key: ResourceKey
    fingerprint: str
    status: str
    state: str  # 'open' | 'accepted'
    accepted_until: str | None
    source_commit: str
    live_hash: str


@dataclass(frozen=True, slots=True)
class Seen:
    """A drift reported by this run's comparison, ready to open if it is new."""

    fingerprint: str
    status: str
    items: str  # canonical JSON of the (redacted) items
    category: str
    manager: str
    source_file: str
    source_commit: str


def _value_hash(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()[:16]


def items_of(result: ObjectResult) -> list[dict[str, Any]]:
    """The result's drift items as plain dicts, Secret values redacted, sorted by path. The
    authenticated ``user`` and the ``spoofed`` mark are there only when they say something."""
    out: list[dict[str, Any]] = []
    for d in result.drifts:
        item = {"path": d.path, "op": d.op,
                "desired": redact.drift_value(result.key, d.path, d.desired),
                "live": redact.drift_value(result.key, d.path, d.live),
                "manager": d.manager, "operation": d.operation, "time": d.time,
                "category": d.category}
        if d.user:
            item["user"] = d.user
        if d.spoofed:
            item["spoofed"] = True
        out.append(item)
    out.sort(key=lambda i: (i["path"], i["op"]))
    return out


def fingerprint(key: ResourceKey, status: str, items: list[dict[str, Any]]) -> str:
    parts = sorted((i["path"], i["op"], _value_hash(i["desired"]), _value_hash(i["live"]))
                   for i in items)
    return hashlib.sha256(canonical(
        [key.group, key.kind, key.namespace, key.name, status, parts])).hexdigest()


def primary(items: list[dict[str, Any]] | tuple[DriftItem, ...]) -> tuple[str, str]:
    """``(category, manager)`` of the item most worth a human's look."""
    best: tuple[int, str, str] = (99, "unknown", "")
    for item in items:
        cat, mgr = ((item["category"], item["manager"]) if isinstance(item, dict)
                    else (item.category, item.manager))
        rank = _CATEGORY_RANK.get(cat, 1)
        if rank < best[0]:
            best = (rank, cat, mgr)
    return best[1], best[2]


def seen(result: ObjectResult) -> Seen:
    items = items_of(result)
    category, manager = primary(items) if items else ("unknown", "")
    source = result.source
    return Seen(fingerprint(result.key, result.status, items), result.status,
                canonical(items).decode(), category, manager,
                source.file if source else "", source.commit if source else "")


def expired(drift: OpenDrift, now: str) -> bool:
    return drift.state == "accepted" and bool(drift.accepted_until) \
        and str(drift.accepted_until) <= now


def resolution(drift: OpenDrift, *, now_status: str | None, desired_changed: bool | None,
               reverted: bool, source_commit_now: str, live_hash_now: str,
               gitops_change: bool) -> str:
    """How a drift that is no longer reported was resolved.

    ``now_status`` is the object's status this run (``None``: no result at all, i.e. gone from
    both Git and the cluster). The pipeline's hint ``desired_changed`` wins over inference;
    otherwise the side that moved since the drift opened decides: Git (its last commit for the
    object changed) or the live object (its content hash changed).
    """
    if reverted:
        return "reverted"
    if now_status == "ignored":
        return "ignored"
    if desired_changed is not None:
        return "git-changed" if desired_changed else "fixed-live"
    if drift.status == "orphan":
        # An orphan stops being one by being deleted live or by appearing in Git.
        return "fixed-live" if now_status in (None, "missing") else "git-changed"
    if drift.status == "missing":
        return "git-changed" if now_status is None else "fixed-live"
    if now_status is None:
        return "git-changed"
    git_moved = bool(drift.source_commit) and source_commit_now != drift.source_commit
    live_moved = live_hash_now != drift.live_hash
    if git_moved and live_moved:
        # A GitOps sync applying the new commit moves both; the commit is what fixed it.
        return "git-changed" if gitops_change else "fixed-live"
    if git_moved:
        return "git-changed"
    if live_moved:
        return "fixed-live"
    return "no-longer-detected"
