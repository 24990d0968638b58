"""Git access: clone/fetch into a cache, check out a revision, and attribute files to commits.

The only module that imports GitPython. It owns: the cache layout (one folder per remote URL),
credentials (an ``GIT_ASKPASS`` helper and ``GIT_SSH_COMMAND``; secrets live only in the
environment of the git child process, never in a URL on disk or in a message), resolving a
branch, tag or sha to the exact commit audited, deepening shallow clones until attribution is
sure, the one-pass history walk that gives the last commit per path, PR numbers and trailers
parsed from commit messages, the commits between two audited revisions, and where a file of
the tool's own configuration stands in Git (:func:`file_provenance`). Also the evidence
repository ledger anchors are committed to and read from, append-only (:func:`commit_evidence`,
:func:`read_evidence`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import re
import shlex
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import git

from auditor.config import Credentials
from auditor.engine.records import SourceInfo
from auditor.errors import GitError, ToolMissingError

# Fields of one commit in the history walk; the subject goes last because it is free text.
_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI",
           "%(trailers:only,unfold,separator=%x1d)", "%s")
_LOG_FORMAT = "%x1e" + "%x1f".join(_FIELDS)

_PR_PATTERNS = (
    re.compile(r"^Merge pull request #(\d+) from "),          # GitHub merge commit
    re.compile(r"\(#(\d+)\)\s*$"),                            # GitHub squash / rebase subject
    re.compile(r"\(pull request #(\d+)\)"),                   # Bitbucket "Merged in x (pull request #7)"
    re.compile(r"^Merged PR (\d+):"),                         # Azure DevOps
)
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_MAX_DEEPEN_ROUNDS = 6

log = logging.getLogger(__name__)

_ASKPASS_SCRIPT = """#!/bin/sh
# Written by drift-auditor: answers git's credential prompts from its own environment.
case "$1" in
  Username*) printf '%s\\n' "$DRIFT_AUDITOR_GIT_USERNAME" ;;
  *) if [ -n "$DRIFT_AUDITOR_GIT_PASSWORD_FILE" ]; then
       head -n 1 "$DRIFT_AUDITOR_GIT_PASSWORD_FILE"
     else
       printf '%s\\n' "$DRIFT_AUDITOR_GIT_PASSWORD"
     fi ;;
esac
"""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit as the audit needs it; ``pr`` falls back to the merge that brought it in."""

    sha: str
    parents: tuple[str, ...]
    author: str
    author_email: str
    author_date: str
    committer: str
    committer_email: str
    committed_date: str
    subject: str
    trailers: tuple[tuple[str, str], ...] = ()
    pr: int | None = None
    files: tuple[str, ...] = ()

    def source_info(self, file: str, repo: str = "") -> SourceInfo:
        return SourceInfo(file=file, repo=repo, commit=self.sha, author=self.author,
                          author_email=self.author_email, committer=self.committer,
                          date=self.author_date, committed_date=self.committed_date,
                          subject=self.subject, pr=self.pr, trailers=self.trailers)


def parse_pr(subject: str) -> int | None:
    """The pull-request number a commit subject carries, if any."""
    for pattern in _PR_PATTERNS:
        match = pattern.search(subject)
        if match:
            return int(match.group(1))
    return None


def parse_trailers(text: str, separator: str = "\x1d") -> tuple[tuple[str, str], ...]:
    """``Key: value`` trailers as git prints them (unfolded, one per ``separator``)."""
    out = []
    for item in text.split(separator):
        key, sep, value = item.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out.append((key.strip(), value.strip()))
    return tuple(out)


# --------------------------------------------------------------------------- URLs


def is_local(url: str) -> bool:
    return "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url)


