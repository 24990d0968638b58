"""The ledger's commands: ``verify`` (the chain, anchors outside the cluster, report
manifests), ``public-key``, ``history``, ``ack``, ``respond``, ``prune`` and ``ledger copy``
(an SQLite ledger into the PostgreSQL fleet store).

``ack`` and ``respond`` record, beside the free-text ``--by``, who ran them as
authenticated (:mod:`auditor.cli.identity`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from auditor.cli.common import (
    LazyChoice,
    cluster_options,
    cluster_overrides,
    guarded,
    ledger_option,
    load_config,
)
from auditor.cli.durations import EXAMPLES, Duration, Moment, stamp
from auditor.errors import LedgerError, LedgerTamperedError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from auditor.config import Config
    from auditor.engine.objectref import ObjectRef
    from auditor.ledger import anchor
    from auditor.ledger.backend import Target
    from auditor.ledger.store import Ledger
    from auditor.ledger.verify import VerifyResult

CATEGORIES = ("human", "controller", "gitops", "unknown")

# --ledger of the commands that take one cluster's ledger, file or store.
store_ledger_option = click.option(
    "--ledger", "ledger_path", type=click.Path(dir_okay=False),
    help="Ledger: a file, or one cluster of the fleet store, postgresql://HOST/DB#CLUSTER "
         "(default: ledger.url and ledger.cluster, else ledger.path).")


@click.command("verify")
@store_ledger_option
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False),
              help="Check checkpoint signatures with this Ed25519 key (PEM public or private "
                   "key; default: ledger.signing-key-file, else the key beside the ledger).")
@click.option("--anchor", "anchor_repo", metavar="REPO",
              help="Also check every checkpoint anchored in this evidence repository (a Git "
                   "URL or path; see ledger.anchor-repo) against the ledger.")
@click.option("--anchor-branch", metavar="BRANCH",
              help="The evidence repository's branch (default: ledger.anchor-branch).")
@click.option("--cluster", "cluster_name", metavar="NAME",
              help="Whose anchors to check (default: cluster.name).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False),
              help="Instead of the ledger, check a report's manifest "
                   "(<report>.manifest.json): every file's SHA-256 and the signature.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--all", "every", is_flag=True,
              help="Every cluster of the PostgreSQL fleet store (--ledger postgresql://HOST/DB, "
                   "else ledger.url), each verified and named; exit 1 naming only the clusters "
                   "that fail (one line on stderr). Signatures are checked only with "
                   "--public-key (one key for all).")
def verify_cmd(ledger_path: str | None, public_key: str | None, anchor_repo: str | None,
               anchor_branch: str | None, cluster_name: str | None, manifest: str | None,
               as_json: bool, every: bool) -> None:
    """Recompute the ledger's hash chain; name the first broken sequence number. With
    --anchor, name the first anchored checkpoint the ledger no longer holds. The ledger is a
    file or one cluster of the fleet store (postgresql://HOST/DB#CLUSTER); --all verifies
    every cluster of the store."""

    def body() -> None:
        from auditor.ledger import anchor, backend, keyfile, schema, signing
        from auditor.ledger.verify import verify as verify_ledger

        if every:
            _verify_all(ledger_path, public_key, as_json,
                        refused="--anchor" if anchor_repo else "--manifest" if manifest else "")
            return
        target: backend.Target | None = Path(ledger_path) if ledger_path else None
        key_file = public_key
        cfg = None
        if target is None or key_file is None or anchor_repo or backend.is_url(ledger_path):
            cfg = load_config()
            target = _verified(ledger_path, cfg)
            key_file = key_file or keyfile.signing_key_file(cfg.ledger,
                                                            backend.key_location(target))
        assert target is not None
        public = signing.load_public_key(key_file) if key_file else None
        if manifest:
            _check_manifest(manifest, public, as_json)
            return
        records = _anchors(cfg, anchor_repo, anchor_branch, cluster_name) \
            if cfg is not None and anchor_repo else None
        # Read-only, never migrated: a damaged file or a missing table is one line (exit 2).
        shown = str(target)
        with backend.reader(target) as conn:
            if isinstance(target, backend.StoreLedger):
                # Server, database and cluster, never a password.
                shown = schema.path_of(conn)
            result = verify_ledger(conn, public)
            anchored = anchor.check(conn, records, public) if records is not None else None
        if as_json:
            doc = _verify_doc(result)
            if anchored is not None:
                first = anchored.first_mismatch
                doc["anchors"] = {"ok": anchored.ok, "checked": anchored.checked,
                                  "signatures": anchored.signatures,
                                  "message": anchored.message,
                                  "first_mismatch_seq": first.seq if first else None}
                doc["ok"] = result.ok and anchored.ok
            click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        elif result.ok and (anchored is None or anchored.ok):
            # A failure is one line, on stderr; what passed is said only when all did.
            click.echo(result.message)
            if anchored is not None:
                click.echo(anchored.message)
        if not result.ok:
            raise LedgerTamperedError(f"{shown}: {result.message}")
        if anchored is not None and not anchored.ok:
            raise LedgerTamperedError(f"{shown}: {anchored.message}")

    guarded(body)


def _verified(given: str | None, cfg: Config) -> Target:
    """The one ledger ``verify`` checks: ``--ledger`` (a file, ``URL#CLUSTER``; a URL alone
    is ``ledger.cluster`` there, else the store's only cluster), else the configured one."""
    from auditor.ledger import backend

    if given and backend.is_url(given) and "#" not in given and not cfg.ledger.cluster:
        return backend.one_reader(given, cfg.ledger)
    return backend.writer_target(given, cfg.ledger)


def _verify_doc(result: VerifyResult) -> dict[str, object]:
    return {"ok": result.ok, "checked": result.checked,
            "first_broken_seq": result.first_broken_seq, "message": result.message,
            "head_seq": result.head_seq, "head_hash": result.head_hash,
            "checkpoints": result.checkpoints, "signatures": result.signatures,
            "problems": [{"seq": s, "message": m} for s, m in result.problems]}


def _verify_all(given: str | None, public_key: str | None, as_json: bool, *,
                refused: str) -> None:
    """``verify --all``: every cluster of the store, each in its own snapshot. What passes
    is printed per cluster; one line on stderr names only the failing clusters (exit 1)."""
    from auditor.ledger import backend, signing
    from auditor.ledger.verify import verify as verify_ledger

    if refused:
        raise LedgerError(f"verify --all: {refused} checks one ledger; name it with "
                          "--ledger URL#CLUSTER instead")
    cfg = load_config()
    url = (given or cfg.ledger.url).partition("#")[0]
    if not backend.is_url(url):
        raise LedgerError("verify --all: every cluster of a PostgreSQL fleet store; give "
                          "--ledger postgresql://HOST/DB (or set ledger.url)")
    # Each cluster signs with its own key: --public-key is one key for all, else no
    # signature is checked (the chain and checkpoints still are).
    public = signing.load_public_key(public_key) if public_key else None
    docs: dict[str, dict[str, object]] = {}
    failed: list[str] = []
    for target in backend.parse_target(url, password=cfg.ledger.read_password()):
        name = target.name
        try:
            with backend.reader(target) as conn:
                result = verify_ledger(conn, public)
        except LedgerError as exc:  # unreadable (a missing table): that cluster fails
            docs[name] = {"ok": False, "message": str(exc)}
            failed.append(f"{name}: {exc}")
            continue
        docs[name] = _verify_doc(result)
        if not result.ok:
            failed.append(f"{name}: {result.message}")
        elif not as_json:
            click.echo(f"{name}: {result.message}")
    if as_json:
        click.echo(orjson.dumps({"ok": not failed, "store": url, "clusters": docs},
                                option=orjson.OPT_INDENT_2).decode())
    if failed:
        # A finding about some clusters, as a fleet report's failing member: exit 1 (2 stays
        # for errors: no store, a bad option), the failing clusters only, one line.
        click.echo(f"drift-auditor: {len(failed)} of {len(docs)} clusters of {url} fail "
                   "verification: " + "; ".join(failed), err=True)
        sys.exit(1)


def _anchors(cfg: Config, repo: str, branch: str | None,
             cluster: str | None) -> list[anchor.AnchorRecord]:
    """The anchors of ``cluster`` on ``branch`` of the evidence repository ``repo``, read
    from a fresh clone: nothing left on this machine stands in for the repository."""
    import tempfile

    from auditor.desired import gitrepo
    from auditor.ledger import anchor

    name = cluster or cfg.cluster.name
    branch = branch or cfg.ledger.anchor_branch
    rel = anchor.file_for(name)
    shown = f"{gitrepo.redact_url(repo)} ({branch}:{rel})"
    with tempfile.TemporaryDirectory(prefix="drift-auditor-anchors-") as tmp:
        text = gitrepo.read_evidence(repo, branch, rel, cache_dir=Path(tmp),
                                     credentials=cfg.ledger.anchor_credentials,
                                     secrets_env=os.environ)
    records = [r for r in anchor.parse(text or "", shown) if r.cluster == name]
    if not records:
        raise LedgerError(f"{shown}: no anchored checkpoint of cluster {name}: nothing to "
                          "check the ledger against")
    return records


def _check_manifest(path: str, public: Ed25519PublicKey | None, as_json: bool) -> None:
    from auditor.report import manifest

    result = manifest.check(Path(path), public)
    if as_json:
        click.echo(orjson.dumps({"ok": result.ok, "files": result.files, "signed": result.signed,
                                 "message": result.message},
                                option=orjson.OPT_INDENT_2).decode())
    elif result.ok:
        click.echo(result.message)
    if not result.ok:
        raise manifest.ReportTamperedError(f"{path}: {result.message}")


@click.command("public-key")
@store_ledger_option
@click.option("--fingerprint", "only_fingerprint", is_flag=True,
              help="Print only the key's fingerprint (as anchors and manifests name it).")
def public_key_cmd(ledger_path: str | None, only_fingerprint: bool) -> None:
    """Print the public key (PEM) that checks this ledger's checkpoints, anchors and report
    manifests: give it to the auditor (`verify --public-key FILE`)."""

    def body() -> None:
        from auditor.ledger import backend, keyfile

        cfg = load_config()
        # The configured ledger is the store's with ledger.url: its key is never "beside".
        path = ledger_path or cfg.ledger.target
        key_file = keyfile.signing_key_file(cfg.ledger, path)
        if key_file is None:
            if not cfg.ledger.sign:
                raise LedgerError("ledger.sign is false: checkpoints are not signed")
            if backend.is_url(path):
                raise LedgerError("a PostgreSQL ledger is signed only with "
                                  "ledger.signing-key-file, and none is set")
            raise LedgerError(f"no signing key yet: {keyfile.beside(path)} is created by the "
                              "first run (or set ledger.signing-key-file)")
        pem, fingerprint = keyfile.public_pem(key_file)
        if only_fingerprint:
            click.echo(fingerprint)
            return
        click.echo(pem, nl=False)
        click.echo(f"fingerprint {fingerprint} ({key_file})", err=True)

    guarded(body)


def _since(moment: datetime | None) -> str | None:
    """A period bound as the ledger writes times (``--since``/``--until`` are parsed by
    :class:`~auditor.cli.durations.Moment`: an ISO time, or a duration meaning that long
    ago)."""
    return stamp(moment) if moment is not None else None


OBJECT_HELP = ("kubectl's TYPE/NAME with -n (deploy/web -n shop, clusterrole/admin), "
               "TYPE/NAMESPACE/NAME (Deployment.apps/shop/web), 'TYPE NAMESPACE/NAME' "
               "(as printed: 'Deployment.apps shop/web'), NAMESPACE/NAME or NAME. TYPE: a "
               "Kind, Kind.group, or a kubectl resource name (deployments, deploy, svc, cm, …).")


def object_ref(words: Sequence[str], namespace: str | None, *, what: str,
               allow_id: bool = False) -> ObjectRef:
    """The object ``words`` name (:mod:`auditor.engine.objectref`); a form it cannot read
    is one line, exit 2."""
    from auditor.engine import objectref

    return objectref.parse(words, namespace, what=what, allow_id=allow_id)


def _history_filter(ref: ObjectRef | None) -> dict[str, Any]:
    """The history query's object, namespace and kind for ``ref``; ``exact`` is False when
    the kind must be matched afterwards (a type that is not built in, as typed)."""
    if ref is None:
        return {}
    where = f"{ref.namespace}/" if ref.namespace else ""
    out: dict[str, Any] = {"object": f"{where}{ref.name}"}
    if ref.namespace is not None:
        out["namespace"] = ref.namespace
    if ref.kind is not None and ref.kind_text is None:
        out["kind"] = f"{ref.kind}.{ref.group}" if ref.group else ref.kind
    return out
def _history_types() -> tuple[str, ...]:
    from auditor.ledger import history

    return ("all", *history.TYPES, "config")


@click.command("history")
@ledger_option
@click.option("--object", "object_", metavar="OBJECT", help=OBJECT_HELP)
@click.option("-n", "--namespace", help="Only this namespace (and the namespace of --object).")
@click.option("--kind", help="Only this kind ('Deployment' or 'Deployment.apps').")
@click.option("--actor", help="Field manager or user (exact).")
@click.option("--category", type=click.Choice(CATEGORIES), help="Actor category.")
@click.option("--since", type=Moment(ago=True), metavar="TIME",
              help=f"From this time (ISO 8601) or this long ago ({EXAMPLES}).")
@click.option("--until", type=Moment(ago=True), metavar="TIME",
              help="Before this time (ISO 8601) or this long ago.")
@click.option("--type", "type_", type=LazyChoice(_history_types),
              default="all", show_default=True,
              help="Live changes, drift lifecycle events, the API server's audit writes, or "
                   "all of them. A change or write no scheduled run saw as current is "
                   "marked [transient] (JSON/CSV: transient). `config`: the versions of "
                   "drift-auditor's own configuration, each with its diff, who changed it "
                   "and its approval (only --since, --until and --limit apply).")
@click.option("--limit", type=int, help="At most this many entries (oldest first).")
@click.option("-o", "--output", "fmt", type=click.Choice(("text", "json", "csv")), default="text",
              show_default=True)
def history_cmd(ledger_path: str | None, object_: str | None, namespace: str | None,
                kind: str | None, actor: str | None, category: str | None,
                since: datetime | None, until: datetime | None, type_: str, limit: int | None,
                fmt: str) -> None:
    """Who changed what and when: live changes and drift events from the ledger."""

    def body() -> None:
        from auditor.ledger import backend
        from auditor.ledger import history as history_mod

        # A file, a store cluster (--ledger URL#CLUSTER, or ledger.url + ledger.cluster).
        target = ledger_path if ledger_path and not backend.is_url(ledger_path) else \
            backend.one_reader(ledger_path, load_config().ledger)
        if type_ == "config":
            from auditor.report import configchanges

            with backend.reader(target) as conn:
                versions = configchanges.history(conn, since=_since(since),
                                                 until=_since(until), limit=limit)
            click.echo(configchanges.render(versions, fmt), nl=False)
            return
        ref = object_ref([object_], namespace, what="--object") if object_ is not None \
            else None
        where: dict[str, Any] = {"namespace": namespace, "kind": kind}
        where.update(_history_filter(ref))
        also_kind = kind if ref is not None and ref.group_kind is not None else None
        # A type matched as typed is checked entry by entry, so the limit applies after.
        late = ref is not None and ref.kind_text is not None
        with backend.reader(target) as conn:
            entries = history_mod.query(conn, history_mod.HistoryFilter(
                **where, actor=actor, category=category, since=_since(since),
                until=_since(until), types=history_mod.TYPES if type_ == "all" else (type_,),
                limit=None if late else limit))
        if ref is not None:
            entries = [e for e in entries if ref.kind_matches(e["kind"])
                       and (ref.group is None or e["api_group"] == ref.group)]
        if also_kind:  # --kind beside an --object naming its own type: both apply
            k, _, g = also_kind.partition(".")
            entries = [e for e in entries if e["kind"] == k and (not g or e["api_group"] == g)]
        if late and limit:
            entries = entries[:limit]
        click.echo(history_mod.render(entries, fmt), nl=False)

    guarded(body)


@click.command("ack")
@store_ledger_option
@click.argument("target", nargs=-1, required=True, metavar="OBJECT")
@click.option("-n", "--namespace", help="The object's namespace (for TYPE/NAME and NAME).")
@click.option("--by", required=True, help="Who accepts the drift (recorded in the ledger, "
                                          "beside the identity the cluster authenticates).")
@click.option("--reason", required=True, help="Why it is acceptable (recorded in the ledger).")
@click.option("--expires", type=Moment(ago=False), metavar="TIME",
              help=f"Until when: ISO 8601 time or a duration from now ({EXAMPLES}). "
                   "Default: until the drift changes or resolves.")
@click.option("--ticket", default="", metavar="REF",
              help="The change ticket approving the exception (required, and checked, when "
                   "ledger.ack-ticket-pattern is set).")
@click.option("--allow-self", is_flag=True,
              help="Let the drift's own actor acknowledge it: recorded as self-acknowledged "
                   "and reported as an exception.")
@cluster_options
@click.option("--wait", type=Duration(), default=30.0, show_default=True,
              help="How long to wait for a running run to release the ledger (seconds, or "
                   "a duration such as 2m).")
def ack_cmd(ledger_path: str | None, target: tuple[str, ...], namespace: str | None, by: str,
            reason: str, expires: datetime | None, ticket: str, allow_self: bool,
            kubeconfig: str | None, context: str | None, in_cluster: bool,
            wait: float) -> None:
    """Accept an open drift, by drift id or by object: kubectl's TYPE/NAME with -n
    (deploy/web -n shop), TYPE/NAMESPACE/NAME (Deployment.apps/shop/web), the printed form
    (Deployment.apps shop/web, quoted or as two arguments), NAMESPACE/NAME or NAME."""

    def body() -> None:
        from auditor.cli import identity as identity_mod
        from auditor.ledger.accountability import AckPolicy, check_ticket

        ref = object_ref(target, namespace, what="OBJECT", allow_id=True)
        cfg = load_config(cluster_overrides(kubeconfig, context, in_cluster))
        pattern = cfg.ledger.ack_ticket_pattern
        check_ticket(ticket, pattern)  # before asking the cluster who we are
        who = identity_mod.resolve(cfg.cluster)
        with _writer(cfg, ledger_path, wait) as ledger:
            done = ledger.acknowledge(_open_drift(ledger.conn, ref, " ".join(target)), by=by,
                                      reason=reason, expires=expires, identity=who,
                                      ticket=ticket, policy=AckPolicy(pattern, allow_self))
        click.echo(f"drift {done.drift_id} ({done.key}) accepted by {by} (identity {who})"
                   f"{' until ' + done.until if done.until else ''}"
                   f"{' under ticket ' + ticket.strip() if ticket.strip() else ''}")
        if done.self_acknowledged:
            click.echo(f"drift {done.drift_id}: self-acknowledged by its own actor; the report "
                       "shows it as an exception", err=True)

    guarded(body)


def _writer(cfg: Config, given: str | None, wait: float) -> Ledger:
    """The ledger a writing command opens, locked: ``--ledger`` (a file, or ``URL#CLUSTER``
    of the store), else the configured one (``ledger.url`` + ``ledger.cluster``, else
    ``ledger.path``), signed with the key every writer of it uses."""
    from auditor import __version__
    from auditor.ledger import backend, keyfile
    from auditor.ledger.store import Ledger

    target = backend.writer_target(given, cfg.ledger)
    where, store = backend.location(target)
    return Ledger.open(where, tool_version=__version__, config_hash=cfg.digest(),
                       signing_key_file=keyfile.signing_key_file(
                           cfg.ledger, backend.key_location(target), create=True),
                       sign=cfg.ledger.sign, lock_wait=wait, **store)


def _open_drift(conn: Any, ref: ObjectRef, shown: str) -> int:
    """The id of the one open (or accepted) drift on the object ``ref`` names."""
    from auditor.engine.records import ResourceKey
    from auditor.ledger import drifts

    if ref.drift_id is not None:
        return ref.drift_id
    found = [d for d in drifts(conn, ("open", "accepted"))
             if ref.matches(ResourceKey(d["api_group"], d["kind"], d["namespace"], d["name"]))]
    if not found:
        raise LedgerError(f"{shown} ({ref}): no open drift on a matching object")
    if len(found) > 1:
        names = ", ".join(f"{d['id']} ({d['object']})" for d in found)
        raise LedgerError(f"{shown}: matches several open drifts: {names}; name one by id or "
                          "give its type and namespace")
    return int(found[0]["id"])


@click.command("respond")
@store_ledger_option
@click.argument("ref", metavar="EXCEPTION_REF")
@click.option("--by", required=True, help="Who responds for management (recorded beside the "
                                          "identity the cluster authenticates).")
@click.option("--text", required=True, help="The management response.")
@cluster_options
@click.option("--wait", type=Duration(), default=30.0, show_default=True,
              help="How long to wait for a running run to release the ledger (seconds, or "
                   "a duration such as 2m).")
def respond_cmd(ledger_path: str | None, ref: str, by: str, text: str, kubeconfig: str | None,
                context: str | None, in_cluster: bool, wait: float) -> None:
    """Record management's response to an exception: EXCEPTION_REF is a drift (drift:12) or
    a change (change:34). The report shows it next to the exception."""

    def body() -> None:
        from auditor.cli import identity as identity_mod
        from auditor.ledger.accountability import parse_ref

        parse_ref(ref)  # a malformed reference fails before the cluster is asked
        cfg = load_config(cluster_overrides(kubeconfig, context, in_cluster))
        who = identity_mod.resolve(cfg.cluster)
        with _writer(cfg, ledger_path, wait) as ledger:
            rid = ledger.respond(ref, by=by, text=text, identity=who)
        click.echo(f"response {rid} to {ref.strip()} recorded by {by} (identity {who})")

    guarded(body)


@click.command("prune")
@store_ledger_option
@click.option("--days", type=int, help="Delete object content older than this many days "
                                       "(default: ledger.retention-days).")
@click.option("--vacuum", is_flag=True, help="Rewrite the file afterwards to return the space.")
@click.option("--wait", type=Duration(), default=30.0, show_default=True,
              help="How long to wait for a running run to release the ledger (seconds, or "
                   "a duration such as 2m).")
def prune_cmd(ledger_path: str | None, days: int | None, vacuum: bool, wait: float) -> None:
    """Apply retention: drop old object content, keep drifts, changes and the chain."""

    def body() -> None:
        from auditor.ledger import times

        cfg = load_config()
        keep = days if days is not None else cfg.ledger.retention_days
        if not keep:
            raise LedgerError("retention is off: set ledger.retention-days or pass --days")
        with _writer(cfg, ledger_path, wait) as ledger:
            count = ledger.prune(keep, vacuum=vacuum)
        cutoff = times.stamp(times.now() - timedelta(days=keep))
        click.echo(f"pruned the content of {count} object versions observed before {cutoff}")

    guarded(body)


@click.group("ledger")
def ledger_group() -> None:
    """Move a ledger between backends (the PostgreSQL fleet store: ledger.url)."""


@ledger_group.command("copy")
@click.option("--from", "source", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The SQLite ledger file to copy (verified first).")
@click.option("--to", "url", metavar="URL",
              help="The PostgreSQL fleet store, postgresql://… (default: ledger.url; the "
                   "password comes from ledger.password-file).")
@click.option("--cluster", "cluster", metavar="NAME",
              help="The cluster whose (empty) ledger receives the copy (default: "
                   "ledger.cluster).")
@click.option("--wait", type=Duration(), default=0.0, show_default=True,
              help="How long to wait for a writer of that cluster to finish (seconds, or a "
                   "duration such as 2m).")
def copy_cmd(source: str, url: str | None, cluster: str | None, wait: float) -> None:
    """Copy an SQLite ledger into the PostgreSQL fleet store: every table's rows in key
    order, one transaction; both sides verify with the same head."""

    def body() -> None:
        from auditor.ledger import backend
        from auditor.ledger.transfer import copy_to_store

        cfg = load_config()
        target = url or cfg.ledger.url
        name = cluster or cfg.ledger.cluster
        if not backend.is_url(target):
            raise LedgerError("ledger copy: --to (or ledger.url) must be a postgresql:// URL")
        if not name:
            raise LedgerError("ledger copy: --cluster (or ledger.cluster) names the cluster")
        result = copy_to_store(source, target, name, password=cfg.ledger.read_password(),
                               lock_wait=wait)
        click.echo(f"copied {result.rows} rows of {result.tables} tables from {source} to "
                   f"{result.where}")
        click.echo(f"source: {result.source.message}")
        click.echo(f"copy: {result.destination.message}")

    guarded(body)


COMMANDS = (verify_cmd, public_key_cmd, history_cmd, ack_cmd, respond_cmd, prune_cmd,
            ledger_group)
