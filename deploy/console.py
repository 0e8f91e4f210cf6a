"""The stack an operator command acts on: ``ates up`` writes what it chose to
``<ATES_VAR_DIR>/ates.env``; a command reads it (variables set in the environment win) and
says on stderr which stack it acts on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from auth_client.settings import auth_url
from platform_kit.settings import (
    DEFAULT_DATABASE_URL,
    read_stack_env,
    stack_env_path,
    without_password,
)


def use_stack_env(ctx: click.Context) -> Path | None:
    """Read the stack file into the environment for this command (the environment wins;
    the variables it added are removed again when the command ends), and say on stderr
    which stack the command acts on. Returns the file read, if any."""
    path = stack_env_path()
    try:
        values = read_stack_env(path) if path.is_file() else None
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error.strerror}") from error
    if values is None:
        if sys.stderr.isatty():
            click.echo(f"ates: no stack file at {path}; acting on ATES_* variables and "
                       f"defaults ({_describe(os.environ)})", err=True)
        return None
    added = [name for name in values if name not in os.environ]
    overridden = sorted(name for name in values
                        if name in os.environ and os.environ[name] != values[name])
    for name in added:
        os.environ[name] = values[name]

    def restore() -> None:
        for name in added:
            os.environ.pop(name, None)

    ctx.call_on_close(restore)
    line = f"ates: acting on the stack of {path} ({_describe(os.environ)})"
    if overridden:
        line += f"; from the environment instead: {', '.join(overridden)}"
    click.echo(line, err=True)
    return path


def _describe(env: Mapping[str, str]) -> str:
    database = without_password(env.get("ATES_DATABASE_URL", DEFAULT_DATABASE_URL))
    return (f"auth {auth_url(env)}, database {database}, "
            f"broker {env.get('ATES_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}")
