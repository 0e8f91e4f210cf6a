"""Closing a billing day: every positive balance paid out, in a few set-based statements.

Closing takes ``ledger_sql.DAY_LOCK`` exclusively (see ``accounting.ledger_sql``), so
replicas racing to close the same day run one after the other and the later one finds the
day closed; ``payouts`` is unique per (account, day) on top of that. Days close in order, one
day per database transaction (``close_next_day``), and a day's payable amount is the
account's balance at the end of that day, i.e. its current balance minus what later days
have booked since (when a missed day is caught up).

The rows of the day's payouts are computed once into a temporary table (``closing``,
with every id drawn up front), from which the transactions, both legs of each, the
payouts and the queued mails are each inserted by one statement.

The two events of each payout (``transaction.applied``, then ``payment.made``) are not
stored by the close: it writes one deferred outbox row, and the relay renders the events
from the day's payouts when it publishes them (``render_payout_events``), before anything
written after the close. Payouts and their transactions never change, and the event ids
are derived from a seed kept in the row, so every rendering yields the same events. The
first payout's events are rendered and validated against their schemas before anything
is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from accounting import bulk_sql, domain
from accounting.domain import PAYOUT
from accounting.events import PAYMENT_MADE, TRANSACTION_APPLIED, VERSION, rfc3339
from accounting.ledger_sql import (
    Books,
    chained_hash,
    last_closed_day,
    lock_chain,
    lock_day_for_closing,
    transaction_applied,
)
from accounting.models import BillingDay, LedgerTransaction
from messaging.bulk_events import constant, number, quoted
from messaging.outbox import RenderedEvent


@dataclass(frozen=True)
class ClosedDay:
    day: date
    closed_at: datetime
    accounts_paid: int
    total_paid: int


def closing_target(session: Session, books: Books, day: date | None) -> date:
    """The day a close asked for ``day`` (None: end the current day) closes through;
    raises when that day is refused (see ``domain.closing_target``)."""
    today = domain.billing_day(books.clock(), books.settings.timezone)
    return domain.closing_target(_calendar(session, today), day)


def close_next_day(
    session: Session, books: Books, through: date, traceparent: str | None = None
) -> ClosedDay | None:
    """Close the oldest open day up to ``through``, if any: one day per transaction, so
    a backlog of missed days never holds the locks of many days at once."""
    lock_day_for_closing(session)
    day = domain.next_day_to_close(*_closing_state(session), through)
    if day is None:
        return None
    # Closing sorts and aggregates a row or more per account: let it do so in memory.
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    return _close(session, books, day, books.clock(), traceparent)


def last_ended_day(session: Session, books: Books) -> date | None:
    """The day that closing every ended day closes through (None: nothing has ended)."""
    today = domain.billing_day(books.clock(), books.settings.timezone)
    return domain.last_ended_day_to_close(*_closing_state(session), today)


def ended_days_not_closed(session: Session, books: Books) -> int:
    """How many days have ended (in the time zone) and are still open: 0 normally, 1
    between midnight and the scheduled close, more when closing is stuck."""
    last_ended = last_ended_day(session, books)
    if last_ended is None:
        return 0
    last_closed, first_booked = _closing_state(session)
    first_open = last_closed + timedelta(days=1) if last_closed else first_booked
    return max(0, (last_ended - first_open).days + 1) if first_open else 0


def _calendar(session: Session, today: date) -> domain.Calendar:
    first_booked = session.scalar(select(func.min(LedgerTransaction.day)))
    first_closed = session.scalar(select(func.min(BillingDay.day)))
    known = [day for day in (first_booked, first_closed) if day is not None]
    return domain.Calendar(today, last_closed_day(session), min(known, default=None))


def _closing_state(session: Session) -> tuple[date | None, date | None]:
    """The last closed day, and the first day with a transaction when none is closed."""
    last_closed = last_closed_day(session)
    if last_closed is not None:
        return last_closed, None
    return None, session.scalar(select(func.min(LedgerTransaction.day)))


def _close(
    session: Session, books: Books, day: date, now: datetime, traceparent: str | None
) -> ClosedDay:
    params = {"day": day, "at": now}
    lock_chain(session)
    session.execute(
        _COLLECT_PAYOUTS, params | {"transaction_ids": _transaction_ids(session),
                                    "seed": bulk_sql.new_seed()}
    )
    for statement in _PAY:
        session.execute(statement, params)
    _queue_mails(session, now)
    totals = session.execute(_TOTALS).one()
    paid, total = int(totals.paid), int(totals.total)
    session.execute(text("DROP TABLE closing"))
    if paid:
        _defer_payout_events(session, books, day, now, traceparent,
                             (totals.first, totals.last))
    closed = ClosedDay(day, now, paid, total)
    session.add(BillingDay(day=day, closed_at=now, accounts_paid=paid, total_paid=total))
    books.outbox.publish(
        session, books.events.billing_cycle_closed(day, now, paid, total, traceparent)
    )
    return closed


def _transaction_ids(session: Session) -> str:
    """The sequence of transaction ids (named once, not looked up per row); a payout's id
    is its transaction's."""
    sequence: str = session.scalar(text("SELECT pg_get_serial_sequence('transactions', 'id')"))
    return sequence


