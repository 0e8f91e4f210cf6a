"""Use cases of analytics: apply events to the projection, answer the dashboard's questions,
empty the projection for a rebuild.

Every ``apply_*`` takes a batch of already validated, not yet seen events of one type and
writes their effect with one statement per table. The effects commute (sums, highest
version, earliest completion), so batches may come in any order. Each event is applied
once: the projector records its id in the inbox in the same database transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Row, cast, func, select, text
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.orm import Session, sessionmaker

from analytics.domain import (
    CompletedTask,
    DayEarnings,
    Period,
    Transaction,
    booking_day,
    days_between,
    earnings_by_day,
    local_day,
    most_expensive,
    net_by_account_day,
    open_day,
    parse_instant,
    period_bounds,
)
from analytics.models import PROJECTION_TABLES, AccountDayNet, ClosedDay, DailyEarnings, Task
from event_schemas import Event, task_v1_to_v2
from messaging.tables import inbox

# --- applying events ----------------------------------------------------------------------


_earnings = DailyEarnings.__table__
_nets = AccountDayNet.__table__
_tasks = Task.__table__


def _add_to_earnings() -> Insert:
    statement = insert(_earnings)
    return statement.on_conflict_do_update(
        index_elements=[_earnings.c.day],
        set_={
            "fees": _earnings.c.fees + statement.excluded.fees,
            "rewards": _earnings.c.rewards + statement.excluded.rewards,
        },
    )


def _add_to_nets() -> Insert:
    statement = insert(_nets)
    return statement.on_conflict_do_update(
        index_elements=[_nets.c.account_id, _nets.c.day],
        set_={"net": _nets.c.net + statement.excluded.net},
    )


def _keep_newest_title() -> Insert:
    statement = insert(_tasks)
    newer = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_tasks.c.task_id],
        set_={"title": newer.title, "jira_id": newer.jira_id, "version": newer.version},
        where=newer.version > _tasks.c.version,
    )


def _keep_first_prices() -> Insert:
    statement = insert(_tasks)
    return statement.on_conflict_do_update(
        index_elements=[_tasks.c.task_id],
        set_={"fee": statement.excluded.fee, "reward": statement.excluded.reward},
        where=_tasks.c.reward.is_(None),
    )


def _keep_earliest_completion() -> Insert:
    statement = insert(_tasks)
    other = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_tasks.c.task_id],
        set_={"completed_at": other.completed_at, "completed_day": other.completed_day},
        where=_tasks.c.completed_at.is_(None) | (other.completed_at < _tasks.c.completed_at),
    )


# Built once: executed with a list of rows, each is compiled once and sent as a batch.
ADD_TO_EARNINGS = _add_to_earnings()
ADD_TO_NETS = _add_to_nets()
KEEP_NEWEST_TITLE = _keep_newest_title()
KEEP_FIRST_PRICES = _keep_first_prices()
KEEP_EARLIEST_COMPLETION = _keep_earliest_completion()
RECORD_CLOSED_DAY = insert(ClosedDay.__table__).on_conflict_do_nothing()


def _write(session: Session, statement: Insert, rows: list[dict[str, Any]]) -> None:
    # Rows go in key order, so concurrent writers (a live projector and a rebuild)
    # lock them in the same order.
    if rows:
        session.execute(statement, rows)


def apply_transactions(session: Session, events: list[Event]) -> None:
    """``transaction.applied``: management earnings of the day, and what each account's
    transactions of the day add to its balance."""
    transactions = [Transaction.from_event_data(e.data) for e in events]
    earnings = sorted(earnings_by_day(transactions).items())
    _write(session, ADD_TO_EARNINGS,
           [{"day": d, "fees": e.fees, "rewards": e.rewards} for d, e in earnings])
    nets = sorted(net_by_account_day(transactions).items())
    _write(session, ADD_TO_NETS, [
        {"account_id": account_id, "day": day, "net": net}
        for (account_id, day), net in nets
    ])


def apply_task_states(session: Session, events: list[Event]) -> None:
    """``task.created`` / ``task.updated`` v1 (Jira key in the title) or v2: the title
    and Jira id of the newest version of each task."""
    newest: dict[str, dict[str, Any]] = {}
    for event in events:
        data = task_v1_to_v2(event.data) if event.dataversion == 1 else event.data
        known = newest.get(data["task_id"])
        if known is None or data["version"] > known["version"]:
            newest[data["task_id"]] = data
    _write(session, KEEP_NEWEST_TITLE, [
        {"task_id": uuid.UUID(task_id), "title": d["title"], "jira_id": d["jira_id"],
         "version": d["version"]}
        for task_id, d in sorted(newest.items())
    ])


def apply_task_prices(session: Session, events: list[Event]) -> None:
    """``task.priced``: prices are fixed once, so the first ones known stay."""
    prices = {e.data["task_id"]: e.data for e in reversed(events)}
    _write(session, KEEP_FIRST_PRICES, [
        {"task_id": uuid.UUID(task_id), "fee": d["fee"], "reward": d["reward"]}
        for task_id, d in sorted(prices.items())
    ])


def apply_task_completions(session: Session, events: list[Event], zone: ZoneInfo) -> None:
    """``task.completed``: when, and on which billing day, each task was completed (the
    next day when its calendar day was already ended by hand)."""
    completed: dict[uuid.UUID, datetime] = {}
    for event in events:
        at = parse_instant(event.data["completed_at"])
        task_id = uuid.UUID(event.data["task_id"])
        completed[task_id] = min(at, completed.get(task_id, at))
    closes = _closing_times(session, {local_day(at, zone) for at in completed.values()})
    _write(session, KEEP_EARLIEST_COMPLETION, [
        {"task_id": task_id, "completed_at": at,
         "completed_day": booking_day(at, zone, closes.get(local_day(at, zone)))}
        for task_id, at in sorted(completed.items())
    ])


def _closing_times(session: Session, days: set[date]) -> dict[date, datetime]:
    rows = session.execute(select(ClosedDay.day, ClosedDay.closed_at).where(
        ClosedDay.day.in_(days)))
    return {row.day: row.closed_at for row in rows}


# Completions projected before the close of their day arrived, that happened after it.
_MOVE_LATE_COMPLETIONS = text(
    """
    UPDATE tasks SET completed_day = completed_day + 1
    WHERE completed_day = :day AND completed_at >= :closed_at
    """
)


def apply_closed_days(session: Session, events: list[Event]) -> None:
    """``billing_cycle.closed``: the day is over; closing twice pays nothing twice. What
    was completed after a day was ended by hand belongs to the next day."""
    closed = {e.data["day"]: e.data for e in reversed(events)}
    _write(session, RECORD_CLOSED_DAY, [
        {"day": date.fromisoformat(day), "closed_at": parse_instant(d["closed_at"]),
         "accounts_paid": d["accounts_paid"], "total_paid": d["total_paid"]}
        for day, d in sorted(closed.items())
    ])
    for day, closed_at in _closing_times(session, {date.fromisoformat(d) for d in closed}).items():
        session.execute(_MOVE_LATE_COMPLETIONS, {"day": day, "closed_at": closed_at})


def reset_projection(session: Session) -> None:
    """Empty the projection and forget every handled event, ready for a full replay."""
    tables = [model.__tablename__ for model in PROJECTION_TABLES] + [inbox.name]
    session.execute(text(f"TRUNCATE {', '.join(tables)}"))


# --- questions of the dashboard ------------------------------------------------------------


@dataclass(frozen=True)
class AccountBalance:
    account_id: uuid.UUID
    balance: int


@dataclass(frozen=True)
class Summary:
    day: date
    earnings: DayEarnings
    negative_balances: list[AccountBalance]


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


def earnings_on(session: Session, day: date) -> DayEarnings:
    row = session.get(DailyEarnings, day)
    return DayEarnings(row.fees, row.rewards) if row else DayEarnings()


def negative_balances_now(session: Session) -> list[AccountBalance]:
    """Accounts whose balance (the sum of all their nets) is below zero, the deepest first."""
    balance = cast(func.sum(AccountDayNet.net), BigInteger)
    rows = session.execute(
        select(AccountDayNet.account_id, balance.label("balance"))
        .group_by(AccountDayNet.account_id)
        .having(balance < 0)
        .order_by(balance, AccountDayNet.account_id)
    )
    return [AccountBalance(row.account_id, row.balance) for row in rows]


def summary(session: Session, day: date) -> Summary:
    return Summary(day, earnings_on(session, day), negative_balances_now(session))


def most_expensive_task(session: Session, period: Period, day: date) -> MostExpensive:
    first, last = period_bounds(period, day)
    in_period = Task.completed_day.between(first, last) & Task.reward.is_not(None)
    top_reward = select(Task.reward).where(in_period).order_by(Task.reward.desc()).limit(1)
    candidates = session.scalars(
        select(Task).where(in_period, Task.reward == top_reward.scalar_subquery())
    )
    return MostExpensive(period, first, last, most_expensive(_completed(candidates)))


def _completed(tasks: Iterable[Task]) -> list[CompletedTask]:
    return [
        CompletedTask(t.task_id, t.title, t.jira_id, t.reward, t.completed_at, t.completed_day)
        for t in tasks
    ]


# An account's balance at the end of a day it had transactions on is the running sum of
# its nets; it is negative from the end of a day whose closing balance is below zero until
# the next day it has transactions again: count, for each day, the intervals covering it.
_NEGATIVE_COUNTS = text(
    """
    WITH timeline AS (
        SELECT sum(net) OVER (PARTITION BY account_id ORDER BY day) AS balance,
               day AS since,
               lead(day) OVER (PARTITION BY account_id ORDER BY day) AS until
        FROM account_day_nets
        WHERE day <= :last
    )
    SELECT d::date AS day, count(t.since) AS negative
    FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') AS d
    LEFT JOIN timeline AS t
        ON t.balance < 0 AND t.since <= d AND (t.until IS NULL OR t.until > d)
    GROUP BY d
    """
)


def history(session: Session, first: date, last: date) -> list[DayHistory]:
    """Per day: management earnings, how many accounts ended it negative, closed or not."""
    earnings = {
        row.day: DayEarnings(row.fees, row.rewards)
        for row in session.scalars(
            select(DailyEarnings).where(DailyEarnings.day.between(first, last))
        )
    }
    negative = {
        row.day: row.negative
        for row in session.execute(_NEGATIVE_COUNTS, {"first": first, "last": last})
    }
    closed = set(
        session.scalars(select(ClosedDay.day).where(ClosedDay.day.between(first, last)))
    )
    return [
        DayHistory(day, earnings.get(day, DayEarnings()), negative.get(day, 0), day in closed)
        for day in days_between(first, last)
    ]


def projection_rows(session: Session) -> dict[str, list[Row]]:
    """Every row of the projection, in a stable order (to compare two projections)."""
    return {
        model.__tablename__: list(
            session.execute(select(model.__table__).order_by(*model.__table__.primary_key))
        )
        for model in PROJECTION_TABLES
    }


class Analytics:
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

    def summary(self, day: date) -> Summary:
        with self.sessions() as session:
            return summary(session, day)

    def most_expensive_task(self, period: Period, day: date) -> MostExpensive:
        with self.sessions() as session:
            return most_expensive_task(session, period, day)

    def history(self, first: date, last: date) -> list[DayHistory]:
        with self.sessions() as session:
            return history(session, first, last)
