"""Segregation of duties, verdict by verdict: who may approve, on which commit, and what
the trailer fallback says (labelled as not verified)."""

from __future__ import annotations

from auditor.githost import sod
from auditor.githost.model import TRAILER_LABEL, Change, Check, Evidence, Review

HEAD, EARLIER, MERGE = "c" * 40, "b" * 40, "m" * 40


def change(**kw: object) -> Change:
    base: dict[str, object] = {"source": "shop", "repo": "https://github.com/acme/gitops",
                               "sha": MERGE, "author": "GitHub <noreply@github.com>"}
    return Change(**{**base, **kw})  # type: ignore[arg-type]


def evidence(*reviews: Review, author: str = "alice", pusher: str = "alice",
             checks: tuple[Check, ...] = ()) -> Evidence:
    return Evidence("github", "acme/gitops", MERGE, "2026-11-01T12:00:00Z", pr=7, head=HEAD,
                    author=author, last_pusher=pusher, merged_by="carol",
                    commits=(EARLIER, HEAD), reviews=reviews, checks=checks)


def test_an_independent_approval_of_the_head_authorizes() -> None:
    verdict = sod.judge(change(), evidence(Review("bob", "APPROVED", "t", HEAD)))
    assert verdict.verdict == "authorized" and verdict.approvers == ("bob",)
    assert verdict.source == "git host (github)" and verdict.merged_by == "carol"


def test_approved_by_its_own_author_is_an_exception() -> None:
    verdict = sod.judge(change(), evidence(Review("alice", "APPROVED", "t", HEAD)))
    assert verdict.verdict == "exception"
    assert verdict.reason.startswith("approved by its own author")
    assert verdict.approvers == ()


def test_the_last_pusher_cannot_approve_either() -> None:
    verdict = sod.judge(change(), evidence(Review("dave", "APPROVED", "t", HEAD),
                                           pusher="dave"))
    assert verdict.verdict == "exception" and "last pusher" in verdict.reason


def test_an_approval_of_an_earlier_commit_is_no_independent_approval() -> None:
    verdict = sod.judge(change(), evidence(Review("bob", "APPROVED", "t", EARLIER)))
    assert verdict.verdict == "exception"
    assert verdict.reason.startswith("no independent approval") and "earlier" in verdict.reason


def test_the_latest_decisive_review_stands() -> None:
    withdrawn = evidence(Review("bob", "APPROVED", "t1", HEAD),
                         Review("bob", "CHANGES_REQUESTED", "t2", HEAD),
                         Review("bob", "COMMENTED", "t3", HEAD))
    assert sod.judge(change(), withdrawn).verdict == "exception"
    dismissed = evidence(Review("bob", "APPROVED", "t1", HEAD),
                         Review("bob", "DISMISSED", "t2", HEAD))
    assert sod.judge(change(), dismissed).verdict == "exception"
    later = evidence(Review("bob", "CHANGES_REQUESTED", "t1", EARLIER),
                     Review("bob", "APPROVED", "t2", HEAD), Review("bob", "COMMENTED", "t3", HEAD))
    assert sod.judge(change(), later).verdict == "authorized"


def test_no_pull_request_is_an_exception() -> None:
    bare = Evidence("github", "acme/gitops", MERGE, "t")
    verdict = sod.judge(change(), bare)
    assert verdict.verdict == "exception" and verdict.reason.startswith("no pull request")


def test_a_failed_required_check_is_an_exception() -> None:
    ev = evidence(Review("bob", "APPROVED", "t", HEAD),
                  checks=(Check("ci", "completed", "failure", required=True),
                          Check("lint", "completed", "failure", required=False)))
    verdict = sod.judge(change(), ev)
    assert verdict.verdict == "exception" and verdict.reason == \
        "required checks did not pass: ci (failure)"


def test_unknown_is_not_unapproved() -> None:
    verdict = sod.unknown(change(pr_hint=7), "github", "rate limited: resets later")
    assert verdict.verdict == "unknown" and verdict.pr == 7


def test_trailers_are_the_labelled_fallback() -> None:
    own = change(author="Alice <alice@example.com>", authors=("Alice <alice@example.com>",),
                 trailers=(("Reviewed-by", "Alice <alice@example.com>"),))
    verdict = sod.judge_trailers(own)
    assert verdict.source == TRAILER_LABEL == "trailer (typed in the commit message, not verified)"
    assert verdict.verdict == "exception" and verdict.reason.startswith("approved by its own")
    other = change(authors=("Alice <alice@example.com>",),
                   trailers=(("Approved-by", "Bob <bob@example.com>"), ("Signed-off-by", "x")))
    assert sod.judge_trailers(other).verdict == "authorized"
    assert sod.judge_trailers(other).approvers == ("Bob <bob@example.com>",)
    assert sod.judge_trailers(change()).reason.startswith("no independent approval")


def test_an_unreadable_required_check_is_not_a_failure() -> None:
    ev = evidence(Review("bob", "APPROVED", "t", HEAD),
                  checks=(Check("ci", "unreadable", "", required=True),))
    assert sod.judge(change(), ev).verdict == "authorized"
