"""The ``drift-auditor`` command: a thin layer that builds the configuration once, calls the
library, and turns every :class:`AuditorError` into one readable line and exit status 2."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from auditor import __version__
from auditor import config as config_mod
from auditor.errors import AuditorError

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("auditor")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        # The kubernetes client and urllib3 are chatty at INFO; their news is ours to tell.
        for noisy in ("urllib3", "kubernetes", "git"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def handle_errors(fn: F) -> F:
    """Run a command; an ``AuditorError`` becomes one line on stderr and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AuditorError as exc:
            click.echo(f"drift-auditor: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("drift-auditor: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class Context:
    """What every command gets: the config file path and the flag overrides so far."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def load(self, overrides: dict[str, Any] | None = None) -> config_mod.Config:
        return config_mod.load(self.config_path, env=os.environ, overrides=overrides or {})


def _cluster_overrides(kubeconfig: str | None, context: str | None,
                       in_cluster: bool) -> dict[str, Any]:
    cluster: dict[str, Any] = {}
    if kubeconfig:
        cluster["kubeconfig"] = kubeconfig
    if context:
        cluster["context"] = context
    if in_cluster:
        cluster["in_cluster"] = True
    return {"cluster": cluster} if cluster else {}


def cluster_options(fn: F) -> F:
    fn = click.option("--in-cluster", is_flag=True, help="Use the pod's service account.")(fn)
    fn = click.option("--context", help="kubeconfig context to use.")(fn)
    fn = click.option("--kubeconfig", type=click.Path(dir_okay=False),
                      help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drift-auditor")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (default: $DRIFT_AUDITOR_CONFIG or ./drift-auditor.yaml).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Keep a Kubernetes cluster honest against Git."""
    _setup_logging(verbose, quiet)
    ctx.obj = Context(config_path)


# ------------------------------------------------------------------ config


@main.command("config")
@click.pass_obj
@handle_errors
def config_cmd(obj: Context) -> None:
    """Validate the configuration and print the effective settings as YAML."""
    cfg = obj.load()
    click.echo(config_mod.dump(cfg), nl=False)
    click.echo(f"# config hash: {cfg.digest()}")


# ----------------------------------------------------------------- sandbox


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
@click.option("--seed", "seed", type=click.Path(exists=True),
              help="Objects to load at start (a List/manifest file or a folder).")
@click.option("--kubeconfig-out", type=click.Path(dir_okay=False),
              help="Write a kubeconfig for the sandbox here.")
@handle_errors
def sandbox(host: str, port: int, seed: str | None, kubeconfig_out: str | None) -> None:
    """Run the local sandbox Kubernetes API server in the foreground (Ctrl-C stops it)."""
    import signal
    import threading

    from auditor.live.snapshot import read_snapshot
    from auditor.sandbox import Sandbox

    sb = Sandbox(host=host, port=port)
    if seed:
        sb.load(read_snapshot(seed))
    sb.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"sandbox API server listening on {sb.url}")
    if kubeconfig_out:
        click.echo(f"kubeconfig written to {sb.write_kubeconfig(kubeconfig_out)}")
    try:
        stop.wait()
    finally:
        sb.stop()


# ---------------------------------------------------------------- snapshot


@main.command()
@cluster_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write the List here (default: stdout).")
@click.pass_obj
@handle_errors
def snapshot(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
             output: str) -> None:
    """Write the cluster's live, in-scope objects as a `kubectl get -o json` style List."""
    from auditor.live.client import Cluster, ListStats
    from auditor.live.snapshot import take
    from auditor.support import secretkey
    from auditor.support.progress import Progress

    cfg = obj.load(_cluster_overrides(kubeconfig, context, in_cluster))
    key = (secretkey.load_key(cfg.compare.secret_hash_key_file)
           if cfg.compare.secret_hash_key_file else
           secretkey.load_or_create(Path(cfg.ledger.path).with_suffix(".key")))
    stats = ListStats()
    with Cluster(cfg.cluster) as cluster:
        progress = Progress("listing")

        def on_kind(resource: Any, objects: int, ok: bool) -> None:
            progress.advance(resource.group_kind, objects, ok)

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
        progress.finish()
    for problem in stats.problems:
        click.echo(f"warning: skipped {problem.where}: {problem.message}", err=True)
    click.echo(f"{written.objects} objects from {stats.kinds - len(stats.skipped_kinds)} kinds"
               f"{f' ({len(stats.skipped_kinds)} skipped)' if stats.skipped_kinds else ''}",
               err=True)


# -------------------------------------------------------------------- diff


def tools_dir() -> str | None:
    """Where `make tools` put kubectl 1.35 and helm (``$DRIFT_AUDITOR_TOOLS``), if set."""
    return os.environ.get("DRIFT_AUDITOR_TOOLS") or None


@main.command()
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
              "(default: when stdout is a terminal).")
