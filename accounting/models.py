"""Tables of the accounting database.

Replicas (``accounts``, ``tasks``) are fed only by events and may know an entity before
its full state arrives (then ``version`` is 0 and most fields are null).

The ledger is ``transactions`` plus ``entries``: each transaction has exactly two
entries, one on the popug's account and one on the company's, summing to zero. Both
tables are append-only: triggers (see the first migration) refuse UPDATE and DELETE, and
refuse any statement that leaves a transaction's entries unbalanced. ``balances`` keeps,
per popug account, the sum of its entries, updated in the same statement as the
entries; ``transactions.amount`` repeats the account's entry and ``balance_after`` is
that balance right after the transaction.

There are no foreign keys between ledger, payout and mail rows: each is written by the
same statement (or transaction) as the row it points to and nothing is ever deleted,
while per-row foreign-key checks would weigh heavily on the bulk writes (closing a day
writes several rows per paid account). The tests check these links after every test.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

from accounting.domain import FEE_CENTS, REWARD_CENTS
from auth_client.replica import AccountReplica


class Base(DeclarativeBase):
    pass


def _uuid(**options: Any) -> MappedColumn[Any]:
    return mapped_column(UUID(as_uuid=True), **options)


def _timestamp(**options: Any) -> MappedColumn[Any]:
    return mapped_column(DateTime(timezone=True), **options)


class Account(AccountReplica, Base):
    """What accounting knows of an account, fed only by auth's events."""

    __tablename__ = "accounts"
    __table_args__ = (
        # A page of balances reads its accounts' names from here, index only: neighbours
        # in this index, the same accounts' rows are scattered over the table.
        Index("accounts_names", "public_id",
              postgresql_include=["email", "full_name", "role", "active", "deleted"]),
    )


