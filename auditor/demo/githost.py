"""The demo's git host: a small GitHub-shaped REST API on 127.0.0.1 serving the demo
repository's pull requests, so that a run reads approvals the way it reads them from GitHub.

It answers exactly what :mod:`auditor.githost.github` asks (REST API version 2022-11-28),
with the documented response shapes:

* ``GET /repos/{owner}/{repo}/commits/{sha}/pulls`` — the pull requests associated with a
  commit (its merge commit or one of its branch's commits);
* ``GET /repos/{owner}/{repo}/pulls/{n}`` — ``user``, ``merged_by``, ``merged_at``,
  ``head.sha``, ``base.ref``;
* ``GET /repos/{owner}/{repo}/pulls/{n}/reviews`` — ``user.login``, ``state``,
  ``commit_id``, ``submitted_at``, in order;
* ``GET /repos/{owner}/{repo}/pulls/{n}/commits`` — ``sha``, ``commit.author``,
  ``author.login``, oldest first;
* ``GET /repos/{owner}/{repo}/commits/{ref}/check-runs`` — ``{"total_count", "check_runs"}``;
* ``GET /repos/{owner}/{repo}/branches/{branch}/protection`` — the rule, or 404
  ``Branch not protected``.

Every request must carry ``Authorization: Bearer <token>`` when a token is set (401
``Bad credentials`` otherwise). Lists fit one page. Nothing here is imported by the tool.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class PullRequest:
    """One merged pull request of the demo repository, as Git made it."""

    number: int
    title: str
    branch: str
    author: str  # GitHub login
    merged_by: str  # login
    merge_sha: str  # the first-parent merge commit on the base branch
    commits: tuple[tuple[str, str, str, str], ...]  # (sha, login, name, email), oldest first
    reviews: tuple[tuple[str, str], ...]  # (login, state), on the head commit, in order
    merged_at: str
    base: str = "main"
    checks: tuple[tuple[str, str], ...] = (("test", "success"),)  # (name, conclusion)

    @property
    def head(self) -> str:
        return self.commits[-1][0]


PROTECTION: dict[str, Any] = {
    # main requires one approving review and a passing `test` check; admins may bypass.
    "url": "", "required_status_checks": {
        "url": "", "strict": True, "contexts": ["test"],
        "checks": [{"context": "test", "app_id": None}]},
    "required_pull_request_reviews": {
        "url": "", "dismiss_stale_reviews": True, "require_code_owner_reviews": False,
        "required_approving_review_count": 1, "require_last_push_approval": True},
    "enforce_admins": {"url": "", "enabled": False},
    "required_linear_history": {"enabled": False},
    "allow_force_pushes": {"enabled": False},
    "allow_deletions": {"enabled": False},
    "required_signatures": {"url": "", "enabled": False},
}


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "id": sum(map(ord, login)) * 97, "type": "User",
            "site_admin": False, "html_url": f"https://github.com/{login}"}


@dataclass
class DemoGitHub:
    """Serves ``pulls`` of ``repo`` (``owner/name``) until stopped; ``protected`` are the
    branches with :data:`PROTECTION`."""

    repo: str
    pulls: list[PullRequest] = field(default_factory=list)
    token: str = ""
    protected: tuple[str, ...] = ("main",)
    requests: int = 0
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> DemoGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DemoGitHub:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ answers

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        if self.token and req.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(req, 401, {"message": "Bad credentials",
                                  "documentation_url": "https://docs.github.com/rest"})
            return
        path = urllib.parse.urlsplit(req.path).path
        status, body = self.answer(path)
        self._send(req, status, body)

    def answer(self, path: str) -> tuple[int, Any]:
        """``(status, JSON body)`` for a request path (its query ignored)."""
        bits = [urllib.parse.unquote(b) for b in path.strip("/").split("/")]
        if len(bits) < 4 or bits[0] != "repos" or "/".join(bits[1:3]) != self.repo:
            return 404, {"message": "Not Found"}
        rest = bits[3:]
        by_number = {p.number: p for p in self.pulls}
        if rest[0] == "commits" and len(rest) == 3 and rest[2] == "pulls":
            sha = rest[1]
            return 200, [self._simple(p) for p in self.pulls
                         if sha == p.merge_sha or sha in (c[0] for c in p.commits)]
        if rest[0] == "commits" and len(rest) == 3 and rest[2] == "check-runs":
            runs = [self._check(p, i, name, conclusion) for p in self.pulls if p.head == rest[1]
                    for i, (name, conclusion) in enumerate(p.checks)]
            return 200, {"total_count": len(runs), "check_runs": runs}
        if rest[0] == "pulls" and len(rest) >= 2 and rest[1].isdigit():
            pull = by_number.get(int(rest[1]))
            if pull is None:
                return 404, {"message": "Not Found"}
            if len(rest) == 2:
                return 200, {**self._simple(pull), "merged": True, "mergeable": None,
                             "merged_by": _user(pull.merged_by), "comments": 0,
                             "review_comments": 0, "commits": len(pull.commits)}
            if rest[2:] == ["reviews"]:
                return 200, [self._review(pull, i, login, state)
                             for i, (login, state) in enumerate(pull.reviews)]
            if rest[2:] == ["commits"]:
                return 200, [self._commit(sha, login, name, email, pull.merged_at)
                             for sha, login, name, email in pull.commits]
        if rest[0] == "branches" and len(rest) == 3 and rest[2] == "protection":
            if rest[1] not in self.protected:
                return 404, {"message": "Branch not protected",
                             "documentation_url": "https://docs.github.com/rest/branches/"
                                                  "branch-protection#get-branch-protection"}
            return 200, PROTECTION
        return 404, {"message": "Not Found"}

    def _simple(self, p: PullRequest) -> dict[str, Any]:
        owner = self.repo.split("/")[0]
        return {
            "url": f"{self.url}/repos/{self.repo}/pulls/{p.number}", "id": 7000 + p.number,
            "number": p.number, "state": "closed", "locked": False, "title": p.title,
            "user": _user(p.author), "body": "", "created_at": p.merged_at,
            "updated_at": p.merged_at, "closed_at": p.merged_at, "merged_at": p.merged_at,
            "merge_commit_sha": p.merge_sha, "draft": False,
            "html_url": f"https://github.com/{self.repo}/pull/{p.number}",
            "head": {"label": f"{owner}:{p.branch}", "ref": p.branch, "sha": p.head,
                     "user": _user(p.author)},
            "base": {"label": f"{owner}:{p.base}", "ref": p.base, "sha": ""},
            "author_association": "MEMBER", "auto_merge": None}

    @staticmethod
    def _review(p: PullRequest, i: int, login: str, state: str) -> dict[str, Any]:
        return {"id": 9000 + 10 * p.number + i, "node_id": f"PRR_{p.number}_{i}",
                "user": _user(login), "body": "", "state": state, "html_url": "",
                "commit_id": p.head, "submitted_at": p.merged_at,
                "author_association": "MEMBER", "_links": {}}

    @staticmethod
    def _commit(sha: str, login: str, name: str, email: str, date: str) -> dict[str, Any]:
        person = {"name": name, "email": email, "date": date}
        return {"sha": sha, "node_id": "", "url": "", "html_url": "",
                "commit": {"author": person, "committer": person, "message": "",
                           "comment_count": 0},
                "author": _user(login), "committer": _user(login), "parents": []}

    @staticmethod
    def _check(p: PullRequest, i: int, name: str, conclusion: str) -> dict[str, Any]:
        return {"id": 5000 + 10 * p.number + i, "head_sha": p.head, "node_id": "",
                "external_id": "", "status": "completed", "conclusion": conclusion,
                "name": name, "started_at": p.merged_at, "completed_at": p.merged_at,
                "app": {"slug": "github-actions"}}

    def _send(self, req: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(raw)))
        req.send_header("X-GitHub-Api-Version", "2022-11-28")
        req.end_headers()
        req.wfile.write(raw)
