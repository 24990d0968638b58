"""GitLab's REST API (gitlab.com or self-managed, ``/api/v4``): the merge request that
brought a commit in, its approvals, commits and pipeline, and the branch protection.

Endpoints (``:id`` is the project's numeric id or its URL-encoded path):

* ``GET /projects/:id/repository/commits/:sha/merge_requests`` — merge requests associated
  with a commit; the merged one whose ``merge_commit_sha`` or ``squash_commit_sha`` is the
  commit wins, else the first merged one.
* ``GET /projects/:id/merge_requests/:iid`` — ``author.username``, ``merge_user`` (the
  successor of the deprecated ``merged_by``, read as a fallback), ``merged_at``, ``sha``
  (the head), ``target_branch``, ``head_pipeline.status``.
* ``GET /projects/:id/merge_requests/:iid/approvals`` — ``approved_by[].user.username``.
  GitLab approvals name no commit: they count for the head, which is what they mean when
  the project resets approvals on push (``reset_approvals_on_push``, recorded with the
  protection snapshot from ``GET /projects/:id/approvals``).
* ``GET /projects/:id/merge_requests/:iid/commits`` — newest first; the head's
  ``author_name`` is the last pusher (GitLab maps no username onto commits).
* ``GET /projects/:id/protected_branches/:name`` — 404 when the branch has no rule.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from .http import Client, Denied, NotFound
from .model import Check, Evidence, Protection, Review

PROVIDER = "gitlab"
DEFAULT_API = "https://gitlab.com/api/v4"


def headers(token: str) -> dict[str, str]:
    return {"PRIVATE-TOKEN": token} if token else {}


def _username(user: Any) -> str:
    return str(user.get("username") or "") if isinstance(user, Mapping) else ""


class GitLab:
    """One project on one GitLab API."""

    provider = PROVIDER

    def __init__(self, client: Client, repo: str) -> None:
        self.client = client
        self.repo = repo
        self._base = f"/projects/{urllib.parse.quote(repo, safe='')}"

    def evidence(self, sha: str, fetched_at: str,
                 required_checks: tuple[str, ...] | None = None) -> Evidence:
        base, client = self._base, self.client
        mrs = [m for m in client.pages(f"{base}/repository/commits/{sha}/merge_requests")
               if isinstance(m, Mapping)]
        merged = [m for m in mrs if m.get("state") == "merged"]
        pick = next((m for m in merged
                     if sha in (m.get("merge_commit_sha"), m.get("squash_commit_sha"))),
                    merged[0] if merged else None)
        if pick is None:
            return Evidence(PROVIDER, self.repo, sha, fetched_at)
        iid = int(pick["iid"])
        detail = client.get(f"{base}/merge_requests/{iid}").body or {}
        head = str(detail.get("sha") or pick.get("sha") or "")
        approvals = client.get(f"{base}/merge_requests/{iid}/approvals").body or {}
        reviews = tuple(
            Review(_username(a.get("user")), "APPROVED", str(a.get("approved_at") or ""), head,
                   str((a.get("user") or {}).get("name") or ""))
            for a in approvals.get("approved_by") or [] if isinstance(a, Mapping))
        commits = [c for c in client.pages(f"{base}/merge_requests/{iid}/commits")
                   if isinstance(c, Mapping)]
        commits.reverse()  # oldest first, as GitHub lists them
        last = next((c for c in commits if c.get("id") == head), commits[-1] if commits else None)
        pipeline = detail.get("head_pipeline") or detail.get("pipeline") or {}
        checks: tuple[Check, ...] = ()
        if isinstance(pipeline, Mapping) and pipeline.get("status"):
            status = str(pipeline["status"])
            checks = (Check("pipeline", status, status,
                            "pipeline" in (required_checks or ())),)
        merger = _username(detail.get("merge_user")) or _username(detail.get("merged_by"))
        return Evidence(
            PROVIDER, self.repo, sha, fetched_at, pr=iid, title=str(detail.get("title") or ""),
            url=str(detail.get("web_url") or ""), base=str(detail.get("target_branch") or ""),
            head=head, author=_username(detail.get("author")),
            last_pusher=str(last.get("author_name") or "") if last else "",
            merged_by=merger, merged_at=str(detail.get("merged_at") or ""),
            commits=tuple(str(c.get("id") or "") for c in commits), reviews=reviews,
            checks=checks, approvals_name_no_commit=True)

    def protection(self, branch: str, fetched_at: str) -> Protection:
        path = f"{self._base}/protected_branches/{urllib.parse.quote(branch, safe='')}"
        try:
            doc = self.client.get(path).body or {}
        except NotFound:
            return Protection(PROVIDER, self.repo, branch, "unprotected", fetched_at)
        except Denied as exc:
            return Protection(PROVIDER, self.repo, branch, "unknown", fetched_at,
                              detail=f"{exc} (reading protected branches needs Maintainer)")

        def levels(name: str) -> list[str]:
            return [str(x.get("access_level_description") or x.get("access_level"))
                    for x in doc.get(name) or [] if isinstance(x, Mapping)]

        rules: dict[str, Any] = {
            "push_access_levels": levels("push_access_levels"),
            "merge_access_levels": levels("merge_access_levels"),
            "allow_force_push": doc.get("allow_force_push"),
            "code_owner_approval_required": doc.get("code_owner_approval_required"),
        }
        try:  # the project's approval rules: best effort (a Premium feature)
            project = self.client.get(f"{self._base}/approvals").body or {}
            for name in ("approvals_before_merge", "reset_approvals_on_push",
                         "merge_requests_author_approval",
                         "merge_requests_disable_committers_approval"):
                if name in project:
                    rules[name] = project[name]
        except (NotFound, Denied):
            pass
        return Protection(PROVIDER, self.repo, branch, "protected", fetched_at,
                          {k: v for k, v in rules.items() if v is not None})
