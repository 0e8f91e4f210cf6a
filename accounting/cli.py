"""``ates accounting ...``: commands the ``ates`` console script picks up."""

from __future__ import annotations

from datetime import datetime

import click


@click.group("accounting")
def accounting_group() -> None:
    """Operate the accounting service."""


@accounting_group.command("close-day")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Billing day to close (YYYY-MM-DD); default: end the current day now.",
)
def close_day(day: datetime | None) -> None:
    """Pay out every positive balance and close the day (and any open day before it)."""
    from accounting import domain, service
    from accounting.app import engine_for
    from accounting.ledger import Books
    from accounting.settings import AccountingSettings
    from messaging.db import make_session_factory

    settings = AccountingSettings.from_env()
    engine = engine_for(settings.platform)
    try:
        closed = service.close_day(
            make_session_factory(engine), Books.create(settings), day.date() if day else None
        )
    except domain.AccountingError as error:
        raise click.ClickException(str(error)) from error
    finally:
        engine.dispose()
    if not closed:
        click.echo("nothing to close: that day is already closed")
    for result in closed:
        click.echo(
            f"{result.day.isoformat()}: closed, {result.accounts_paid} account(s) paid,"
            f" {result.total_paid} cents in total"
        )


commands = [accounting_group]
