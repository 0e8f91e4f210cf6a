"""The projection's commands: apply batches of what the events say to the read model,
and empty or recompute it for a rebuild (the dashboard's questions are in ``queries``).

Every ``apply_*`` takes a batch of facts of one kind, from already validated, not yet
seen events, and writes their effect with one statement per table. The effects commute
(sums, highest version, earliest completion), so batches may come in any order. Each
event is applied once: the consumer runtime records its id in the inbox in the same
database transaction, the ``session`` the command is handed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.orm import Session, sessionmaker

from analytics.domain import (
    BalanceUpdate,
    DayClosed,
    TaskCompletion,
    TaskPrices,
    TaskTitle,
    Transaction,
    add_changes,
    balances_added,
    booking_day,
    earnings_by_day,
    local_day,
    net_by_account_day,
)
from analytics.models import (
    PROJECTION_TABLES,
    Account,
    AccountDayNet,
    Base,
    ClosedDay,
    DailyEarnings,
    Task,
)
from auth_client import replica
from messaging.tables import inbox


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


_earnings = _table(DailyEarnings)
_nets = _table(AccountDayNet)
_tasks = _table(Task)


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
RECORD_CLOSED_DAY = insert(_table(ClosedDay)).on_conflict_do_nothing()


def _write(session: Session, statement: Insert, rows: list[dict[str, Any]]) -> None:
    # Rows go in key order, so concurrent writers (a live projector and a rebuild)
    # lock them in the same order.
    if rows:
        session.execute(statement, rows)


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
    balances: dict[uuid.UUID, int] = {
        row.account_id: row.balance for row in session.execute(_ADD_TO_BALANCES, {
            "accounts": accounts, "amounts": [sum(added[a].values()) for a in accounts]})}
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


class AnalyticsService:
    """The commands of the projection, in the platform's time zone ``zone``.

    ``apply_*`` write into the transaction they are handed (the consumer's, which records
    the events in the inbox too); ``reset`` and ``derive_balances`` run in transactions of
    their own from ``sessions``.
    """

    def __init__(self, sessions: sessionmaker[Session], zone: ZoneInfo) -> None:
        self.sessions = sessions
        self.zone = zone

    def apply_transactions(self, session: Session, transactions: Sequence[Transaction]
                           ) -> None:
        """Transactions booked (or corrected): management earnings of their days, and what
        each account's transactions of a day add to its balance, its negative days and
        the count of negative balances."""
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

    def apply_task_titles(self, session: Session, titles: Iterable[TaskTitle]) -> None:
        """The title and Jira id of the newest version of each task (of equal versions,
        the first given)."""
        newest: dict[uuid.UUID, TaskTitle] = {}
        for title in titles:
            known = newest.get(title.task_id)
            if known is None or title.version > known.version:
                newest[title.task_id] = title
        _write(session, KEEP_NEWEST_TITLE, [
            {"task_id": task_id, "title": t.title, "jira_id": t.jira_id, "version": t.version}
            for task_id, t in sorted(newest.items())
        ])

    def apply_task_prices(self, session: Session, prices: Sequence[TaskPrices]) -> None:
        """Prices are fixed once, so the first ones known stay."""
        first = {p.task_id: p for p in reversed(prices)}
        _write(session, KEEP_FIRST_PRICES, [
            {"task_id": task_id, "fee": p.fee, "reward": p.reward}
            for task_id, p in sorted(first.items())
        ])

    def apply_task_completions(self, session: Session,
                               completions: Iterable[TaskCompletion]) -> None:
        """When, and on which billing day, each task was completed (the next day when its
        calendar day was already ended by hand)."""
        zone = self.zone
        completed: dict[uuid.UUID, datetime] = {}
        for completion in completions:
            at = completion.completed_at
            completed[completion.task_id] = min(at, completed.get(completion.task_id, at))
        closes = _closing_times(session, {local_day(at, zone) for at in completed.values()})
        _write(session, KEEP_EARLIEST_COMPLETION, [
            {"task_id": task_id, "completed_at": at,
             "completed_day": booking_day(at, zone, closes.get(local_day(at, zone)))}
            for task_id, at in sorted(completed.items())
        ])

    def apply_closed_days(self, session: Session, closed: Sequence[DayClosed]) -> None:
        """The day is over; closing twice pays nothing twice. What was completed after a
        day was ended by hand belongs to the next day."""
        first = {c.day: c for c in reversed(closed)}
        _write(session, RECORD_CLOSED_DAY, [
            {"day": day, "closed_at": c.closed_at, "accounts_paid": c.accounts_paid,
             "total_paid": c.total_paid}
            for day, c in sorted(first.items())
        ])
        for day, closed_at in _closing_times(session, set(first)).items():
            session.execute(_MOVE_LATE_COMPLETIONS, {"day": day, "closed_at": closed_at})

    def apply_account_states(
        self, session: Session,
        states: Iterable[tuple[uuid.UUID | str, replica.AccountState]],
    ) -> None:
        """The newest state of each account (its name above all), as every replica of
        auth's accounts takes it."""
        replica.apply_states(session, Account, states)

    def reset(self) -> None:
        """Empty the projection and forget every handled event, ready for a full replay."""
        tables = [model.__tablename__ for model in PROJECTION_TABLES] + [inbox.name]
        with self.sessions() as session, session.begin():
            session.execute(text(f"TRUNCATE {', '.join(tables)}"))

    def derive_balances(self) -> None:
        """Recompute every account's balance, the negative count and the negative days
        from ``account_day_nets`` (e.g. after nets were loaded in bulk, bypassing the
        batches)."""
        with self.sessions() as session, session.begin():
            session.execute(text(
                "TRUNCATE account_balances, negative_balance_counts, negative_count_changes"))
            for statement in (_DERIVE_BALANCES, _DERIVE_NEGATIVE_COUNT,
                              _DERIVE_NEGATIVE_CHANGES):
                session.execute(statement)