def redact_url(url: str) -> str:
    """``url`` without a password (``https://user:pw@host`` → ``https://user@host``)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def cache_key(url: str) -> str:
    """A readable, collision-safe folder name for ``url`` (credentials never part of it)."""
    clean = redact_url(url).rstrip("/")
    if "://" in clean:
        parts = urlsplit(clean)
        clean = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    base = re.sub(r"\.git$", "", clean.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "repo"
    return f"{slug}-{hashlib.sha256(clean.encode()).hexdigest()[:12]}"


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class _Auth:
    """How to authenticate git's network commands; holds no secret value itself."""

    credentials: Credentials = field(default_factory=Credentials)
    url_username: str = ""
    url_password: str = ""
    secrets_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    def secrets(self) -> list[str]:
        """Values to scrub from any message, read at use."""
        out = [self.url_password] if self.url_password else []
        if self.credentials.password_env:
            value = self.secrets_env.get(self.credentials.password_env, "")
            if value:
                out.append(value)
        if self.credentials.password_file:
            with contextlib.suppress(OSError):
                value = Path(self.credentials.password_file).read_text(encoding="utf-8").strip()
                if value:
                    out.append(value)
        return out

    @contextlib.contextmanager
    def env(self) -> Iterator[dict[str, str]]:
        """Environment for one git command; the askpass helper lives only meanwhile."""
        env = {"GIT_TERMINAL_PROMPT": "0"}
        creds = self.credentials
        if creds.ssh_key_file:
            env["GIT_SSH_COMMAND"] = (f"ssh -i {shlex.quote(creds.ssh_key_file)} "
                                      "-o IdentitiesOnly=yes -o BatchMode=yes")
        password = self.url_password
        if creds.password_env:
            if creds.password_env not in self.secrets_env:
                raise GitError(f"credentials.password-env: environment variable "
                               f"{creds.password_env} is not set")
            password = self.secrets_env[creds.password_env]
        if not (password or creds.password_file):
            yield env
            return
        # No credential helper may store what askpass answers.
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "credential.helper",
                    "GIT_CONFIG_VALUE_0": ""})
        with tempfile.TemporaryDirectory(prefix="drift-auditor-askpass-") as tmp:
            script = Path(tmp) / "askpass.sh"
            script.write_text(_ASKPASS_SCRIPT, encoding="utf-8")
            script.chmod(stat.S_IRWXU)
            env["GIT_ASKPASS"] = str(script)
            env["DRIFT_AUDITOR_GIT_USERNAME"] = creds.username or self.url_username
            if creds.password_file:
                env["DRIFT_AUDITOR_GIT_PASSWORD_FILE"] = creds.password_file
            else:
                env["DRIFT_AUDITOR_GIT_PASSWORD"] = password
            yield env


def _split_credentials(url: str) -> tuple[str, str, str]:
    """``(url without password, username, password)``."""
    if "://" not in url:
        return url, "", ""
    parts = urlsplit(url)
    return redact_url(url), parts.username or "", parts.password or ""


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class History:
    """One walk of the history reachable from ``head``, newest first.

    ``last`` maps each path to the index in ``commits`` of the newest commit that touched
    it. ``boundary`` holds the shallow-clone boundary commits, which git shows as adding
    every file: a path last seen there is not yet attributed for sure.
    """

    head: str
    commits: tuple[CommitInfo, ...]
    last: Mapping[str, int]
    boundary: frozenset[str] = frozenset()

    def last_commit(self, paths: Iterable[str]) -> CommitInfo | None:
        """The newest commit that touched any of ``paths``."""
        best: int | None = None
        for path in paths:
            index = self.last.get(path)
            if index is not None and (best is None or index < best):
                best = index
        return self.commits[best] if best is not None else None

    def uncertain(self, paths: Iterable[str]) -> list[str]:
        """Paths whose newest commit is a shallow boundary (older history not fetched)."""
        return sorted(p for p in paths
                      if p in self.last and self.commits[self.last[p]].sha in self.boundary)


def _parse_log(output: str) -> list[CommitInfo]:
    commits: list[CommitInfo] = []
    for record in output.split("\x1e"):
        if not record:
            continue
        header, _, names = record.partition("\0")
        fields = header.split("\x1f")
        if len(fields) != len(_FIELDS):
            raise GitError(f"unexpected git log output for record {fields[0][:12]!r}")
        sha, parents, an, ae, ad, cn, ce, cd, trailers, subject = fields
        files = tuple(n for n in names.lstrip("\n").split("\0") if n)
        commits.append(CommitInfo(sha, tuple(parents.split()), an, ae, ad, cn, ce, cd,
                                  subject, parse_trailers(trailers), parse_pr(subject), files))
    return commits


