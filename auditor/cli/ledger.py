"""The ledger's commands: ``verify``, ``history``, ``ack`` and ``prune``."""

from __future__ import annotations

from datetime import timedelta

import click
import orjson

from auditor.cli.common import guarded, ledger_option, load_config
from auditor.errors import LedgerError, LedgerTamperedError
from auditor.ledger import history as history_mod
from auditor.ledger import schema, signing, times
from auditor.ledger.verify import verify as verify_ledger

CATEGORIES = ("human", "controller", "gitops", "unknown")


def _ledger_path(explicit: str | None) -> str:
    return explicit or str(load_config().ledger.path)


@click.command("verify")
@ledger_option
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False),
              help="Check checkpoint signatures with this Ed25519 key (PEM public or private "
                   "key; default: ledger.signing-key-file).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(ledger_path: str | None, public_key: str | None, as_json: bool) -> None:
    """Recompute the ledger's hash chain; name the first broken sequence number."""

    def body() -> None:
        path = ledger_path
        key_file = public_key
        if path is None or key_file is None:
            cfg = load_config()
            path = path or cfg.ledger.path
            key_file = key_file or cfg.ledger.signing_key_file or None
        public = signing.load_public_key(key_file) if key_file else None
        # Read-only, never migrated: a damaged file or a missing table is one line (exit 2).
        with schema.reading_checked(path) as conn:
            result = verify_ledger(conn, public)
        if as_json:
            click.echo(orjson.dumps({
                "ok": result.ok, "checked": result.checked,
                "first_broken_seq": result.first_broken_seq, "message": result.message,
                "head_seq": result.head_seq, "head_hash": result.head_hash,
                "checkpoints": result.checkpoints, "signatures": result.signatures,
                "problems": [{"seq": s, "message": m} for s, m in result.problems]},
                option=orjson.OPT_INDENT_2).decode())
        elif result.ok:
            click.echo(result.message)
        if not result.ok:
            raise LedgerTamperedError(f"{path}: {result.message}")

    guarded(body)


def _since(text: str | None) -> str | None:
    """A period bound: an ISO time, or a duration meaning that long ago (``7d``)."""
    if not text:
        return None
    return times.stamp(times.parse(text, what="--since/--until", ago=True))


@click.command("history")
@ledger_option
@click.option("--object", "object_", help="Object key: 'Deployment.apps shop/web', 'shop/web' or 'web'.")
@click.option("-n", "--namespace", help="Only this namespace.")
@click.option("--kind", help="Only this kind ('Deployment' or 'Deployment.apps').")
@click.option("--actor", help="Field manager or user (exact).")
@click.option("--category", type=click.Choice(CATEGORIES), help="Actor category.")
@click.option("--since", help="From this time (ISO 8601) or this long ago (7d, 12h).")
@click.option("--until", help="Before this time (ISO 8601) or this long ago.")
@click.option("--type", "type_", type=click.Choice(("all", *history_mod.TYPES)), default="all",
              show_default=True,
              help="Live changes, drift lifecycle events, the API server's audit writes, or "
                   "all of them. A change or write no scheduled run saw as current is "
                   "marked [transient] (JSON/CSV: transient).")
@click.option("--limit", type=int, help="At most this many entries (oldest first).")
@click.option("-o", "--output", "fmt", type=click.Choice(("text", "json", "csv")), default="text",
              show_default=True)
def history_cmd(ledger_path: str | None, object_: str | None, namespace: str | None,
                kind: str | None, actor: str | None, category: str | None, since: str | None,
                until: str | None, type_: str, limit: int | None, fmt: str) -> None:
    """Who changed what and when: live changes and drift events from the ledger."""

    def body() -> None:
        with schema.reading_checked(_ledger_path(ledger_path)) as conn:
            entries = history_mod.query(conn, history_mod.HistoryFilter(
                object=object_, namespace=namespace, kind=kind, actor=actor, category=category,
                since=_since(since), until=_since(until),
                types=history_mod.TYPES if type_ == "all" else (type_,), limit=limit))
        click.echo(history_mod.render(entries, fmt), nl=False)

    guarded(body)


@click.command("ack")
@ledger_option
@click.argument("target")
@click.option("--by", required=True, help="Who accepts the drift (recorded in the ledger).")
@click.option("--reason", required=True, help="Why it is acceptable (recorded in the ledger).")
@click.option("--expires", help="Until when: ISO 8601 time or a duration (30d, 12h). "
                                "Default: until the drift changes or resolves.")
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for a running run to release the ledger.")
def ack_cmd(ledger_path: str | None, target: str, by: str, reason: str, expires: str | None,
            wait: float) -> None:
    """Accept an open drift, by drift id or object key ('Deployment.apps shop/web')."""

    def body() -> None:
        from auditor import __version__
        from auditor.ledger.store import Ledger

        cfg = load_config()
        with Ledger.open(ledger_path or cfg.ledger.path, tool_version=__version__,
                         config_hash=cfg.digest(),
                         signing_key_file=cfg.ledger.signing_key_file or None,
                         lock_wait=wait) as ledger:
            drift_id = ledger.ack(target, by=by, reason=reason, expires=expires)
        click.echo(f"drift {drift_id} accepted by {by}"
                   f"{' until ' + expires if expires else ''}")

    guarded(body)


@click.command("prune")
@ledger_option
@click.option("--days", type=int, help="Delete object content older than this many days "
                                       "(default: ledger.retention-days).")
@click.option("--vacuum", is_flag=True, help="Rewrite the file afterwards to return the space.")
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for a running run to release the ledger.")
def prune_cmd(ledger_path: str | None, days: int | None, vacuum: bool, wait: float) -> None:
    """Apply retention: drop old object content, keep drifts, changes and the chain."""

    def body() -> None:
        from auditor import __version__
        from auditor.ledger.store import Ledger

        cfg = load_config()
        keep = days if days is not None else cfg.ledger.retention_days
        if not keep:
            raise LedgerError("retention is off: set ledger.retention-days or pass --days")
        with Ledger.open(ledger_path or cfg.ledger.path, tool_version=__version__,
                         config_hash=cfg.digest(),
                         signing_key_file=cfg.ledger.signing_key_file or None,
                         lock_wait=wait) as ledger:
            count = ledger.prune(keep, vacuum=vacuum)
        cutoff = times.stamp(times.now() - timedelta(days=keep))
        click.echo(f"pruned the content of {count} object versions observed before {cutoff}")

    guarded(body)


COMMANDS = (verify_cmd, history_cmd, ack_cmd, prune_cmd)
