"""What every command shares: the configuration context, the cluster and ledger flags, and
the rule that an :class:`~auditor.errors.AuditorError` becomes one line on stderr and exit
status 2.

This is the CLI layer, so it is where ``os.environ`` is read and handed down; no command
module imports the entry point (:mod:`auditor.cli`), only this one.
"""

from __future__ import annotations

import functools
import logging
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
    from auditor.support.progress import Progress

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
    """What every command gets: the config file path, the log flags (``-v``, ``-q``) and the
    flag overrides so far."""

    def __init__(self, config_path: str | None, verbose: int = 0, quiet: bool = False) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self.quiet = quiet

    def load(self, overrides: dict[str, Any] | None = None) -> Config:
        from auditor import config as config_mod

        cfg = config_mod.load(self.config_path, env=os.environ, overrides=overrides or {})
        kubeconfig = os.environ.get("KUBECONFIG")
        if kubeconfig and not cfg.cluster.kubeconfig and not cfg.cluster.in_cluster:
            # kubectl's variable, read here (nothing below the CLI reads the environment; the
            # kubernetes client would otherwise take it once, when first imported).
            import dataclasses

            cfg = dataclasses.replace(
                cfg, cluster=dataclasses.replace(cfg.cluster, kubeconfig=kubeconfig))
        return cfg

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
    """The root command's :class:`Context`, from inside any command (a fresh one when a
    command runs on its own, as tests run them)."""
    return _root_context(click.get_current_context())


def _root_context(ctx: click.Context) -> Context:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Context(None)
    obj: Context = root.obj
    return obj


def setup_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr: warnings and errors with ``-q``, INFO by default, DEBUG with ``-vv``.
    Called again when a global flag follows the subcommand."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    # The kubernetes client and urllib3 are chatty at INFO; their news is ours to tell.
    for noisy in ("urllib3", "kubernetes", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.NOTSET)


GLOBAL_NOTE = "(also accepted after the subcommand)"
CONFIG_HELP = "Config file (default: $DRIFT_AUDITOR_CONFIG or ./drift-auditor.yaml)."
VERBOSE_HELP = "More log output (-vv for debug)."
QUIET_HELP = "Only warnings and errors on stderr; no progress lines."


def _late_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _root_context(ctx).config_path = value


def _late_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        obj = _root_context(ctx)
        obj.verbose += value
        setup_logging(obj.verbose, obj.quiet)


def _late_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        obj = _root_context(ctx)
        obj.quiet = True
        setup_logging(obj.verbose, obj.quiet)


def global_options() -> list[click.Option]:
    """``--config``, ``-v`` and ``-q`` for a subcommand: the root's flags, accepted after the
    subcommand too, setting the same :class:`Context`."""
    return [
        click.Option(["--config", "global_config"], type=click.Path(dir_okay=False),
                     expose_value=False, callback=_late_config, help=f"{CONFIG_HELP} {GLOBAL_NOTE}"),
        click.Option(["-v", "--verbose", "global_verbose"], count=True, expose_value=False,
                     callback=_late_verbose, help=f"{VERBOSE_HELP} {GLOBAL_NOTE}"),
        click.Option(["-q", "--quiet", "global_quiet"], is_flag=True, expose_value=False,
                     callback=_late_quiet, help=f"{QUIET_HELP} {GLOBAL_NOTE}"),
    ]


def add_global_options(command: click.Command) -> None:
    """Give ``command`` (and, for a group, each of its subcommands) the global flags."""
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    command.params.extend(o for o in global_options() if not taken & set(o.opts))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)


def use_color(flag: bool | None) -> bool:
    """Colour or not: ``--color``/``--no-color`` when given, else none when ``NO_COLOR`` is
    set to anything (https://no-color.org), else when stdout is a terminal."""
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def progress(task: str, total: int | None = None) -> Progress:
    """A progress display for ``task``; silent under ``-q``."""
    return progress_factory()(task, total)


def progress_factory() -> Callable[[str, int | None], Progress]:
    """What the pipeline calls to show the progress of a task (from any thread): a
    :class:`~auditor.support.progress.Progress`, silent under ``-q``."""
    from auditor.support.progress import Progress

    enabled = not context().quiet
    return lambda task, total: Progress(task, total, enabled=enabled)


def deprecated_alias(decls: Sequence[str], dest: str, new: str,
                     **attrs: Any) -> Callable[[F], F]:
    """A hidden option spelt ``decls`` that sets the parameter ``dest`` (spelt ``new``) for
    one more release, with a one-line deprecation warning on stderr."""
    hidden = f"deprecated_{dest}"

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            old = kwargs.pop(hidden, None)
            if old is not None:
                click.echo(f"drift-auditor: warning: {'/'.join(decls)} is deprecated and will be "
                           f"removed in the next release: use {new}", err=True)
                if kwargs.get(dest) is None:
                    kwargs[dest] = old
            return fn(*args, **kwargs)

        return click.option(*decls, hidden, hidden=True, **attrs)(wrapper)  # type: ignore[return-value]

    return decorate


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
