"""What every command shares: the configuration context, the cluster and ledger flags, and
the rule that an :class:`~auditor.errors.AuditorError` becomes one line on stderr and exit
status 2.

This is the CLI layer, so it is where ``os.environ`` is read and handed down; no command
module imports the entry point (:mod:`auditor.cli`), only this one.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from auditor.errors import AuditorError

if TYPE_CHECKING:
    from auditor.config import Config
    from auditor.ledger.configlog import Origin

F = TypeVar("F", bound=Callable[..., Any])


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


def guarded(fn: Callable[..., None], *args: Any) -> None:
    """Call ``fn`` under :func:`handle_errors`: for command bodies defined inside the command."""
    handle_errors(fn)(*args)


class Context:
    """What every command gets: the config file path and the flag overrides so far."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def load(self, overrides: dict[str, Any] | None = None) -> Config:
        from auditor import config as config_mod

        return config_mod.load(self.config_path, env=os.environ, overrides=overrides or {})

    def origin(self) -> Origin:
        """Where the configuration comes from, for its record in the ledger: the file
        :meth:`load` reads and the names (never the values) of the ``DRIFT_AUDITOR_*``
        environment variables set."""
        from auditor import config as config_mod
        from auditor.ledger.configlog import Origin

        path = (self.config_path or os.environ.get(config_mod.ENV_PREFIX + "CONFIG")
                or config_mod.DEFAULT_CONFIG_FILE)
        return Origin.of(path, os.environ)


def context() -> Context:
    """The root command's :class:`Context`, from inside any command."""
    obj: Context = click.get_current_context().find_root().obj
    return obj


def load_config(overrides: dict[str, Any] | None = None) -> Config:
    """The configuration: file, ``DRIFT_AUDITOR_*`` environment, then ``overrides``."""
    return context().load(overrides)


def cluster_overrides(kubeconfig: str | None, context: str | None,
                      in_cluster: bool) -> dict[str, Any]:
    """The cluster flags as configuration overrides (only those given)."""
    cluster: dict[str, Any] = {}
    if kubeconfig:
        cluster["kubeconfig"] = kubeconfig
    if context:
        cluster["context"] = context
    if in_cluster:
        cluster["in_cluster"] = True
    elif kubeconfig or context:
        # A kubeconfig asked for on the command line wins over `in-cluster: true` in the
        # configuration (the same file serves the pod and an operator's laptop).
        cluster["in_cluster"] = False
    return {"cluster": cluster} if cluster else {}


def cluster_options(fn: F) -> F:
    """``--kubeconfig``, ``--context`` and ``--in-cluster``."""
    fn = click.option("--in-cluster", is_flag=True, help="Use the pod's service account.")(fn)
    fn = click.option("--context", help="kubeconfig context to use.")(fn)
    fn = click.option("--kubeconfig", type=click.Path(dir_okay=False),
                      help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")(fn)
    return fn


ledger_option = click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
                             help="Ledger file (default: ledger.path from the configuration).")


class LazyChoice(click.Choice[str]):
    """A :class:`click.Choice` whose choices are the library's own constant, imported when
    the option is first shown or parsed: declaring the option imports nothing, so
    ``drift-auditor --version`` and other commands' help stay fast."""

    def __init__(self, load: Callable[[], Sequence[str]], case_sensitive: bool = True) -> None:
        self._load = load
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._choices = tuple(value)


def tools_dir() -> str | None:
    """Where `make tools` put kubectl 1.35 and helm (``$DRIFT_AUDITOR_TOOLS``), if set."""
    return os.environ.get("DRIFT_AUDITOR_TOOLS") or None


NO_CACHE_HELP = ("Parse every manifest file afresh, without the parse cache "
                 "($XDG_CACHE_HOME/drift-auditor/manifests, keyed by file content).")


def parse_cache_dir(no_cache: bool) -> Path | None:
    """Where ``diff`` and ``policies check`` keep parsed manifest files, by content: a file
    seen before (a CI job's second run, a repository with few changes) is not parsed again.
    Entries unused for 30 days are removed once a day. None with ``--no-cache``."""
    if no_cache:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "drift-auditor" / "manifests"
    from auditor.desired.parsecache import ParseCache
    from auditor.support import files

    if files.once_a_day(folder / ".pruned"):
        ParseCache(folder).prune(files.RETENTION_DAYS)
    return folder
