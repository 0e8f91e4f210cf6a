"""Use cases of analytics: apply events to the projection, answer the dashboard's questions,
empty the projection for a rebuild.

Every ``apply_*`` takes a batch of already validated, not yet seen events of one type and
writes their effect with one statement per table. The effects commute (sums, highest
version, earliest completion), so batches may come in any order. Each event is applied
once: the projector records its id in the inbox in the same database transaction.

The dashboard's questions read what the batches keep, never the whole projection: each
account's balance now (a partial index holds the negative ones), the count of negative
balances, a difference array of the negative balances per day, and the completed tasks
indexed in the order of the most expensive first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, Row, Select, cast, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.orm import Session, sessionmaker

from analytics.domain import (
    BalanceUpdate,
    CompletedTask,
    DayEarnings,
    Period,
    Transaction,
    add_changes,
    balances_added,
    booking_day,
    days_between,
    decode_balance_cursor,
    earnings_by_day,
    encode_balance_cursor,
    local_day,
    net_by_account_day,
    open_day,
    parse_instant,
    period_bounds,
)
from analytics.models import (
    PROJECTION_TABLES,
    Account,
    AccountDayNet,
    Balance,
    ClosedDay,
    DailyEarnings,
    NegativeBalanceCount,
    NegativeCountChange,
    Task,
)
from auth import replica
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
    transactions of the day add to its balance, its negative days and the count of
    negative balances."""
    transactions = [Transaction.from_event_data(e.data) for e in events]
    earnings = sorted(earnings_by_day(transactions).items())
    _write(session, ADD_TO_EARNINGS,
           [{"day": d, "fees": e.fees, "rewards": e.rewards} for d, e in earnings])
    nets = net_by_account_day(transactions)
    updates = _balance_updates(session, nets)
    _write(session, ADD_TO_NETS, [
        {"account_id": account_id, "day": day, "net": net}
        for (account_id, day), net in sorted(nets.items())
    ])
    _add_negative_changes(session, updates)
    _add_to_negative_count(session, sum(u.crossed_zero for u in updates))


def apply_corrections(session: Session, events: list[Event]) -> None:
    """``transaction.corrected`` (a reversal or an adjustment): projected as a transaction
    of the type it counts as (``counts_as``), on the day it was booked: a reversed fee
    lowers that day's fees, a reversed reward its rewards, and the balance moves alike."""
    apply_transactions(session, [
        replace(event, data={**event.data, "type": event.data["counts_as"]}) for event in events
    ])


# Locks the batch's accounts (in key order) until the transaction ends: another writer
# of the same accounts waits, so the nets read next stay as they are until written.
_ADD_TO_BALANCES = text(
    """
    INSERT INTO account_balances AS b (account_id, balance)
    SELECT * FROM unnest(CAST(:accounts AS uuid[]), CAST(:amounts AS bigint[]))
    ORDER BY 1
    ON CONFLICT (account_id) DO UPDATE SET balance = b.balance + EXCLUDED.balance
    RETURNING account_id, balance
    """
)

_NETS_SINCE = text(
    """
    SELECT n.account_id, n.day, n.net
    FROM unnest(CAST(:accounts AS uuid[]), CAST(:since AS date[])) AS t(account_id, since)
    JOIN account_day_nets AS n ON n.account_id = t.account_id AND n.day >= t.since
    """
)


def _balance_updates(session: Session, nets: dict[tuple[uuid.UUID, date], int]
                     ) -> list[BalanceUpdate]:
    """Adds the batch to the balances; what it changes for each account."""
    added = balances_added(nets)
    if not added:
        return []
    accounts = sorted(added)
    balances = dict(session.execute(_ADD_TO_BALANCES, {
        "accounts": accounts, "amounts": [sum(added[a].values()) for a in accounts]}).all())
    later: dict[uuid.UUID, dict[date, int]] = {a: {} for a in accounts}
    for row in session.execute(_NETS_SINCE, {
            "accounts": accounts, "since": [min(added[a]) for a in accounts]}):
        later[row.account_id][row.day] = row.net
    return [
        BalanceUpdate(balances[a] - sum(added[a].values()), later[a], added[a])
        for a in accounts
    ]


_ADD_NEGATIVE_CHANGES = text(
    """
    INSERT INTO negative_count_changes AS c (day, change)
    SELECT * FROM unnest(CAST(:days AS date[]), CAST(:changes AS bigint[])) ORDER BY 1
    ON CONFLICT (day) DO UPDATE SET change = c.change + EXCLUDED.change
    """
)
_FORGET_CANCELLED_CHANGES = text(
    "DELETE FROM negative_count_changes WHERE day = ANY(CAST(:days AS date[])) AND change = 0"
)


def _add_negative_changes(session: Session, updates: list[BalanceUpdate]) -> None:
    changes: dict[date, int] = {}
    for update in updates:
        add_changes(changes, update.negative_changes())
    days = sorted(day for day, change in changes.items() if change)
    if days:
        session.execute(_ADD_NEGATIVE_CHANGES,
                        {"days": days, "changes": [changes[d] for d in days]})
        session.execute(_FORGET_CANCELLED_CHANGES, {"days": days})


NEGATIVE_COUNT_SHARDS = 16

