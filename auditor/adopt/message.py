"""The commit message of an adoption: each drift cited with its object, paths, actor, time
and ledger id, and trailers that tie the commit to the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from auditor.adopt.model import Adopted
from auditor.engine.records import DriftItem, ResourceKey
from auditor.ledger.adoptions import TRAILER


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _list_change(old: list[Any], new: list[Any]) -> str:
    added = [x for x in new if x not in old]
    removed = [x for x in old if x not in new]
    parts = [f"+ {_show(x)}" for x in added] + [f"- {_show(x)}" for x in removed]
    return "; ".join(parts) if parts else "reordered"


def _line(item: DriftItem) -> str:
    if item.op == "changed" and isinstance(item.desired, list) and isinstance(item.live, list):
        what = _list_change(item.desired, item.live)
    elif item.op == "changed":
        what = f"{_show(item.desired)} -> {_show(item.live)}"
    elif item.op == "added":
        what = f"added {_show(item.live)}"
    else:
        what = "removed"
    who = ", ".join(p for p in (f"by {item.manager}" if item.manager else "", item.category,
                                f"at {item.time}" if item.time else "") if p)
    return f"- {item.path}: {what} ({who})"


def commit_message(adopted: Sequence[Adopted], drift_ids: dict[ResourceKey, int],
                   opened: dict[ResourceKey, str],
                   people: dict[ResourceKey, list[str]] | None = None) -> str:
    """A message citing each drift: object, paths, actor, time, ledger id."""
    keys = list(dict.fromkeys(a.key for a in adopted))
    ids = [drift_ids[k] for k in keys if k in drift_ids]
    cite = f" (drift {', '.join(map(str, ids))})" if ids else ""
    subject = (f"Adopt live drift of {keys[0]}{cite}" if len(keys) == 1
               else f"Adopt live drift of {len(keys)} objects{cite}")
    body = ["Written by `drift-auditor adopt`: the live values below were changed in the",
            "cluster outside Git (an emergency change). Merging this branch approves them",
            "retroactively and makes Git the source of truth again.", ""]
    trailers = []
    for key in keys:
        mine = [a for a in adopted if a.key == key]
        body.append(f"Object: {key}")
        if key in drift_ids:
            when = f", opened {opened[key]}" if opened.get(key) else ""
            body.append(f"Ledger drift: {drift_ids[key]}{when}")
            trailers.append(f"{TRAILER}: {drift_ids[key]}")
        if (people or {}).get(key):
            body.append(f"Changed by: {', '.join((people or {})[key])} (API-server audit log)")
        body.append("Files: " + ", ".join(sorted({a.file for a in mine})))
        body.extend(_line(a.item) for a in mine)
        body.append("")
        trailers.append(f"Drift-Auditor-Object: {key}")
    return "\n".join([subject, "", *body, *trailers]) + "\n"
