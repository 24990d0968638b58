"""Git access on real repositories: sync, revisions, attribution, shallow clones, credentials."""

from __future__ import annotations

import base64
import functools
import http.server
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from gitfixtures import RepoBuilder, configmap, deployment, git

from auditor.config import Credentials
from auditor.desired.gitrepo import (
    Repository,
    cache_key,
    parse_pr,
    parse_trailers,
    redact_url,
    sync,
)
from auditor.errors import GitError

ALICE = ("Alice", "alice@example.com")
BOB = ("Bob", "bob@example.com")
CAROL = ("Carol", "carol@example.com")
GITHUB = ("GitHub", "noreply@github.com")


@pytest.fixture
def history_repo(tmp_path: Path) -> tuple[RepoBuilder, dict[str, str]]:
    """main: c1 (Alice) → c2 (Bob, squash #41, trailers) → merge of PR #12 (feature by Carol)
    → c5 (Alice, tag v1) ; ``shas`` names each commit."""
    repo = RepoBuilder(tmp_path / "origin")
    shas: dict[str, str] = {}
    repo.write("apps/web.yaml", deployment("web"))
    repo.write("apps/cm.yaml", configmap("settings"))
    repo.write("infra/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    shas["c1"] = repo.commit("Initial manifests", author=ALICE, date="2026-01-01T09:00:00Z")
    repo.write("apps/web.yaml", deployment("web", "nginx:1.28"))
    shas["c2"] = repo.commit(
        "Bump nginx (#41)\n\nSecurity fix.\n\nReviewed-by: Dave <dave@example.com>\n"
        "Approved-by: Erin <erin@example.com>\n",
        author=BOB, committer=GITHUB, date="2026-01-02T09:00:00Z")
    repo.checkout("feature", new=True)
    repo.write("apps/cm.yaml", configmap("settings", "v2"))
    shas["c3"] = repo.commit("Tune settings", author=CAROL, date="2026-01-03T09:00:00Z")
    repo.checkout("main")
    shas["merge"] = repo.merge("feature", "Merge pull request #12 from shop/feature\n\nTune",
                               date="2026-01-04T09:00:00Z")
    repo.write("infra/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop2}\n")
    shas["c5"] = repo.commit("Rename namespace", author=ALICE, date="2026-01-05T09:00:00Z")
    repo.tag("v1")
    return repo, shas


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("subject", "pr"), [
    ("Merge pull request #12 from shop/feature", 12),
    ("Bump nginx (#41)", 41),
    ("Merged in feature/x (pull request #7)", 7),
    ("Merged PR 311: add web", 311),
    ("Fix #12 in parser", None),
    ("Plain change", None),
])
def test_parse_pr(subject: str, pr: int | None) -> None:
    assert parse_pr(subject) == pr


def test_parse_trailers() -> None:
    raw = "Reviewed-by: Dave <d@x>\x1dApproved-by: Erin <e@x>\x1dSigned-off-by: A <a@x>"
    assert parse_trailers(raw) == (("Reviewed-by", "Dave <d@x>"), ("Approved-by", "Erin <e@x>"),
                                   ("Signed-off-by", "A <a@x>"))
    assert parse_trailers("") == ()


def test_urls_never_keep_passwords() -> None:
    assert redact_url("https://bot:s3cret@git.example.com/org/repo.git") == \
        "https://bot@git.example.com/org/repo.git"
    assert redact_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git"
    key = cache_key("https://bot:s3cret@git.example.com/org/repo.git")
    assert key.startswith("repo-") and "s3cret" not in key
    assert key == cache_key("https://git.example.com/org/repo.git")
    assert cache_key("/srv/git/a/repo") != cache_key("/srv/git/b/repo")


# --------------------------------------------------------------------------- sync


