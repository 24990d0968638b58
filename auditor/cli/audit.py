"""The audit commands: ``run`` (one recorded audit cycle, the CronJob's job), ``diff``
(compare without recording) and ``snapshot`` (the cluster's in-scope objects as a file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor.cli.common import (
    NO_CACHE_HELP,
    Context,
    cluster_options,
    cluster_overrides,
    deprecated_alias,
    handle_errors,
    parse_cache_dir,
    progress,
    progress_factory,
    tools_dir,
    use_color,
)

if TYPE_CHECKING:
    from auditor.config import Config

_ZERO_ON_PARTIAL_HELP = (
    "Do not exit 3 when a kind could not be listed (the audit is partial; the skipped kinds "
    "are still reported): exit as the audited kinds alone decide.")
_AUDIT_LOG_HELP = (
    "API-server audit log (JSON lines of audit.k8s.io/v1 Events): the users behind the "
    "writes; with compare.gitops-identities, GitOps writes are recognised by who made them "
    "rather than by the field-manager name a client sent.")
# One sentence for a run whose actors are names the clients chose.
DECLARED_ACTORS = ("actors are field-manager names as clients declare them, not authenticated "
                   "identities (no --audit-log)")
NAMED_GITOPS = ("GitOps writes are recognised by manager name: set compare.gitops-identities "
                "to recognise them by the authenticated user")


@click.command()
@cluster_options
@click.option("--output-file", "output", type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="Write the List here (default: stdout).")
@deprecated_alias(("-o", "--output"), "output", "--output-file FILE",
                  type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
@handle_errors
def snapshot(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
             output: str | None) -> None:
    """Write the cluster's live, in-scope objects as a `kubectl get -o json` style List."""
    from auditor.live.client import Cluster, ListStats
    from auditor.live.snapshot import take
    from auditor.support import secretkey

    output = output or "-"
    cfg = obj.load(cluster_overrides(kubeconfig, context, in_cluster))
    key = secretkey.for_ledger(cfg.compare.secret_hash_key_file, cfg.ledger.path, create=True,
                               store=bool(cfg.ledger.url))
    stats = ListStats()
    with Cluster(cfg.cluster) as cluster:
        shown = progress("listing")

        def on_kind(resource: Any, objects: int, ok: bool) -> None:
            shown.advance(resource.group_kind, objects, ok)

        if output == "-":
            written = take(cluster, cfg.scope, sys.stdout.buffer, secret_key=key, stats=stats,
                           on_kind=on_kind)
            sys.stdout.buffer.flush()
        else:
            tmp = Path(output + ".tmp")
            with tmp.open("wb") as fh:
                written = take(cluster, cfg.scope, fh, secret_key=key, stats=stats,
                               on_kind=on_kind)
            tmp.replace(output)
        shown.finish()
    for problem in stats.problems:
        click.echo(f"warning: skipped {problem.where}: {problem.message}", err=True)
    click.echo(f"{written.objects} objects from {stats.kinds - len(stats.skipped_kinds)} kinds"
               f"{f' ({len(stats.skipped_kinds)} skipped)' if stats.skipped_kinds else ''}",
               err=True)


@click.command()
@cluster_options
@click.option("--desired", "desired_path", metavar="PATH",
              help="Manifests folder, or a Git repo path/URL (with --revision). "
                   "Default: the configured sources.")
@click.option("--revision", help="Branch, tag or sha to audit when --desired is a repo.")
@click.option("--namespace", "-n", help="Namespace for namespaced manifests that name none.")
@click.option("--live", "live_file", metavar="FILE",
              help="Compare against a snapshot (a List as `kubectl get -o json` writes it, "
                   "JSON or YAML, or a folder of them) instead of the cluster.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--color/--no-color", default=None, help="Colour the text output "
              "(default: when stdout is a terminal and NO_COLOR is not set).")
@click.option("--exit-zero-on-partial", is_flag=True, help=_ZERO_ON_PARTIAL_HELP)
@click.option("--audit-log", type=click.Path(exists=True, dir_okay=False),
              help=_AUDIT_LOG_HELP)
