"""Whether a live change was authorized — it matches Git — or out-of-band.

Judged from the comparison that follows the change, in this order:
  1. the pipeline said so (``Observation.authorized``);
  2. the change was written under a GitOps manager's name by an authenticated user who is not
     a GitOps identity (``spoofed``): out-of-band, whatever it wrote — the name was borrowed,
     the change did not come through the GitOps path;
  3. the change came from the GitOps path: ``category`` ``gitops``, which the pipeline gives
     by the authenticated user when an audit source names one (a GitOps identity, whatever
     its manager name) and by the configured GitOps manager names otherwise;
  4. the object is in sync with Git after the change: the change carried Git's content (a
     sync, or a terminal ``kubectl apply`` of the reviewed manifest);
  5. the object drifts after the change and a drifted field is owned by the change's
     manager, or the change is a human-type or unidentified client's: out-of-band;
  6. otherwise (no comparison, a controller moving undeclared fields): unknown (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SYNCED = ("in-sync", "ignored")


def verdict(*, declared: bool | None, manager: str, category: str, status: str | None,
            items: Sequence[dict[str, Any]] = (), spoofed: bool = False) -> bool | None:
    if declared is not None:
        return declared
    if spoofed:
        return False
    if category == "gitops":
        return True
    if status is None:
        return None
    if status in SYNCED:
        return True
    if status == "drifted":
        if any(item.get("manager") == manager for item in items):
            return False
        if category in ("human", "unknown"):
            return False
    return None