def test_sync_resolves_branches_tags_and_shas(tmp_path: Path,
                                              history_repo: tuple[RepoBuilder, dict[str, str]]
                                              ) -> None:
    origin, shas = history_repo
    cache = tmp_path / "cache"
    head = sync(str(origin.path), cache_dir=cache)
    assert head.commit == shas["c5"]
    assert (head.path / "infra/ns.yaml").read_text().endswith("{name: shop2}\n")
    assert head.path.parent == cache
    assert sync(str(origin.path), "v1", cache_dir=cache).commit == shas["c5"]
    assert sync(str(origin.path), "feature", cache_dir=cache).commit == shas["c3"]
    assert sync(str(origin.path), "refs/heads/feature", cache_dir=cache).commit == shas["c3"]
    old = sync(str(origin.path), shas["c2"][:10], cache_dir=cache)
    assert old.commit == shas["c2"]
    # The work tree is the audited revision, not a leftover of the previous checkout.
    assert (old.path / "apps/cm.yaml").read_text() == configmap("settings")
    with pytest.raises(GitError, match="revision 'nope' is neither a branch, a tag nor a commit"):
        sync(str(origin.path), "nope", cache_dir=cache)


def test_sync_fetches_new_commits_and_file_urls(tmp_path: Path,
                                                history_repo: tuple[RepoBuilder, dict[str, str]]
                                                ) -> None:
    origin, _shas = history_repo
    cache = tmp_path / "cache"
    url = origin.path.as_uri()
    first = sync(url, "main", cache_dir=cache)
    origin.write("apps/new.yaml", configmap("new"))
    newer = origin.commit("Add new", author=BOB)
    again = sync(url, "main", cache_dir=cache)
    assert again.path == first.path
    assert again.commit == newer
    assert (again.path / "apps/new.yaml").is_file()
    stray = again.path / "stray.yaml"
    stray.write_text("junk")
    assert not (sync(url, "main", cache_dir=cache).path / "stray.yaml").exists()


