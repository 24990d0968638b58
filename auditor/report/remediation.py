"""Remediation and emergency-change rows of a report: auto-revert attempts and capped runs,
and drift adopted into Git then merged, built from the ledger's rows
(:mod:`auditor.ledger.reportquery`) and linked both ways to the period's drift occurrences.

Reverts are matched to drift occurrences by object and time, not by an ID: the ``reverts``
table records the object key, and the drift it acted on is the occurrence of that object
unresolved when the attempt's run started (a successful enforce revert resolves exactly that
occurrence, in the same run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from auditor.ledger.reportquery import CommitRow, DriftRow

from .episodes import is_secret, list_items, object_label, value_text
from .model import DriftEpisode, DriftValue, EmergencyChange, RevertAttempt, RevertCap
from .timeutil import between

APPROVER_TRAILERS = ("reviewed-by", "approved-by", "acked-by")


def _key(group: str, kind: str, namespace: str, name: str) -> tuple[str, str, str, str]:
    return (group or "", kind, namespace or "", name)


def _values(row: Mapping[str, Any], secret: bool) -> list[DriftValue]:
    out = []
    for item in row.get("items") or []:
        out.append(DriftValue(
            str(item.get("path", "")), str(item.get("op", "")),
            # The ledger holds a Secret's values as keyed hashes; the report shows none at all,
            # as in the drift table.
            "" if secret else value_text(item.get("desired")),
            "" if secret else value_text(item.get("live")),
            str(item.get("manager") or ""), str(item.get("category") or ""),
            str(item.get("user") or ""), bool(item.get("spoofed")),
            # A revert puts Git's list back: live → Git, as the table reads.
            *(((), ()) if secret else list_items(item.get("live"), item.get("desired")))))
    return out


def _occurrence(episodes: Sequence[DriftEpisode], key: tuple[str, str, str, str], at: str,
                run_id: int) -> DriftEpisode | None:
    """The occurrence of ``key`` a revert made at ``at`` acted on: the one it resolved, else
    the one unresolved at that moment."""
    candidates = [ep for ep in episodes
                  if _key(ep.api_group, ep.kind, ep.namespace, ep.name) == key
                  and ep.detected_at <= at and (not ep.resolved_at or ep.resolved_at >= at)]
    for ep in candidates:
        if ep.how == "reverted" and ep.resolved_run_id == run_id:
            return ep
    return candidates[-1] if candidates else None


def reverts(rows: Sequence[Mapping[str, Any]], episodes: Sequence[DriftEpisode]
            ) -> list[RevertAttempt]:
    out = []
    for r in rows:
        group, kind, ns, name = str(r["group"] or ""), str(r["kind"]), str(r["namespace"] or ""), \
            str(r["name"])
        secret = is_secret(group, kind)
        ep = _occurrence(episodes, _key(group, kind, ns, name), str(r["at"]), int(r["run_id"]))
        out.append(RevertAttempt(
            anchor=f"revert-{r['id']}", id=int(r["id"]), run_id=int(r["run_id"]),
            at=str(r["at"]), cluster=str(r.get("cluster") or ""),
            object=object_label(group, kind, ns, name), api_group=group, kind=kind,
            namespace=ns, name=name, action=str(r["action"] or ""), mode=str(r["mode"] or ""),
            result=str(r["result"]), reason=str(r["reason"] or ""), values=_values(r, secret),
            secret=secret, desired_hash=str(r["desired_hash"] or ""),
            live_hash=str(r["live_hash"] or ""),
            resource_version_before=str(r["resource_version_before"] or ""),
            resource_version_after=str(r["resource_version_after"] or ""),
            managers=[str(m) for m in r["managers"] or []], error=str(r["error"] or ""),
            drift_anchor=ep.anchor if ep is not None else ""))
    return out


def caps(rows: Sequence[Mapping[str, Any]]) -> list[RevertCap]:
    return [RevertCap(anchor=f"revert-cap-{c['seq']}", run_id=c["run_id"], at=str(c["at"]),
                      cluster=str(c["cluster"]), mode=str(c["mode"]), cap=int(c["cap"]),
                      planned=int(c["planned"]), objects=list(c["keys"]))
            for c in rows]


def _earliest_time(drift: DriftRow | None) -> str:
    times = sorted(str(i["time"]) for i in (drift.items if drift else []) if i.get("time"))
    return times[0] if times else ""


def emergency(rows: Sequence[Mapping[str, Any]], episodes: Sequence[DriftEpisode],
              drifts: Mapping[int, DriftRow], commits: Mapping[str, CommitRow]
              ) -> list[EmergencyChange]:
    out = []
    for a in rows:
        drift_id = a["drift_id"]
        # The occurrence the adoption wrote into Git: the newest detected before it.
        eps = [ep for ep in episodes if ep.drift_id == drift_id and ep.detected_at <= a["at"]]
        ep = eps[-1] if eps else None
        drift = drifts.get(drift_id) if drift_id is not None else None
        changed = ep.changed_at if ep is not None else _earliest_time(drift)
        detected = ep.detected_at if ep is not None else (drift.opened_at if drift else "")
        merged = str(a["merged_commit"] or "")
        heads = sorted({str(h) for h in (a["resolved_heads"] or {}).values()} - {merged})
        approvers: list[str] = []
        pr: int | None = None
        # Approval evidence lives on the merged commit (a squash carries the PR) or on the
        # merge commit at the head the resolving run audited.
        for sha in (merged, *heads):
            commit = commits.get(sha)
            if commit is None:
                continue
            pr = pr if pr is not None else commit.pr
            approvers += [v for k, v in commit.trailers
                          if k.lower() in APPROVER_TRAILERS and v not in approvers]
        resolution = a["resolution"] or ""
        approved = resolution == "git-changed" and bool(a["merged"])
        approved_at = str(a["resolved_at"] or "") if approved else ""
        state = "approved" if approved else "resolved-otherwise" if resolution else "pending"
        out.append(EmergencyChange(
            anchor=f"adopt-{a['id']}", id=int(a["id"]), drift_id=drift_id,
            drift_anchor=ep.anchor if ep is not None else "", object=str(a["object"]),
            paths=[str(p) for p in a["paths"]], files=[str(f) for f in a["files"]],
            changed_by=str(a["actor"] or (drift.manager if drift else "")),
            users=[str(u) for u in a["users"]], changed_at=changed, detected_at=detected,
            adopted_at=str(a["at"]), adopted_by=str(a["by"] or ""), repo=str(a["repo"] or ""),
            branch=str(a["branch"]), commit=str(a["commit"]),
            base_commit=str(a["base_commit"] or ""), pushed=bool(a["pushed"]),
            merged=bool(a["merged"]), merged_commit=merged, merge_head=";".join(heads),
            approvers=approvers, pr=pr, approved_at=approved_at, outcome=str(a["outcome"]),
            state=state, time_to_approval_s=between(changed or detected, approved_at),
            cluster=str(a.get("cluster") or "")))
    return out


def link(episodes: Sequence[DriftEpisode], attempts: Sequence[RevertAttempt],
         changes: Sequence[EmergencyChange]) -> list[DriftEpisode]:
    """``episodes`` with each one's revert (the attempt that resolved it) and adoption."""
    resolved_by = {a.drift_anchor: a.anchor for a in attempts
                   if a.result == "reverted" and a.drift_anchor}
    adopted = {c.drift_anchor: c.anchor for c in changes if c.drift_anchor}
    out = []
    for ep in episodes:
        revert = resolved_by.get(ep.anchor, "") if ep.how == "reverted" else ""
        adoption = adopted.get(ep.anchor, "")
        out.append(replace(ep, revert_anchor=revert, adoption_anchor=adoption)
                   if revert or adoption else ep)
    return out
