"""Which git host a source's approvals are read from: provider, API URL, repository, branch
and token, from its ``approvals`` settings and its URL.

On github.com and gitlab.com the URL says it all (``https://github.com/acme/gitops.git``,
``git@gitlab.com:acme/platform/gitops.git``); elsewhere ``provider`` is needed, and the API
URL defaults to the host's usual path (GitHub Enterprise ``/api/v3``, GitLab ``/api/v4``).
The token is read here, at use, from the environment mapping the CLI hands down
(``token-env``) or from a file (``token-file``); it only ever goes into the HTTP client's
headers (:class:`HostSettings` keeps it out of its ``repr``).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from auditor.config import ApprovalsConfig, Source
from auditor.errors import ConfigError

from . import github, gitlab

_SCP = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
KNOWN_HOSTS = {"github.com": github.PROVIDER, "gitlab.com": gitlab.PROVIDER}


@dataclass(frozen=True)
class HostSettings:
    """Everything needed to ask one git host about one source's commits."""

    provider: str
    api_url: str
    repo: str
    branch: str = ""
    token: str = field(default="", repr=False)
    max_wait_seconds: float = 60.0
    timeout_seconds: float = 10.0


def split_url(url: str) -> tuple[str, str] | None:
    """``(host, path without .git)`` of a Git remote URL, or None (a local path)."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "file" or not parts.hostname:
            return None
        host, path = parts.hostname.lower(), parts.path
    else:
        match = _SCP.match(url)
        if not match or url.startswith(("/", ".", "~")):
            return None
        host, path = match.group(1).lower(), match.group(2)
    path = path.strip("/").removesuffix(".git").strip("/")
    return (host, path) if path else None


def branch_of(source: Source, cfg: ApprovalsConfig) -> str:
    """The branch whose protection is recorded: configured, or the revision when it names
    a branch (not HEAD, a tag or a sha)."""
    if cfg.branch:
        return cfg.branch
    rev = source.revision.strip()
    if not rev or rev == "HEAD" or rev.startswith("refs/tags/") or _SHA.match(rev):
        return ""
    return rev.removeprefix("refs/heads/").removeprefix("refs/remotes/origin/")


def resolve(source: Source, where: str, env: Mapping[str, str] | None
            ) -> tuple[HostSettings, list[str]]:
    """The host settings of ``source`` (whose ``approvals`` is set) and warnings (a token
    named but not found: the host is then asked without one). ``where`` names the source
    in messages (``sources[0]``). Raises :class:`ConfigError` when the host cannot be told."""
    cfg = source.approvals or ApprovalsConfig()
    split = split_url(source.url)
    provider = cfg.provider or (KNOWN_HOSTS.get(split[0], "") if split else "")
    if not provider:
        raise ConfigError(f"{where}.approvals.provider: cannot tell the git host from the url "
                          f"{source.url!r}; set provider (github or gitlab) and repo")
    repo = cfg.repo or (split[1] if split else "")
    if provider == github.PROVIDER and repo and not cfg.repo:
        repo = "/".join(repo.split("/")[:2])
    if not repo or (provider == github.PROVIDER and repo.count("/") != 1):
        raise ConfigError(f"{where}.approvals.repo: expected owner/name for {provider}"
                          f"{f', got {repo!r}' if repo else ''} (cannot be told from the url "
                          f"{source.url!r})")
    api = cfg.api_url.rstrip("/")
    if not api:
        host = split[0] if split else ""
        if host in KNOWN_HOSTS:
            api = github.DEFAULT_API if provider == github.PROVIDER else gitlab.DEFAULT_API
        elif host:
            api = f"https://{host}/api/{'v3' if provider == github.PROVIDER else 'v4'}"
        else:
            raise ConfigError(f"{where}.approvals.api-url: needed for a source whose url "
                              f"names no host ({source.url!r})")
    if not api.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.approvals.api-url: {api!r} is not an http(s) URL")
    token, warnings = "", []
    if cfg.token_env:
        token = (env or {}).get(cfg.token_env, "").strip()
        if not token:
            warnings.append(f"{where}.approvals.token-env: environment variable "
                            f"{cfg.token_env} is not set; asking {provider} without a token")
    elif cfg.token_file:
        try:
            token = Path(cfg.token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            warnings.append(f"{where}.approvals.token-file: {cfg.token_file}: cannot read it "
                            f"({exc.strerror}); asking {provider} without a token")
    return HostSettings(provider, api, repo, branch_of(source, cfg), token,
                        cfg.max_wait_seconds, cfg.timeout_seconds), warnings
