"""The ``watch`` command: record every change as it happens (a Deployment beside the
CronJob ``run``), from watch streams and, optionally, the API server's audit events."""

from __future__ import annotations

import os
import sys

import click

from auditor.cli.common import (
    Context,
    cluster_options,
    cluster_overrides,
    handle_errors,
    tools_dir,
)
from auditor.cli.durations import Duration


@click.command()
@cluster_options
@click.option("--desired", "desired_path", metavar="PATH",
              help="Override the configured sources with a folder or repo.")
@click.option("--revision", help="Branch, tag or sha when --desired is a repo.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              help="Ledger file (default: ledger.path from the configuration).")
@click.option("--audit-log", type=click.Path(dir_okay=False),
              help="Tail this API-server audit log (JSON lines; followed across rotation) "
                   "and record its writes (default: watch.audit-log).")
@click.option("--webhook-port", type=int,
              help="Serve the audit webhook on this port (default: watch.webhook-port; "
                   "0: off). Needs watch.webhook-token-file or watch.webhook-client-ca-file.")
@click.option("--for", "duration", type=Duration(), metavar="DURATION",
              help="Stop after this long: 90s, 15m, 1h30m, PT2H or seconds (default: until "
                   "SIGTERM or Ctrl-C).")
@click.pass_obj
@handle_errors
def watch(obj: Context, kubeconfig: str | None, context: str | None, in_cluster: bool,
          desired_path: str | None, revision: str | None, ledger_path: str | None,
          audit_log: str | None, webhook_port: int | None, duration: float | None) -> None:
    """Record each change as it happens: list, then watch every in-scope kind.

    Each batch of changes (at most watch.batch-seconds old) is one watch run in the ledger:
    the object versions with their actors, the drifts opened and resolved at once, each
    kind's resume position. Slack is told as `run` tells it. A restarted watch resumes from
    the positions in the ledger. The scheduled `run` stays the full reconciliation; both may
    write the same ledger (each waits for the other). Stops cleanly on SIGTERM or Ctrl-C,
    after the batch in hand is recorded.
    """
    import signal
    import threading

    from auditor.watch import watch as watch_cluster

    overrides = cluster_overrides(kubeconfig, context, in_cluster)
    if ledger_path:
        overrides["ledger"] = {"path": ledger_path}
    watch_over: dict[str, object] = {}
    if audit_log is not None:
        watch_over["audit_log"] = audit_log
    if webhook_port is not None:
        watch_over["webhook_port"] = webhook_port
    if watch_over:
        overrides["watch"] = watch_over
    cfg = obj.load(overrides)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if duration is not None:
        timer = threading.Timer(max(0.0, duration), stop.set)
        timer.daemon = True
        timer.start()
    outcome = watch_cluster(cfg, stop=stop, env=os.environ, desired_path=desired_path,
                            revision=revision, tools_dir=tools_dir(),
                            config_origin=obj.origin())
    click.echo(f"watch stopped: {outcome.batches} watch runs, {outcome.events} events, "
               f"{outcome.versions} versions, {outcome.deletions} deletions, "
               f"{outcome.opened} drifts opened, {outcome.resolved} resolved")
    for line in outcome.problems:
        click.echo(f"problem: {line}", err=True)
    sys.exit(3 if outcome.skipped_kinds else 0)


COMMANDS = (watch,)
