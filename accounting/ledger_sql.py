"""The SQL that writes the ledger: task prices and the fees and rewards of task events, in
bulk, and the locks and hash chain every writer of transactions shares.

A run of task events becomes a handful of statements whatever its length: one that finds
the tasks not priced yet and one that prices them (with their ``task.priced`` events),
then a single statement that books the run: it skips events booked before, moves every
balance concerned (locking those rows in account order, so that concurrent writers cannot
deadlock), inserts the transactions with both legs of each and renders their
``transaction.applied`` events into the outbox (see ``accounting.bulk_sql``).

Billing days. Recording takes ``DAY_LOCK`` shared and closing a day takes it exclusively,
so a day being closed waits for the transactions in flight and, once closed, takes
nothing more: a transaction belongs to the day that is open when it is recorded
(``domain.open_day``), read after the lock was granted.

The use cases that call these live in ``accounting.service``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from accounting import bulk_sql, domain
from accounting.domain import FEE, REWARD
from accounting.events import TASK_PRICED, TRANSACTION_APPLIED, AccountingEvents, rfc3339
from accounting.models import BillingDay
from accounting.settings import AccountingSettings
from messaging.bulk_events import EventsOfRows, Json, number, quoted
from messaging.outbox import Outbox
from platform_kit.db import array_literal

# Any constant will do, as long as every process of the accounting service uses it.
DAY_LOCK = 0x6C6564676572  # "ledger"
# Taken (until commit) by every writer of transactions before it draws their ids, so that
# ids grow in the order of the hash chain (see migration 0007 and ``accounting.verify``).
CHAIN_LOCK = 0x636861696E  # "chain"
_system_random = random.SystemRandom()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Books:
    """What the ledger commands need besides a session: settings, the outbox, the event
    builder, the random source that prices tasks and the clock that dates transactions."""

    settings: AccountingSettings
    outbox: Outbox
    events: AccountingEvents
    rng: random.Random
    clock: Callable[[], datetime] = utc_now

    def topic_of(self, event_type: str) -> str:
        return self.settings.platform.topic(self.outbox.registry.topic_of(event_type))

    @classmethod
    def create(
        cls,
        settings: AccountingSettings,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> Books:
        return cls(
            settings, Outbox(settings.platform), AccountingEvents(), rng or _system_random, clock
        )


# An id as a UUID or as its canonical text, the way events carry it: the bulk statements
# bind ids as text, so the consumer hands them on without parsing them.
Id = uuid.UUID | str


@dataclass(frozen=True)
class TaskCharge:
    """A fee (on ``task.assigned``) or reward (on ``task.completed``) to book, caused by
    the event ``source_event_id``."""

    source_event_id: Id
    task_id: Id
    account_id: Id
    traceparent: str | None = None


@dataclass(frozen=True)
class Booked:
    """A ledger transaction as it was written; ``amount`` as seen from the account."""

    public_id: uuid.UUID
    type: str
    account_id: uuid.UUID
    task_id: uuid.UUID | None
    amount: int
    balance_after: int
    day: date
    created_at: datetime


def lock_day_for_recording(session: Session) -> None:
    session.execute(select(func.pg_advisory_xact_lock_shared(DAY_LOCK)))


def lock_day_for_closing(session: Session) -> None:
    session.execute(select(func.pg_advisory_xact_lock(DAY_LOCK)))


def lock_chain(session: Session) -> None:
    """Become the only writer of transactions until the end of the database transaction:
    the next statement reads the tip of the chain that its transactions extend. Writers
    read the clock after taking it, so that transaction times grow with ids (what the
    point-in-time balance relies on)."""
    session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))


# SQL for the hash of the newest transaction: what the next one chains to (NULL at first).
CHAIN_TIP = "(SELECT hash FROM transactions ORDER BY id DESC LIMIT 1)"


def chained_hash(order_by: str, *columns: str) -> str:
    """SQL for the hashes of a run of transactions being inserted, chained in ``order_by``
    (which must be the order of their ids) from the tip; ``columns`` are the SQL
    expressions of ``ledger_transaction_text``'s arguments."""
    return (
        f"ledger_chain({CHAIN_TIP}, ledger_transaction_text({', '.join(columns)}))"
        f" OVER (ORDER BY {order_by})"
    )


def last_closed_day(session: Session) -> date | None:
    last: date | None = session.scalar(select(func.max(BillingDay.day)))
    return last


def current_day(session: Session, books: Books) -> tuple[date, datetime]:
    """The open billing day and the time of the transactions recorded now."""
    now = books.clock()
    return domain.open_day(now, books.settings.timezone, last_closed_day(session)), now


# -- prices ---------------------------------------------------------------------------


