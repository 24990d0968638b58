"""``drift-auditor report``: the compliance report for a period, from the ledger only, as HTML
(with the change population CSV beside it), CSV or JSON. ``--ledger`` repeated makes a fleet
report (one ledger per cluster, merged by :mod:`auditor.report.fleet`). Files written get a
signed manifest beside them (:mod:`auditor.report.manifest`)."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor.cli.common import LazyChoice, deprecated_alias, guarded, load_config
from auditor.errors import ConfigError

if TYPE_CHECKING:
    from auditor.config import Config
    from auditor.ledger.backend import Target
    from auditor.report.fleet import FleetModel
    from auditor.report.period import Options

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_bound(text: str, *, end: bool) -> datetime:
    """``2026-07-01`` (a whole UTC day: as ``--to`` it includes that day) or an ISO 8601
    date-time (``--to`` exclusive); a time without a zone is UTC."""
    text = text.strip()
    try:
        if _DATE_ONLY.match(text):
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{'--to' if end else '--from'}: {text!r} is not a date (2026-07-01) "
                          "or an ISO 8601 date-time (2026-07-01T00:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _tables() -> tuple[str, ...]:
    from auditor.report.export import TABLES

    return tuple(TABLES)


PERIODS = ("last-day", "last-week", "last-month", "last-quarter", "last-year")


def last_period(name: str, now: datetime) -> tuple[datetime, datetime]:
    """The last complete calendar period ``name`` (one of :data:`PERIODS`) before ``now``, in
    UTC: ``[start, end)``. A week is an ISO week, Monday to Sunday."""
    now = now.astimezone(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if name == "last-day":
        return today - timedelta(days=1), today
    if name == "last-week":
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(days=7), monday
    if name == "last-month":
        end = today.replace(day=1)
        return (end - timedelta(days=1)).replace(day=1), end
    if name == "last-quarter":
        end = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
        last = (end - timedelta(days=1)).replace(day=1)
        return last.replace(month=last.month - 2), end
    if name == "last-year":
        end = today.replace(month=1, day=1)
        return end.replace(year=end.year - 1), end
    raise ConfigError(f"--period: {name!r} is not one of {', '.join(PERIODS)}")


def _default_name(start: datetime, end: datetime) -> str:
    last = end - timedelta(seconds=1)
    return f"drift-report-{start:%Y%m%d}-{last:%Y%m%d}"


FORMATS = ("html", "csv", "json", "all")


class LegacyPath(str):
    """A path given to ``-o``, which named the output file before it named the format."""


class FormatChoice(click.Choice[str]):
    """:data:`FORMATS`; for one release a value that is a path (it has a dot or a slash) is
    still read as the output file, with a deprecation warning."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        if text not in self.choices and ("." in text or "/" in text or os.sep in text):
            click.echo("drift-auditor: warning: -o FILE is deprecated: -o is the format now "
                       f"({'|'.join(FORMATS)}); use --output-file {text}", err=True)
            return LegacyPath(text)
        try:
            return str(super().convert(value, param, ctx))
        except click.BadParameter as exc:
            raise click.BadParameter(f"{exc.message} (for the output file: --output-file)",
                                     ctx, param) from None


# A group that still runs the report itself: ``report --from …`` as always, ``report sample
# …`` for an audit sample. ``--from`` is checked by hand, since a group's required option
# would be demanded before the subcommand's own.
@click.group("report", invoke_without_command=True)
@click.option("--from", "from_", metavar="DATE",
              help="Period start (UTC): a date or an ISO 8601 date-time. Required unless "
                   "--period is given.")
@click.option("--to", "to", metavar="DATE",
              help="Period end (UTC): a date includes that whole day; a date-time is "
                   "exclusive. Default: now.")
@click.option("--period", type=click.Choice(PERIODS),
              help="Instead of --from/--to: the last complete calendar period before now, in "
                   "UTC (a week is an ISO week, Monday to Sunday); for scheduled reports.")
