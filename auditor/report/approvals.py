"""Approvals in the report: each first-parent change of the period with its approval as the
ledger last recorded it (:mod:`auditor.ledger.approvals`), the branch protection seen, and
each authorized live change linked to the merge that brought its object's file in.

The period's changes to Git are the first-parent commits the period's runs judged: a merge
is one change with its pull request, its branch's commits are part of it. Their verdict is
the newest row before the period's end (an ``unknown`` judged again later counts as what the
later run found). A live change is linked by its object: the newest change whose objects
include it, first judged no later than the run that recorded the live change; the change
then names that merge commit, its pull request and independent approvers instead of the
run's Git head and the head's trailers. Where nothing links (a merge before the first audited
range), approvers still come from trailers, and say so.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from auditor.githost.model import TRAILER_LABEL
from auditor.ledger import approvals as rows_of

from .model import ApprovalItem, ChangeItem, CommitItem, ProtectionItem, ReviewItem


@dataclass
class Section:
    items: list[ApprovalItem] = field(default_factory=list)
    protections: list[ProtectionItem] = field(default_factory=list)
    # Runs of the period that recorded approvals: their commits are the approvals' changes.
    runs: set[int] = field(default_factory=set)
    # object (group, kind, namespace, name) → [(first run, item)] sorted by run.
    by_object: dict[tuple[str, str, str, str], list[tuple[int, ApprovalItem]]] = \
        field(default_factory=dict)


def _on_head(review: Mapping[str, Any], head: str, commits: Sequence[str], gitlab: bool) -> bool:
    commit = str(review.get("commit") or "")
    if gitlab or (commit and commit == head):
        return True
    return commit in commits and head in commits and commits.index(commit) >= \
        commits.index(head)


def _label(obj: Sequence[str]) -> str:
    group, kind, namespace, name = [*obj, "", "", "", ""][:4]
    gk = f"{kind}.{group}" if group else kind
    return f"{gk} {namespace + '/' if namespace else ''}{name}"


def _item(row: Mapping[str, Any], first_run: int) -> ApprovalItem:
    head = str(row.get("head") or "")
    gitlab = row.get("provider") == "gitlab"
    reviews = [ReviewItem(str(r.get("reviewer") or ""), str(r.get("state") or ""),
                          str(r.get("submitted_at") or ""), str(r.get("commit") or ""),
                          _on_head(r, head, [], gitlab))
               for r in row.get("reviews") or [] if isinstance(r, Mapping)]
    checks = [f"{c.get('name')}: {c.get('conclusion') or c.get('status')}"
              f"{' (required)' if c.get('required') else ''}"
              for c in row.get("checks") or [] if isinstance(c, Mapping)]
    return ApprovalItem(
        anchor=f"appr-{str(row['sha'])[:12]}", source=str(row.get("source") or ""),
        repo=str(row.get("repo") or ""), sha=str(row["sha"]),
        subject=str(row.get("subject") or ""), commit_author=str(row.get("commit_author") or ""),
        pr=row.get("pr"), evidence=str(row.get("evidence") or ""),
        verdict=str(row.get("verdict") or ""), reason=str(row.get("reason") or ""),
        author=str(row.get("author") or ""), last_pusher=str(row.get("last_pusher") or ""),
        merged_by=str(row.get("merged_by") or ""),
        approvers=[str(a) for a in row.get("approvers") or []], reviews=reviews, checks=checks,
        head=head, fetched_at=str(row.get("fetched_at") or ""), cached=bool(row.get("cached")),
        first_run_id=first_run, run_id=int(row["run_id"]),
        objects=[_label(o) for o in row.get("objects") or []])


def _protection(row: Mapping[str, Any]) -> ProtectionItem:
    raw = row.get("protection")
    snap: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    rules = snap.get("rules") or {}
    return ProtectionItem(
        source=str(row.get("source") or ""), repo=str(row.get("repo") or ""),
        branch=str(row.get("branch") or ""), state=str(row.get("verdict") or ""),
        fetched_at=str(row.get("fetched_at") or ""), run_id=int(row["run_id"]),
        rules=[f"{k}: {v}" for k, v in sorted(rules.items())],
        required_checks=[str(c) for c in snap.get("required_checks") or []],
        detail=str(row.get("reason") or ""), cached=bool(row.get("cached")))


def build(conn: sqlite3.Connection, period_runs: set[int], end: str) -> Section:
    """The period's approvals (recorded by ``period_runs``, verdicts as of ``end``) and
    every change judged before ``end``, by object, for linking live changes."""
    out = Section()
    rows = rows_of.rows_until(conn, end)
    first: dict[tuple[str, str], int] = {}
    for row in rows:
        if row["kind"] == "change":
            first.setdefault((row["repo"], row["sha"]), int(row["run_id"]))
    newest = rows_of.latest(rows)
    items = {ident: _item(row, first[ident]) for ident, row in newest.items()}
    for ident, item in items.items():
        for obj in newest[ident].get("objects") or []:
            group, kind, namespace, name = [*obj, "", "", "", ""][:4]
            out.by_object.setdefault((group, kind, namespace, name), []).append(
                (item.first_run_id, item))
    for links in out.by_object.values():
        links.sort(key=lambda pair: (pair[0], pair[1].sha))
    out.items = sorted((i for i in items.values() if i.first_run_id in period_runs),
                       key=lambda i: (i.first_run_id, i.source, i.sha))
    out.runs = {int(r["run_id"]) for r in rows if int(r["run_id"]) in period_runs
                and r["kind"] == "change"}
    last: dict[str, ProtectionItem] = {}
    for row in rows:
        if row["kind"] != "protection" or int(row["run_id"]) not in period_runs:
            continue
        snap = _protection(row)
        seen = last.get(snap.source)
        if seen is None or (seen.state, seen.rules, seen.required_checks, seen.branch) != \
                (snap.state, snap.rules, snap.required_checks, snap.branch):
            out.protections.append(snap)
        last[snap.source] = snap
    return out


def link(changes: Sequence[ChangeItem], section: Section) -> list[ChangeItem]:
    """Each authorized change with the approval of the merge that brought its object's file
    in; an authorized change with trailer approvers only says that they are trailers."""
    shown = {i.anchor for i in section.items}  # an earlier period's merge has no row here
    out = []
    for c in changes:
        if c.authorization != "authorized":
            out.append(c)
            continue
        links = section.by_object.get((c.api_group, c.kind, c.namespace, c.name), [])
        i = bisect.bisect_right([run for run, _ in links], c.run_id)
        if i:
            item = links[i - 1][1]
            out.append(replace(c, git_repo=item.repo or c.git_repo, git_commit=item.sha,
                               pr=item.pr, approvers=list(item.approvers),
                               approval=item.verdict, approval_source=item.evidence,
                               approval_reason=item.reason,
                               approval_anchor=item.anchor if item.anchor in shown else ""))
        elif c.approvers:
            out.append(replace(c, approval_source=TRAILER_LABEL))
        else:
            out.append(c)
    return out


def commits(section: Section, fallback: Sequence[CommitItem]) -> list[CommitItem]:
    """The period's Git changes: the judged first-parent changes, plus the commits of runs
    that judged none (a ledger before schema step 8, or a run with no new range — its
    commits are the files' last commits, as recorded)."""
    known = {c.sha: c for c in fallback}
    judged = [CommitItem(i.repo, i.sha, i.commit_author,
                         known[i.sha].date if i.sha in known else "", i.subject, i.pr,
                         list(i.approvers), i.first_run_id,
                         approval=i.verdict, approval_source=i.evidence,
                         approval_reason=i.reason)
              for i in section.items]
    return judged + [c for c in fallback if c.run_id not in section.runs]
