"""``ates schemas ...``: check, lock and document the event contract."""

from __future__ import annotations

from pathlib import Path

import click

from event_schemas import lock as schema_lock
from event_schemas.docs import render_markdown
from event_schemas.registry import EventSchemaError, SchemaRegistry

DEFAULT_DOCS = Path("docs/events.md")

root_option = click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Schema tree to work on (default: the installed event_schemas package).",
)


@click.group("schemas")
def schemas_cli() -> None:
    """Event schemas: check them, lock published versions, render their docs."""


def _report(problems: list[str]) -> None:
    for problem in problems:
        click.echo(problem)
    click.echo(f"{len(problems)} problem(s) found", err=True)


@schemas_cli.command("check")
@root_option
def check_command(root: Path | None) -> None:
    """Validate every schema, its examples, the catalog and the lock."""
    problems = schema_lock.check(root)
    if problems:
        _report(problems)
        raise SystemExit(1)
    click.echo(f"{schema_lock.count_schemas(root)} schemas OK")


@schemas_cli.command("lock")
@root_option
def lock_command(root: Path | None) -> None:
    """Pin new schema versions in schemas.lock (existing entries never change)."""
    try:
        added = schema_lock.lock(root)
    except EventSchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    for key in added:
        click.echo(f"locked {key}")
    if not added:
        click.echo("nothing new to lock")
    problems = schema_lock.check(root)
    if problems:
        _report(problems)
        raise SystemExit(1)


@schemas_cli.command("docs")
@root_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DOCS,
    show_default=True,
    help="Markdown file to write.",
)
@click.option("--check", "check_only", is_flag=True, help="Fail if the file is out of date.")
def docs_command(root: Path | None, output: Path, check_only: bool) -> None:
    """Render the event reference (Markdown) from the schemas."""
    try:
        text = render_markdown(SchemaRegistry(root))
    except EventSchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    if check_only:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            click.echo(f"{output} is out of date; run `ates schemas docs`")
            raise SystemExit(1)
        click.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")
