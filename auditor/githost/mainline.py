"""The first-parent history of an audited range: the changes that need an approval.

A range is what the ledger records between two runs: the commits reachable from the new
head and not from the previous one (``git rev-list old..new``). Only its first-parent chain
(``git rev-list --first-parent old..new``) is a sequence of changes to the audited branch:
each merge commit (or squash, rebase or direct push) is one change, and the commits of a
merged branch are part of the merge that brought them in, not changes of their own —
counting them separately would count one reviewed pull request as many unreviewed commits.

Pure functions over the commits of the range, as the history walk lists them (each with its
sha, parents, author, trailers, files): no Git access here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class CommitLike(Protocol):
    @property
    def sha(self) -> str: ...
    @property
    def parents(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class MainlineCommit:
    """One first-parent commit and the commits it brought in (merged branch commits)."""

    sha: str
    introduced: tuple[str, ...]


def first_parent(commits: Sequence[CommitLike], head: str) -> list[MainlineCommit]:
    """The first-parent chain of the range from ``head``, newest first, each with what it
    introduced: the commits its other parents reach within the range that are not on the
    chain and not already brought in by an older merge (exactly what ``M^1..M`` adds)."""
    by_sha = {c.sha: c for c in commits}
    chain: list[str] = []
    sha: str | None = head
    while sha is not None and sha in by_sha:
        chain.append(sha)
        parents = by_sha[sha].parents
        sha = parents[0] if parents else None
    on_chain = set(chain)
    claimed: set[str] = set()
    introduced: dict[str, list[str]] = {}
    for merge in reversed(chain):  # oldest first: a commit belongs to the first merge of it
        found: list[str] = []
        stack = list(by_sha[merge].parents[1:])
        while stack:
            current = stack.pop()
            if current in on_chain or current in claimed or current not in by_sha:
                continue
            claimed.add(current)
            found.append(current)
            stack.extend(by_sha[current].parents)
        introduced[merge] = found
    return [MainlineCommit(s, tuple(introduced[s])) for s in chain]


def objects_by_change(mainline: Iterable[MainlineCommit],
                      objects_by_commit: Mapping[str, Sequence[tuple[str, str, str, str]]]
                      ) -> dict[str, tuple[tuple[str, str, str, str], ...]]:
    """For each mainline commit, the desired objects whose files' last change it brought in
    (the last commit of an object's file is the commit itself or one it introduced)."""
    out: dict[str, tuple[tuple[str, str, str, str], ...]] = {}
    for commit in mainline:
        keys: set[tuple[str, str, str, str]] = set()
        for sha in (commit.sha, *commit.introduced):
            keys.update(objects_by_commit.get(sha, ()))
        out[commit.sha] = tuple(sorted(keys))
    return out
