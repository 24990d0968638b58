"""Helpers for tests that need real Git repositories and the real kustomize/helm binaries.

Repositories are made with the ``git`` binary; authors, committers and dates are set through
the environment so shas and attribution are deterministic.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

TOOLS = Path(os.environ.get("DRIFT_AUDITOR_TOOLS") or "~/.cache/drift-auditor/bin").expanduser()

# Isolate from the developer's ~/.gitconfig (signing, hooks, default branch, mailmap).
_BASE_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def tool(name: str) -> str:
    """Path of ``kubectl``/``helm`` in the tools folder, or skip the test."""
    path = TOOLS / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{name} not in {TOOLS} (run `make tools`)")
    return str(path)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **_BASE_ENV, **(env or {})}
    proc = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


class RepoBuilder:
    """A Git repository under construction: write files, commit as someone at some time."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", branch)
        self._tick = 0

    def write(self, rel: str, text: str) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def remove(self, rel: str) -> None:
        git(self.path, "rm", "-q", rel)

    def _env(self, author: tuple[str, str], committer: tuple[str, str] | None,
             date: str | None) -> dict[str, str]:
        self._tick += 1
        when = date or f"2026-01-{1 + self._tick // 24:02d}T{self._tick % 24:02d}:00:00Z"
        committer = committer or author
        return {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
                "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_NAME": committer[0],
                "GIT_COMMITTER_EMAIL": committer[1], "GIT_COMMITTER_DATE": when}

    def commit(self, message: str, *, author: tuple[str, str] = ("Alice", "alice@example.com"),
               committer: tuple[str, str] | None = None, date: str | None = None) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message,
            env=self._env(author, committer, date))
        return self.head()

    def merge(self, branch: str, message: str, *,
              author: tuple[str, str] = ("GitHub", "noreply@github.com"),
              date: str | None = None) -> str:
        git(self.path, "merge", "-q", "--no-ff", branch, "-m", message,
            env=self._env(author, None, date))
        return self.head()

    def checkout(self, branch: str, *, new: bool = False) -> None:
        git(self.path, "checkout", "-q", *(["-b"] if new else []), branch)

    def tag(self, name: str) -> None:
        git(self.path, "tag", name)

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")


def deployment(name: str, image: str = "nginx:1.27", namespace: str | None = None) -> str:
    ns = f"\n          namespace: {namespace}" if namespace else ""
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}{ns}
        spec:
          replicas: 2
          selector:
            matchLabels: {{app: {name}}}
          template:
            metadata:
              labels: {{app: {name}}}
            spec:
              containers:
              - name: {name}
                image: {image}
        """)


def configmap(name: str, value: str = "v", namespace: str | None = None) -> str:
    ns = f"\n          namespace: {namespace}" if namespace else ""
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {name}{ns}
        data:
          key: {value!r}
        """)
