"""One adoption, start to end: pick the drift asked for from a fresh comparison, find the
repository and the commit audited, edit the manifests (:mod:`.edit`) in a throw-away
``git worktree`` on a new branch (never the audited branch, never the user's checkout),
commit, push when asked, and record the adoption in the ledger.

The comparison comes from the caller: its live values are from now, not from the ledger,
which never holds Secret values and may be a run old."""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.adopt.edit import adopt_into
from auditor.adopt.message import commit_message
from auditor.adopt.model import Adopted, Refusal, RenderSpec
from auditor.adopt.selection import select
from auditor.config import Config, Source
from auditor.desired import gitrepo
from auditor.desired.state import DEFAULT_CACHE_DIR, DesiredState, source_name
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey
from auditor.errors import AuditorError, ConfigError, GitError, LedgerError

if TYPE_CHECKING:
    from auditor.ledger.accountability import Identity
    from auditor.ledger.backend import Target


class AdoptError(AuditorError):
    """The adoption cannot start: nothing selected, no repository, a bad object name."""


@dataclass(frozen=True)
class Request:
    """What to adopt and where; mirrors the command's options."""

    target: str | None = None
    all_open: bool = False
    paths: tuple[str, ...] = ()
    repo: str | None = None
    desired: str | None = None
    namespace: str | None = None
    branch: str | None = None
    push: bool = False
    dry_run: bool = False
    by: str = ""
    tools_dir: str | None = None
    # Who runs adopt as authenticated (kubeconfig user, SelfSubjectReview or OS user; found
    # by the CLI), recorded beside ``by`` in the ledger.
    identity: Identity | None = None
    # The ledger to read drifts from and record into; None: the configured one.
    ledger: Target | None = None


@dataclass
class Report:
    """What happened: for the terminal and for tests."""

    adopted: list[Adopted] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    diff: str = ""
    branch: str = ""
    commit: str = ""
    repo: str = ""
    push_command: str = ""
    pushed_to: str = ""
    adoption_ids: list[int] = field(default_factory=list)
    drift_ids: dict[ResourceKey, int] = field(default_factory=dict)
    message: str = ""
    warnings: list[str] = field(default_factory=list)


