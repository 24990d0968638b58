"""GitHub's REST API (github.com or GitHub Enterprise Server): the pull request that
brought a commit in, its reviews, commits and checks, and the branch protection.

Endpoints (REST API version 2022-11-28):

* ``GET /repos/{owner}/{repo}/commits/{sha}/pulls`` — pull requests associated with a
  commit; the one merged as ``merge_commit_sha == sha`` wins (a merge, squash or rebase
  commit), else the first merged one.
* ``GET /repos/{owner}/{repo}/pulls/{n}`` — ``user.login`` (the author), ``merged_by``,
  ``merged_at``, ``head.sha``, ``base.ref`` (``merged_by`` is only in this one).
* ``GET /repos/{owner}/{repo}/pulls/{n}/reviews`` — ``user.login``, ``state``
  (``APPROVED``, ``CHANGES_REQUESTED``, ``COMMENTED``, ``DISMISSED``), ``commit_id``,
  ``submitted_at``; chronological.
* ``GET /repos/{owner}/{repo}/pulls/{n}/commits`` — the pull request's commits, oldest first;
  the last one's ``author.login`` is its last pusher.
* ``GET /repos/{owner}/{repo}/commits/{ref}/check-runs`` — ``check_runs[].name``,
  ``status``, ``conclusion`` on the head commit.
* ``GET /repos/{owner}/{repo}/branches/{branch}/protection`` — 404 ``Branch not protected``
  when there is no rule; reading it needs the repository's administration (read) permission,
  and without it the snapshot is ``unknown``, never ``unprotected``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from .http import Client, Denied, NotFound
from .model import UNREADABLE, Check, Evidence, Protection, Review

PROVIDER = "github"
DEFAULT_API = "https://api.github.com"


def headers(token: str) -> dict[str, str]:
    out = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def _login(user: Any) -> str:
    return str(user.get("login") or "") if isinstance(user, Mapping) else ""


class GitHub:
    """One repository on one GitHub API."""

    provider = PROVIDER

    def __init__(self, client: Client, repo: str) -> None:
        self.client = client
        self.repo = repo
        owner, _, name = repo.partition("/")
        self._base = f"/repos/{urllib.parse.quote(owner, safe='')}/" \
                     f"{urllib.parse.quote(name, safe='')}"

    def evidence(self, sha: str, fetched_at: str,
                 required_checks: tuple[str, ...] | None = None) -> Evidence:
        """What GitHub says about the change mainline commit ``sha`` made."""
        base, client = self._base, self.client
        pulls = [p for p in client.pages(f"{base}/commits/{sha}/pulls")
                 if isinstance(p, Mapping)]
        merged = [p for p in pulls if p.get("merged_at")]
        pick = next((p for p in merged if p.get("merge_commit_sha") == sha),
                    merged[0] if merged else None)
        if pick is None:
            return Evidence(PROVIDER, self.repo, sha, fetched_at)
        number = int(pick["number"])
        detail = client.get(f"{base}/pulls/{number}").body or {}
        head = str((detail.get("head") or {}).get("sha") or "")
        reviews = tuple(
            Review(_login(r.get("user")), str(r.get("state") or ""),
                   str(r.get("submitted_at") or ""), str(r.get("commit_id") or ""))
            for r in client.pages(f"{base}/pulls/{number}/reviews") if isinstance(r, Mapping))
        commits = [c for c in client.pages(f"{base}/pulls/{number}/commits")
                   if isinstance(c, Mapping)]
        shas = tuple(str(c.get("sha") or "") for c in commits)
        last = next((c for c in commits if c.get("sha") == head), commits[-1] if commits else None)
        pusher = ""
        if last is not None:
            # The host's login when the commit's email maps to an account; else the Git name.
            pusher = _login(last.get("author")) or str(
                ((last.get("commit") or {}).get("author") or {}).get("name") or "")
        checks = self._checks(head, required_checks) if head else ()
        return Evidence(
            PROVIDER, self.repo, sha, fetched_at, pr=number, title=str(detail.get("title") or ""),
            url=str(detail.get("html_url") or ""),
            base=str((detail.get("base") or {}).get("ref") or ""), head=head,
            author=_login(detail.get("user")), last_pusher=pusher,
            merged_by=_login(detail.get("merged_by")),
            merged_at=str(detail.get("merged_at") or pick.get("merged_at") or ""),
            commits=shas, reviews=reviews, checks=checks)

    def _checks(self, head: str, required: tuple[str, ...] | None) -> tuple[Check, ...]:
        wanted = set(required or ())
        try:
            runs = [r for r in self.client.pages(f"{self._base}/commits/{head}/check-runs",
                                                 key="check_runs") if isinstance(r, Mapping)]
        except (Denied, NotFound):
            # A token without the checks permission: the checks are not known, which is
            # neither a pass nor a failure (sod never counts an unreadable check).
            return tuple(Check(name, UNREADABLE, "", True) for name in sorted(wanted))
        out = [Check(str(r.get("name") or ""), str(r.get("status") or ""),
                     str(r.get("conclusion") or ""), str(r.get("name") or "") in wanted)
               for r in runs]
        # A required check that never ran is as much a finding as one that failed.
        ran = {c.name for c in out}
        out += [Check(name, "missing", "", True) for name in sorted(wanted - ran)]
        return tuple(out)

    def protection(self, branch: str, fetched_at: str) -> Protection:
        path = f"{self._base}/branches/{urllib.parse.quote(branch, safe='')}/protection"
        try:
            doc = self.client.get(path).body or {}
        except NotFound as exc:
            if "not protected" in str(exc).lower():
                return Protection(PROVIDER, self.repo, branch, "unprotected", fetched_at)
            return Protection(PROVIDER, self.repo, branch, "unknown", fetched_at,
                              detail=f"{exc} (a private repository answers 404 to a token "
                                     "without access)")
        except Denied as exc:
            return Protection(PROVIDER, self.repo, branch, "unknown", fetched_at,
                              detail=f"{exc} (reading branch protection needs the "
                                     "repository's administration read permission)")
        reviews = doc.get("required_pull_request_reviews") or {}
        status = doc.get("required_status_checks") or {}
        contexts = [str(c) for c in status.get("contexts") or []]
        contexts += [str(c.get("context")) for c in status.get("checks") or []
                     if isinstance(c, Mapping) and c.get("context")]

        def enabled(name: str) -> bool | None:
            value = doc.get(name)
            return bool(value.get("enabled")) if isinstance(value, Mapping) else None

        rules = {
            "required_approving_review_count": reviews.get("required_approving_review_count"),
            "dismiss_stale_reviews": reviews.get("dismiss_stale_reviews"),
            "require_code_owner_reviews": reviews.get("require_code_owner_reviews"),
            "require_last_push_approval": reviews.get("require_last_push_approval"),
            "pull_request_reviews_required": bool(reviews),
            "strict_status_checks": status.get("strict") if status else None,
            "enforce_admins": enabled("enforce_admins"),
            "allow_force_pushes": enabled("allow_force_pushes"),
            "allow_deletions": enabled("allow_deletions"),
            "required_linear_history": enabled("required_linear_history"),
            "required_signatures": enabled("required_signatures"),
        }
        return Protection(PROVIDER, self.repo, branch, "protected", fetched_at,
                          {k: v for k, v in rules.items() if v is not None},
                          tuple(sorted(set(contexts))))