def _merged_by(commits: Sequence[CommitInfo], head: str) -> dict[str, str]:
    """Commit → the mainline merge commit that introduced it.

    Mainline is the first-parent chain from ``head``. Merges are visited oldest first and
    each claims what its other parents reach that is not on the mainline and not claimed by
    an older merge — exactly the commits ``M^1..M`` adds.
    """
    by_sha = {c.sha: c for c in commits}
    mainline: list[str] = []
    sha: str | None = head
    while sha is not None and sha in by_sha:
        mainline.append(sha)
        parents = by_sha[sha].parents
        sha = parents[0] if parents else None
    on_mainline = set(mainline)
    merged_by: dict[str, str] = {}
    for merge in reversed(mainline):
        stack = list(by_sha[merge].parents[1:])
        while stack:
            current = stack.pop()
            if current in on_mainline or current in merged_by or current not in by_sha:
                continue
            merged_by[current] = merge
            stack.extend(by_sha[current].parents)
    return merged_by


# --------------------------------------------------------------------------- repository


class Repository:
    """A Git work tree: a cached clone made by :func:`sync`, or an existing checkout."""

    def __init__(self, path: Path, *, url: str = "", commit: str = "",
                 auth: _Auth | None = None, can_fetch: bool | None = None) -> None:
        try:
            self._repo = git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitError(f"{path}: not a Git repository") from exc
        self.path = Path(self._repo.working_tree_dir or path)
        self.url = url
        self._auth = auth or _Auth()
        # Deepening needs a remote; a user's own checkout may have one (CI clones are shallow).
        self.can_fetch = bool(url) if can_fetch is None else can_fetch
        self.commit = commit or self._rev_parse("HEAD")
        self._history: dict[str, History] = {}

    @classmethod
    def containing(cls, folder: Path) -> Repository | None:
        """The work tree that ``folder`` is inside, or None (no Git needed for plain folders)."""
        try:
            repo = git.Repo(folder, search_parent_directories=True)
            top = repo.working_tree_dir
            if top is None or not repo.head.is_valid():
                return None
            return cls(Path(top), can_fetch="origin" in [r.name for r in repo.remotes])
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            return None
        except git.GitCommandNotFound as exc:
            raise ToolMissingError("the `git` binary is needed to read a repository; install "
                                   "git") from exc

    # -- plumbing

    def _git(self, *args: str, network: bool = False) -> str:
        try:
            if not network:
                return str(self._repo.git.execute(["git", *args]))
            with self._auth.env() as env:
                return str(self._repo.git.execute(["git", *args], env=env))
        except git.GitCommandNotFound as exc:
            raise ToolMissingError("the `git` binary is needed; install git") from exc
        except git.GitCommandError as exc:
            raise GitError(_scrub(_command_error(exc, self.url), self._auth)) from None

    def _rev_parse(self, rev: str) -> str:
        return self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")

    def _try_rev_parse(self, rev: str) -> str | None:
        try:
            return self._rev_parse(rev) or None
        except GitError:
            return None

    @property
    def shallow(self) -> bool:
        return self._git("rev-parse", "--is-shallow-repository").strip() == "true"

    def _boundary(self) -> frozenset[str]:
        shallow_file = Path(self._repo.git_dir) / "shallow"
        try:
            return frozenset(shallow_file.read_text(encoding="ascii").split())
        except OSError:
            return frozenset()

    # -- history

    def history(self, rev: str | None = None) -> History:
        """The one-pass walk from ``rev`` (default: the audited commit), cached."""
        head = self._rev_parse(rev) if rev else self.commit
        cached = self._history.get(head)
        if cached is not None:
            return cached
        output = self._git("-c", "log.showSignature=false", "-c", "core.quotePath=false",
                           "log", "--no-renames", "--name-only", "-z", "--no-color",
                           f"--format={_LOG_FORMAT}", head, "--")
        commits = _parse_log(output)
        merged_by = _merged_by(commits, head)
        by_sha = {c.sha: c for c in commits}
        resolved: list[CommitInfo] = []
        last: dict[str, int] = {}
        for index, commit in enumerate(commits):
            if commit.pr is None and commit.sha in merged_by:
                pr = by_sha[merged_by[commit.sha]].pr
                if pr is not None:
                    commit = dataclasses.replace(commit, pr=pr)
            resolved.append(commit)
            for path in commit.files:
                last.setdefault(path, index)
        history = History(head, tuple(resolved), last, self._boundary())
        self._history = {head: history}
        return history

    def last_commits(self, groups: Mapping[str, Sequence[str]], *,
                     deepen: bool = True) -> dict[str, CommitInfo]:
        """For each key, the newest commit touching any of its paths (repo-relative).

        In a shallow clone, deepens until no answer rests on the boundary commit, or the
        clone is complete; keys whose paths were never committed are left out.
        """
        history = self.history()
        wanted = {p for paths in groups.values() for p in paths}
        rounds = 0
        while deepen and self.can_fetch and history.boundary and history.uncertain(wanted):
            rounds += 1
            try:
                self.deepen(rounds)
            except GitError as exc:
                if self.url:
                    raise
                # Someone's own checkout: attribute what we have rather than fail the run.
                log.warning("%s: cannot deepen the shallow clone, attribution of %d file(s) "
                            "rests on its oldest commit: %s", self.path,
                            len(history.uncertain(wanted)), exc)
                self.can_fetch = False
            history = self.history()
        out: dict[str, CommitInfo] = {}
        for key, paths in groups.items():
            commit = history.last_commit(paths)
            if commit is not None:
                out[key] = commit
        return out

    def deepen(self, round_: int) -> None:
        """Fetch more history: doubling depth, then everything after a few rounds."""
        if not self.shallow:
            return
        self._history.clear()
        log.info("%s: deepening the shallow clone (round %d) to attribute files",
                 self.url or self.path, round_)
        if round_ >= _MAX_DEEPEN_ROUNDS:
            self._git("fetch", "--unshallow", "--quiet", "origin", network=True)
        else:
            self._git("fetch", f"--deepen={50 * 2 ** (round_ - 1)}", "--quiet", "origin",
                      network=True)

    def commits_between(self, old: str, new: str | None = None) -> tuple[CommitInfo, ...]:
        """Commits reachable from ``new`` (default: the audited commit) but not from ``old``,
        newest first: the changes authorized through Git between two audited revisions."""
        new_sha = self._rev_parse(new) if new else self.commit
        rounds = 0
        while True:
            old_sha = self._try_rev_parse(old)
            based = old_sha is not None and self._merge_base(old_sha, new_sha)
            if based or not (self.can_fetch and self.shallow):
                break
            rounds += 1
            self.deepen(rounds)
        if old_sha is None:
            raise GitError(f"{self.url or self.path}: revision {old!r} is not in the repository")
        wanted = set(self._git("rev-list", f"{old_sha}..{new_sha}", "--").split())
        return tuple(c for c in self.history(new_sha).commits if c.sha in wanted)

    def _merge_base(self, a: str, b: str) -> bool:
        try:
            return bool(self._git("merge-base", a, b))
        except GitError:
            return False

    def relative(self, path: Path) -> str:
        """``path`` relative to the work tree root, POSIX form."""
        rel = path.resolve().relative_to(self.path.resolve()).as_posix()
        return "" if rel == "." else rel


