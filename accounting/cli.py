"""``ates accounting ...``: commands the ``ates`` console script picks up."""

from __future__ import annotations

from datetime import date

import click
from sqlalchemy import Engine

from platform_kit.console import confirmed, progress, progress_option, yes_option
from platform_kit.dates import parse_iso_date


@click.group("accounting")
def accounting_group() -> None:
    """Operate the accounting service."""


@accounting_group.command("close-day")
@click.option(
    "--date",
    "day",
    default=None,
    help="Billing day to close (YYYY-MM-DD); default: end the current day now.",
)
@yes_option
@progress_option
def close_day(day: str | None, yes: bool, show_progress: bool | None) -> None:
    """Pay out every positive balance and close the day (and any open day before it)."""
    closed_day = None if day is None else _iso_date(day)
    from accounting import domain
    from accounting.app import engine_for
    from accounting.ledger_sql import Books
    from accounting.service import AccountingService
    from accounting.settings import AccountingSettings
    from platform_kit.db import make_session_factory

    settings = AccountingSettings.from_env()
    engine = engine_for(settings.platform)
    service = AccountingService(make_session_factory(engine), Books.create(settings))
    try:
        through, last_closed = service.closing_plan(closed_day)
        # None: no day closed yet, the first is the first day with a transaction
        days = (through - last_closed).days if last_closed else None
        closed = []
        if days is None or days > 0:
            confirmed(f"Close {_days(days, through)} in {_where(engine)}: pay out every"
                      " positive balance and mail each payout", yes)
            with progress("closing", days, "days", show_progress) as bar:
                closed = service.close_day(closed_day, on_closed=lambda _day: bar.update(1))
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


@accounting_group.command("verify")
def verify_ledger() -> None:
    """Recompute the ledger's hash chain and check its invariants; exit 1 on a break."""
    from accounting.app import engine_for
    from accounting.ledger_sql import utc_now
    from accounting.settings import AccountingSettings
    from accounting.verify import verify

    engine = engine_for(AccountingSettings.from_env().platform)
    try:
        result = verify(engine, utc_now)
    finally:
        engine.dispose()
    for found in result.breaks:
        click.echo(f"BREAK {found}", err=True)
    if not result.holds:
        raise SystemExit(1)
    click.echo(f"the ledger holds: {result.transactions} transaction(s) chained, every"
               " invariant true")


def _where(engine: Engine) -> str:
    url = engine.url
    return f"database {url.database} on {url.host}:{url.port}"


def _days(count: int | None, through: date) -> str:
    if count is None:
        return f"every open billing day through {through.isoformat()}"
    if count == 1:
        return f"billing day {through.isoformat()}"
    return f"{count} billing days through {through.isoformat()}"


def _iso_date(raw: str) -> date:
    """``--date`` as the API takes it; a bad one is one line of error, not a usage text."""
    day = parse_iso_date(raw)
    if day is not None:
        return day
    raise click.ClickException(f"--date must be a date like 2026-11-22, not {raw!r}")


from accounting.reconcile import reconcile_command  # noqa: E402 - ``ates reconcile``

commands = [accounting_group, reconcile_command]
