"""The alert and metrics commands: ``alerts send``, ``alerts status`` and ``metrics``."""

from __future__ import annotations

import os
import sys

import click

from auditor.cli.common import guarded, load_config
from auditor.cli.ledger import store_ledger_option
from auditor.errors import DeliveryError


@click.group("alerts")
def alerts_group() -> None:
    """Slack alerts from the ledger (queued in its outbox until delivered)."""


@alerts_group.command("send")
@store_ledger_option
@click.option("--dry-run", is_flag=True,
              help="Show what is pending and what would be queued; send and record nothing.")
def send_cmd(ledger_path: str | None, dry_run: bool) -> None:
    """Queue alerts for what the ledger recorded since the last delivery, then deliver
    everything pending. Exit 2 when messages remain undelivered (they stay queued)."""

    def body() -> None:
        from auditor.ledger import backend
        from auditor.outputs import alerts

        cfg = load_config()
        # --ledger (a file, or URL#CLUSTER), else the configured ledger (file or store).
        report = alerts.send(cfg, backend.writer_target(ledger_path, cfg.ledger),
                             env=os.environ, dry_run=dry_run)
        if not report.enabled:
            click.echo(report.line())
            return
        if dry_run:
            for preview in report.previews:
                click.echo(preview + "\n")
            click.echo(f"dry run: {len(report.previews)} message(s); nothing sent or recorded")
            return
        click.echo(report.line())
        if report.enabled and report.pending:
            raise DeliveryError(f"{report.pending} message(s) still queued"
                                + (f": {report.errors[-1]}" if report.errors else ""))

    guarded(body)


@alerts_group.command("status")
@store_ledger_option
def status_cmd(ledger_path: str | None) -> None:
    """Show the outbox: counts, and each undelivered message with its last error."""

    def body() -> None:
        from auditor.ledger import backend
        from auditor.outputs import alerts

        cfg = load_config()
        for line in alerts.status(backend.writer_target(ledger_path, cfg.ledger)):
            click.echo(line)

    guarded(body)


@click.command("metrics")
@store_ledger_option
@click.option("--textfile", type=click.Path(dir_okay=False),
              help="Write the exposition here for node-exporter's textfile collector "
                   "(atomic rename; default: metrics.textfile).")
@click.option("--pushgateway", metavar="URL",
              help="Push to this Pushgateway, grouped by job and cluster "
                   "(default: metrics.pushgateway).")
@click.option("--print", "print_", is_flag=True, help="Print the exposition on stdout.")
def metrics_cmd(ledger_path: str | None, textfile: str | None, pushgateway: str | None,
                print_: bool) -> None:
    """Prometheus metrics from the ledger: print, write a textfile and/or push."""

    def body() -> None:
        from auditor.ledger import backend
        from auditor.outputs import metrics

        cfg = load_config()
        # --ledger (a file, URL#CLUSTER, a store holding one cluster), else the configured one.
        path = backend.one_reader(ledger_path, cfg.ledger)
        target_file = textfile or cfg.metrics.textfile
        target_gw = pushgateway or cfg.metrics.pushgateway
        snap = metrics.snapshot(cfg, path)  # one reading for every destination
        if print_ or not (target_file or target_gw):
            sys.stdout.write(metrics.exposition(cfg, path, snap))
        report = metrics.deliver(cfg, path, textfile=target_file, pushgateway=target_gw,
                                 snap=snap)
        for line in report.lines():
            click.echo(line, err=True)

    guarded(body)


COMMANDS = (alerts_group, metrics_cmd)