def _command_error(exc: git.GitCommandError, url: str) -> str:
    stderr = str(exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    verb = exc.command[1] if isinstance(exc.command, list) and len(exc.command) > 1 else "git"
    where = f"{url}: " if url else ""
    return f"{where}git {verb} failed: {' | '.join(lines[-4:]) or f'exit status {exc.status}'}"


def _scrub(message: str, auth: _Auth) -> str:
    for secret in auth.secrets():
        message = message.replace(secret, "***")
    return message


# --------------------------------------------------------------------------- sync


def sync(url: str, revision: str = "HEAD", *, cache_dir: Path,
         credentials: Credentials | None = None, depth: int = 0,
         secrets_env: Mapping[str, str] | None = None) -> Repository:
    """Clone or fetch ``url`` into ``cache_dir`` and check out ``revision``.

    ``revision`` is a branch, tag, sha or ``HEAD`` (the remote's default branch). Local
    paths and ``file://`` URLs work like remote ones. ``depth`` > 0 makes a shallow clone.
    ``secrets_env`` is where ``credentials.password_env`` is looked up (default: the
    process environment). Returns the repository with ``commit`` set to the audited sha.
    """
    raw = url
    if not url.strip():
        raise GitError("a Git source needs a url (a remote URL or a local path)")
    if is_local(url):
        local = Path(url).expanduser().resolve()
        if not local.exists():
            raise GitError(f"{url}: no such repository")
        # git ignores --depth for plain local paths; the file:// transport honours it.
        url = local.as_uri() if depth else str(local)
    clean, username, password = _split_credentials(url)
    auth = _Auth(credentials or Credentials(), username, password,
                 secrets_env if secrets_env is not None else os.environ)
    shown = redact_url(raw)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / cache_key(clean)
    with _locked(dest.with_name(dest.name + ".lock")):
        try:
            fresh = _ensure_clone(dest, clean, auth, shown)
            repo = Repository(dest, url=shown, commit="0" * 40, auth=auth)
            # Depth applies to the first fetch only: later ones extend down to the existing
            # boundary, so history deepened for attribution is not cut off again.
            # The remote's HEAD only when asked for: servers whose HEAD names a branch that
            # does not exist would otherwise fail every fetch.
            wants_head = revision.strip() in ("", "HEAD")
            repo._git("fetch", "--prune", "--prune-tags", "--tags", "--force", "--quiet",
                      *([f"--depth={depth}"] if depth and fresh else []),
                      "origin", "+refs/heads/*:refs/remotes/origin/*",
                      *(["+HEAD:refs/remotes/origin/HEAD"] if wants_head else []), network=True)
            sha = _resolve(repo, revision, depth)
            log.info("%s: checked out %s at %s", shown, revision or "HEAD", sha)
            repo._git("checkout", "--force", "--quiet", "--detach", sha)
            repo._git("clean", "-ffdxq")
        except git.GitCommandNotFound as exc:
            raise ToolMissingError("the `git` binary is needed to fetch sources; install git") \
                from exc
        repo.commit = sha
        repo._history.clear()
        return repo


def _ensure_clone(dest: Path, clean_url: str, auth: _Auth, shown: str) -> bool:
    """Make ``dest`` a repository whose origin is ``clean_url``; True when created now."""
    if (dest / ".git").is_dir():
        try:
            current = git.Repo(dest).git.execute(["git", "remote", "get-url", "origin"])
            if str(current) == clean_url:
                return False
        except (git.GitCommandError, git.InvalidGitRepositoryError):
            pass
        shutil.rmtree(dest)
    elif dest.exists():
        shutil.rmtree(dest)
    try:
        repo = git.Repo.init(dest)
        repo.git.execute(["git", "remote", "add", "origin", clean_url])
    except git.GitCommandError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise GitError(_scrub(_command_error(exc, shown), auth)) from None
    return True


def _resolve(repo: Repository, revision: str, depth: int) -> str:
    rev = revision.strip() or "HEAD"
    if rev == "HEAD":
        candidates = ["refs/remotes/origin/HEAD"]
    else:
        name = rev.removeprefix("refs/heads/").removeprefix("refs/remotes/origin/")
        candidates = [f"refs/remotes/origin/{name}", f"refs/tags/{rev.removeprefix('refs/tags/')}",
                      rev]
    for candidate in candidates:
        sha = repo._try_rev_parse(candidate)
        if sha:
            return sha
    if _SHA.match(rev):
        # A sha no branch or tag points at (or beyond a shallow clone's depth): ask for it.
        with contextlib.suppress(GitError):
            repo._git("fetch", "--quiet", *([f"--depth={depth}"] if depth else []),
                      "origin", rev, network=True)
            sha = repo._try_rev_parse(rev)
            if sha:
                return sha
    raise GitError(f"{repo.url}: revision {revision!r} is neither a branch, a tag nor a commit")


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialise runs that share a cache folder (two CronJob pods, a CLI during a run)."""
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- branches (adopt)
#
# Used by ``drift-auditor adopt``: edits happen in a throw-away ``git worktree`` on a new
# branch, so neither the user's checkout nor the audited branch is ever touched.


def clone_path(url: str, cache_dir: Path, depth: int = 0) -> Path:
    """The cache folder :func:`sync` uses for ``url`` (the same key derivation)."""
    if is_local(url):
        local = Path(url).expanduser().resolve()
        url = local.as_uri() if depth else str(local)
    clean, _user, _password = _split_credentials(url)
    return cache_dir / cache_key(clean)


def _plain_git(path: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    try:
        return str(git.Repo(path, search_parent_directories=True).git.execute(
            ["git", *args], env=dict(env) if env else None))
    except git.GitCommandNotFound as exc:
        raise ToolMissingError("the `git` binary is needed; install git") from exc
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{path}: not a Git repository") from None
    except git.GitCommandError as exc:
        raise GitError(_command_error(exc, "")) from None


def top_level(path: Path) -> Path:
    """The root of the work tree ``path`` is in."""
    return Path(_plain_git(path, "rev-parse", "--show-toplevel"))


def resolve_commit(path: Path, rev: str = "HEAD") -> str:
    return _plain_git(path, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")


def branch_exists(path: Path, branch: str) -> bool:
    try:
        _plain_git(path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitError:
        return False
    return True


def add_worktree(path: Path, dest: Path, base: str, branch: str | None = None) -> None:
    """A new work tree at ``dest`` checked out at ``base``, on new ``branch`` (detached when
    None). Refuses an existing branch name rather than moving it."""
    if branch is not None:
        _plain_git(path, "check-ref-format", "--branch", branch)
        if branch_exists(path, branch):
            raise GitError(f"branch {branch!r} already exists; choose another with --branch")
        _plain_git(path, "worktree", "add", "--quiet", "-b", branch, str(dest), base)
    else:
        _plain_git(path, "worktree", "add", "--quiet", "--detach", str(dest), base)


def remove_worktree(path: Path, dest: Path) -> None:
    with contextlib.suppress(GitError):
        _plain_git(path, "worktree", "remove", "--force", str(dest))
    shutil.rmtree(dest, ignore_errors=True)
    with contextlib.suppress(GitError):
        _plain_git(path, "worktree", "prune")


def delete_branch(path: Path, branch: str) -> None:
    _plain_git(path, "branch", "-D", "--quiet", branch)


_DEFAULT_IDENTITY = ("drift-auditor", "drift-auditor@localhost")


def commit_files(worktree: Path, files: Sequence[str], message: str) -> str:
    """Commit ``files`` (relative to the work tree root) in ``worktree``; returns the sha.

    The committer is the user's Git identity; without one configured, ``drift-auditor``
    (a CronJob pod has none), so the commit never fails for want of a name.
    """
    env: dict[str, str] = {}
    try:
        _plain_git(worktree, "config", "user.name")
        _plain_git(worktree, "config", "user.email")
    except GitError:
        for who in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{who}_NAME", os.environ.get(f"GIT_{who}_NAME")
                           or _DEFAULT_IDENTITY[0])
            env.setdefault(f"GIT_{who}_EMAIL", os.environ.get(f"GIT_{who}_EMAIL")
                           or _DEFAULT_IDENTITY[1])
    _plain_git(worktree, "add", "--", *files)
    full_env = {**os.environ, **env} if env else None
    # --no-verify: the user's hooks are not ours to run unattended (they may prompt).
    _plain_git(worktree, "commit", "--quiet", "--no-verify", "-m", message, "--", *files,
               env=full_env)
    return resolve_commit(worktree)


def remote_url(path: Path, remote: str = "origin") -> str:
    return _plain_git(path, "remote", "get-url", remote)


def push_branch(path: Path, branch: str, *, remote: str = "origin",
                credentials: Credentials | None = None,
                secrets_env: Mapping[str, str] | None = None,
                source_url: str = "") -> str:
    """``git push <remote> <branch>`` with the same credential handling as cloning (askpass
    helper or SSH key in the child's environment only); returns the remote URL, redacted.

    ``source_url`` is the configured URL: a password in it (never stored in the clone's
    remote by :func:`sync`) is used when it is the URL of this remote."""
    url = remote_url(path, remote)
    _clean, username, password = _split_credentials(url)
    if source_url and not password:
        src_clean, src_user, src_password = _split_credentials(source_url)
        if src_clean == _clean or redact_url(source_url) == redact_url(url):
            username, password = username or src_user, src_password
    auth = _Auth(credentials or Credentials(), username, password,
                 secrets_env if secrets_env is not None else os.environ)
    repo = Repository(top_level(path), url=redact_url(url), auth=auth, can_fetch=True)
    repo._git("push", "--quiet", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{branch}",
              network=True)
    return redact_url(url)


def uncommitted(path: Path, rel: str = ".") -> list[str]:
    """Files under ``rel`` (relative to the work tree root) with uncommitted changes."""
    out = _plain_git(top_level(path), "status", "--porcelain", "--untracked-files=all", "--",
                     rel)
    return [line[3:] for line in out.splitlines() if len(line) > 3]


def commit_author(path: Path, sha: str) -> str:
    """``Name <email>`` of the author of ``sha``."""
    return _plain_git(path, "log", "-1", "--format=%an <%ae>", sha, "--")


@dataclass(frozen=True, slots=True)
class FileCommit:
    """Where a file of the tool's own configuration stands in Git: the work tree it is in,
    whether Git tracks it, whether it differs from what is committed, and the last commit that
    touched it (``None``: never committed)."""

    repo: str
    path: str  # relative to the work tree root
    tracked: bool
    modified: bool
    commit: CommitInfo | None


def file_commit(path: Path) -> FileCommit | None:
    """The last commit touching ``path`` and whether the file on disk is what it committed;
    None when ``path`` is in no Git work tree. The commit's trailers (``Reviewed-by:``,
    ``Approved-by:``) are the approval evidence of a configuration change."""
    target = Path(path).expanduser().resolve()
    try:
        repo = git.Repo(target.parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except git.GitCommandNotFound as exc:
        raise ToolMissingError("the `git` binary is needed to read a repository; install "
                               "git") from exc
    top = repo.working_tree_dir
    if top is None:
        return None
    rel = target.relative_to(Path(top).resolve()).as_posix()

    def run(*args: str) -> str:
        try:
            return str(repo.git.execute(["git", *args]))
        except git.GitCommandNotFound as exc:
            raise ToolMissingError("the `git` binary is needed; install git") from exc
        except git.GitCommandError as exc:
            raise GitError(_command_error(exc, str(top))) from None

    # A repository without a commit yet has nothing to log.
    commits = (_parse_log(run("-c", "log.showSignature=false", "log", "-1", "--no-color",
                              f"--format={_LOG_FORMAT}", "--", rel))
               if repo.head.is_valid() else [])
    tracked = bool(run("ls-files", "--", rel).strip())
    # fsmonitor off: a status must not run a hook of a repository we only read.
    status = run("-c", "core.fsmonitor=false", "status", "--porcelain",
                 "--untracked-files=all", "--", rel)
    return FileCommit(str(top), rel, tracked, bool(status.strip()),
                      commits[0] if commits else None)


# --------------------------------------------------------------------------- evidence (anchors)
#
# Used by ledger anchoring (:mod:`auditor.outputs.anchoring`): an evidence repository outside
# the cluster receives one line per anchored checkpoint. Nothing here rewrites its history:
# every change is a new commit on top of the branch's tip (protect the branch against force
# pushes on the server, and the history stays append-only).


def _is_work_tree(url: str) -> bool:
    """A local repository with a work tree: committed in place (a push to its checked-out
    branch would be refused), where a bare repository or a URL is cloned and pushed to."""
    if not is_local(url):
        return False
    path = Path(url).expanduser()
    if not path.is_dir():
        return False
    try:
        return not git.Repo(path).bare
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False


def _evidence_remote(url: str, credentials: Credentials | None,
                     secrets_env: Mapping[str, str] | None) -> tuple[str, _Auth, str]:
    """``(clean url, auth, url as shown)`` of an evidence repository, as :func:`sync` makes
    them for a source (a password in the URL only ever in the git child's environment)."""
    raw = url
    if not url.strip():
        raise GitError("an evidence repository needs a url (a remote URL or a local path)")
    if is_local(url):
        local = Path(url).expanduser().resolve()
        if not local.exists():
            raise GitError(f"{url}: no such repository")
        url = str(local)
    clean, username, password = _split_credentials(url)
    auth = _Auth(credentials or Credentials(), username, password,
                 secrets_env if secrets_env is not None else os.environ)
    return clean, auth, redact_url(raw)


def _evidence_tip(repo: Repository, branch: str) -> str | None:
    """Fetch every branch; the sha of ``branch`` on the remote (None: it has none yet, as an
    empty repository)."""
    repo._git("fetch", "--prune", "--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*",
              network=True)
    return repo._try_rev_parse(f"refs/remotes/origin/{branch}")


def _evidence_start(repo: Repository, branch: str, tip: str | None) -> None:
    """The local ``branch`` at the remote's ``tip``, work tree clean; an unborn branch with an
    empty index when the remote has none (the first commit starts it)."""
    repo._git("clean", "-ffdxq")
    if tip is not None:
        repo._git("checkout", "--force", "--quiet", "-B", branch, tip)
    else:
        repo._git("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        # A commit of an earlier attempt that was never pushed: not ours to keep.
        if repo._try_rev_parse(f"refs/heads/{branch}"):
            repo._git("update-ref", "-d", f"refs/heads/{branch}")
        repo._git("read-tree", "--empty")
    repo._git("clean", "-ffdxq")


def _refused(message: str) -> bool:
    """A push refused because the branch moved meanwhile (another cluster's anchor). Only
    git's last lines reach the message (its hints, often): any of them tells."""
    return any(word in message for word in ("rejected", "fetch first", "fast-forward",
                                            "integrate the remote changes", "cannot lock ref"))


def commit_evidence(url: str, branch: str, edit: Callable[[Path], Sequence[str]], message: str,
                    *, cache_dir: Path, credentials: Credentials | None = None,
                    secrets_env: Mapping[str, str] | None = None, attempts: int = 3) -> str | None:
    """Commit what ``edit`` writes on ``branch`` of ``url`` and push it; the commit's sha, or
    None when ``edit`` changed nothing.

    ``edit(work_tree)`` writes its files and returns them (relative to the work tree). A
    local work tree is committed in place, on its checked-out branch, and not pushed; a URL
    or a bare repository is cloned into ``cache_dir`` and pushed to, with the same credential
    handling as a source. A push refused because someone pushed first is tried again on the
    new tip (``edit`` runs again), at most ``attempts`` times.
    """
    if _is_work_tree(url):
        tree = top_level(Path(url).expanduser())
        files = list(edit(tree))
        return commit_files(tree, files, message) if files else None
    clean, auth, shown = _evidence_remote(url, credentials, secrets_env)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / cache_key(clean)
    with _locked(dest.with_name(dest.name + ".lock")):
        try:
            _ensure_clone(dest, clean, auth, shown)
            repo = Repository(dest, url=shown, commit="0" * 40, auth=auth)
            for attempt in range(1, attempts + 1):
                _evidence_start(repo, branch, _evidence_tip(repo, branch))
                files = list(edit(dest))
                if not files:
                    return None
                sha = commit_files(dest, files, message)
                try:
                    repo._git("push", "--quiet", "origin",
                              f"refs/heads/{branch}:refs/heads/{branch}", network=True)
                    return sha
                except GitError as exc:
                    if attempt == attempts or not _refused(str(exc)):
                        raise
                    log.info("%s: push refused (the branch moved), trying again on the new "
                             "tip (%d of %d)", shown, attempt + 1, attempts)
        except git.GitCommandNotFound as exc:
            raise ToolMissingError("the `git` binary is needed to anchor; install git") from exc
    return None  # pragma: no cover - the loop returns or raises


def read_evidence(url: str, branch: str, rel: str, *, cache_dir: Path,
                  credentials: Credentials | None = None,
                  secrets_env: Mapping[str, str] | None = None) -> str | None:
    """The committed text of ``rel`` on ``branch`` of ``url`` (a local work tree: at its
    HEAD); None when the branch or the file does not exist. What is committed counts, never
    a file on disk that nobody committed."""
    if _is_work_tree(url):
        tree = top_level(Path(url).expanduser())
        try:
            _plain_git(tree, "cat-file", "-e", f"HEAD:{rel}")
        except GitError:
            return None
        return _plain_git(tree, "show", f"HEAD:{rel}")
    clean, auth, shown = _evidence_remote(url, credentials, secrets_env)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / cache_key(clean)
    with _locked(dest.with_name(dest.name + ".lock")):
        try:
            _ensure_clone(dest, clean, auth, shown)
            repo = Repository(dest, url=shown, commit="0" * 40, auth=auth)
            tip = _evidence_tip(repo, branch)
            if tip is None:
                return None
            try:
                repo._git("cat-file", "-e", f"{tip}:{rel}")
            except GitError:
                return None
            return repo._git("show", f"{tip}:{rel}")
        except git.GitCommandNotFound as exc:
            raise ToolMissingError("the `git` binary is needed to read anchors; install "
                                   "git") from exc


def file_provenance(path: str | Path) -> dict[str, Any] | None:
    """:func:`file_commit` as a plain record for the ledger (:mod:`auditor.ledger.configlog`):
    ``None`` in no work tree; ``{"error": …}`` when Git could not say (the run goes on: the
    record then says the file's history is unknown)."""
    try:
        found = file_commit(Path(path))
    except (GitError, ToolMissingError, OSError, ValueError) as exc:
        return {"error": str(exc)}
    if found is None:
        return None
    commit = found.commit
    return {
        "repo": found.repo, "path": found.path, "tracked": found.tracked,
        "modified": found.modified,
        "commit": None if commit is None else {
            "sha": commit.sha, "author": commit.author, "author_email": commit.author_email,
            "date": commit.author_date, "committer": commit.committer,
            "committer_email": commit.committer_email, "committed_date": commit.committed_date,
            "subject": commit.subject, "pr": commit.pr,
            "trailers": [list(t) for t in commit.trailers]}}