def parse_object(text: str) -> tuple[str, str | None, str | None, str]:
    """``(kind, group or None, namespace or None, name)`` from ``Kind/name``,
    ``Kind.group/ns/name`` or ``Kind/ns/name``."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise AdoptError(f"{text!r}: expected Kind/name, Kind.group/namespace/name or a ledger "
                         "drift id")
    kind, dot, group = parts[0].partition(".")
    return kind, (group if dot else None), (parts[1] if len(parts) == 3 else None), parts[-1]


def _matches(key: ResourceKey, want: tuple[str, str | None, str | None, str]) -> bool:
    kind, group, namespace, name = want
    return (key.kind.lower() == kind.lower() and key.name == name
            and (group is None or key.group == group)
            and (namespace is None or key.namespace == namespace))


def _ledger(req: Request, cfg: Config) -> Target:
    """The ledger adopt reads drifts from and records into: the request's, else the
    configured one (a file, or this cluster's ledger in the fleet store)."""
    from auditor.ledger import backend

    return req.ledger if req.ledger is not None else backend.configured_ledger(cfg.ledger)


@contextmanager
def _reading(target: Target) -> Iterator[Any]:
    """A read of ``target``, or None when it holds no ledger (adopt never creates one). A
    store it cannot reach is an error, not "no ledger"."""
    from auditor.ledger import backend
    from auditor.ledger.dialect import BackendError

    with ExitStack() as stack:
        try:
            conn = stack.enter_context(backend.reader(target))
        except BackendError:
            raise
        except LedgerError:  # no file, no cluster in the store, not a ledger
            conn = None
        yield conn


def _targets(req: Request, cfg: Config, results: Sequence[ObjectResult]
             ) -> tuple[list[ObjectResult], dict[ResourceKey, int]]:
    """The results to adopt, and the open ledger drift id of each where there is one."""
    from auditor.ledger import adoptions

    by_key = {r.key: r for r in results}
    drift_ids: dict[ResourceKey, int] = {}
    where = _ledger(req, cfg)
    with _reading(where) as conn:
        if req.all_open:
            if conn is None:
                raise AdoptError(f"--all-open reads the open drifts from the ledger, and there is "
                                 f"none at {where} (run `drift-auditor run` first)")
            chosen = []
            for drift_id, key in adoptions.open_drift_keys(conn):
                # Not only 'drifted' ones: a missing or orphan object is refused by name.
                if key in by_key and by_key[key].status != "in-sync":
                    chosen.append(by_key[key])
                    drift_ids[key] = drift_id
            return chosen, drift_ids
        if not req.target:
            raise AdoptError("name an OBJECT (Kind/name, Kind.group/namespace/name or a drift "
                             "id) or pass --all-open")
        if req.target.strip().isdigit():
            if conn is None:
                raise AdoptError(f"drift {req.target}: there is no ledger at {where}")
            found = adoptions.drift_key(conn, int(req.target))
            if found is None:
                raise AdoptError(f"drift {req.target}: no such drift in the ledger")
            key, state = found
            if state == "resolved":
                raise AdoptError(f"drift {req.target} ({key}) is already resolved")
            if key not in by_key:
                raise AdoptError(f"drift {req.target}: {key} is not in the comparison any more")
            drift_ids[key] = int(req.target)
            return [by_key[key]], drift_ids
        want = parse_object(req.target)
        found_results = [r for r in results if _matches(r.key, want)]
        if not found_results:
            raise AdoptError(f"{req.target}: no such object in Git or in the cluster")
        if len(found_results) > 1:
            names = ", ".join(str(r.key) for r in found_results)
            raise AdoptError(f"{req.target}: matches {names}; name the group and namespace")
        result = found_results[0]
        if conn is not None:
            drift = adoptions.open_drift(conn, result.key)
            if drift is not None:
                drift_ids[result.key] = int(drift["id"])
        return [result], drift_ids


@dataclass(frozen=True)
class _Where:
    """The repository to branch from, the commit audited, and how its source renders."""

    repo: Path
    base: str
    spec: RenderSpec
    source: Source | None


def _where(req: Request, cfg: Config, desired: Any, keys: Sequence[ResourceKey]) -> _Where:
    if req.desired:
        folder = Path(req.desired).expanduser().resolve()
        if not folder.exists():
            raise AdoptError(f"--desired {req.desired}: no such folder")
        anchor = folder if folder.is_dir() else folder.parent
        try:
            top = gitrepo.top_level(anchor)
        except AuditorError:
            raise AdoptError(f"--desired {req.desired} is not inside a Git work tree: there is "
                             "no repository to commit to") from None
        repo = Path(req.repo).expanduser().resolve() if req.repo else top
        rel = folder.relative_to(top.resolve()).as_posix()
        spec = RenderSpec(paths=(rel if rel != "." else ".",),
                                    namespace=req.namespace or "default",
                                    release=anchor.name)
        base = next(iter(desired.commits.values()), "") or gitrepo.resolve_commit(top)
        return _Where(repo, base, spec, None)
    if not cfg.sources:
        raise ConfigError("sources: no Git source configured (or pass --desired PATH)")
    repos = {desired.objects[k].source.repo for k in keys if k in desired.objects}
    matching = [s for s in cfg.sources if desired.repos.get(source_name(s)) in repos]
    if len(matching) != 1:
        raise AdoptError("the selected objects come from " + (
            "no configured source" if not matching else
            f"{len(matching)} sources ({', '.join(source_name(s) for s in matching)})")
            + "; adopt one source's objects at a time")
    source = matching[0]
    repo = (Path(req.repo).expanduser().resolve() if req.repo
            else gitrepo.clone_path(source.url, DEFAULT_CACHE_DIR.expanduser(), source.depth))
    return _Where(repo, desired.commits[source_name(source)],
                  RenderSpec.of_source(source), source)


def _default_branch(keys: Sequence[ResourceKey]) -> str:
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    if len(keys) == 1:
        k = keys[0]
        name = "-".join(p for p in (k.kind.lower(), k.namespace, k.name) if p)
    else:
        name = f"{len(keys)}-objects"
    return f"drift-auditor/adopt-{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}-{stamp}"


def execute(req: Request, cfg: Config, results: Sequence[ObjectResult],
            desired: DesiredState) -> Report:
    """Select, edit, commit, record and (with ``push``) push; see the module doc.

    ``results`` and ``desired`` are a fresh comparison of ``req.desired`` (or the configured
    sources) with the cluster, as :func:`auditor.pipeline.audit` makes it.
    """
    # Resolved once: the configured ledger reads the store's password file.
    req = dataclasses.replace(req, ledger=_ledger(req, cfg))
    targets, drift_ids = _targets(req, cfg, results)
    report = Report(drift_ids=dict(drift_ids))
    selected: list[tuple[ResourceKey, list[DriftItem]]] = []
    for target in targets:
        items, refused = select(target, req.paths)
        report.refusals.extend(refused)
        if items:
            selected.append((target.key, items))
    if not selected:
        report.message = "nothing to adopt"
        return report
    where = _where(req, cfg, desired, [k for k, _ in selected])
    # Namespaced or not, as the audit decided (discovery and CRDs), for every kind in Git.
    scopes = {(k.group, k.kind): bool(k.namespace) for k in desired.objects}
    where = dataclasses.replace(where, spec=dataclasses.replace(where.spec, scopes=scopes))
    report.repo = str(where.repo)
    try:
        gitrepo.resolve_commit(where.repo, where.base)
    except GitError:
        raise AdoptError(f"{where.repo}: the audited commit {where.base[:12]} is not in this "
                         "repository; fetch it first (or drop --repo)") from None
    if req.desired and not req.repo:
        # The comparison read the work tree; the branch starts from its last commit.
        dirty = gitrepo.uncommitted(where.repo, where.spec.paths[0])
        if dirty:
            report.warnings.append(
                f"{len(dirty)} uncommitted file(s) under {where.spec.paths[0]} "
                f"({', '.join(dirty[:3])}{', …' if len(dirty) > 3 else ''}): the comparison saw "
                f"them, the branch starts from commit {where.base[:12]} without them")
    branch = None if req.dry_run else (req.branch or _default_branch([k for k, _ in selected]))
    with tempfile.TemporaryDirectory(prefix="drift-auditor-adopt-") as tmp:
        worktree = Path(tmp) / "worktree"
        gitrepo.add_worktree(where.repo, worktree, where.base, branch)
        try:
            outcome = adopt_into(worktree, where.spec, selected,
                                           tools_dir=req.tools_dir)
            report.adopted, report.diff = outcome.adopted, outcome.diff()
            report.refusals.extend(outcome.refusals)
            if not req.dry_run and outcome.adopted:
                opened, people = _opened(_ledger(req, cfg), drift_ids)
                report.message = commit_message(outcome.adopted, drift_ids, opened, people)
                report.commit = gitrepo.commit_files(worktree, sorted(outcome.files),
                                                     report.message)
        finally:
            gitrepo.remove_worktree(where.repo, worktree)
            if branch is not None and not report.commit:
                # Nothing committed (a dry run, all refused, or an error): no empty branch.
                gitrepo.delete_branch(where.repo, branch)
    if branch is None or not report.commit:
        report.message = ("dry run: nothing committed" if req.dry_run
                          else "nothing adopted: no branch made")
        return report
    report.branch = branch
    report.push_command = f"git -C {where.repo} push origin {branch}"
    failure: GitError | None = None
    if req.push:
        creds = where.source.credentials if where.source else None
        try:
            report.pushed_to = gitrepo.push_branch(
                where.repo, branch, credentials=creds,
                source_url=where.source.url if where.source else "")
        except GitError as exc:
            failure = exc
    # Recorded even when the push failed: the commit exists and is what will be reviewed.
    report.adoption_ids = _record(cfg, req, report, where)
    if failure is not None:
        raise GitError(f"committed {report.commit[:12]} on branch {branch} in {where.repo}, "
                       f"but the push failed: {failure}; push it by hand: "
                       f"{report.push_command}") from None
    return report


def _opened(where: Target, drift_ids: dict[ResourceKey, int]
            ) -> tuple[dict[ResourceKey, str], dict[ResourceKey, list[str]]]:
    """When each drift opened, and who made it when an audit log named them."""
    if not drift_ids:
        return {}, {}
    from auditor.ledger import adoptions

    with _reading(where) as conn:
        opened: dict[ResourceKey, str] = {}
        people: dict[ResourceKey, list[str]] = {}
        if conn is None:
            return opened, people
        for key, drift_id in drift_ids.items():
            drift = adoptions.open_drift(conn, key)
            if drift is not None:
                opened[key] = str(drift["opened_at"])
            people[key] = adoptions.users(conn, drift_id)
        return opened, people


def _record(cfg: Config, req: Request, report: Report, where: _Where) -> list[int]:
    """One ledger row per adopted object, when a ledger exists (adopt never creates one)."""
    from auditor import __version__
    from auditor.ledger import Ledger, adoptions, backend, keyfile

    target = _ledger(req, cfg)
    if not backend.exists(target):
        return []
    at, store = backend.location(target)

    # Who adopted: as given, else the commit's author (the identity Git recorded).
    by = req.by or gitrepo.commit_author(where.repo, report.commit)
    ids = []
    with Ledger.open(at, tool_version=__version__, config_hash=cfg.digest(),
                     signing_key_file=keyfile.signing_key_file(
                         cfg.ledger, backend.key_location(target), create=True),
                     sign=cfg.ledger.sign, lock_wait=30.0, **store) as ledger:
        for key in dict.fromkeys(a.key for a in report.adopted):
            mine = [a for a in report.adopted if a.key == key]
            ids.append(adoptions.record(ledger, adoptions.Adoption(
                key=key, paths=tuple(a.item.path for a in mine),
                files=tuple(sorted({a.file for a in mine})), branch=report.branch,
                commit_sha=report.commit, base_commit=where.base, repo=str(where.repo),
                drift_id=report.drift_ids.get(key),
                actor=", ".join(sorted({a.item.manager for a in mine if a.item.manager})),
                by=by, pushed=bool(report.pushed_to), identity=req.identity)))
    return ids