_ADD_TO_NEGATIVE_COUNT = text(
    f"""
    INSERT INTO negative_balance_counts AS c (shard, negative)
    VALUES (pg_backend_pid() % {NEGATIVE_COUNT_SHARDS}, :crossed)
    ON CONFLICT (shard) DO UPDATE SET negative = c.negative + EXCLUDED.negative
    """
)


def _add_to_negative_count(session: Session, crossed: int) -> None:
    # Counted here rather than by a trigger on account_balances: a trigger would lock its
    # shard between two account rows, and two writers could then wait on each other.
    if crossed:
        session.execute(_ADD_TO_NEGATIVE_COUNT, {"crossed": crossed})


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


def apply_account_states(session: Session, events: list[Event]) -> None:
    """``account.created`` / ``account.updated``: the newest state of each account (its
    name above all), as every replica of auth's accounts takes it."""
    replica.apply_states(session, Account, [
        (event.data["account_id"], replica.account_state(event)) for event in events
    ])


def reset_projection(session: Session) -> None:
    """Empty the projection and forget every handled event, ready for a full replay."""
    tables = [model.__tablename__ for model in PROJECTION_TABLES] + [inbox.name]
    session.execute(text(f"TRUNCATE {', '.join(tables)}"))


# --- questions of the dashboard ------------------------------------------------------------


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


def _total(column) -> ColumnElement[int]:
    """The sum of a bigint column as a bigint (PostgreSQL sums them as numeric)."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def negative_count(session: Session) -> int:
    """How many accounts have a balance below zero now: the sum of a few shards."""
    return session.scalar(select(_total(NegativeBalanceCount.negative)))


def _negative_page(after: tuple[int, uuid.UUID] | None, limit: int | None) -> Select:
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


def _balances(rows) -> list[AccountBalance]:
    return [AccountBalance(row.account_id, row.balance, row.name) for row in rows]


def negative_balances(session: Session, cursor: str | None = None,
                      limit: int = DEFAULT_PAGE_SIZE) -> NegativeBalances:
    """The count of negative balances and a page of them, the deepest first; ``cursor``
    is the ``next`` of the previous page (``InvalidCursor`` when it is not one)."""
    after = decode_balance_cursor(cursor) if cursor else None
    rows = session.execute(_negative_page(after, limit + 1)).all()
    page = _balances(rows[:limit])
    last = page[-1] if len(rows) > limit else None
    return NegativeBalances(
        negative_count(session), page,
        encode_balance_cursor(last.balance, last.account_id) if last else None,
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
    return MostExpensive(period, first, last, CompletedTask(*row) if row else None)


def negative_counts(session: Session, first: date, last: date) -> dict[date, int]:
    """Per day from ``first`` to ``last``, how many accounts ended it below zero: the
    running sum of the difference array (one row per day at most, none per account)."""
    running = session.scalar(select(_total(NegativeCountChange.change))
                             .where(NegativeCountChange.day < first))
    changes = dict(session.execute(
        select(NegativeCountChange.day, NegativeCountChange.change)
        .where(NegativeCountChange.day.between(first, last))).all())
    counts = {}
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


# The balances, their negative days and their count as the nets alone say: what the
# batches keep, computed from scratch (after a bulk load of the nets, and to check).
_DERIVE_BALANCES = text(
    """
    INSERT INTO account_balances (account_id, balance)
    SELECT account_id, sum(net) FROM account_day_nets GROUP BY account_id
    """
)
_DERIVE_NEGATIVE_COUNT = text(
    """
    INSERT INTO negative_balance_counts (shard, negative)
    SELECT 0, count(*) FROM account_balances WHERE balance < 0
    """
)
_NEGATIVE_CHANGE = """CASE WHEN closing < 0 AND closing - net >= 0 THEN 1
                          WHEN closing >= 0 AND closing - net < 0 THEN -1
                          ELSE 0 END"""
_DERIVE_NEGATIVE_CHANGES = text(
    f"""
    INSERT INTO negative_count_changes (day, change)
    SELECT day, sum({_NEGATIVE_CHANGE})
    FROM (SELECT day, net, sum(net) OVER (PARTITION BY account_id ORDER BY day) AS closing
          FROM account_day_nets) AS timeline
    GROUP BY day HAVING sum({_NEGATIVE_CHANGE}) <> 0
    """
)


def derive_balances(session: Session) -> None:
    """Recompute every account's balance, the negative count and the negative days from
    ``account_day_nets`` (e.g. after nets were loaded in bulk, bypassing the batches)."""
    session.execute(text(
        "TRUNCATE account_balances, negative_balance_counts, negative_count_changes"))
    for statement in (_DERIVE_BALANCES, _DERIVE_NEGATIVE_COUNT, _DERIVE_NEGATIVE_CHANGES):
        session.execute(statement)


def _table_rows(session: Session, model) -> list[Row]:
    table = model.__table__
    if model is NegativeBalanceCount:  # which shard holds what depends on the writers
        return list(session.execute(select(_total(table.c.negative))))
    # when a replica row was last written depends on when it was projected
    columns = [c for c in table.columns if c.name != "updated_at"]
    return list(session.execute(select(*columns).order_by(*table.primary_key)))


def projection_rows(session: Session) -> dict[str, list[Row]]:
    """Every row of the projection, in a stable order (to compare two projections); the
    count of negative balances as its total."""
    return {model.__tablename__: _table_rows(session, model) for model in PROJECTION_TABLES}


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
