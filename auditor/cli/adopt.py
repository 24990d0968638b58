"""``drift-auditor adopt``: turn an emergency change into a reviewable commit.

The command compares Git with the cluster afresh, then hands the comparison to
:func:`auditor.adopt.workflow.execute`, which writes the live values of the drift asked for
into the manifests on a new branch, commits, records the adoption in the ledger (with who
ran it as authenticated, :mod:`auditor.cli.identity`), and pushes with ``--push``; this
module prints what it did (text or JSON).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import click
import orjson

from auditor.cli.common import cluster_overrides, guarded, load_config, tools_dir

if TYPE_CHECKING:
    from collections.abc import Sequence

    from auditor.adopt.workflow import Report
    from auditor.engine.objectref import ObjectRef
    from auditor.engine.records import ObjectResult


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


def resolve(ref: ObjectRef, shown: str, results: Sequence[ObjectResult]) -> str:
    """The one compared object ``ref`` names, spelt as the adopt workflow reads it exactly
    (``Kind.group/namespace/name``; ``Kind./…`` for the core group), or an error naming the
    candidates."""
    from auditor.adopt.workflow import AdoptError

    if ref.drift_id is not None:
        return str(ref.drift_id)
    found = [r.key for r in results if ref.matches(r.key)]
    if not found:
        raise AdoptError(f"{shown} ({ref}): no such object in Git or in the cluster")
    if len(found) > 1:
        names = ", ".join(str(k) for k in found)
        raise AdoptError(f"{shown}: matches {names}; name the group and namespace")
    key = found[0]
    return "/".join(p for p in (f"{key.kind}.{key.group}", key.namespace, key.name) if p)


@click.command("adopt")
@click.argument("target", metavar="OBJECT", nargs=-1)
@click.option("--all-open", is_flag=True, help="Every object with an open drift in the ledger.")
@click.option("--paths", "paths", multiple=True, metavar="GLOB",
              help="Only these drifted paths (globs as in ignore rules; repeatable).")
@click.option("--repo", type=click.Path(file_okay=False),
              help="The working clone to branch in (default: the source's cache clone, or the "
                   "repository --desired is in).")
@click.option("--desired", metavar="PATH", help="Manifests folder inside a Git work tree, "
                                                "instead of the configured sources.")
@click.option("--namespace", "-n", help="Namespace for namespaced manifests that name none, "
                                        "and OBJECT's namespace when it names none.")
@click.option("--branch", help="Name of the new branch (default: drift-auditor/adopt-…).")
@click.option("--push", is_flag=True, help="Push the branch to origin (credentials as for "
                                           "cloning).")
@click.option("--dry-run", is_flag=True, help="Print the diff; commit nothing.")
@click.option("--by", default="", help="Who adopts (recorded in the ledger, beside the "
                                       "identity the cluster authenticates).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="kubeconfig file.")
@click.option("--context", help="kubeconfig context to use.")
@click.option("--in-cluster", is_flag=True, help="Use the pod's service account.")
@click.option("--ledger", "ledger_path",
              help="Ledger file, or this cluster's ledger in the fleet store as "
                   "postgresql://HOST/DB#CLUSTER (default: the configured ledger).")
def adopt_cmd(target: tuple[str, ...], all_open: bool, paths: tuple[str, ...], repo: str | None,
              desired: str | None, namespace: str | None, branch: str | None, push: bool,
              dry_run: bool, by: str, output: str, kubeconfig: str | None,
              context: str | None, in_cluster: bool, ledger_path: str | None) -> None:
    """Write live drift back into Git as a commit on a new branch, for review.

    OBJECT is a ledger drift id or an object as `ack` takes it: kubectl's TYPE/NAME with -n
    (deploy/web -n shop), TYPE/NAMESPACE/NAME (Deployment.apps/shop/web), the printed form
    (Deployment.apps shop/web), NAMESPACE/NAME or NAME. Only drift made by people (or
    unknown clients) is adopted; Secrets never. Exit 0 all adopted, 1 something refused,
    2 error.
    """

    def body() -> None:
        from auditor.adopt.workflow import AdoptError, Request, execute
        from auditor.cli import identity as identity_mod
        from auditor.engine import objectref
        from auditor.ledger import backend
        from auditor.pipeline import audit

        if bool(target) == all_open:
            raise AdoptError("name one OBJECT or pass --all-open")
        shown = " ".join(target)
        # A form it cannot read fails here, before Git and the cluster are asked.
        ref = objectref.parse(target, namespace, allow_id=True) if target else None
        overrides = cluster_overrides(kubeconfig, context, in_cluster)
        if ledger_path and not backend.is_url(ledger_path):
            overrides["ledger"] = {"path": ledger_path}
        cfg = load_config(overrides)
        ledger = backend.writer_target(ledger_path, cfg.ledger)
        # Who runs it as authenticated, for the ledger (a dry run records nothing).
        who = None if dry_run else identity_mod.resolve(cfg.cluster)
        req = Request(target=shown or None, all_open=all_open, paths=paths, repo=repo,
                      desired=desired, namespace=namespace, branch=branch, push=push,
                      dry_run=dry_run, by=by, tools_dir=tools_dir(), identity=who,
                      ledger=ledger)
        # A fresh comparison: live values from now, not from the ledger.
        audited = audit(cfg, desired_path=req.desired, namespace=req.namespace,
                        tools_dir=req.tools_dir)
        if ref is not None:
            req = dataclasses.replace(req, target=resolve(ref, shown, audited.results))
        report = execute(req, cfg, audited.results, audited.desired)
        if output == "json":
            sys.stdout.buffer.write(to_json(report))
            sys.stdout.buffer.flush()
        else:
            _print(report)
        sys.exit(1 if report.refusals or not report.adopted else 0)

    guarded(body)


COMMANDS = (adopt_cmd,)