@click.option("--no-cache", is_flag=True, help=NO_CACHE_HELP)
@click.pass_obj
@handle_errors
def diff(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
         desired_path: str | None, revision: str | None, namespace: str | None,
         live_file: str | None, output: str, color: bool | None,
         exit_zero_on_partial: bool, audit_log: str | None, no_cache: bool) -> None:
    """Compare Git with the cluster.

    Exit 0 in sync, 1 drift/missing/orphan, 2 error, 3 partial: a kind could not be listed
    (403, or failing on and on), so its objects were not compared.
    """
    from auditor.outputs import diffout
    from auditor.pipeline import audit
    cfg = obj.load(cluster_overrides(kubeconfig, context, in_cluster))
    result = audit(cfg, desired_path=desired_path, revision=revision, live_file=live_file,
                   namespace=namespace, tools_dir=tools_dir(), audit_log=audit_log,
                   progress=progress_factory(),
                   parse_cache_dir=parse_cache_dir(no_cache))
    gitops = result.gitops.counts() if result.gitops is not None else None
    if output == "json":
        sys.stdout.buffer.write(diffout.to_json(result.results, result.problems, gitops))
        sys.stdout.buffer.flush()
    else:
        colour = use_color(color)
        click.echo(diffout.to_text(result.results, result.problems, color=colour), nl=False)
        for line in diffout.gitops_lines(gitops):
            click.echo(line)
    sys.exit(diffout.exit_code(result.results, result.problems,
                               partial=bool(result.skipped_kinds),
                               zero_on_partial=exit_zero_on_partial))


def _actors_line(outcome: Any, cfg: Config) -> str:
    """Who the run's actors are: authenticated users, or the names clients declared."""
    from auditor.ledger.auditlog import ACTORS_AUDITED

    if outcome.counters.get("actors") != ACTORS_AUDITED:
        return f"note: {DECLARED_ACTORS}"
    spoofed = sum(1 for r in outcome.audit.results for d in r.drifts if d.spoofed)
    line = "actors: authenticated users from the API-server audit log"
    if not cfg.compare.gitops_identities:
        return f"{line}; {NAMED_GITOPS}"
    if spoofed:
        line += f"; {spoofed} drifted path(s) written under a GitOps manager's name by another user"
    return line


def _run_summary(outcome: Any, color: bool, cfg: Config) -> str:
    """The one-screen summary a CronJob log or a terminal shows at the end of a run."""
    from auditor.outputs import diffout
    from auditor.outputs.diffout import to_text

    audit = outcome.audit
    c = audit.counts
    led = outcome.ledger
    resolved = sum(led.get("drifts_resolved", {}).values())
    not_in_sync = [r for r in audit.results if r.status not in ("in-sync", "ignored")]
    lines = [
        f"run {outcome.run_id}: {outcome.status} · {len(audit.results)} objects: "
        f"{c['in-sync']} in sync, {c['drifted']} drifted, {c['missing']} missing, "
        f"{c['orphan']} orphan" + (f", {c['ignored']} ignored" if c["ignored"] else ""),
        f"drift: {led.get('drifts_opened', 0)} opened, {led.get('drifts_still_open', 0)} still "
        f"open, {resolved} resolved, {led.get('drifts_accepted', 0)} accepted · "
        f"changes recorded: {led.get('changes', 0)} · ledger head #{outcome.head_seq} "
        f"{outcome.head_hash[:12]}",
    ]
    policy = outcome.counters.get("policy")
    if policy:
        lines.append(f"policies: compliance score {policy['score']:.1f} · {policy['failing']} "
                     f"failing results ({policy['newly_failing']} new) · "
                     "`drift-auditor policies check` for details")
    if audit.desired.commits:
        lines.append("git: " + ", ".join(f"{name}@{sha[:10]}"
                                         for name, sha in sorted(audit.desired.commits.items())))
    if audit.skipped_kinds:
        lines.append("skipped kinds (not audited this run): " + ", ".join(audit.skipped_kinds))
    gitops = outcome.counters.get("gitops")
    if gitops:
        lines.append(f"gitops: {len(gitops['sources'])} source(s) from the controllers, "
                     f"{len(gitops['skipped'])} skipped, {len(gitops['sync_lag'])} behind Git, "
                     f"{len(gitops['not_under_gitops'])} namespace(s) not under GitOps")
        lines.extend(diffout.gitops_lines(gitops))
    lines.append(_actors_line(outcome, cfg))
    shown = not_in_sync[:15]
    if shown:
        lines.append("")
        lines.append(to_text(shown, (), color=color).rstrip("\n").rsplit("\n", 1)[0])
        if len(not_in_sync) > len(shown):
            lines.append(f"… and {len(not_in_sync) - len(shown)} more "
                         "(`drift-auditor history` or `diff` for all)")
    for p in audit.problems:
        lines.append(f"{p.kind}: {p.where}: {p.message}")
    return "\n".join(lines) + "\n"