class Task(Base):
    """What accounting knows of a task; fields stay null until a CUD event or
    ``task.added`` tells them."""

    __tablename__ = "tasks"

    public_id: Mapped[uuid.UUID] = _uuid(primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    jira_id: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    assignee_id: Mapped[uuid.UUID | None] = _uuid()
    status: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = _timestamp(server_default=func.now())


class TaskPrice(Base):
    """Fixed once, when accounting first learns of the task; never changed."""

    __tablename__ = "task_prices"

    task_id: Mapped[uuid.UUID] = _uuid(primary_key=True)
    fee: Mapped[int] = mapped_column(Integer)
    reward: Mapped[int] = mapped_column(Integer)
    priced_at: Mapped[datetime] = _timestamp()

    __table_args__ = (
        CheckConstraint(f"fee BETWEEN {FEE_CENTS[0]} AND {FEE_CENTS[1]}", name="fee_in_range"),
        CheckConstraint(
            f"reward BETWEEN {REWARD_CENTS[0]} AND {REWARD_CENTS[1]}", name="reward_in_range"
        ),
    )


class LedgerTransaction(Base):
    """A fee, reward, payout, reversal or adjustment of one popug account.
    ``source_event_id`` is the task event that caused a fee or reward, unique so that no
    event is booked twice."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    public_id: Mapped[uuid.UUID] = _uuid(unique=True)
    type: Mapped[str] = mapped_column(Text)
    account_id: Mapped[uuid.UUID] = _uuid()
    task_id: Mapped[uuid.UUID | None] = _uuid()
    day: Mapped[date] = mapped_column(Date)
    # The account's entry, repeated here so that reading an account's ledger or a day's
    # takes no join; ``balance_after`` is the account's balance right after.
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _timestamp()
    source_event_id: Mapped[uuid.UUID | None] = _uuid()
    # sha256 of the previous transaction's hash and this one's contents (migration 0007)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    # corrections (migration 0009): the transaction a reversal reverses, the column of
    # management's report it counts under, why, and who asked for it
    corrects_id: Mapped[int | None] = mapped_column(BigInteger)
    counts_as: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    booked_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "type IN ('fee', 'reward', 'payout', 'reversal', 'adjustment')", name="type_known"
        ),
        CheckConstraint(
            "(type IN ('payout', 'adjustment')) = (task_id IS NULL)",
            name="task_unless_payout_or_adjustment",
        ),
        CheckConstraint(
            "(type IN ('reversal', 'adjustment'))"
            " = (counts_as IS NOT NULL AND reason IS NOT NULL AND booked_by IS NOT NULL)",
            name="corrections_say_why",
        ),
        CheckConstraint("counts_as IN ('fee', 'reward')", name="counts_as_fee_or_reward"),
        CheckConstraint(
            "(type = 'reversal') = (corrects_id IS NOT NULL)", name="reversal_names_its_original"
        ),
        CheckConstraint(
            "account_id <> '00000000-0000-0000-0000-000000000000'", name="popug_account"
        ),
        Index(
            "transactions_reversed_once",
            "corrects_id",
            unique=True,
            postgresql_where=text("corrects_id IS NOT NULL"),
        ),
        Index(
            "transactions_source_event",
            "source_event_id",
            unique=True,
            postgresql_where=text("source_event_id IS NOT NULL"),
        ),
        Index("transactions_account", "account_id", "id"),
        Index("transactions_account_time", "account_id", "created_at"),
        Index("transactions_day", "day"),
    )


class CorrectionRequest(Base):
    """An ``Idempotency-Key`` a caller sent with a correction: the request it came with
    (a sha256 of it) and the transaction it booked."""

    __tablename__ = "correction_requests"

    caller: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _timestamp()


class Entry(Base):
    """One leg of a transaction: signed cents on a ledger account (a popug's or the
    company's, ``domain.COMPANY_ACCOUNT_ID``)."""

    __tablename__ = "entries"

    transaction_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[uuid.UUID] = _uuid(primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("amount <> 0", name="amount_not_zero"),)


BALANCES_FILLFACTOR = 50


class Balance(Base):
    """Sum of the entries of a popug account (the company's balance is not kept)."""

    __tablename__ = "balances"
    # Every booking and every payout updates a balance. Half of each page is left free so
    # that the new version of a row fits on its page (a "HOT" update): the primary key
    # then needs no new entry. Closing a day for 100,000 accounts updated them in 0.55 s
    # with full pages and in 0.2 s with half-full ones.
    __table_args__ = {"postgresql_with": {"fillfactor": BALANCES_FILLFACTOR}}

    account_id: Mapped[uuid.UUID] = _uuid(primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class DayTotal(Base):
    """Fees charged and rewards paid on a day, as a sum over a few shards: the booking
    statement adds to the row of its connection's shard, so concurrent bookings rarely
    wait on each other, and a report reads at most ``SHARDS`` rows a day."""

    __tablename__ = "day_totals"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    fees_charged: Mapped[int] = mapped_column(BigInteger)
    rewards_paid: Mapped[int] = mapped_column(BigInteger)


class NegativeBalanceCount(Base):
    """How many balances are below zero, as a sum over a few shards kept by a trigger on
    ``balances`` that fires only when a balance crosses zero (migration 0006)."""

    __tablename__ = "negative_balance_counts"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    negative: Mapped[int] = mapped_column(BigInteger)


class BillingDay(Base):
    """A closed billing day: every positive balance of the day was paid out."""

    __tablename__ = "billing_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[datetime] = _timestamp()
    accounts_paid: Mapped[int] = mapped_column(Integer)
    total_paid: Mapped[int] = mapped_column(BigInteger)


class Payout(Base):
    """One account's payout of one day. Its id is that of its ledger transaction (one
    index fewer than a number of its own, for the tens of thousands a close writes)."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    public_id: Mapped[uuid.UUID] = _uuid(unique=True)
    account_id: Mapped[uuid.UUID] = _uuid()
    day: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _timestamp()

    __table_args__ = (
        UniqueConstraint("account_id", "day", name="one_payout_per_account_and_day"),
        CheckConstraint("amount > 0", name="payout_positive"),
        CheckConstraint("id = transaction_id", name="payout_is_its_transaction"),
    )


class PayoutEmail(Base):
    """Mail outbox: queued with the payout, composed and sent by the mailer; ``sent_at``
    is set only once the SMTP server accepted the mail."""

    __tablename__ = "payout_emails"

    payout_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recipient: Mapped[str | None] = mapped_column(Text)
    # composed by the mailer on the first attempt (accounting.payout_mail)
    subject: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = _timestamp(server_default=func.now())
    sent_at: Mapped[datetime | None] = _timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("payout_emails_due", "next_attempt_at", postgresql_where=text("sent_at IS NULL")),
    )


class LedgerVerification(Base):
    """One run of ``ates accounting verify``: whether the chain and the invariants held,
    and the first break found when they did not (the newest row is a metric)."""

    __tablename__ = "ledger_verifications"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    verified_at: Mapped[datetime] = _timestamp()
    holds: Mapped[bool] = mapped_column(Boolean)
    transactions: Mapped[int] = mapped_column(BigInteger)
    # the newest transaction verified: a later run finds it unchanged, or the tip was cut
    tip_id: Mapped[int | None] = mapped_column(BigInteger)
    tip_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_break: Mapped[str | None] = mapped_column(Text)
