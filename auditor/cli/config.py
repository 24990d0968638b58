"""``drift-auditor config``: validate the configuration and print the effective settings."""

from __future__ import annotations

import click

from auditor.cli.common import Context, handle_errors


@click.command("config")
@click.pass_obj
@handle_errors
def config_cmd(obj: Context) -> None:
    """Validate the configuration and print the effective settings as YAML."""
    from auditor import config as config_mod

    cfg = obj.load()
    click.echo(config_mod.dump(cfg), nl=False)
    click.echo(f"# config hash: {cfg.digest()}")


COMMANDS = (config_cmd,)
