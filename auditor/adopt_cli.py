"""``drift-auditor adopt``: turn an emergency change into a reviewable commit.

The command compares Git with the cluster afresh (the live values come from now, not from
the ledger, which never holds Secret values and may be a run old), picks the drifted paths
asked for, writes their live values into the manifest files they came from (see
:mod:`auditor.adopt`), commits that on a new branch made in a throw-away ``git worktree``
— never on the audited branch, never in the user's checkout — records the adoption in the
ledger, and prints the branch and the ``git push`` command (or pushes, with ``--push``).

Exported as ``COMMANDS`` for the CLI hub to register.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from auditor import adopt as adopt_mod
from auditor.config import Config, Source
from auditor.desired import gitrepo
from auditor.desired.state import DEFAULT_CACHE_DIR, source_name
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey
from auditor.errors import AuditorError, ConfigError, GitError
from auditor.ledger.adoptions import TRAILER


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


@dataclass
class Report:
    """What happened: for the terminal and for tests."""

    adopted: list[adopt_mod.Adopted] = field(default_factory=list)
    refusals: list[adopt_mod.Refusal] = field(default_factory=list)
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


# --------------------------------------------------------------------------- selection


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


def _ledger_reader(cfg: Config) -> Any:
    from auditor.ledger import schema

    return schema.connect_reader(cfg.ledger.path)


def _targets(req: Request, cfg: Config, results: Sequence[ObjectResult]
             ) -> tuple[list[ObjectResult], dict[ResourceKey, int]]:
    """The results to adopt, and the open ledger drift id of each where there is one."""
    from auditor.errors import LedgerError
    from auditor.ledger import adoptions

    by_key = {r.key: r for r in results}
    drift_ids: dict[ResourceKey, int] = {}
    try:
        conn = _ledger_reader(cfg)
    except LedgerError:
        conn = None
    try:
        if req.all_open:
            if conn is None:
                raise AdoptError(f"--all-open reads the open drifts from the ledger, and there is "
                                 f"none at {cfg.ledger.path} (run `drift-auditor run` first)")
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
                raise AdoptError(f"drift {req.target}: there is no ledger at {cfg.ledger.path}")
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
    finally:
        if conn is not None:
            conn.close()


# --------------------------------------------------------------------------- where


@dataclass(frozen=True)
class _Where:
    """The repository to branch from, the commit audited, and how its source renders."""

    repo: Path
    base: str
    spec: adopt_mod.RenderSpec
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
        spec = adopt_mod.RenderSpec(paths=(rel if rel != "." else ".",),
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
                  adopt_mod.RenderSpec.of_source(source), source)


# --------------------------------------------------------------------------- message


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _list_change(old: list[Any], new: list[Any]) -> str:
    added = [x for x in new if x not in old]
    removed = [x for x in old if x not in new]
    parts = [f"+ {_show(x)}" for x in added] + [f"- {_show(x)}" for x in removed]
    return "; ".join(parts) if parts else "reordered"


def _line(item: DriftItem) -> str:
    if item.op == "changed" and isinstance(item.desired, list) and isinstance(item.live, list):
        what = _list_change(item.desired, item.live)
    elif item.op == "changed":
        what = f"{_show(item.desired)} -> {_show(item.live)}"
    elif item.op == "added":
        what = f"added {_show(item.live)}"
    else:
        what = "removed"
    who = ", ".join(p for p in (f"by {item.manager}" if item.manager else "", item.category,
                                f"at {item.time}" if item.time else "") if p)
    return f"- {item.path}: {what} ({who})"


def commit_message(adopted: Sequence[adopt_mod.Adopted], drift_ids: dict[ResourceKey, int],
                   opened: dict[ResourceKey, str],
                   people: dict[ResourceKey, list[str]] | None = None) -> str:
    """A message citing each drift: object, paths, actor, time, ledger id."""
    keys = list(dict.fromkeys(a.key for a in adopted))
    ids = [drift_ids[k] for k in keys if k in drift_ids]
    cite = f" (drift {', '.join(map(str, ids))})" if ids else ""
    subject = (f"Adopt live drift of {keys[0]}{cite}" if len(keys) == 1
               else f"Adopt live drift of {len(keys)} objects{cite}")
    body = ["Written by `drift-auditor adopt`: the live values below were changed in the",
            "cluster outside Git (an emergency change). Merging this branch approves them",
            "retroactively and makes Git the source of truth again.", ""]
    trailers = []
    for key in keys:
        mine = [a for a in adopted if a.key == key]
        body.append(f"Object: {key}")
        if key in drift_ids:
            when = f", opened {opened[key]}" if opened.get(key) else ""
            body.append(f"Ledger drift: {drift_ids[key]}{when}")
            trailers.append(f"{TRAILER}: {drift_ids[key]}")
        if (people or {}).get(key):
            body.append(f"Changed by: {', '.join((people or {})[key])} (API-server audit log)")
        body.append("Files: " + ", ".join(sorted({a.file for a in mine})))
        body.extend(_line(a.item) for a in mine)
        body.append("")
        trailers.append(f"Drift-Auditor-Object: {key}")
    return "\n".join([subject, "", *body, *trailers]) + "\n"


def _default_branch(keys: Sequence[ResourceKey]) -> str:
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    if len(keys) == 1:
        k = keys[0]
        name = "-".join(p for p in (k.kind.lower(), k.namespace, k.name) if p)
    else:
        name = f"{len(keys)}-objects"
    return f"drift-auditor/adopt-{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}-{stamp}"


# --------------------------------------------------------------------------- run


def execute(req: Request, cfg: Config) -> Report:
    """Compare, select, edit, commit, record and (with ``push``) push; see the module doc."""
    from auditor.pipeline import audit

    result = audit(cfg, desired_path=req.desired, namespace=req.namespace,
                   tools_dir=req.tools_dir)
    targets, drift_ids = _targets(req, cfg, result.results)
    report = Report(drift_ids=dict(drift_ids))
    selected: list[tuple[ResourceKey, list[DriftItem]]] = []
    for target in targets:
        items, refused = adopt_mod.select(target, req.paths)
        report.refusals.extend(refused)
        if items:
            selected.append((target.key, items))
    if not selected:
        report.message = "nothing to adopt"
        return report
    where = _where(req, cfg, result.desired, [k for k, _ in selected])
    # Namespaced or not, as the audit decided (discovery and CRDs), for every kind in Git.
    scopes = {(k.group, k.kind): bool(k.namespace) for k in result.desired.objects}
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
            outcome = adopt_mod.adopt_into(worktree, where.spec, selected,
                                           tools_dir=req.tools_dir)
            report.adopted, report.diff = outcome.adopted, outcome.diff()
            report.refusals.extend(outcome.refusals)
            if not req.dry_run and outcome.adopted:
                opened, people = _opened(cfg, drift_ids)
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


def _opened(cfg: Config, drift_ids: dict[ResourceKey, int]
            ) -> tuple[dict[ResourceKey, str], dict[ResourceKey, list[str]]]:
    """When each drift opened, and who made it when an audit log named them."""
    if not drift_ids:
        return {}, {}
    from auditor.ledger import adoptions

    conn = _ledger_reader(cfg)
    try:
        opened: dict[ResourceKey, str] = {}
        people: dict[ResourceKey, list[str]] = {}
        for key, drift_id in drift_ids.items():
            drift = adoptions.open_drift(conn, key)
            if drift is not None:
                opened[key] = str(drift["opened_at"])
            people[key] = adoptions.users(conn, drift_id)
        return opened, people
    finally:
        conn.close()


def _record(cfg: Config, req: Request, report: Report, where: _Where) -> list[int]:
    """One ledger row per adopted object, when a ledger exists (adopt never creates one)."""
    if not Path(cfg.ledger.path).is_file():
        return []
    from auditor import __version__
    from auditor.ledger import Ledger, adoptions

    # Who adopted: as given, else the commit's author (the identity Git recorded).
    by = req.by or gitrepo.commit_author(where.repo, report.commit)
    ids = []
    with Ledger.open(cfg.ledger.path, tool_version=__version__, config_hash=cfg.digest(),
                     signing_key_file=cfg.ledger.signing_key_file or None,
                     lock_wait=30.0) as ledger:
        for key in dict.fromkeys(a.key for a in report.adopted):
            mine = [a for a in report.adopted if a.key == key]
            ids.append(adoptions.record(ledger, adoptions.Adoption(
                key=key, paths=tuple(a.item.path for a in mine),
                files=tuple(sorted({a.file for a in mine})), branch=report.branch,
                commit_sha=report.commit, base_commit=where.base, repo=str(where.repo),
                drift_id=report.drift_ids.get(key),
                actor=", ".join(sorted({a.item.manager for a in mine if a.item.manager})),
                by=by, pushed=bool(report.pushed_to))))
    return ids


# --------------------------------------------------------------------------- command


def to_json(report: Report) -> bytes:
    """The report for scripts: what was adopted where, what was refused and why, the branch."""
    return orjson.dumps({
        "adopted": [{"object": str(a.key), "path": a.item.path, "op": a.item.op,
                     "file": a.file, "manager": a.item.manager, "time": a.item.time,
                     "category": a.item.category, "drift_id": report.drift_ids.get(a.key)}
                    for a in report.adopted],
        "refused": [{"object": str(r.key) if r.key else None, "path": r.path,
                     "reason": r.reason, "file": r.file} for r in report.refusals],
        "branch": report.branch or None, "commit": report.commit or None,
        "repo": report.repo or None, "push_command": report.push_command or None,
        "pushed_to": report.pushed_to or None, "adoption_ids": report.adoption_ids,
        "warnings": report.warnings, "diff": report.diff},
        option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def _print(report: Report) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if report.diff:
        click.echo(report.diff, nl=False)
    for adopted in report.adopted:
        click.echo(f"adopted {adopted.key} {adopted.item.path} -> {adopted.file}", err=True)
    for refusal in report.refusals:
        click.echo(f"refused {refusal}", err=True)
    if report.branch:
        click.echo(f"committed {report.commit[:12]} on branch {report.branch} in {report.repo}")
        if report.pushed_to:
            click.echo(f"pushed {report.branch} to {report.pushed_to}")
        else:
            click.echo(f"push it for review: {report.push_command}")
        if report.adoption_ids:
            click.echo("recorded in the ledger as adoption "
                       + ", ".join(map(str, report.adoption_ids)))
    elif report.message:
        click.echo(report.message, err=True)


@click.command("adopt")
@click.argument("target", metavar="OBJECT", required=False)
@click.option("--all-open", is_flag=True, help="Every object with an open drift in the ledger.")
@click.option("--paths", "paths", multiple=True, metavar="GLOB",
              help="Only these drifted paths (globs as in ignore rules; repeatable).")
@click.option("--repo", type=click.Path(file_okay=False),
              help="The working clone to branch in (default: the source's cache clone, or the "
                   "repository --desired is in).")
@click.option("--desired", metavar="PATH", help="Manifests folder inside a Git work tree, "
                                                "instead of the configured sources.")
@click.option("--namespace", "-n", help="Namespace for namespaced manifests that name none.")
@click.option("--branch", help="Name of the new branch (default: drift-auditor/adopt-…).")
@click.option("--push", is_flag=True, help="Push the branch to origin (credentials as for "
                                           "cloning).")
@click.option("--dry-run", is_flag=True, help="Print the diff; commit nothing.")
@click.option("--by", default="", help="Who adopts (recorded in the ledger).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="kubeconfig file.")
@click.option("--context", help="kubeconfig context to use.")
@click.option("--in-cluster", is_flag=True, help="Use the pod's service account.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              help="Ledger file (default: ledger.path from the configuration).")
def adopt_cmd(target: str | None, all_open: bool, paths: tuple[str, ...], repo: str | None,
              desired: str | None, namespace: str | None, branch: str | None, push: bool,
              dry_run: bool, by: str, output: str, kubeconfig: str | None,
              context: str | None, in_cluster: bool, ledger_path: str | None) -> None:
    """Write live drift back into Git as a commit on a new branch, for review.

    OBJECT is Kind/name, Kind.group/namespace/name or a ledger drift id. Only drift made by
    people (or unknown clients) is adopted; Secrets never. Exit 0 all adopted, 1 something
    refused, 2 error.
    """
    from auditor.cli import _cluster_overrides, handle_errors, tools_dir

    def body() -> None:
        if bool(target) == all_open:
            raise AdoptError("name one OBJECT or pass --all-open")
        overrides = _cluster_overrides(kubeconfig, context, in_cluster)
        if ledger_path:
            overrides["ledger"] = {"path": ledger_path}
        cfg = click.get_current_context().find_root().obj.load(overrides)
        report = execute(Request(target=target, all_open=all_open, paths=paths, repo=repo,
                                 desired=desired, namespace=namespace, branch=branch,
                                 push=push, dry_run=dry_run, by=by, tools_dir=tools_dir()),
                         cfg)
        if output == "json":
            sys.stdout.buffer.write(to_json(report))
            sys.stdout.buffer.flush()
        else:
            _print(report)
        sys.exit(1 if report.refusals or not report.adopted else 0)

    handle_errors(body)()


COMMANDS = (adopt_cmd,)