@click.option("--output-file", "output", type=click.Path(), metavar="FILE|DIR",
              help="Output file. HTML default: <reports.directory>/drift-report-FROM-TO.html; "
                   "CSV and JSON default to standard output. With --format all: the folder "
                   "(default: reports.directory).")
@deprecated_alias(("--output",), "output", "--output-file", type=click.Path())
@click.option("-o", "short_fmt", type=FormatChoice(FORMATS), metavar="FORMAT",
              help="The format, as --format.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              default="html", show_default=True,
              help="all: the HTML report, the JSON report and every CSV table, each written "
                   "whole (a temporary file renamed): drift-report-FROM-TO.html, .json and "
                   "-TABLE.csv.")
@click.option("--table", type=LazyChoice(_tables), default="changes", show_default=True,
              help="With --format csv: which table (the change population, drift occurrences, "
                   "the run log, revert attempts, emergency changes, change-completeness "
                   "exceptions, coverage per kind, configuration versions, approvals, "
                   "responses, or the GitOps controllers' sync lag).")
@click.option("--audit-gap-minutes", type=click.IntRange(min=1), default=15, show_default=True,
              help="A stretch without any API-server audit event longer than this is a gap "
                   "of the audit stream (a change-completeness exception).")
@click.option("--ledger", "ledger_paths", type=click.Path(dir_okay=False), multiple=True,
              metavar="FILE|URL[#CLUSTER]",
              help="Ledger file, or the fleet store: postgresql://HOST/DB#CLUSTER for one "
                   "cluster, postgresql://HOST/DB alone for all of its clusters (password from "
                   "ledger.password-file). Default: the configured ledger (ledger.url and "
                   "ledger.cluster, else ledger.path). Repeat it for a fleet report: one "
                   "ledger per cluster, with a per-cluster breakdown.")
@click.option("--title", default="Drift Auditor compliance report", show_default=True)
@click.option("--skip-verify", is_flag=True,
              help="Do not recompute the ledger's hash chain (the report says so).")
@click.option("--prepared-by", default="", metavar="NAME",
              help="Fills \"Prepared by\" in the report's sign-off block (left blank to sign "
                   "by hand otherwise).")
@click.pass_context
def report_cmd(ctx: click.Context, from_: str | None, to: str | None, period: str | None,
               output: str | None, short_fmt: str | None, fmt: str, table: str, audit_gap_minutes: int,
               ledger_paths: tuple[str, ...], title: str, skip_verify: bool,
               prepared_by: str) -> None:
    """Compliance report for a period (SOC 2 control matrix, change population, drift and
    remediation, monitoring completeness), from the ledger only. `report sample` draws an
    audit sample with evidence packets."""
    if ctx.invoked_subcommand is not None:
        return
    if from_ is None and period is None:
        raise click.MissingParameter(ctx=ctx, param_hint="'--from'", param_type="option")

    def run() -> None:
        from auditor.report import export
        from auditor.report.fleet import load_fleet
        from auditor.report.period import Options

        nonlocal fmt, output
        if isinstance(short_fmt, LegacyPath):  # `-o FILE`, as before
            output = output or str(short_fmt)
        elif short_fmt is not None:
            fmt = short_fmt
        if period is not None and (from_ is not None or to is not None):
            raise ConfigError(f"--period {period}: give either --period or --from/--to, not "
                              "both")
        cfg = load_config()
        if period is not None:
            start, end = last_period(period, datetime.now(UTC))
        else:
            assert from_ is not None
            start = parse_bound(from_, end=False)
            # Default: up to now, inclusive. The end is exclusive at the second: the next
            # whole second, so what happened in the current one (a run that just ended) counts.
            end = parse_bound(to, end=True) if to else (
                datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1))
        if end <= start:
            raise ConfigError(f"--to must be after --from (got {start:%Y-%m-%dT%H:%M:%SZ} to "
                              f"{end:%Y-%m-%dT%H:%M:%SZ})")
        if fmt == "all":
            _write_all(cfg, start, end, Path(output) if output else None, ledger_paths,
                       Options(title=title, verify=not skip_verify,
                               audit_gap_minutes=audit_gap_minutes,
                               prepared_by=prepared_by.strip()))
            return
        target: Path | None = Path(output) if output else None
        if fmt == "html" and target is None:
            target = Path(cfg.reports.directory) / f"{_default_name(start, end)}.html"
        csv_path = target.with_suffix(".changes.csv") if fmt == "html" and target else None
        ledgers = report_ledgers(cfg, ledger_paths)
        model = load_fleet(ledgers, start, end, cfg, options=Options(
            title=title, changes_csv_name=csv_path.name if csv_path else "",
            verify=not skip_verify, audit_gap_minutes=audit_gap_minutes,
            prepared_by=prepared_by.strip()))
        report = model.report
        if fmt == "html":
            from auditor.report.html import render_html

            assert target is not None and csv_path is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            # The CSV first: the HTML names it and prints its SHA-256.
            csv_path.write_text(model.population_csv(), encoding="utf-8")
            target.write_text(render_html(report), encoding="utf-8")
            click.echo(f"wrote {target} and {csv_path} ({len(report.changes)} changes, "
                       f"sha256 {report.header.changes_csv_sha256})", err=True)
        else:
            data = (export.to_csv(report, table).encode("utf-8") if fmt == "csv"
                    else export.to_json(report))
            if target is None:
                sys.stdout.buffer.write(data)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                click.echo(f"wrote {target}", err=True)
        if target is not None:
            _write_manifest(cfg, model, [p for p in (csv_path, target) if p is not None],
                            str(ledgers[0]))
        _integrity_exit(model)

    guarded(run)