def test_sync_errors(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="needs a url"):
        sync("", cache_dir=tmp_path / "cache")
    with pytest.raises(GitError, match="no such repository"):
        sync(str(tmp_path / "missing"), cache_dir=tmp_path / "cache")
    empty = tmp_path / "not-a-repo"
    empty.mkdir()
    with pytest.raises(GitError, match="git fetch failed"):
        sync(str(empty), cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- attribution


def test_history_attributes_each_file_to_its_last_commit(
        tmp_path: Path, history_repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = history_repo
    repo = sync(str(origin.path), cache_dir=tmp_path / "cache")
    found = repo.last_commits({"web": ["apps/web.yaml"], "cm": ["apps/cm.yaml"],
                               "ns": ["infra/ns.yaml"], "both": ["apps/web.yaml", "apps/cm.yaml"],
                               "ghost": ["nowhere.yaml"]})
    assert set(found) == {"web", "cm", "ns", "both"}
    web = found["web"]
    assert web.sha == shas["c2"]
    assert (web.author, web.author_email, web.committer, web.committer_email) == (
        "Bob", "bob@example.com", "GitHub", "noreply@github.com")
    assert web.author_date == "2026-01-02T09:00:00+00:00"
    assert web.subject == "Bump nginx (#41)"
    assert web.pr == 41
    assert web.trailers == (("Reviewed-by", "Dave <dave@example.com>"),
                            ("Approved-by", "Erin <erin@example.com>"))
    # Carol's commit came in through the PR #12 merge: the file is hers, the PR number the merge's.
    cm = found["cm"]
    assert (cm.sha, cm.author, cm.subject, cm.pr) == (shas["c3"], "Carol", "Tune settings", 12)
    assert found["ns"].sha == shas["c5"] and found["ns"].pr is None
    assert found["both"].sha == shas["c3"]  # the newer of the two files' last commits
    info = cm.source_info("apps/cm.yaml", "repo-url")
    assert (info.file, info.repo, info.commit, info.author, info.date, info.pr) == (
        "apps/cm.yaml", "repo-url", shas["c3"], "Carol", "2026-01-03T09:00:00+00:00", 12)


def test_shallow_clone_deepens_until_attribution_is_sure(tmp_path: Path) -> None:
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("old.yaml", configmap("old"))
    first = origin.commit("Old file", author=CAROL)
    for i in range(60):
        origin.write("busy.yaml", configmap("busy", str(i)))
        origin.commit(f"Busy {i}", author=BOB)
    repo = sync(origin.path.as_uri(), cache_dir=tmp_path / "cache", depth=3)
    assert repo.shallow
    # In a depth-3 clone git shows the boundary commit as adding old.yaml; deepening fixes that.
    found = repo.last_commits({"old": ["old.yaml"], "busy": ["busy.yaml"]})
    assert found["old"].sha == first
    assert found["old"].author == "Carol"
    assert found["busy"].subject == "Busy 59"
    # A later sync fetches new commits without cutting the deepened history again.
    origin.write("busy.yaml", configmap("busy", "x"))
    origin.commit("Busy again", author=BOB)
    again = sync(origin.path.as_uri(), cache_dir=tmp_path / "cache", depth=3)
    assert again.last_commits({"old": ["old.yaml"]}, deepen=False)["old"].sha == first


def test_commits_between_two_audited_revisions(
        tmp_path: Path, history_repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = history_repo
    repo = sync(str(origin.path), cache_dir=tmp_path / "cache")
    between = repo.commits_between(shas["c2"])
    assert [c.sha for c in between] == [shas["c5"], shas["merge"], shas["c3"]]
    assert [c.pr for c in between] == [None, 12, 12]
    assert between[1].files == ()  # merges list no files: the change is Carol's commit
    assert repo.commits_between(shas["c5"]) == ()
    with pytest.raises(GitError, match="revision 'deadbeef' is not in the repository"):
        repo.commits_between("deadbeef")


def test_commits_between_in_a_shallow_clone(tmp_path: Path) -> None:
    origin = RepoBuilder(tmp_path / "origin")
    origin.write("a.yaml", configmap("a"))
    base = origin.commit("Base")
    for i in range(5):
        origin.write("a.yaml", configmap("a", str(i)))
        origin.commit(f"Change {i}", author=BOB)
    repo = sync(origin.path.as_uri(), cache_dir=tmp_path / "cache", depth=1)
    assert [c.subject for c in repo.commits_between(base)] == [
        "Change 4", "Change 3", "Change 2", "Change 1", "Change 0"]


def test_existing_work_tree(tmp_path: Path,
                            history_repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = history_repo
    repo = Repository.containing(origin.path / "apps")
    assert repo is not None
    assert repo.path == origin.path
    assert repo.commit == shas["c5"]
    assert repo.relative(origin.path / "apps") == "apps"
    assert repo.last_commits({"x": ["apps/web.yaml"]})["x"].sha == shas["c2"]
    assert Repository.containing(tmp_path / "elsewhere") is None


# --------------------------------------------------------------------------- credentials


class _AuthHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a bare repository over git's dumb HTTP protocol behind Basic auth."""

    expected: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        type(self).seen.append(header)
        if header != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.path = self.path.split("?", 1)[0]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_repo(tmp_path: Path,
              history_repo: tuple[RepoBuilder, dict[str, str]]) -> Iterator[tuple[str, str]]:
    origin, shas = history_repo
    bare = tmp_path / "srv" / "shop.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin.path), str(bare))
    git(bare, "update-server-info")
    _AuthHandler.expected = "Basic " + base64.b64encode(b"deploy-bot:tok-9f8e7d").decode()
    _AuthHandler.seen = []
    handler = functools.partial(_AuthHandler, directory=str(tmp_path / "srv"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shop.git", shas["c5"]
    finally:
        server.shutdown()
        server.server_close()


def test_https_style_credentials_from_env_are_never_stored(
        tmp_path: Path, http_repo: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # GitPython logs every command line at DEBUG
    url, head = http_repo
    creds = Credentials(username="deploy-bot", password_env="GIT_TOKEN")
    repo = sync(url, cache_dir=tmp_path / "cache", credentials=creds,
                secrets_env={"GIT_TOKEN": "tok-9f8e7d"})
    assert repo.commit == head
    assert _AuthHandler.expected in _AuthHandler.seen
    config = (repo.path / ".git" / "config").read_text()
    assert url in config and "tok-9f8e7d" not in config
    assert not any("tok-9f8e7d" in p.read_text(errors="ignore")
                   for p in (repo.path / ".git").rglob("*") if p.is_file() and p.stat().st_size < 100_000)
    assert "git" in caplog.text and "tok-9f8e7d" not in caplog.text


def test_credentials_from_a_mounted_file_and_from_the_url(tmp_path: Path,
                                                          http_repo: tuple[str, str]) -> None:
    url, head = http_repo
    secret = tmp_path / "secret" / "password"
    secret.parent.mkdir()
    secret.write_text("tok-9f8e7d\n")
    creds = Credentials(username="deploy-bot", password_file=str(secret))
    assert sync(url, cache_dir=tmp_path / "c1", credentials=creds, secrets_env={}).commit == head
    with_password = url.replace("http://", "http://deploy-bot:tok-9f8e7d@")
    repo = sync(with_password, cache_dir=tmp_path / "c2", secrets_env={})
    assert repo.commit == head
    assert repo.url == url.replace("http://", "http://deploy-bot@")
    assert "tok-9f8e7d" not in (repo.path / ".git" / "config").read_text()


def test_wrong_credentials_fail_without_leaking(tmp_path: Path,
                                                http_repo: tuple[str, str]) -> None:
    url, _head = http_repo
    bad = url.replace("http://", "http://deploy-bot:wrong-pw-123@")
    with pytest.raises(GitError) as info:
        sync(bad, cache_dir=tmp_path / "cache", secrets_env={})
    assert "wrong-pw-123" not in str(info.value)
    assert "git fetch failed" in str(info.value)
    with pytest.raises(GitError, match="environment variable GIT_TOKEN is not set"):
        sync(url, cache_dir=tmp_path / "cache",
             credentials=Credentials(username="u", password_env="GIT_TOKEN"), secrets_env={})


def test_branch_of_a_server_whose_head_is_dangling(tmp_path: Path,
                                                   history_repo: tuple[RepoBuilder, dict[str, str]]
                                                   ) -> None:
    origin, shas = history_repo
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin.path), str(bare))
    git(bare, "symbolic-ref", "HEAD", "refs/heads/master")  # an old default, no such branch
    assert sync(str(bare), "main", cache_dir=tmp_path / "cache").commit == shas["c5"]
    with pytest.raises(GitError, match="git fetch failed"):
        sync(str(bare), "HEAD", cache_dir=tmp_path / "cache")


def test_shallow_clone_of_an_old_sha(tmp_path: Path,
                                     history_repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = history_repo
    # c1 is beyond depth 1 of every branch: it has to be asked for by sha.
    repo = sync(origin.path.as_uri(), shas["c1"], cache_dir=tmp_path / "cache", depth=1)
    assert repo.commit == shas["c1"]
    assert repo.last_commits({"web": ["apps/web.yaml"]})["web"].sha == shas["c1"]


def test_ssh_key_is_passed_to_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  history_repo: tuple[RepoBuilder, dict[str, str]]) -> None:
    origin, shas = history_repo
    # A stand-in ssh that records its arguments and runs the remote command locally.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "ssh-calls"
    fake = bin_dir / "ssh"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nfor last; do :; done\nexec sh -c "$last"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    key = tmp_path / "id_ed25519"
    key.write_text("not really a key\n")
    repo = sync(f"git@git.example.invalid:{origin.path}", "main", cache_dir=tmp_path / "cache",
                credentials=Credentials(ssh_key_file=str(key)), secrets_env={})
    assert repo.commit == shas["c5"]
    recorded = calls.read_text()
    assert f"-i {key} -o IdentitiesOnly=yes -o BatchMode=yes" in recorded
    assert "git@git.example.invalid" in recorded