_TOTALS = text(
    "SELECT count(*) AS paid, coalesce(sum(amount), 0) AS total,"
    " min(transaction_id) AS first, max(transaction_id) AS last FROM closing"
)


def _derived_id(purpose: str) -> str:
    """SQL for the id of ``purpose`` (a payout, an event of it) derived from ``:seed`` and
    the row's account: the close and the renderer of its events draw theirs alike."""
    return bulk_sql.derived_uuid(":seed", "CAST(account_id AS text)", f"'{purpose}'")


def _collect_payouts_sql() -> str:
    return f"""
    CREATE TEMPORARY TABLE closing ON COMMIT DROP AS
    WITH later AS (
        SELECT account_id, CAST(sum(amount) AS bigint) AS amount FROM transactions
        WHERE day > :day
        GROUP BY account_id
    ),
    due AS (
        SELECT b.account_id, CAST(b.balance - coalesce(later.amount, 0) AS bigint) AS amount,
               b.balance
        FROM balances b LEFT JOIN later USING (account_id)
        WHERE b.balance - coalesce(later.amount, 0) > 0
    )
    SELECT account_id, amount, balance - amount AS balance_after,
           nextval(CAST(:transaction_ids AS regclass)) AS transaction_id,
           {_derived_id("transaction")} AS transaction_public_id,
           {_derived_id("payout")} AS payout_public_id
    FROM due
    """


_COLLECT_PAYOUTS = text(_collect_payouts_sql())

_PAYOUT_HASH = chained_hash(
    "transaction_id", "transaction_public_id", "'payout'", "account_id", "NULL::uuid",
    "CAST(:day AS date)", "-amount", "balance_after", "CAST(:at AS timestamptz)", "NULL::uuid",
)

_PAY = [
    text(
        """
        UPDATE balances AS b SET balance = c.balance_after
        FROM closing c WHERE b.account_id = c.account_id
        """
    ),
    text(
        f"""
        INSERT INTO transactions (id, public_id, type, account_id, task_id, day, amount,
                                  balance_after, created_at, hash)
        SELECT transaction_id, transaction_public_id, 'payout', account_id, NULL, :day,
               -amount, balance_after, :at, {_PAYOUT_HASH}
        FROM closing ORDER BY transaction_id
        """
    ),
    text(bulk_sql.both_legs("closing c", "c.transaction_id", "c.account_id", "-c.amount")),
    text(
        """
        INSERT INTO payouts (id, public_id, account_id, day, amount, transaction_id, created_at)
        SELECT transaction_id, payout_public_id, account_id, :day, amount, transaction_id, :at
        FROM closing
        """
    ),
]


# -- mails ----------------------------------------------------------------------------

