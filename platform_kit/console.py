"""What every operator command shares: confirmation of destructive work and progress of
long work (the stack a command acts on is ``deploy.console``'s).

- ``confirmed``: a destructive command says what it will do and asks; ``--yes`` answers
  for scripts; without a terminal and without ``--yes`` it refuses.
- ``progress``: counts, rate and time left on stderr, on a terminal or with ``--progress``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

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
