"""The dashboard's questions of the projection: the summary of a day, the most expensive
task of a day, week or month, pages of the negative balances and the figures per day.

They read what the batches keep, never the whole projection: each account's balance now
(a partial index holds the negative ones), the count of negative balances, a difference
array of the negative balances per day, and the completed tasks indexed in the order of
the most expensive first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    cast,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from analytics.domain import (
    CompletedTask,
    DayEarnings,
    Period,
    days_between,
    open_day,
    period_bounds,
)
from analytics.models import (
    PROJECTION_TABLES,
    Account,
    Balance,
    Base,
    ClosedDay,
    DailyEarnings,
    NegativeBalanceCount,
    NegativeCountChange,
)
from platform_kit.cursor import CursorCodec

BALANCE_CURSOR = CursorCodec("qu")
"""Where a page of negative balances ends: ``(balance, account_id)`` of its last item."""


@dataclass(frozen=True)
class AccountBalance:
    account_id: uuid.UUID
    balance: int
    name: str | None = None
    """The account's full name (or email) from the replica; None until it is known."""


@dataclass(frozen=True)
class NegativeBalances:
    """How many balances are below zero, and one page of them, the deepest first."""

    count: int
    accounts: list[AccountBalance]
    next: str | None = None


@dataclass(frozen=True)
class Summary:
    day: date
    earnings: DayEarnings
    negative: NegativeBalances

    @property
    def negative_balances(self) -> list[AccountBalance]:
        """The page of negative balances the summary holds."""
        return self.negative.accounts


@dataclass(frozen=True)
class DayHistory:
    day: date
    earnings: DayEarnings
    negative_balances: int
    closed: bool


@dataclass(frozen=True)
class MostExpensive:
    period: Period
    first: date
    last: date
    task: CompletedTask | None


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def earnings_on(session: Session, day: date) -> DayEarnings:
    row = session.get(DailyEarnings, day)
    return DayEarnings(row.fees, row.rewards) if row else DayEarnings()