_UNPRICED = text(
    """
    SELECT position FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS wanted (id, position)
    WHERE NOT EXISTS (SELECT 1 FROM task_prices p WHERE p.task_id = wanted.id)
    """
)


def _fix_prices_sql() -> str:
    time = "CAST(:time AS text)"
    priced = bulk_sql.accounting_events(
        TASK_PRICED,
        event_id="event_id",
        key="task_id::text",
        time=time,
        data={
            "task_id": quoted("task_id"),
            "fee": number("fee"),
            "reward": number("reward"),
            "priced_at": quoted(time),
        },
        traceparent="CAST(:traceparent AS text)",
    )
    return f"""
    WITH fixed AS (
        INSERT INTO task_prices (task_id, fee, reward, priced_at)
        SELECT *, CAST(:at AS timestamptz)
        FROM unnest(CAST(:ids AS uuid[]), CAST(:fees AS int[]), CAST(:rewards AS int[]))
        ON CONFLICT (task_id) DO NOTHING
        RETURNING task_id, fee, reward,
                  {bulk_sql.derived_uuid(":seed", "CAST(task_id AS text)")} AS event_id
    ),
    known AS (
        INSERT INTO tasks (public_id) SELECT task_id FROM fixed ON CONFLICT DO NOTHING
    ),
    events AS (
        {priced.insert_from("fixed")}
    )
    SELECT event_id FROM fixed LIMIT 1
    """


_FIX_PRICES = text(_fix_prices_sql())


def ensure_priced(
    session: Session,
    books: Books,
    tasks: Mapping[uuid.UUID, str | None] | Mapping[Id, str | None],
    at: datetime,
) -> None:
    """Fix (and announce with ``task.priced``) the prices of the tasks not priced yet.

    ``tasks`` maps each task to the trace context of the event that brought it, which its
    ``task.priced`` carries on.
    """
    wanted: list[tuple[Id, str | None]] = list(tasks.items())
    # positions (from 1) in ``wanted``: an id's spelling may differ from the stored one
    unpriced = session.scalars(_UNPRICED, {"ids": array_literal(tasks)})
    by_trace: dict[str | None, list[Id]] = {}
    for position in sorted(unpriced):
        task_id, traceparent = wanted[position - 1]
        by_trace.setdefault(traceparent, []).append(task_id)
    for traceparent, task_ids in by_trace.items():
        _fix_prices(session, books, task_ids, at, traceparent)


def _fix_prices(
    session: Session,
    books: Books,
    task_ids: list[Id],
    at: datetime,
    traceparent: str | None,
) -> None:
    drawn = [domain.price_task(books.rng) for _ in task_ids]
    first_event = session.scalar(
        _FIX_PRICES,
        {
            "ids": array_literal(task_ids),
            "fees": array_literal(p.fee for p in drawn),
            "rewards": array_literal(p.reward for p in drawn),
            "at": at,
            "time": rfc3339(at),
            "topic": books.topic_of(TASK_PRICED),
            "traceparent": traceparent,
            "seed": bulk_sql.new_seed(),
        },
    )
    if first_event is not None:
        bulk_sql.validate_first(session, books.outbox.registry, [str(first_event)])


# -- transactions ---------------------------------------------------------------------


def transaction_applied(
    event_id: str,
    public_id: str,
    transaction_type: Json,
    amount: str,
    task_id: Json,
    time: str,
    day: str,
    traceparent: str,
) -> EventsOfRows:
    """The ``transaction.applied`` of each row being written, keyed by its account, from
    the columns (SQL expressions) of the rows; ``account_id`` and ``balance_after`` are
    columns too."""
    data = {
        "transaction_id": quoted(public_id),
        "account_id": quoted("account_id"),
        "type": transaction_type,
        "amount": number(amount),
        "balance_after": number("balance_after"),
        "task_id": task_id,
        "day": quoted(day),
        "applied_at": quoted(time),
    }
    return bulk_sql.accounting_events(
        TRANSACTION_APPLIED, event_id, "account_id::text", time, data, traceparent
    )


