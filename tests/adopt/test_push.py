"""Pushing the adoption branch with the credentials used for cloning, against a real smart-HTTP
Git server (``git http-backend`` behind Basic auth): the token reaches the server, never the
clone's config or an error message."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from auditor.config import Credentials
from auditor.desired import gitrepo
from auditor.errors import GitError
from tests.gitfixtures import RepoBuilder, git

TOKEN = "tok-5a4b3c"
BACKEND = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                              check=True).stdout.strip()) / "git-http-backend"


class _SmartHTTP(http.server.BaseHTTPRequestHandler):
    """A CGI bridge to ``git http-backend`` that demands Basic auth for everything."""

    root: ClassVar[str] = ""
    expected: ClassVar[str] = ""

    def _serve(self) -> None:
        if self.headers.get("Authorization", "") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {"GIT_PROJECT_ROOT": self.root, "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "deploy-bot",
               "REMOTE_ADDR": "127.0.0.1", "GIT_CONFIG_NOSYSTEM": "1",
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        out = subprocess.run([str(BACKEND)], input=body, env=env, capture_output=True,
                             check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("apps/web.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
    origin.commit("web")
    bare = tmp_path / "srv" / "shop.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin.path), str(bare))
    git(bare, "config", "http.receivepack", "true")
    _SmartHTTP.root = str(tmp_path / "srv")
    _SmartHTTP.expected = "Basic " + base64.b64encode(f"deploy-bot:{TOKEN}".encode()).decode()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SmartHTTP)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/shop.git", bare
    finally:
        httpd.shutdown()
        httpd.server_close()


def _branch_in_clone(tmp_path: Path, clone: Path) -> str:
    worktree = tmp_path / "wt"
    gitrepo.add_worktree(clone, worktree, "HEAD", "adopt/x")
    (worktree / "apps" / "web.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {a: b}\n")
    sha = gitrepo.commit_files(worktree, ["apps/web.yaml"], "Adopt live drift\n")
    gitrepo.remove_worktree(clone, worktree)
    return sha


def test_push_uses_the_clone_credentials_and_stores_none(tmp_path: Path,
                                                        server: tuple[str, Path]) -> None:
    url, bare = server
    creds = Credentials(username="deploy-bot", password_env="GIT_TOKEN")
    env = {"GIT_TOKEN": TOKEN}
    clone = gitrepo.sync(url, cache_dir=tmp_path / "cache", credentials=creds,
                         secrets_env=env).path
    sha = _branch_in_clone(tmp_path, clone)
    assert gitrepo.push_branch(clone, "adopt/x", credentials=creds, secrets_env=env) == url
    assert git(bare, "rev-parse", "refs/heads/adopt/x") == sha
    assert git(bare, "rev-parse", "refs/heads/main") != sha  # the audited branch untouched
    assert not any(TOKEN in p.read_text(errors="ignore") for p in (clone / ".git").rglob("*")
                   if p.is_file() and p.stat().st_size < 100_000)


def test_a_password_in_the_source_url_is_used_for_the_push(tmp_path: Path,
                                                           server: tuple[str, Path]) -> None:
    url, bare = server
    with_password = url.replace("http://", f"http://deploy-bot:{TOKEN}@")
    clone = gitrepo.sync(with_password, cache_dir=tmp_path / "cache", secrets_env={}).path
    sha = _branch_in_clone(tmp_path, clone)
    gitrepo.push_branch(clone, "adopt/x", secrets_env={}, source_url=with_password)
    assert git(bare, "rev-parse", "refs/heads/adopt/x") == sha


def test_wrong_credentials_fail_without_leaking(tmp_path: Path,
                                                server: tuple[str, Path]) -> None:
    url, bare = server
    creds = Credentials(username="deploy-bot", password_env="GIT_TOKEN")
    clone = gitrepo.sync(url, cache_dir=tmp_path / "cache", credentials=creds,
                         secrets_env={"GIT_TOKEN": TOKEN}).path
    _branch_in_clone(tmp_path, clone)
    with pytest.raises(GitError) as failed:
        gitrepo.push_branch(clone, "adopt/x", credentials=creds,
                            secrets_env={"GIT_TOKEN": "wrong-pw-7788"})
    assert "wrong-pw-7788" not in str(failed.value)
    assert "git push failed" in str(failed.value)
    assert "adopt/x" not in git(bare, "branch", "--list")
