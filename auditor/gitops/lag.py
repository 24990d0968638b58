"""Sync lag: how far the Git ref a controller follows is ahead of the commit it applied.

"Git is ahead of the cluster by N commits since T": approved changes not live yet, which is
not out-of-band drift. Each source's ref is fetched (into the same clone cache the audit
uses); the commits after the applied one, oldest first, give N and T.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from auditor.errors import GitError

from .records import Derived, SyncLag


def sync_lags(derived: Iterable[Derived], *, cache_dir: Path | str | None = None,
              secrets_env: Mapping[str, str] | None = None
              ) -> tuple[list[SyncLag], list[tuple[str, str]]]:
    """The lag of every derived source whose applied commit is known, and ``(owner,
    reason)`` for those whose ref could not be read. A source at its ref's head has no
    lag (it is not listed)."""
    from auditor.desired import gitrepo
    from auditor.desired.state import DEFAULT_CACHE_DIR

    cache = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR.expanduser()
    lags: list[SyncLag] = []
    failed: list[tuple[str, str]] = []
    for d in derived:
        if not d.applied:
            continue
        try:
            repo = gitrepo.sync(d.source.url, d.ref, cache_dir=cache,
                                credentials=d.source.credentials, depth=0,
                                secrets_env=secrets_env)
            head = repo.commit
            if head == d.applied:
                continue
            try:
                commits = repo.commits_between(d.applied)
            except GitError:
                lags.append(SyncLag(d.name, d.owner, d.ref, d.applied, head, -1))
                continue
        except GitError as exc:
            failed.append((d.owner, str(exc)))
            continue
        since = min((c.committed_date for c in commits), default="")
        lags.append(SyncLag(d.name, d.owner, d.ref, d.applied, head, len(commits), since))
    return lags, failed
