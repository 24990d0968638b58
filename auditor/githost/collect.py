"""One run's approvals: each mainline change of the audited ranges judged from its git
host's evidence (cached per commit), or from its trailers where no host is configured, and
one branch-protection snapshot per host-backed source.

:func:`changes_of` turns a range's commits into :class:`~.model.Change` records (first
parent only, see :mod:`.mainline`); :func:`collect` judges them. Nothing here raises for
the host's sake: a host that cannot be asked leaves the commit ``unknown`` this run (never
unapproved) and says why among the problems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import github, gitlab, sod
from .cache import EvidenceCache
from .hosts import HostSettings
from .http import Budget, Client, Denied, GitHostError, NotFound, RateLimited, Unavailable
from .mainline import first_parent, objects_by_change
from .model import Approval, Change, Evidence, Protection

ObjectKey = tuple[str, str, str, str]


class HistoryCommit(Protocol):
    """A commit of the history walk (:class:`auditor.desired.gitrepo.CommitInfo`)."""

    @property
    def sha(self) -> str: ...
    @property
    def parents(self) -> tuple[str, ...]: ...
    @property
    def author(self) -> str: ...
    @property
    def author_email(self) -> str: ...
    @property
    def committed_date(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def trailers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def pr(self) -> int | None: ...


class Host(Protocol):
    provider: str

    def evidence(self, sha: str, fetched_at: str,
                 required_checks: tuple[str, ...] | None = None) -> Evidence: ...

    def protection(self, branch: str, fetched_at: str) -> Protection: ...


def _person(name: str, email: str) -> str:
    return f"{name} <{email}>" if email else name


def changes_of(source: str, repo: str, commits: Sequence[HistoryCommit], head: str,
               objects_by_commit: Mapping[str, Sequence[ObjectKey]]) -> list[Change]:
    """The mainline changes of one source's range (``commits``: everything ``old..head``
    holds, as the history walk lists them), newest first."""
    by_sha = {c.sha: c for c in commits}
    chain = first_parent(commits, head)
    objects = objects_by_change(chain, objects_by_commit)
    out = []
    for link in chain:
        commit = by_sha[link.sha]
        merged = [by_sha[s] for s in link.introduced]
        trailers: list[tuple[str, str]] = []
        for c in (commit, *merged):
            trailers += [t for t in c.trailers if t not in trailers]
        out.append(Change(
            source, repo, commit.sha, commit.subject, _person(commit.author, commit.author_email),
            commit.committed_date, commit.parents, commit.pr, link.introduced,
            tuple(sorted({_person(c.author, c.author_email) for c in merged})),
            tuple(trailers), objects[link.sha]))
    return out


def change_from_record(row: Mapping[str, Any]) -> Change:
    """A change the ledger recorded as unknown, to be asked about again."""
    return Change(
        str(row.get("source") or ""), str(row.get("repo") or ""), str(row["sha"]),
        str(row.get("subject") or ""), str(row.get("commit_author") or ""),
        pr_hint=row.get("pr"),
        trailers=tuple((str(k), str(v)) for k, v in row.get("trailers") or ()),
        objects=tuple((str(o[0]), str(o[1]), str(o[2]), str(o[3]))
                      for o in row.get("objects") or ()),
        authors=tuple(str(a) for a in row.get("authors") or ()))


@dataclass
class Outcome:
    approvals: list[Approval] = field(default_factory=list)
    protections: list[tuple[str, Protection]] = field(default_factory=list)  # (source, …)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (source, message)
    requests: int = 0


def client_for(settings: HostSettings, budget: Budget | None = None) -> Client:
    make = github.headers if settings.provider == github.PROVIDER else gitlab.headers
    return Client(settings.api_url, make(settings.token),
                  budget or Budget(settings.max_wait_seconds),
                  timeout=settings.timeout_seconds)


def host_for(settings: HostSettings, client: Client) -> Host:
    if settings.provider == github.PROVIDER:
        return github.GitHub(client, settings.repo)
    return gitlab.GitLab(client, settings.repo)


def collect(changes: Iterable[Change], hosts: Mapping[str, HostSettings], *,
            cache_root: Path | None, now: str,
            make_client: Callable[[HostSettings], Client] = client_for) -> Outcome:
    """Judge every change: from its source's git host when ``hosts`` names one (cached
    answers first), from its trailers otherwise; and snapshot each host's branch
    protection. ``now`` stamps what is fetched."""
    out = Outcome()
    by_source: dict[str, list[Change]] = {}
    for change in changes:
        by_source.setdefault(change.source, []).append(change)
    for name in sorted(set(by_source) | set(hosts)):
        todo = by_source.get(name, [])
        settings = hosts.get(name)
        if settings is None:
            out.approvals += [sod.judge_trailers(c) for c in todo]
            continue
        client = make_client(settings)
        _Source(name, settings, client, host_for(settings, client),
                EvidenceCache(cache_root, settings.provider, settings.api_url, settings.repo)
                if cache_root is not None else None, now, out).run(todo)
        out.requests += client.requests
    return out


class _Source:
    """One source's questions to its host in one run."""

    def __init__(self, name: str, settings: HostSettings, client: Client, host: Host,
                 cache: EvidenceCache | None, now: str, out: Outcome) -> None:
        self.name, self.settings, self.client, self.host = name, settings, client, host
        self.cache, self.now, self.out = cache, now, out
        self.why: Counter[str] = Counter()

    def run(self, changes: Sequence[Change]) -> None:
        branch = self.settings.branch
        protection = self._protection(branch) if branch else None
        required = protection.required_checks if protection and \
            protection.state == "protected" else None
        bases: Counter[str] = Counter()
        for change in reversed(changes):  # oldest first
            approval, base = self._judge(change, required)
            self.out.approvals.append(approval)
            if base:
                bases[base] += 1
        if protection is None and bases:
            # No branch configured: the one the pull requests merged into.
            protection = self._protection(bases.most_common(1)[0][0])
        if protection is not None:
            self.out.protections.append((self.name, protection))
        if self.why:
            said = "; ".join(f"{n} × {why}" for why, n in self.why.most_common())
            self.out.problems.append((self.name, f"approvals: {sum(self.why.values())} of "
                                                 f"{len(changes)} commit(s) unknown this run, "
                                                 f"asked again next run: {said}"))

    def _judge(self, change: Change, required: tuple[str, ...] | None
               ) -> tuple[Approval, str]:
        cached = self.cache.get(change.sha) if self.cache is not None else None
        if cached is not None:
            return sod.judge(change, cached, cached=True), cached.base
        try:
            evidence = self.host.evidence(change.sha, self.now, required)
        except RateLimited as exc:
            return self._unknown(change, "rate limited", str(exc)), ""
        except Unavailable as exc:
            return self._unknown(change, "git host unreachable", str(exc)), ""
        except Denied as exc:
            return self._unknown(change, "access denied", str(exc)), ""
        except NotFound as exc:
            return self._unknown(change, "not found on the git host", str(exc)), ""
        except GitHostError as exc:
            return self._unknown(change, "git host error", str(exc)), ""
        if self.cache is not None:
            self.cache.put(evidence)
        return sod.judge(change, evidence), evidence.base

    def _unknown(self, change: Change, kind: str, detail: str) -> Approval:
        self.why[kind] += 1
        return sod.unknown(change, self.settings.provider, f"{kind}: {detail}")

    def _protection(self, branch: str) -> Protection:
        try:
            snapshot = self.host.protection(branch, self.now)
        except GitHostError as exc:
            cached = self.cache.protection(branch) if self.cache is not None else None
            if cached is not None:
                return cached
            return Protection(self.settings.provider, self.settings.repo, branch, "unknown",
                              self.now, detail=str(exc))
        if self.cache is not None and snapshot.state != "unknown":
            self.cache.put_protection(snapshot)
        return snapshot