@click.pass_obj
@handle_errors
def diff(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
         desired_path: str | None, revision: str | None, namespace: str | None,
         live_file: str | None, output: str, color: bool | None) -> None:
    """Compare Git with the cluster. Exit 0 in sync, 1 drift/missing/orphan, 2 error."""
    from auditor.outputs import diffout
    from auditor.pipeline import audit
    from auditor.support.progress import Progress

    cfg = obj.load(_cluster_overrides(kubeconfig, context, in_cluster))
    result = audit(cfg, desired_path=desired_path, revision=revision, live_file=live_file,
                   namespace=namespace, tools_dir=tools_dir(),
                   progress=lambda task, total: Progress(task, total))
    if output == "json":
        sys.stdout.buffer.write(diffout.to_json(result.results, result.problems))
        sys.stdout.buffer.flush()
    else:
        use_color = sys.stdout.isatty() if color is None else color
        click.echo(diffout.to_text(result.results, result.problems, color=use_color), nl=False)
    sys.exit(diffout.exit_code(result.results, result.problems))


# --------------------------------------------------------------------- run


def _run_summary(outcome: Any, color: bool) -> str:
    """The one-screen summary a CronJob log or a terminal shows at the end of a run."""
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
        lines.append("skipped kinds: " + ", ".join(audit.skipped_kinds))
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


@main.command()
@cluster_options
@click.option("--desired", "desired_path", metavar="PATH",
              help="Override the configured sources with a folder or repo.")
@click.option("--revision", help="Branch, tag or sha when --desired is a repo.")
@click.option("--audit-log", type=click.Path(exists=True, dir_okay=False),
              help="API-server audit log (JSON lines of audit.k8s.io/v1 Events) naming the "
                   "users behind changes.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              help="Ledger file (default: ledger.path from the configuration).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the `diff` document plus the run's ledger summary.")
@click.option("--color/--no-color", default=None)
@click.option("--exit-zero-on-drift", is_flag=True,
              help="Exit 0 when drift is found (a result, not a failure: for CronJobs, whose "
                   "Job should fail only when the audit itself fails).")
@click.pass_obj
@handle_errors
def run(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
        desired_path: str | None, revision: str | None, audit_log: str | None,
        ledger_path: str | None, output: str, color: bool | None,
        exit_zero_on_drift: bool) -> None:
    """One audit cycle (the CronJob's job): Git and cluster compared, recorded in the ledger.

    Exit 0 in sync, 1 drift/missing/orphan, 2 error.
    """
    import orjson

    from auditor.outputs import diffout
    from auditor.pipeline import run_once
    from auditor.support.progress import Progress

    overrides = _cluster_overrides(kubeconfig, context, in_cluster)
    if ledger_path:
        overrides["ledger"] = {"path": ledger_path}
    cfg = obj.load(overrides)
    outcome = run_once(cfg, audit_log=audit_log, tools_dir=tools_dir(),
                       desired_path=desired_path, revision=revision,
                       progress=lambda task, total: Progress(task, total))
    # Outputs read the ledger the run just wrote; their failures never undo the audit.
    from auditor.outputs import alerts, metrics

    alert_report = alerts.after_run(cfg, cfg.ledger.path, outcome.run_id, env=os.environ)
    metrics_report = metrics.after_run(cfg, cfg.ledger.path)
    if output == "json":
        doc = orjson.loads(diffout.to_json(outcome.audit.results, outcome.audit.problems))
        doc["run"] = {"id": outcome.run_id, "status": outcome.status, "ledger": outcome.ledger,
                      "policy": outcome.counters.get("policy"),
                      "head_seq": outcome.head_seq, "head_hash": outcome.head_hash,
                      "alerts": alert_report.to_dict(), "metrics": metrics_report.to_dict()}
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2
                                             | orjson.OPT_APPEND_NEWLINE))
    else:
        use_color = sys.stdout.isatty() if color is None else color
        click.echo(_run_summary(outcome, use_color), nl=False)
        for line in (alert_report.line(), *metrics_report.lines()):
            if line:
                click.echo(line)
    code = diffout.exit_code(outcome.audit.results, outcome.audit.problems)
    sys.exit(0 if code == 1 and exit_zero_on_drift else code)


def _register_commands() -> None:
    """Commands that live beside the library they drive, each module listing its own."""
    from auditor.adopt_cli import COMMANDS as adopt_commands
    from auditor.ledger.cli import COMMANDS as ledger_commands
    from auditor.notify_cli import COMMANDS as notify_commands
    from auditor.policies.cli import COMMANDS as policy_commands
    from auditor.report.cli import COMMANDS as report_commands
    from auditor.web.serve import COMMANDS as serve_commands

    # notify_cli's metrics-only `serve` predates the UI; the UI serves /metrics too.
    for command in (*ledger_commands, *notify_commands, *adopt_commands, *policy_commands,
                    *report_commands, *serve_commands):
        main.add_command(command)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
