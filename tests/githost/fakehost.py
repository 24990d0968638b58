"""A fake git host for the tests: a ThreadingHTTPServer answering GitHub's and GitLab's REST
endpoints with the response shapes their documentation shows (only the fields the tool
reads, plus a few neighbours so that extra fields are proven harmless).

GitHub (REST API 2022-11-28): ``/repos/{o}/{r}/commits/{sha}/pulls`` (pull request simple
objects), ``/pulls/{n}`` (``user``, ``merged_by``, ``head.sha``, ``base.ref``),
``/pulls/{n}/reviews`` (``user.login``, ``state``, ``commit_id``, ``submitted_at``),
``/pulls/{n}/commits`` (``sha``, ``commit.author``, ``author.login``),
``/commits/{ref}/check-runs`` (``{"total_count", "check_runs": [...]}``),
``/branches/{b}/protection`` (404 ``Branch not protected`` without a rule).
GitLab (``/api/v4``): ``/projects/:id/repository/commits/:sha/merge_requests``,
``/merge_requests/:iid`` (``author``, ``merge_user``, ``merged_by``, ``sha``),
``/merge_requests/:iid/approvals`` (``approved_by[].user``), ``/merge_requests/:iid/commits``
(newest first), ``/protected_branches/:name``, ``/projects/:id/approvals``.

Lists are paginated ``page_size`` at a time: GitHub with ``Link: <…>; rel="next"``, GitLab
with ``X-Next-Page``. ``limit_after`` answers every request after that many with GitHub's
primary rate-limit response (403, ``x-ratelimit-remaining: 0``, ``x-ratelimit-reset``) or,
for GitLab, 429 with ``Retry-After``. Every request is recorded with its headers.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeHost:
    provider: str = "github"
    token: str = ""
    page_size: int = 100
    limit_after: int | None = None
    reset_in: float = 3600.0  # seconds until the rate limit resets
    retry_after: float | None = None
    link_base: str = ""  # where GitHub's next links point ('' : this server)
    # GitHub
    commit_pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pull_commits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    protection: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    protection_status: int = 200
    # GitLab
    commit_mrs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    mrs: dict[int, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[int, dict[str, Any]] = field(default_factory=dict)
    mr_commits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    protected: dict[str, dict[str, Any]] = field(default_factory=dict)
    project_approvals: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ server

    def __enter__(self) -> FakeHost:
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

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}" + ("/api/v4" if self.provider == "gitlab" else "")

    # ------------------------------------------------------------------ answers

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(req.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in req.headers.items()}
        self.seen.append(Seen(parts.path, query, headers))
        if self.limit_after is not None and len(self.seen) > self.limit_after:
            self._limited(req)
            return
        if self.token and not self._authorized(headers):
            self._send(req, 401, {"message": "Bad credentials"} if self.provider == "github"
                       else {"message": "401 Unauthorized"})
            return
        path = parts.path  # segments are unquoted one by one: a GitLab id may hold %2F
        answer = (self._github(path) if self.provider == "github"
                  else self._gitlab(path.removeprefix("/api/v4")))
        if answer is None:
            self._send(req, 404, {"message": "Not Found"})
            return
        status, body = answer
        if status == 200 and isinstance(body, list):
            # Check runs come in an object: {"total_count": n, "check_runs": [...]}.
            wrap = "check_runs" if path.endswith("/check-runs") else ""
            self._page(req, parts, query, body, wrap)
            return
        self._send(req, status, body)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.provider == "github":
            return headers.get("authorization") == f"Bearer {self.token}"
        return headers.get("private-token") == self.token

    def _limited(self, req: BaseHTTPRequestHandler) -> None:
        if self.provider == "github":
            extra = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                     "x-ratelimit-used": "5000", "x-ratelimit-resource": "core",
                     "x-ratelimit-reset": str(int(time.time() + self.reset_in))}
            if self.retry_after is not None:
                extra["retry-after"] = str(int(self.retry_after))
            self._send(req, 403, {
                "message": "API rate limit exceeded for user ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/"
                                     "rate-limits-for-the-rest-api"}, extra)
        else:
            self._send(req, 429, {"message": "429 Too Many Requests"}, {
                "retry-after": str(int(self.retry_after if self.retry_after is not None
                                       else self.reset_in)),
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(int(time.time() + self.reset_in))})

    def _page(self, req: BaseHTTPRequestHandler, parts: urllib.parse.SplitResult,
              query: dict[str, str], items: list[Any], wrap: str = "") -> None:
        size = min(self.page_size, int(query.get("per_page", "30")))
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * size: page * size]
        extra: dict[str, str] = {}
        more = page * size < len(items)
        if self.provider == "github":
            if more:
                nxt = urllib.parse.urlencode({**query, "page": str(page + 1)})
                base = self.link_base or f"http://{req.headers.get('Host', '')}"
                extra["link"] = f'<{base}{parts.path}?{nxt}>; rel="next"'
        else:
            extra["x-next-page"] = str(page + 1) if more else ""
            extra["x-page"] = str(page)
            extra["x-total"] = str(len(items))
        body: Any = {"total_count": len(items), wrap: chunk} if wrap else chunk
        self._send(req, 200, body, extra)

    def _send(self, req: BaseHTTPRequestHandler, status: int, body: Any,
              headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            req.send_header(name, value)
        req.end_headers()
        req.wfile.write(raw)

    def _github(self, path: str) -> tuple[int, Any] | None:
        bits = [urllib.parse.unquote(b) for b in path.strip("/").split("/")]
        if len(bits) < 4 or bits[0] != "repos":
            return None
        rest = bits[3:]
        if rest[0] == "commits" and len(rest) == 3 and rest[2] == "pulls":
            return 200, self.commit_pulls.get(rest[1], [])
        if rest[0] == "commits" and len(rest) == 3 and rest[2] == "check-runs":
            return 200, self.check_runs.get(rest[1], [])
        if rest[0] == "pulls" and len(rest) >= 2 and rest[1].isdigit():
            n = int(rest[1])
            if n not in self.pulls:
                return None
            if len(rest) == 2:
                return 200, self.pulls[n]
            if rest[2] == "reviews":
                return 200, self.reviews.get(n, [])
            if rest[2] == "commits":
                return 200, self.pull_commits.get(n, [])
        if rest[0] == "branches" and len(rest) == 3 and rest[2] == "protection":
            if self.protection_status != 200:
                return self.protection_status, {"message": "Resource not accessible by "
                                                           "integration"}
            rule = self.protection.get(rest[1])
            if rule is None:
                return 404, {"message": "Branch not protected",
                             "documentation_url": "https://docs.github.com/rest/branches/"
                                                  "branch-protection#get-branch-protection"}
            return 200, rule
        return None

    def _gitlab(self, path: str) -> tuple[int, Any] | None:
        bits = [urllib.parse.unquote(b) for b in path.strip("/").split("/")]
        if len(bits) < 2 or bits[0] != "projects":
            return None
        rest = bits[2:]
        if rest[:2] == ["repository", "commits"] and len(rest) == 4 \
                and rest[3] == "merge_requests":
            return 200, self.commit_mrs.get(rest[2], [])
        if rest[:1] == ["merge_requests"] and len(rest) >= 2 and rest[1].isdigit():
            iid = int(rest[1])
            if iid not in self.mrs:
                return None
            if len(rest) == 2:
                return 200, self.mrs[iid]
            if rest[2] == "approvals":
                return 200, self.approvals.get(iid, {"approved_by": []})
            if rest[2] == "commits":
                return 200, self.mr_commits.get(iid, [])
        if rest[:1] == ["protected_branches"] and len(rest) == 2:
            rule = self.protected.get(rest[1])
            return (200, rule) if rule is not None else (404, {"message": "404 Not found"})
        if rest == ["approvals"]:
            return 200, self.project_approvals or {"approvals_before_merge": 1,
                                                   "reset_approvals_on_push": True,
                                                   "merge_requests_author_approval": False}
        return None

    # ------------------------------------------------------------------ fixtures

    def github_pr(self, number: int, *, merge_sha: str, head: str, author: str,
                  merged_by: str, commits: list[tuple[str, str]],
                  reviews: list[tuple[str, str, str]], base: str = "main",
                  checks: list[tuple[str, str]] | None = None) -> None:
        """A merged pull request: ``commits`` are ``(sha, login)`` oldest first; ``reviews``
        ``(login, state, commit_id)`` in order; ``checks`` ``(name, conclusion)`` on the
        head."""
        simple = {
            "url": f"https://api.github.com/repos/acme/gitops/pulls/{number}",
            "id": 1000 + number, "number": number, "state": "closed", "locked": False,
            "title": f"Change {number}", "user": _gh_user(author), "body": "",
            "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T12:00:00Z",
            "closed_at": "2026-11-01T12:00:00Z", "merged_at": "2026-11-01T12:00:00Z",
            "merge_commit_sha": merge_sha, "draft": False,
            "html_url": f"https://github.com/acme/gitops/pull/{number}",
            "head": {"label": f"{author}:change-{number}", "ref": f"change-{number}",
                     "sha": head, "user": _gh_user(author)},
            "base": {"label": f"acme:{base}", "ref": base, "sha": "0" * 40},
            "author_association": "MEMBER", "auto_merge": None}
        self.commit_pulls.setdefault(merge_sha, []).append(simple)
        self.pulls[number] = {**simple, "merged": True, "mergeable": None,
                              "merged_by": _gh_user(merged_by), "comments": 0,
                              "review_comments": 0, "commits": len(commits)}
        self.reviews[number] = [
            {"id": 80 + i, "node_id": f"PRR_{i}", "user": _gh_user(login),
             "body": "", "state": state, "html_url": "", "commit_id": commit,
             "submitted_at": f"2026-11-01T11:{i:02d}:00Z", "author_association": "MEMBER",
             "_links": {}}
            for i, (login, state, commit) in enumerate(reviews)]
        self.pull_commits[number] = [
            {"sha": sha, "node_id": "", "url": "", "html_url": "",
             "commit": {"author": {"name": login.title(), "email": f"{login}@example.com",
                                   "date": "2026-11-01T09:00:00Z"},
                        "committer": {"name": login.title(), "email": f"{login}@example.com",
                                      "date": "2026-11-01T09:00:00Z"},
                        "message": "work", "comment_count": 0},
             "author": _gh_user(login), "committer": _gh_user(login), "parents": []}
            for sha, login in commits]
        self.check_runs[head] = [
            {"id": 500 + i, "head_sha": head, "node_id": "", "external_id": "",
             "status": "completed", "conclusion": conclusion, "name": name,
             "started_at": "2026-11-01T09:10:00Z", "completed_at": "2026-11-01T09:20:00Z",
             "app": {"slug": "github-actions"}}
            for i, (name, conclusion) in enumerate(checks or [])]

    def gitlab_mr(self, iid: int, *, merge_sha: str, head: str, author: str, merged_by: str,
                  commits: list[tuple[str, str]], approvers: list[str],
                  target: str = "main", pipeline: str = "success") -> None:
        """A merged merge request: ``commits`` are ``(sha, author name)`` oldest first."""
        basic = {
            "id": 2000 + iid, "iid": iid, "project_id": 7, "title": f"Change {iid}",
            "description": "", "state": "merged", "created_at": "2026-11-01T10:00:00Z",
            "updated_at": "2026-11-01T12:00:00Z", "merged_at": "2026-11-01T12:00:00Z",
            "merged_by": _gl_user(merged_by), "merge_user": _gl_user(merged_by),
            "closed_by": None, "target_branch": target, "source_branch": f"change-{iid}",
            "author": _gl_user(author), "sha": head, "merge_commit_sha": merge_sha,
            "squash_commit_sha": None, "web_url": f"https://gitlab.com/acme/gitops/-/"
                                                  f"merge_requests/{iid}"}
        self.commit_mrs.setdefault(merge_sha, []).append(basic)
        self.mrs[iid] = {**basic, "head_pipeline": {"id": 9, "sha": head, "status": pipeline}}
        self.approvals[iid] = {
            "id": 2000 + iid, "iid": iid, "project_id": 7, "state": "merged",
            "approvals_required": 1, "approvals_left": 0, "approved": bool(approvers),
            "approved_by": [{"user": _gl_user(u)} for u in approvers]}
        self.mr_commits[iid] = [
            {"id": sha, "short_id": sha[:8], "title": "work", "author_name": name,
             "author_email": f"{name.lower()}@example.com", "created_at": "2026-11-01T09:00:00Z"}
            for sha, name in reversed(commits)]  # newest first, as GitLab lists them


def _gh_user(login: str) -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 100000, "type": "User",
            "site_admin": False}


def _gl_user(username: str) -> dict[str, Any]:
    return {"id": abs(hash(username)) % 1000, "username": username,
            "name": username.title(), "state": "active"}
