"""Segregation of duties: the verdict on one mainline change from its evidence.

From the git host (:func:`judge`): an approval counts only when it is the reviewer's
standing review (their latest approving, change-requesting or dismissed review; comments
change nothing), it is ``APPROVED``, it was made on the pull request's head commit or a
later one (an approval of an earlier commit says nothing about what was pushed after it),
and the reviewer is neither the pull request's author nor its last pusher (the author of
its head commit). A change with such an approval is ``authorized``; otherwise it is an
exception: pushed without a pull request, approved only by its own author (or last pusher),
or with no independent approval at all. A required check that did not pass is an exception
too.

From trailers (:func:`judge_trailers`), the fallback when no git host is configured:
``Reviewed-by`` / ``Approved-by`` / ``Acked-by`` in the commit messages, which anyone can
type, judged the same way against the Git authors, and labelled as not verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from .model import (
    CHECKS_FAILED,
    NO_INDEPENDENT,
    NO_PULL_REQUEST,
    OWN_APPROVAL,
    TRAILER_LABEL,
    UNREADABLE,
    Approval,
    Change,
    Check,
    Evidence,
    Review,
    host_label,
)

APPROVER_TRAILERS = ("reviewed-by", "approved-by", "acked-by")
# Review states that replace a reviewer's standing verdict; COMMENTED and PENDING do not.
_DECISIVE = ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")
_PASSING = ("success", "neutral", "skipped")
_EMAIL = re.compile(r"<([^>]+)>")


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and a.strip().casefold() == b.strip().casefold()


def standing(reviews: Iterable[Review]) -> dict[str, Review]:
    """Each reviewer's standing review: the latest decisive one (the list is chronological)."""
    out: dict[str, Review] = {}
    for review in reviews:
        if review.state.upper() in _DECISIVE and review.reviewer:
            out[review.reviewer.casefold()] = review
    return out


def covers_head(review: Review, ev: Evidence) -> bool:
    """Whether ``review`` was made on the head commit or a later one."""
    if ev.approvals_name_no_commit:
        return True
    if not review.commit or not ev.head:
        return False
    if review.commit == ev.head:
        return True
    commits = list(ev.commits)
    if review.commit in commits and ev.head in commits:
        return commits.index(review.commit) >= commits.index(ev.head)
    return False


def failed_checks(checks: Iterable[Check]) -> list[Check]:
    """Required checks that did not pass (failed, cancelled, timed out, still running, or
    never reported)."""
    return [c for c in checks if c.required and c.status != UNREADABLE
            and (c.conclusion or "").lower() not in _PASSING]


def judge(change: Change, ev: Evidence, *, cached: bool = False) -> Approval:
    """The verdict from the git host's evidence ``ev`` on ``change``."""
    base = Approval(change, "exception", "", host_label(ev.provider), provider=ev.provider,
                    pr=ev.pr, author=ev.author, last_pusher=ev.last_pusher,
                    merged_by=ev.merged_by, reviews=ev.reviews, checks=ev.checks, head=ev.head,
                    fetched_at=ev.fetched_at, cached=cached)
    if ev.pr is None:
        return replace(base, reason=NO_PULL_REQUEST)
    approved = [r for r in standing(ev.reviews).values() if r.state.upper() == "APPROVED"]
    current = [r for r in approved if covers_head(r, ev)]

    def own(r: Review) -> bool:
        return (_same(r.reviewer, ev.author) or _same(r.reviewer, ev.last_pusher)
                or _same(r.name, ev.last_pusher))

    independent = tuple(sorted(r.reviewer for r in current if not own(r)))
    failing = failed_checks(ev.checks)
    if independent and not failing:
        return replace(base, verdict="authorized", approvers=independent,
                       reason=f"approved by {', '.join(independent)} on the head commit "
                              f"{ev.head[:12]}")
    if independent:
        names = ", ".join(f"{c.name} ({c.conclusion or c.status})" for c in failing)
        return replace(base, reason=f"{CHECKS_FAILED}: {names}", approvers=independent)
    if any(own(r) for r in current):
        who = sorted({r.reviewer for r in current if own(r)})
        role = "author" if any(_same(w, ev.author) for w in who) else "last pusher"
        reason = OWN_APPROVAL if role == "author" else f"{OWN_APPROVAL} (its last pusher)"
        return replace(base, reason=f"{reason}: {', '.join(who)}")
    detail = "no approving review"
    if approved:
        detail = (f"approvals only of earlier commits than the head {ev.head[:12]} "
                  f"({', '.join(sorted(r.reviewer for r in approved))})")
    elif any(r.state.upper() == "CHANGES_REQUESTED" for r in standing(ev.reviews).values()):
        detail = "changes requested"
    return replace(base, reason=f"{NO_INDEPENDENT}: {detail}")


def trailer_approvers(trailers: Iterable[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    for key, value in trailers:
        if key.lower() in APPROVER_TRAILERS and value and value not in out:
            out.append(value)
    return out


def _identities(person: str) -> set[str]:
    """``Name <email>`` → {name, email}, case-folded, for comparing a trailer with an author."""
    match = _EMAIL.search(person)
    name = _EMAIL.sub("", person).strip()
    return {x.casefold() for x in (name, match.group(1).strip() if match else "") if x}


def judge_trailers(change: Change) -> Approval:
    """The verdict from the commit messages' trailers: not verified by anyone."""
    approvers = trailer_approvers(change.trailers)
    authors: set[str] = set()
    for person in (change.author, *change.authors):
        authors |= _identities(person)
    independent = tuple(a for a in approvers if not (_identities(a) & authors))
    base = Approval(change, "exception", "", TRAILER_LABEL, pr=change.pr_hint,
                    author=change.author,
                    reviews=tuple(Review(a, "APPROVED") for a in approvers))
    if independent:
        return replace(base, verdict="authorized", approvers=independent,
                       reason=f"trailer names {', '.join(independent)}")
    if approvers:
        return replace(base, reason=f"{OWN_APPROVAL}: {', '.join(approvers)}")
    return replace(base, reason=f"{NO_INDEPENDENT}: no Reviewed-by or Approved-by trailer")


def unknown(change: Change, provider: str, why: str) -> Approval:
    """The git host could not be asked this run: unknown, never unapproved; asked again."""
    return Approval(change, "unknown", why, host_label(provider), provider=provider,
                    pr=change.pr_hint)