def report_ledgers(cfg: Config, given: tuple[str, ...]) -> list[Target]:
    """The ledgers ``--ledger`` names (a store URL alone: each of its clusters), else the
    configured one (:func:`auditor.ledger.backend.readers`)."""
    from auditor.ledger import backend

    return backend.readers(given, cfg.ledger)


def _integrity_exit(model: FleetModel) -> None:
    """A warning and exit 1 when a ledger of the report did not verify."""
    report = model.report
    if report.header.integrity.ok is False:
        if report.fleet:
            # Only the failing clusters are named: the others' evidence still stands.
            for member in model.failed:
                click.echo(f"drift-auditor: warning: {member.cluster} "
                           f"({member.ledger_path}): {member.integrity.message}", err=True)
        else:
            click.echo(f"drift-auditor: warning: {report.header.integrity.message}",
                       err=True)
        sys.exit(1)


def _write_all(cfg: Config, start: datetime, end: datetime, folder: Path | None,
               ledger_paths: tuple[str, ...], options: Options) -> None:
    """``--format all``: the HTML, the JSON and every CSV table into ``folder``, each
    written whole (``serve``'s listing never shows half a file), then the manifest over all
    of them; one line per file."""
    from dataclasses import replace

    from auditor.report import export
    from auditor.report.fleet import load_fleet
    from auditor.report.html import render_html
    from auditor.support.files import write_whole

    folder = folder or Path(cfg.reports.directory)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--output-file {folder}: with --format all, --output-file names a "
                          "folder, not a file")
    stem = _default_name(start, end)
    ledgers = report_ledgers(cfg, ledger_paths)
    model = load_fleet(ledgers, start, end, cfg,
                       options=replace(options, changes_csv_name=f"{stem}-changes.csv"))
    report = model.report
    # The tables first, then the JSON and the HTML (which names the change population file
    # and prints its SHA-256): a report in the listing has its tables beside it.
    outputs = [(folder / f"{stem}-{table}.csv",
                (model.population_csv() if table == "changes"
                 else export.to_csv(report, table)).encode("utf-8"))
               for table in export.TABLES]
    outputs.append((folder / f"{stem}.json", export.to_json(report)))
    outputs.append((folder / f"{stem}.html", render_html(report).encode("utf-8")))
    for path, data in outputs:
        try:
            write_whole(path, [data])
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the report ({exc.strerror})") from None
        click.echo(f"wrote {path}", err=True)
    _write_manifest(cfg, model, [path for path, _ in outputs], str(ledgers[0]))
    _integrity_exit(model)