def _total(column: InstrumentedAttribute[int] | ColumnElement[int]) -> ColumnElement[int]:
    """The sum of a bigint column as a bigint (PostgreSQL sums them as numeric)."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def negative_count(session: Session) -> int:
    """How many accounts have a balance below zero now: the sum of a few shards."""
    return session.scalar(select(_total(NegativeBalanceCount.negative))) or 0


def _negative_page(after: tuple[Any, ...] | None, limit: int | None
                   ) -> Select[tuple[uuid.UUID, int, str | None]]:
    """A page of negative balances, the deepest first, with the names of its accounts:
    the page is read from the partial index first, then only its rows are joined to the
    replica, by primary key."""
    page = (
        select(Balance.account_id, Balance.balance)
        .where(Balance.balance < 0)
        .order_by(Balance.balance, Balance.account_id)
        .limit(limit)
    )
    if after is not None:
        page = page.where(tuple_(Balance.balance, Balance.account_id) > tuple_(*after))
    rows = page.subquery("page")
    return (
        select(rows.c.account_id, rows.c.balance,
               func.coalesce(Account.full_name, Account.email).label("name"))
        .outerjoin(Account, Account.public_id == rows.c.account_id)
        .order_by(rows.c.balance, rows.c.account_id)
    )


def _balances(rows: Iterable[Row[tuple[uuid.UUID, int, str | None]]]) -> list[AccountBalance]:
    return [AccountBalance(row.account_id, row.balance, row.name) for row in rows]


def negative_balances(session: Session, cursor: str | None = None,
                      limit: int = DEFAULT_PAGE_SIZE) -> NegativeBalances:
    """The count of negative balances and a page of them, the deepest first; ``cursor``
    is the ``next`` of the previous page (``platform_kit.cursor.InvalidCursor`` when it is
    not one)."""
    after = BALANCE_CURSOR.decode(cursor) if cursor else None
    rows = session.execute(_negative_page(after, limit + 1)).all()
    page = _balances(rows[:limit])
    last = page[-1] if len(rows) > limit else None
    return NegativeBalances(
        negative_count(session), page,
        BALANCE_CURSOR.encode(last.balance, last.account_id) if last else None,
    )


def negative_balances_now(session: Session) -> list[AccountBalance]:
    """Every account whose balance is below zero, the deepest first (for checks on a
    small projection: the dashboard reads pages)."""
    return _balances(session.execute(_negative_page(None, limit=None)))


def summary(session: Session, day: date, cursor: str | None = None,
            limit: int = DEFAULT_PAGE_SIZE) -> Summary:
    return Summary(day, earnings_on(session, day), negative_balances(session, cursor, limit))


# Per day of the period, its most expensive task is the first entry of the day in the
# index tasks_completed_ranked; the period's is the first of those (at most 31).
_MOST_EXPENSIVE = text(
    """
    SELECT best.*
    FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day')
         AS d(day)
    CROSS JOIN LATERAL (
        SELECT task_id, title, jira_id, reward, completed_at, completed_day
        FROM tasks
        WHERE completed_day = CAST(d.day AS date) AND reward IS NOT NULL
        ORDER BY reward DESC NULLS LAST, completed_at, task_id
        LIMIT 1
    ) AS best
    ORDER BY best.reward DESC, best.completed_at, best.task_id
    LIMIT 1
    """
)


def most_expensive_task(session: Session, period: Period, day: date) -> MostExpensive:
    first, last = period_bounds(period, day)
    row = session.execute(_MOST_EXPENSIVE, {"first": first, "last": last}).first()
    task = CompletedTask(row.task_id, row.title, row.jira_id, row.reward, row.completed_at,
                         row.completed_day) if row else None
    return MostExpensive(period, first, last, task)


def negative_counts(session: Session, first: date, last: date) -> dict[date, int]:
    """Per day from ``first`` to ``last``, how many accounts ended it below zero: the
    running sum of the difference array (one row per day at most, none per account)."""
    running = session.scalar(select(_total(NegativeCountChange.change))
                             .where(NegativeCountChange.day < first)) or 0
    changes: dict[date, int] = {
        row.day: row.change for row in session.execute(
            select(NegativeCountChange.day, NegativeCountChange.change)
            .where(NegativeCountChange.day.between(first, last)))}
    counts: dict[date, int] = {}
    for day in days_between(first, last):
        running += changes.get(day, 0)
        counts[day] = running
    return counts


def history(session: Session, first: date, last: date) -> list[DayHistory]:
    """Per day: management earnings, how many accounts ended it negative, closed or not."""
    earnings = {
        row.day: DayEarnings(row.fees, row.rewards)
        for row in session.scalars(
            select(DailyEarnings).where(DailyEarnings.day.between(first, last))
        )
    }
    negative = negative_counts(session, first, last)
    closed = set(
        session.scalars(select(ClosedDay.day).where(ClosedDay.day.between(first, last)))
    )
    return [
        DayHistory(day, earnings.get(day, DayEarnings()), negative[day], day in closed)
        for day in days_between(first, last)
    ]


def first_day_with_data(session: Session) -> date | None:
    """The first day anything was earned, an account went negative or a day was closed
    (each the first entry of a primary key); None while the projection is empty."""
    firsts = [session.scalar(select(func.min(column))) for column in
              (DailyEarnings.day, NegativeCountChange.day, ClosedDay.day)]
    known = [day for day in firsts if day is not None]
    return min(known) if known else None


def _table_rows(session: Session, model: type[Base]) -> list[Row[Any]]:
    table = Base.metadata.tables[model.__tablename__]
    if model is NegativeBalanceCount:  # which shard holds what depends on the writers
        return list(session.execute(select(_total(table.c.negative))))
    # when a replica row was last written depends on when it was projected
    columns = [c for c in table.columns if c.name != "updated_at"]
    return list(session.execute(select(*columns).order_by(*table.primary_key)))


def projection_rows(session: Session) -> dict[str, list[Row[Any]]]:
    """Every row of the projection, in a stable order (to compare two projections); the
    count of negative balances as its total."""
    return {model.__tablename__: _table_rows(session, model) for model in PROJECTION_TABLES}


class AnalyticsQueries:
    """The read side the API and the dashboard share: queries in the platform's time zone."""

    def __init__(self, sessions: sessionmaker[Session], zone: ZoneInfo,
                 clock: Callable[[], datetime] | None = None):
        self.sessions = sessions
        self.zone = zone
        self.clock = clock or (lambda: datetime.now(UTC))

    def today(self) -> date:
        """The current billing day, as accounting has it (see ``domain.open_day``)."""
        with self.sessions() as session:
            last_closed = session.scalar(select(func.max(ClosedDay.day)))
        return open_day(self.clock(), self.zone, last_closed)

    def summary(self, day: date, cursor: str | None = None,
                limit: int = DEFAULT_PAGE_SIZE) -> Summary:
        with self.sessions() as session:
            return summary(session, day, cursor, limit)

    def most_expensive_task(self, period: Period, day: date) -> MostExpensive:
        with self.sessions() as session:
            return most_expensive_task(session, period, day)

    def history(self, first: date, last: date) -> list[DayHistory]:
        with self.sessions() as session:
            return history(session, first, last)

    def history_with_data(self, first: date, last: date) -> list[DayHistory]:
        """``history`` from ``first``, or from the first day with data when that is later
        (no rows of zeros from before anything happened)."""
        with self.sessions() as session:
            start = first_day_with_data(session)
            if start is None or start > last:
                return []
            return history(session, max(first, start), last)
