"""``drift-auditor config``: validate the configuration and print the effective settings,
keys spelt as the file spells them (``token-env``, not ``token_env``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from auditor.cli.common import Context, handle_errors


def file_spelling(value: Any) -> Any:
    """The configuration records as plain data, each field named as in the file (kebab
    case); the keys of mappings the user wrote (names, labels) stay as written."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name.replace("_", "-"): file_spelling(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [file_spelling(v) for v in value]
    if isinstance(value, dict):
        return {k: file_spelling(v) for k, v in value.items()}
    return value


@click.command("config")
@click.pass_obj
@handle_errors
def config_cmd(obj: Context) -> None:
    """Validate the configuration and print the effective settings as YAML, keys spelt as
    in the file."""
    from auditor.support import yamlsafe

    cfg = obj.load()
    click.echo(yamlsafe.dump(file_spelling(cfg)), nl=False)
    click.echo(f"# config hash: {cfg.digest()}")


COMMANDS = (config_cmd,)
