"""The ``drift-auditor`` command: a thin layer over the library.

This module is the entry point only: the root group with its global flags and logging, and
the registration of every command group. Each group lives in its own module here and
exports ``COMMANDS``; what they share (the configuration context, cluster flags, turning an
:class:`~auditor.errors.AuditorError` into one line and exit 2) is :mod:`.common`, so no
command imports this module back. Command modules import the library inside their command
bodies: ``drift-auditor --version`` loads none of it.

The same entry point is installed as ``kubectl-drift``, so ``kubectl drift …`` runs it as a
kubectl plugin; usage and help then name it ``kubectl drift`` (:func:`program_name`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from auditor import __version__
from auditor.cli import (
    adopt,
    audit,
    config,
    fleet,
    ledger,
    notify,
    policies,
    report,
    sandbox,
    schedule,
    serve,
    sources,
    watch,
)
from auditor.cli.common import (
    CONFIG_HELP,
    QUIET_HELP,
    VERBOSE_HELP,
    Context,
    add_global_options,
    setup_logging,
)

log = logging.getLogger("auditor")


def program_name(argv0: str | None = None) -> str:
    """The command's name in usage and help, from how it was started (``sys.argv[0]``):
    ``kubectl drift`` for the kubectl plugin ``kubectl-drift`` (kubectl runs the plugin by
    its path), else ``drift-auditor`` (also for ``python -m auditor.cli``)."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    if name.startswith("kubectl-") and len(name) > len("kubectl-"):
        # kubectl's plugin naming: kubectl-foo_bar is `kubectl foo-bar`.
        return "kubectl " + name[len("kubectl-"):].replace("_", "-")
    return "drift-auditor"


class _Root(click.Group):
    """The root group, named by :func:`program_name` unless a caller names it (CliRunner)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             *rest: Any, **extra: Any) -> Any:
        return super().main(args, prog_name or program_name(), *rest, **extra)


EPILOG = """\b
--config, -v and -q may also follow the subcommand (drift-auditor history --config x.yaml -q).
NO_COLOR=1 turns colour off unless --color is given.
Shell completion: eval "$(_DRIFT_AUDITOR_COMPLETE=bash_source drift-auditor)" (zsh_source,
fish_source for zsh and fish)."""


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="drift-auditor")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Keep a Kubernetes cluster honest against Git."""
    setup_logging(verbose, quiet)
    ctx.obj = Context(config_path, verbose, quiet)


for _group in (config, sandbox, audit, watch, schedule, sources, ledger, notify, adopt,
               policies, report, fleet, serve):
    for _command in _group.COMMANDS:
        add_global_options(_command)
        main.add_command(_command)
