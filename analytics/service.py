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

import orjson
from sqlalchemy import TextClause, text
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
    earnings_by_day,
    local_day,
    net_by_account_day,
)
from analytics.models import (
    PROJECTION_TABLES,
    Account,
)
from auth_client import replica
from messaging.tables import inbox


def _rows(rows: list[dict[str, Any]]) -> str:
    # A batch travels as one JSON array: serialising it is a single C call (uuids, dates and
    # instants included), where a row per statement costs a round of parameter handling.
    return orjson.dumps(rows).decode()


def _write(session: Session, statement: TextClause, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(statement, {"rows": _rows(rows)})


# Each statement writes a batch's rows of one table. The rows go in key order, so
# concurrent writers (a live projector and a rebuild) lock them in the same order; a batch
# holds at most one row per key (a row cannot be upserted twice in one statement).
KEEP_NEWEST_TITLE = text(
    """
    INSERT INTO tasks AS t (task_id, title, jira_id, version)
    SELECT task_id, title, jira_id, version
    FROM json_to_recordset(CAST(:rows AS json))
         AS r(task_id uuid, title text, jira_id text, version int)
    ORDER BY task_id
    ON CONFLICT (task_id) DO UPDATE SET
        title = excluded.title, jira_id = excluded.jira_id, version = excluded.version
    WHERE excluded.version > t.version
    """
)
KEEP_FIRST_PRICES = text(
    """
    INSERT INTO tasks AS t (task_id, fee, reward)
    SELECT task_id, fee, reward
    FROM json_to_recordset(CAST(:rows AS json)) AS r(task_id uuid, fee int, reward int)
    ORDER BY task_id
    ON CONFLICT (task_id) DO UPDATE SET fee = excluded.fee, reward = excluded.reward
    WHERE t.reward IS NULL
    """
)
# The billing day of a completion: its calendar day in the platform's time zone (given),
# or the next one when that day had been ended (closed by hand) by then. The close is
# looked up in the same statement, not in a round trip of its own.
KEEP_EARLIEST_COMPLETION = text(
    """
    INSERT INTO tasks AS t (task_id, completed_at, completed_day)
    SELECT r.task_id, r.completed_at,
           r.calendar_day + CASE WHEN c.closed_at <= r.completed_at THEN 1 ELSE 0 END
    FROM json_to_recordset(CAST(:rows AS json))
         AS r(task_id uuid, completed_at timestamptz, calendar_day date)
    LEFT JOIN closed_days AS c ON c.day = r.calendar_day
    ORDER BY r.task_id
    ON CONFLICT (task_id) DO UPDATE SET
        completed_at = excluded.completed_at, completed_day = excluded.completed_day
    WHERE t.completed_at IS NULL OR excluded.completed_at < t.completed_at
    """
)
# The days closed, the first close of a day kept; and the completions projected before
# the close of their day arrived, that happened after it, moved to the next day (by the
# close stored before, else by the one given).
RECORD_CLOSED_DAYS = text(
    """
    WITH given AS (
        SELECT day, closed_at, accounts_paid, total_paid
        FROM json_to_recordset(CAST(:rows AS json))
             AS r(day date, closed_at timestamptz, accounts_paid int, total_paid bigint)
    ), recorded AS (
        INSERT INTO closed_days (day, closed_at, accounts_paid, total_paid)
        SELECT day, closed_at, accounts_paid, total_paid FROM given
        ORDER BY day
        ON CONFLICT DO NOTHING
    )
    UPDATE tasks AS t SET completed_day = t.completed_day + 1
    FROM given LEFT JOIN closed_days AS known ON known.day = given.day
    WHERE t.completed_day = given.day
      AND t.completed_at >= coalesce(known.closed_at, given.closed_at)
    """
)


# Locks the batch's accounts (in key order) until the transaction ends: another writer
# of the same accounts waits, so the nets read next stay as they are until written.
_ADD_TO_BALANCES = text(
    """
    INSERT INTO account_balances AS b (account_id, balance)
    SELECT account_id, amount
    FROM json_to_recordset(CAST(:rows AS json)) AS r(account_id uuid, amount bigint)
    ORDER BY account_id
    ON CONFLICT (account_id) DO UPDATE SET balance = b.balance + EXCLUDED.balance
    RETURNING account_id, balance
    """
)

_NETS_SINCE = text(
    """
    SELECT n.account_id, n.day, n.net
    FROM json_to_recordset(CAST(:rows AS json)) AS t(account_id uuid, since date)
    JOIN account_day_nets AS n ON n.account_id = t.account_id AND n.day >= t.since
    """
)


def _balance_updates(session: Session, nets: dict[tuple[uuid.UUID, date], int]
                     ) -> list[BalanceUpdate]:
    """Adds the batch to the balances; what it changes for each account."""
    added = balances_added(nets)
    if not added:
        return []
    amounts = {account: sum(days.values()) for account, days in added.items()}
    balances: dict[uuid.UUID, int] = {
        row.account_id: row.balance for row in session.execute(_ADD_TO_BALANCES, {"rows": _rows(
            [{"account_id": a, "amount": amount} for a, amount in amounts.items()])})}
    later: dict[uuid.UUID, dict[date, int]] = {a: {} for a in added}
    for row in session.execute(_NETS_SINCE, {"rows": _rows(
            [{"account_id": a, "since": min(days)} for a, days in added.items()])}):
        later[row.account_id][row.day] = row.net
    return [BalanceUpdate(balances[a] - amounts[a], later[a], days)
            for a, days in added.items()]


NEGATIVE_COUNT_SHARDS = 16

# What a batch of transactions adds to the days' earnings, the accounts' nets, the
# negative days and the count of negative balances, in one statement (after the balances
# are locked and the later nets read). The count is kept here rather than by a trigger on
# account_balances: a trigger would lock its shard between two account rows, and two
# writers could then wait on each other. Returns the days whose change came to zero.
ADD_TRANSACTIONS = text(
    f"""
    WITH earnings AS (
        INSERT INTO daily_earnings AS e (day, fees, rewards)
        SELECT day, fees, rewards
        FROM json_to_recordset(CAST(:earnings AS json))
             AS r(day date, fees bigint, rewards bigint)
        ORDER BY day
        ON CONFLICT (day) DO UPDATE SET fees = e.fees + excluded.fees,
                                        rewards = e.rewards + excluded.rewards
    ), nets AS (
        INSERT INTO account_day_nets AS n (account_id, day, net)
        SELECT account_id, day, net
        FROM json_to_recordset(CAST(:nets AS json)) AS r(account_id uuid, day date, net bigint)
        ORDER BY account_id, day
        ON CONFLICT (account_id, day) DO UPDATE SET net = n.net + excluded.net
    ), counted AS (
        INSERT INTO negative_balance_counts AS c (shard, negative)
        SELECT pg_backend_pid() % {NEGATIVE_COUNT_SHARDS}, CAST(:crossed AS bigint)
        WHERE CAST(:crossed AS bigint) <> 0
        ON CONFLICT (shard) DO UPDATE SET negative = c.negative + EXCLUDED.negative
    ), changed AS (
        INSERT INTO negative_count_changes AS c (day, change)
        SELECT day, change
        FROM json_to_recordset(CAST(:changes AS json)) AS r(day date, change bigint)
        ORDER BY day
        ON CONFLICT (day) DO UPDATE SET change = c.change + EXCLUDED.change
        RETURNING day, change
    )
    SELECT array_agg(day) FROM changed WHERE change = 0
    """
)
# A day whose changes cancelled out has no row (as if derived from the nets), so that
# the rows stay what ``derive_balances`` would write.
_FORGET_CANCELLED_CHANGES = text(
    "DELETE FROM negative_count_changes WHERE day = ANY(:days) AND change = 0"
)


def _negative_changes(updates: list[BalanceUpdate]) -> list[dict[str, Any]]:
    changes: dict[date, int] = {}
    for update in updates:
        add_changes(changes, update.negative_changes())
    return [{"day": day, "change": change} for day, change in changes.items() if change]


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
        nets = net_by_account_day(transactions)
        updates = _balance_updates(session, nets)
        cancelled: list[date] | None = session.execute(ADD_TRANSACTIONS, {
            "earnings": _rows([{"day": day, "fees": e.fees, "rewards": e.rewards}
                               for day, e in earnings_by_day(transactions).items()]),
            "nets": _rows([{"account_id": account_id, "day": day, "net": net}
                           for (account_id, day), net in nets.items()]),
            "changes": _rows(_negative_changes(updates)),
            "crossed": sum(u.crossed_zero for u in updates),
        }).scalar_one()
        if cancelled:
            session.execute(_FORGET_CANCELLED_CHANGES, {"days": cancelled})

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
            for task_id, t in newest.items()
        ])

    def apply_task_prices(self, session: Session, prices: Sequence[TaskPrices]) -> None:
        """Prices are fixed once, so the first ones known stay."""
        first = {p.task_id: p for p in reversed(prices)}
        _write(session, KEEP_FIRST_PRICES, [
            {"task_id": task_id, "fee": p.fee, "reward": p.reward}
            for task_id, p in first.items()
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
        _write(session, KEEP_EARLIEST_COMPLETION, [
            {"task_id": task_id, "completed_at": at, "calendar_day": local_day(at, zone)}
            for task_id, at in completed.items()
        ])

    def apply_closed_days(self, session: Session, closed: Sequence[DayClosed]) -> None:
        """The day is over; closing twice pays nothing twice. What was completed after a
        day was ended by hand belongs to the next day."""
        first = {c.day: c for c in reversed(closed)}
        _write(session, RECORD_CLOSED_DAYS, [
            {"day": day, "closed_at": c.closed_at, "accounts_paid": c.accounts_paid,
             "total_paid": c.total_paid}
            for day, c in first.items()
        ])

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
