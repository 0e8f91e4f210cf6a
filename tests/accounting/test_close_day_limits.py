"""Closing never runs ahead of the calendar nor back before the ledger began, and a backlog
of missed days is closed one day per database transaction."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from accounting import domain
from accounting.service import AccountingService
from tests.accounting.conftest import DAY, add_account, count, moment, new_id, queries_of
from tests.accounting.test_closing import earn, owe


def closed_days(engine) -> list[date]:
    with engine.connect() as connection:
        return connection.scalars(text("SELECT day FROM billing_days ORDER BY day")).all()


def transactions_that_closed_days(engine) -> int:
    """How many database transactions wrote the closed days (``xmin``: the writer)."""
    with engine.connect() as connection:
        return connection.scalar(
            text("SELECT count(DISTINCT CAST(xmin AS text)) FROM billing_days")
        )


def test_ending_the_current_day_twice_the_same_day_is_refused(sessions, engine, books, clock):
    clock.set(moment(DAY, hour=10))
    account = add_account(sessions)
    earn(sessions, books, engine, account)
    [closed] = AccountingService(sessions, books).close_day()
    owe(sessions, books, engine, account)  # booked into tomorrow: today is over

    clock.advance(hours=1)
    with pytest.raises(domain.DayAlreadyEnded, match=f"{DAY} is already closed"):
        AccountingService(sessions, books).close_day()

    assert closed.day == DAY
    assert closed_days(engine) == [DAY]
    assert count(engine, "payouts") == 1


def test_tomorrow_cannot_be_closed_by_date_after_today_was_closed(sessions, engine, books, clock):
    clock.set(moment(DAY, hour=10))
    earn(sessions, books, engine, add_account(sessions))
    AccountingService(sessions, books).close_day()

    with pytest.raises(domain.DayNotStarted):
        AccountingService(sessions, books).close_day(DAY + timedelta(days=1))
    assert closed_days(engine) == [DAY]


def test_the_next_day_can_be_ended_once_it_has_begun(sessions, engine, books, clock):
    clock.set(moment(DAY, hour=10))
    account = add_account(sessions)
    earn(sessions, books, engine, account)
    AccountingService(sessions, books).close_day()
    earned_late = earn(sessions, books, engine, account)  # after the close: the next day

    clock.set(moment(DAY + timedelta(days=1), hour=9))
    [closed] = AccountingService(sessions, books).close_day()

    assert (closed.day, closed.total_paid) == (DAY + timedelta(days=1), earned_late)


@pytest.mark.parametrize("day", [date(1970, 1, 1), DAY - timedelta(days=1)])
def test_a_day_before_the_first_booked_day_is_refused(sessions, engine, books, clock, day):
    clock.set(moment(DAY))
    earn(sessions, books, engine, add_account(sessions))

    with pytest.raises(domain.DayBeforeLedger, match=f"{day} is before {DAY}"):
        AccountingService(sessions, books).close_day(day)

    assert closed_days(engine) == []
    assert count(engine, "payouts") == 0


def test_with_nothing_booked_only_today_can_be_closed(sessions, engine, books, clock):
    clock.set(moment(DAY))
    with pytest.raises(domain.DayBeforeLedger):
        AccountingService(sessions, books).close_day(DAY - timedelta(days=1))

    assert [c.day for c in AccountingService(sessions, books).close_day(DAY)] == [DAY]


def test_a_day_closed_long_ago_stays_closed_and_pays_nothing_again(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    earn(sessions, books, engine, add_account(sessions))
    AccountingService(sessions, books).close_day(DAY)

    assert AccountingService(sessions, books).close_day(DAY) == []
    with pytest.raises(domain.DayBeforeLedger):
        AccountingService(sessions, books).close_day(DAY - timedelta(days=3))


def test_a_backlog_is_closed_one_day_per_transaction(sessions, engine, books, clock):
    clock.set(moment(DAY))
    account = add_account(sessions)
    earn(sessions, books, engine, account)
    clock.advance(days=5)

    closed = AccountingService(sessions, books).close_day()

    assert [c.day for c in closed] == [DAY + timedelta(days=n) for n in range(6)]
    assert transactions_that_closed_days(engine) == 6


def test_the_scheduler_closes_a_backlog_one_day_per_transaction(sessions, engine, books, clock):
    clock.set(moment(DAY))
    earn(sessions, books, engine, add_account(sessions))
    clock.advance(days=4)

    closed = AccountingService(sessions, books).close_due_days()

    assert [c.day for c in closed] == [DAY + timedelta(days=n) for n in range(4)]
    assert transactions_that_closed_days(engine) == 4


def test_a_refused_close_changes_nothing_for_the_bookings_that_follow(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    account = add_account(sessions)
    with pytest.raises(domain.DayBeforeLedger):
        AccountingService(sessions, books).close_day(date(1970, 1, 1))

    owe(sessions, books, engine, new_id())
    earn(sessions, books, engine, account)

    assert queries_of(sessions, books).open_day() == DAY
    assert closed_days(engine) == []