def _book_sql(transaction_type: str, price_column: str, report: bool) -> str:
    fees, rewards = ("-s.total", "0") if transaction_type == FEE else ("0", "s.total")
    applied = transaction_applied(
        "event_id",
        "public_id",
        quoted("CAST(:type AS text)"),
        "amount",
        quoted("task_id"),
        "CAST(:time AS text)",
        "CAST(:day AS date)",
        "traceparent",
    )
    day_totals = bulk_sql.add_to_day_totals(
        ":day", fees, rewards, "(SELECT sum(amount) AS total FROM booked) AS s"
        " WHERE s.total IS NOT NULL"
    )
    return f"""
    WITH fresh AS (
        SELECT i.*, CAST(:sign AS int) * p.{price_column} AS amount
        FROM unnest(
            CAST(:events AS uuid[]), CAST(:tasks AS uuid[]), CAST(:accounts AS uuid[]),
            CAST(:traceparents AS text[])
        ) WITH ORDINALITY AS i (source_event_id, task_id, account_id, traceparent, position)
        JOIN task_prices p USING (task_id)
        WHERE NOT EXISTS (
            SELECT 1 FROM transactions t WHERE t.source_event_id = i.source_event_id
        )
    ),
    moved AS (
        INSERT INTO balances AS b (account_id, balance)
        SELECT account_id, sum(amount) FROM fresh GROUP BY account_id ORDER BY account_id
        ON CONFLICT (account_id) DO UPDATE SET balance = b.balance + excluded.balance
        RETURNING account_id, balance
    ),
    numbered AS (
        SELECT f.*,
               {bulk_sql.derived_uuid(":seed", "CAST(position AS text)", "'transaction'")}
                   AS public_id,
               {bulk_sql.derived_uuid(":seed", "CAST(position AS text)", "'event'")} AS event_id,
               m.balance - sum(f.amount) OVER mine
                   + sum(f.amount) OVER (mine ORDER BY f.position) AS balance_after
        FROM fresh f JOIN moved m USING (account_id)
        WINDOW mine AS (PARTITION BY f.account_id)
    ),
    booked AS (
        INSERT INTO transactions
            (public_id, type, account_id, task_id, day, amount, balance_after, created_at,
             source_event_id, hash)
        SELECT public_id, CAST(:type AS text), account_id, task_id, :day, amount,
               balance_after, :at, source_event_id,
               {chained_hash("position", "public_id", "CAST(:type AS text)", "account_id",
                             "task_id", "CAST(:day AS date)", "amount", "balance_after",
                             "CAST(:at AS timestamptz)", "source_event_id")}
        FROM numbered ORDER BY position
        RETURNING id, account_id, amount
    ),
    totals AS (
        {day_totals}
    ),
    legs AS (
        {bulk_sql.both_legs("booked", "booked.id", "booked.account_id", "booked.amount")}
    ),
    events AS (
        {applied.insert_from("numbered ORDER BY position")}
    )
    {_BOOKED_ROWS if report else _FIRST_EVENT}
    """


_BOOKED_ROWS = """SELECT event_id, public_id, account_id, task_id, amount, balance_after
    FROM numbered ORDER BY position"""
_FIRST_EVENT = "SELECT event_id FROM numbered ORDER BY position LIMIT 1"

# What each kind of task transaction costs or earns (the fee or reward of the task's
# price, signed as seen from the account), and whether the rows booked are read back.
_BOOK = {
    (transaction_type, report): text(_book_sql(transaction_type, price_column, report))
    for transaction_type, price_column in ((FEE, "fee"), (REWARD, "reward"))
    for report in (True, False)
}


def book_task_charges(
    session: Session,
    books: Books,
    transaction_type: str,
    charges: Sequence[TaskCharge],
    report: bool = True,
) -> list[Booked]:
    """Book a fee or reward for each charge not booked before, pricing new tasks first.

    Runs inside the caller's transaction; charges already booked (same source event) are
    skipped, so handing the same events in twice books them once. Returns what was booked,
    or nothing when not asked to ``report`` it (reading it back costs a consumer ~5%).
    """
    charges = list({charge.source_event_id: charge for charge in charges}.values())
    if not charges:
        return []
    lock_day_for_recording(session)
    # before the clock is read: transaction times then grow with their ids
    lock_chain(session)
    bulk_sql.plan_with_actual_sizes(session)
    day, now = current_day(session, books)
    first_mentions: dict[Id, str | None] = {}
    for charge in charges:
        first_mentions.setdefault(charge.task_id, charge.traceparent)
    ensure_priced(session, books, first_mentions, now)
    rows = session.execute(
        _BOOK[(transaction_type, report)],
        {
            "events": array_literal(c.source_event_id for c in charges),
            "tasks": array_literal(c.task_id for c in charges),
            "accounts": array_literal(c.account_id for c in charges),
            "traceparents": array_literal(c.traceparent for c in charges),
            "type": transaction_type,
            "sign": domain.signed_amount(transaction_type, 1),
            "day": day,
            "at": now,
            "time": rfc3339(now),
            "topic": books.topic_of(TRANSACTION_APPLIED),
            "seed": bulk_sql.new_seed(),
        },
    ).all()
    if rows:
        bulk_sql.validate_first(session, books.outbox.registry, [str(rows[0].event_id)])
    if not report:
        return []
    return [
        Booked(
            r.public_id,
            transaction_type,
            r.account_id,
            r.task_id,
            r.amount,
            r.balance_after,
            day,
            now,
        )
        for r in rows
    ]
