"""The records of approval evidence: what the git host says about one change, and the
verdict drawn from it.

Plain frozen dataclasses, serialisable with :func:`dataclasses.asdict` (the cache and the
ledger store them as JSON), with no secret in any of them: a token never leaves the HTTP
client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Where an approval came from, as reports print it.
TRAILER_LABEL = "trailer (typed in the commit message, not verified)"
NONE_LABEL = "none"

Verdict = Literal["authorized", "exception", "unknown"]

# The exceptions of segregation of duties, worded as reports print them.
NO_PULL_REQUEST = "no pull request (pushed to the branch directly)"
OWN_APPROVAL = "approved by its own author"
NO_INDEPENDENT = "no independent approval"
CHECKS_FAILED = "required checks did not pass"
# The status of a check the token may not read: unknown, never counted as failed.
UNREADABLE = "unreadable"


def host_label(provider: str) -> str:
    """``git host (github)``: the label of evidence read from a git host's API."""
    return f"git host ({provider})"


@dataclass(frozen=True, slots=True)
class Review:
    """One review of a pull request (GitLab: one approval, which names no commit)."""

    reviewer: str  # the host's login (GitHub) or username (GitLab)
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    submitted_at: str = ""
    commit: str = ""  # the head commit the review was made on ('' when the host says none)
    name: str = ""  # the display name, when the host gives one (GitLab)


@dataclass(frozen=True, slots=True)
class Check:
    """One check run (GitHub) or pipeline (GitLab) on the head commit of a pull request."""

    name: str
    status: str  # queued | in_progress | completed (GitLab: the pipeline's status)
    conclusion: str = ""  # success | failure | neutral | cancelled | skipped | timed_out | …
    required: bool = False


@dataclass(frozen=True, slots=True)
class Protection:
    """A snapshot of the branch protection, as the host reported it when asked.

    ``state`` is ``protected``, ``unprotected`` (the host says the branch has no rule) or
    ``unknown`` (not readable: the token lacks the permission, the host was unreachable),
    with ``detail`` saying why. ``rules`` holds the settings that matter for approvals.
    """

    provider: str
    repo: str
    branch: str
    state: str
    fetched_at: str
    rules: dict[str, Any] = field(default_factory=dict)
    required_checks: tuple[str, ...] = ()
    detail: str = ""
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the git host says about the change one mainline commit made.

    ``pr`` is None when no merged pull request (merge request) brought the commit in: it was
    pushed to the branch directly. ``head`` is the pull request's last commit, ``last_pusher``
    that commit's author (the host's login when it maps one, else the Git name), ``commits``
    the pull request's commits in order (to tell whether a review covers the head).
    """

    provider: str
    repo: str
    sha: str
    fetched_at: str
    pr: int | None = None
    title: str = ""
    url: str = ""
    base: str = ""
    head: str = ""
    author: str = ""
    last_pusher: str = ""
    merged_by: str = ""
    merged_at: str = ""
    commits: tuple[str, ...] = ()
    reviews: tuple[Review, ...] = ()
    checks: tuple[Check, ...] = ()
    # GitLab approvals name no commit: they are taken as given on the head, which holds when
    # the project resets approvals on push (recorded in the protection snapshot's rules).
    approvals_name_no_commit: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One first-parent (mainline) commit of an audited range: the unit of approval.

    ``introduced`` are the commits a merge brought in (what ``M^1..M`` adds); ``authors`` the
    Git authors of the commit and of those; ``trailers`` the ``Key: value`` trailers of all of
    them (the fallback evidence); ``objects`` the desired objects whose files' last change it
    brought in, as ``[group, kind, namespace, name]``.
    """

    source: str
    repo: str
    sha: str
    subject: str = ""
    author: str = ""
    committed_at: str = ""
    parents: tuple[str, ...] = ()
    pr_hint: int | None = None  # parsed from the subject
    introduced: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    trailers: tuple[tuple[str, str], ...] = ()
    objects: tuple[tuple[str, str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Approval:
    """The verdict on one :class:`Change`: what the ledger's ``approvals`` table records.

    ``verdict`` is ``authorized`` (an independent approval of the head), ``exception`` (the
    reason says which) or ``unknown`` (the host could not be asked this run: never read as
    unapproved; asked again next run). ``approvers`` are the independent approvers only;
    ``reviews`` every review as the host reported it.
    """

    change: Change
    verdict: Verdict
    reason: str
    source: str  # TRAILER_LABEL, host_label(provider) or NONE_LABEL
    provider: str = ""
    pr: int | None = None
    author: str = ""
    last_pusher: str = ""
    merged_by: str = ""
    approvers: tuple[str, ...] = ()
    reviews: tuple[Review, ...] = ()
    checks: tuple[Check, ...] = ()
    head: str = ""
    fetched_at: str = ""
    cached: bool = False