@click.command()
@cluster_options
@click.option("--desired", "desired_path", metavar="PATH",
              help="Override the configured sources with a folder or repo.")
@click.option("--revision", help="Branch, tag or sha when --desired is a repo.")
@click.option("--audit-log", type=click.Path(exists=True, dir_okay=False),
              help=_AUDIT_LOG_HELP)
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              help="Ledger file (default: ledger.path from the configuration).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the `diff` document plus the run's ledger summary.")
@click.option("--color/--no-color", default=None, help="Colour the summary (default: when "
              "stdout is a terminal and NO_COLOR is not set).")
@click.option("--exit-zero-on-drift", is_flag=True,
              help="Exit 0 when drift is found (a result, not a failure: for CronJobs, whose "
                   "Job should fail only when the audit itself fails or is partial).")
@click.option("--exit-zero-on-partial", is_flag=True, help=_ZERO_ON_PARTIAL_HELP)
@click.pass_obj
@handle_errors
def run(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
        desired_path: str | None, revision: str | None, audit_log: str | None,
        ledger_path: str | None, output: str, color: bool | None,
        exit_zero_on_drift: bool, exit_zero_on_partial: bool) -> None:
    """One audit cycle (the CronJob's job): Git and cluster compared, recorded in the ledger.

    Exit 0 in sync, 1 drift/missing/orphan, 2 error, 3 partial: the run is recorded as
    `partial` because a kind could not be listed (403, or failing on and on); its objects
    were not audited and the skipped kinds are named in the summary and on Slack.
    """
    import orjson

    from auditor.outputs import diffout
    from auditor.pipeline import run_once
    overrides = cluster_overrides(kubeconfig, context, in_cluster)
    if ledger_path:
        overrides["ledger"] = {"path": ledger_path}
    cfg = obj.load(overrides)
    outcome = run_once(cfg, audit_log=audit_log, tools_dir=tools_dir(),
                       desired_path=desired_path, revision=revision,
                       progress=progress_factory(),
                       config_origin=obj.origin(), env=os.environ)
    from auditor.ledger import keyfile

    keyfile.announce_created()  # a key made by this run: its public key, for the auditor
    # Outputs read the ledger the run just wrote; their failures never undo the audit.
    from auditor.ledger.backend import configured_ledger
    from auditor.outputs import alerts, metrics

    # The run's own ledger: the file at ledger.path, or this cluster's in the store.
    written = configured_ledger(cfg.ledger)
    alert_report = alerts.after_run(cfg, written, outcome.run_id, env=os.environ)
    metrics_report = metrics.after_run(cfg, written)
    if output == "json":
        doc = orjson.loads(diffout.to_json(outcome.audit.results, outcome.audit.problems,
                                           outcome.counters.get("gitops")))
        doc["run"] = {"id": outcome.run_id, "status": outcome.status,
                      "skipped_kinds": outcome.audit.skipped_kinds, "ledger": outcome.ledger,
                      "policy": outcome.counters.get("policy"),
                      "actors": outcome.counters.get("actors"),
                      "head_seq": outcome.head_seq, "head_hash": outcome.head_hash,
                      "alerts": alert_report.to_dict(), "metrics": metrics_report.to_dict()}
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2
                                             | orjson.OPT_APPEND_NEWLINE))
    else:
        colour = use_color(color)
        click.echo(_run_summary(outcome, colour, cfg), nl=False)
        for line in (alert_report.line(), *metrics_report.lines()):
            if line:
                click.echo(line)
    # The ledger's verdict decides: a run it recorded as partial is not a clean audit.
    sys.exit(diffout.exit_code(outcome.audit.results, outcome.audit.problems,
                               partial=outcome.status == "partial",
                               zero_on_drift=exit_zero_on_drift,
                               zero_on_partial=exit_zero_on_partial))


COMMANDS = (run, diff, snapshot)
