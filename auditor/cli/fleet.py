"""Fleet commands: ``compare-clusters A B``, the objects and fields whose live state differs
between two clusters of a fleet beyond what Git declares per cluster, with who changed each
side and when (:mod:`auditor.ledger.divergence`).

The clusters are named as fleet reports name them (:func:`auditor.report.fleet.member_names`:
the cluster name the ledger's newest run recorded, ``name@file`` for two ledgers of one
name); every ``--ledger`` (a file, or clusters of the PostgreSQL fleet store) is opened
read-only.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import click

from auditor.cli.common import guarded, load_config
from auditor.errors import ConfigError

if TYPE_CHECKING:
    from auditor.ledger.backend import Target


@click.command("compare-clusters")
@click.argument("cluster_a", metavar="A")
@click.argument("cluster_b", metavar="B")
@click.option("--ledger", "ledger_paths", type=click.Path(dir_okay=False), multiple=True,
              required=True,
              help="A cluster's ledger: a file, postgresql://HOST/DB#CLUSTER (one cluster of "
                   "the fleet store) or postgresql://HOST/DB (every cluster there); repeat it "
                   "(at least the two clusters compared). A and B are the cluster names these "
                   "ledgers' runs recorded.")
@click.option("-o", "--output", "fmt", type=click.Choice(("text", "json")), default="text",
              show_default=True, help="Output format.")
@click.option("--all", "everything", is_flag=True,
              help="Also show the differences Git declares per cluster (overlays): fields no "
                   "open drift of either cluster touches.")
def compare_clusters_cmd(cluster_a: str, cluster_b: str, ledger_paths: tuple[str, ...],
                         fmt: str, everything: bool) -> None:
    """Objects and fields whose live state differs between clusters A and B, with who
    changed each side and when. Differences Git declares per cluster (no open drift on
    either side) are hidden unless --all is given. Exit 0: no divergence beyond them;
    1: divergence found; 2: error."""

    def run() -> None:
        from auditor.ledger import readonly
        from auditor.ledger.backend import StoreLedger
        from auditor.ledger.divergence import compare
        from auditor.ledger.reportquery import cluster_names
        from auditor.report.fleet import member_names

        if cluster_a == cluster_b:
            raise ConfigError(f"compare-clusters: give two different clusters (got {cluster_a} "
                              "twice)")
        paths = _targets(ledger_paths)
        resolved = [p if isinstance(p, StoreLedger) else p.resolve() for p in paths]
        if len(set(resolved)) != len(resolved):
            raise ConfigError("compare-clusters: the same ledger is given twice")
        with ExitStack() as stack:
            conns = [stack.enter_context(readonly.reading(p)) for p in paths]
            names = member_names(paths, [cluster_names(c) for c in conns])
            by_name = dict(zip(names, conns, strict=True))
            unknown = [n for n in (cluster_a, cluster_b) if n not in by_name]
            if unknown:
                raise ConfigError(f"compare-clusters: no ledger of cluster "
                                  f"{', '.join(unknown)}; the ledgers given are of: "
                                  f"{', '.join(names)}")
            result = compare(by_name[cluster_a], by_name[cluster_b], cluster_a, cluster_b)
        if fmt == "json":
            sys.stdout.buffer.write(result.to_json(everything))
        else:
            click.echo(result.to_text(everything), nl=False)
        sys.exit(result.exit_code())

    guarded(run)


def _targets(given: tuple[str, ...]) -> list[Target]:
    """The ``--ledger`` values' ledgers: files, a store's cluster (``URL#CLUSTER``) or every
    cluster of a store (the URL alone). The configuration is read only for a store (its
    ``ledger.password-file``): comparing files needs none."""
    from auditor.ledger import backend

    if not any(backend.is_url(g) for g in given):
        return [Path(g) for g in given]
    return backend.readers(given, load_config().ledger)


COMMANDS = (compare_clusters_cmd,)