def _write_manifest(cfg: Config, model: FleetModel, files: list[Path], ledger: str) -> None:
    """``<report>.manifest.json`` beside the files: their SHA-256, the ledger heads covered,
    signed by the (first) ledger's signing key when it has one."""
    from auditor.ledger import keyfile
    from auditor.report import manifest

    target = manifest.path_for(files[-1])
    doc = manifest.build(files, model, base=target.parent)
    key_file = keyfile.signing_key_file(cfg.ledger, ledger)
    if key_file:
        doc = manifest.sign(doc, key_file)
    manifest.write(target, doc)
    how = (f"signed by {doc['signature']['fingerprint']}" if key_file
           else "unsigned: the ledger has no signing key")
    click.echo(f"wrote {target} (SHA-256 of {len(files)} files, {how}; check with "
               f"`drift-auditor verify --manifest {target}`)", err=True)


@report_cmd.command("sample")
@click.option("--from", "from_", required=True, metavar="DATE",
              help="Period start (UTC): a date or an ISO 8601 date-time.")
@click.option("--to", "to", metavar="DATE",
              help="Period end (UTC), as for the report. Default: now.")
@click.option("--seed", type=int, required=True,
              help="Seed of the random selection: the same seed, ledger and period give the "
                   "same sample.")
@click.option("--size", type=click.IntRange(min=1), required=True,
              help="Items to sample (all of them when the population is smaller).")
@click.option("--method", type=click.Choice(("stratified", "simple")), default="stratified",
              show_default=True,
              help="stratified: by change authorization and drift, proportionally; simple: "
                   "from the whole population.")
@click.option("--output-dir", "output", type=click.Path(file_okay=False), metavar="DIR",
              help="Output folder. Default: <reports.directory>/drift-sample-FROM-TO-seed-N.")
@deprecated_alias(("-o", "--output"), "output", "--output-dir DIR",
                  type=click.Path(file_okay=False))
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              metavar="FILE|URL#CLUSTER",
              help="Ledger file, or one cluster of the fleet store (postgresql://HOST/DB#CLUSTER). "
                   "Default: the configured ledger (ledger.url and ledger.cluster, else "
                   "ledger.path).")
def sample_cmd(from_: str, to: str | None, seed: int, size: int, method: str,
               output: str | None, ledger_path: str | None) -> None:
    """A reproducible audit sample of the period's changes and drift occurrences, with an
    evidence packet per item (JSON and one HTML page) carrying its ledger proof."""

    def run() -> None:
        from auditor.report import sample

        cfg = load_config()
        start = parse_bound(from_, end=False)
        end = parse_bound(to, end=True) if to else (
            datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1))
        if end <= start:
            raise ConfigError(f"--to must be after --from (got {start:%Y-%m-%dT%H:%M:%SZ} to "
                              f"{end:%Y-%m-%dT%H:%M:%SZ})")
        target = Path(output) if output else Path(cfg.reports.directory) / (
            f"{_default_name(start, end).replace('report', 'sample', 1)}-seed-{seed}")
        from auditor.ledger import backend

        drawn = sample.build(backend.one_reader(ledger_path, cfg.ledger), start, end, cfg,
                             sample.Spec(seed=seed, size=size, method=method))
        sample.write(drawn, target)
        man = drawn.manifest
        click.echo(f"wrote {target}: {man['size']} of {man['population']['size']} items "
                   f"(seed {seed}, {method}; population sha256 {man['population']['sha256']})",
                   err=True)
        if man["ledger"]["verified"] is False:
            click.echo(f"drift-auditor: warning: {man['ledger']['verification']}", err=True)
            sys.exit(1)

    guarded(run)


COMMANDS = (report_cmd,)
