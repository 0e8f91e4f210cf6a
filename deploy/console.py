"""What every operator command shares: the stack it acts on, confirmation of destructive
work, and progress of long work.

- ``use_stack_env``: ``ates up`` writes what it chose to ``<ATES_VAR_DIR>/ates.env``; a
  command reads it (variables set in the environment win) and says on stderr which stack
  it acts on.
- ``confirmed``: a destructive command says what it will do and asks; ``--yes`` answers
  for scripts; without a terminal and without ``--yes`` it refuses.
- ``progress``: counts, rate and time left on stderr, on a terminal or with ``--progress``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

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
    from auth_client.settings import auth_url

    database = without_password(env.get("ATES_DATABASE_URL", DEFAULT_DATABASE_URL))
    return (f"auth {auth_url(env)}, database {database}, "
            f"broker {env.get('ATES_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}")


# -- confirmation ---------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def yes_option(function: F) -> F:
    return click.option("--yes", "-y", "yes", is_flag=True,
                        help="Do it without asking (for scripts).")(function)


def confirmed(action: str, yes: bool) -> None:
    """Say what is about to happen and ask; ``yes`` answers for a script (nothing is said
    then: a script's output stays what it was). Without a terminal to ask on and without
    ``yes``, refuse in one line (exit status 1)."""
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise click.ClickException(
            f"refusing to {action[0].lower()}{action[1:]} without confirmation: "
            "no terminal to ask on; pass --yes")
    if not click.confirm(f"{action}. Continue?", default=False, err=True):
        raise click.ClickException("nothing done")


# -- progress -------------------------------------------------------------------------------

def progress_option(function: F) -> F:
    return click.option("--progress/--no-progress", "show_progress", default=None,
                        help="Show progress on stderr (default: on a terminal).")(function)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    @property
    def total(self) -> None:
        return None

    @total.setter
    def total(self, value: float | None) -> None:
        pass

    def refresh(self) -> None:
        pass


@contextlib.contextmanager
def progress(description: str, total: int | None, unit: str,
             show: bool | None) -> Iterator[Any]:
    """A progress bar on stderr (count, rate, time left when ``total`` is known), shown
    when ``show`` is true or, when it is None, when stderr is a terminal."""
    if not (sys.stderr.isatty() if show is None else show):
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit=f" {unit}", file=sys.stderr,
              dynamic_ncols=True, mininterval=0.2) as bar:
        yield bar
