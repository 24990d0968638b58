"""Whether a live change was authorized — it matches Git — or out-of-band.

Judged from the comparison that follows the change, in this order:
  1. the pipeline said so (``Observation.authorized``);
  2. the change came from a configured GitOps manager: it is how Git reaches the cluster;
  3. the object is in sync with Git after the change: the change carried Git's content (a
     sync, or a terminal ``kubectl apply`` of the reviewed manifest);
  4. the object drifts after the change and a drifted field is owned by the change's
     manager, or the manager is a human-type or unidentified client: out-of-band;
  5. otherwise (no comparison, a controller moving undeclared fields): unknown (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SYNCED = ("in-sync", "ignored")


def verdict(*, declared: bool | None, manager: str, category: str, status: str | None,
            items: Sequence[dict[str, Any]] = ()) -> bool | None:
    if declared is not None:
        return declared
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