# The mail is queued here; the mailer looks up its recipient and composes it when it sends
# it (accounting.payout_mail): the closed day's transactions never change, and an address
# or task title that arrives late is still used.
_QUEUE_MAILS = text(
    """
    INSERT INTO payout_emails (payout_id, next_attempt_at) SELECT transaction_id, :at FROM closing
    """
)


def _queue_mails(session: Session, now: datetime) -> None:
    session.execute(_QUEUE_MAILS, {"at": now})


# -- events ---------------------------------------------------------------------------

PAYOUT_EVENTS = "accounting.payout_events"


_TIME = "CAST(:time AS text)"
_DAY = "CAST(:day AS text)"
_PAID_DATA = {
    "payment_id": quoted("payout_public_id"),
    "account_id": quoted("account_id"),
    "transaction_id": quoted("transaction_public_id"),
    "amount": number("amount"),
    "day": quoted(_DAY),
    "paid_at": quoted(_TIME),
}


def _payout_events_sql() -> str:
    traceparent = "CAST(:traceparent AS text)"
    applied = transaction_applied(
        _derived_id(TRANSACTION_APPLIED),
        "transaction_public_id",
        constant(PAYOUT),
        "-amount",
        constant(None),
        _TIME,
        _DAY,
        traceparent,
    ).payload()
    paid = bulk_sql.accounting_events(
        PAYMENT_MADE, _derived_id(PAYMENT_MADE), "account_id::text", _TIME, _PAID_DATA,
        traceparent,
    ).payload()
    # One row per payout, both events side by side, in pages of transaction ids: the
    # relay starts publishing after the first page, and sorting a page takes no more
    # than a page whichever plan the planner picks (it misjudges a day's payouts until
    # the tables are analysed).
    return f"""
    SELECT CAST(c.account_id AS text), {applied}, {paid}
    FROM (
        SELECT t.id, t.public_id AS transaction_public_id, t.account_id, t.balance_after,
               p.public_id AS payout_public_id, p.amount
        FROM transactions t JOIN payouts p ON p.id = t.id
        WHERE t.id BETWEEN :from_id AND :to_id AND t.type = '{PAYOUT}'
          AND p.day = CAST(:day AS date)
    ) AS c
    ORDER BY c.id
    """


_RENDER_PAYOUT_EVENTS = text(_payout_events_sql())
_IDS_PER_PAGE = 2500


def render_payout_events(conn: Connection, arguments: dict[str, Any]) -> Iterator[RenderedEvent]:
    """The events of a closed day's payouts (see the module's docstring), a page at a
    time: per payout its ``transaction.applied``, then its ``payment.made``."""
    for from_id in range(arguments["first"], arguments["last"] + 1, _IDS_PER_PAGE):
        to_id = min(from_id + _IDS_PER_PAGE - 1, arguments["last"])
        page = conn.execute(_RENDER_PAYOUT_EVENTS, arguments | {"from_id": from_id,
                                                                "to_id": to_id})
        for row in page:
            key: str = row[0]
            applied: bytes = row[1]
            paid: bytes = row[2]
            yield RenderedEvent(key, TRANSACTION_APPLIED, VERSION, applied)
            yield RenderedEvent(key, PAYMENT_MADE, VERSION, paid)


# What the accounting relay renders deferred rows with.
RENDERERS = {PAYOUT_EVENTS: render_payout_events}


def _defer_payout_events(
    session: Session,
    books: Books,
    day: date,
    now: datetime,
    traceparent: str | None,
    transactions: tuple[int, int],
) -> None:
    first, last = transactions
    arguments = {
        "day": day.isoformat(),
        "time": rfc3339(now),
        "traceparent": traceparent,
        "seed": bulk_sql.new_seed(),
        "first": first,
        "last": last,
    }
    books.outbox.defer(session, PAYOUT_EVENTS, PAYMENT_MADE, arguments, traceparent)
    connection = session.connection()
    for event in render_payout_events(connection, arguments | {"last": first}):
        books.outbox.registry.parse(event.payload)
