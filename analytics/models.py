"""Tables of the analytics database: a projection of the accounting, tasks and accounts
topics.

Every table is written only by the stream projector and can be emptied and rebuilt by
replaying the topics. Each effect commutes with the others (sums, "keep the newest",
"keep the first"), so the projection ends the same whatever order the topics interleave.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, SmallInteger, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from auth_client.replica import AccountReplica


class Base(DeclarativeBase):
    pass


class DailyEarnings(Base):
    """Fees charged and rewards paid on one billing day (payouts are not counted)."""

    __tablename__ = "daily_earnings"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    fees: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rewards: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class AccountDayNet(Base):
    """The sum of the amounts an account's transactions of one billing day moved.

    A balance is the sum of its transactions, so the balance at the end of a day is the
    sum of the nets of that day and every earlier one, whatever order the transactions
    were booked or delivered in.
    """

    __tablename__ = "account_day_nets"

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    net: Mapped[int] = mapped_column(BigInteger)


class Balance(Base):
    """An account's balance now: the sum of all its nets, kept as they are added."""

    __tablename__ = "account_balances"
    __table_args__ = (
        # The accounts in the red, deepest first, without reading the others.
        Index("account_balances_negative", "balance", "account_id",
              postgresql_where=text("balance < 0")),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger)


class NegativeBalanceCount(Base):
    """How many balances are below zero now: the sum of the shards. A writer adds what
    its batch changed to the shard of its database connection, so concurrent writers
    do not queue on one row."""

    __tablename__ = "negative_balance_counts"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    negative: Mapped[int] = mapped_column(BigInteger)


class NegativeCountChange(Base):
    """A difference array of the negative balances per day: an account adds +1 on the
    day its closing balance drops below zero and -1 on the day it gets back to zero or
    above, so the accounts negative at the end of a day are the sum of the changes up to
    it. Days whose changes cancel out have no row."""

    __tablename__ = "negative_count_changes"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    change: Mapped[int] = mapped_column(BigInteger)


class Task(Base):
    """What analytics knows of a task: its title from the CUD stream (newest ``version``
    wins), its prices from ``task.priced`` and when it was completed."""

    __tablename__ = "tasks"
    __table_args__ = (
        # In the order of ``domain.most_expensive``: a day's most expensive task is the
        # first entry of its day.
        Index("tasks_completed_ranked", "completed_day", text("reward DESC NULLS LAST"),
              "completed_at", "task_id"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    jira_id: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    fee: Mapped[int | None] = mapped_column(Integer)
    reward: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_day: Mapped[date | None] = mapped_column(Date)


class ClosedDay(Base):
    """A billing day that accounting closed (``billing_cycle.closed``)."""

    __tablename__ = "closed_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accounts_paid: Mapped[int] = mapped_column(Integer)
    total_paid: Mapped[int] = mapped_column(BigInteger)


class Account(AccountReplica, Base):
    """Auth's accounts as ``account.created`` and ``account.updated`` say (newest
    ``version`` wins): the names the dashboard shows beside balances. Read only by
    primary key, for the rows of a page."""

    __tablename__ = "accounts"

    @property
    def name(self) -> str | None:
        return self.full_name or self.email


PROJECTION_TABLES = (DailyEarnings, AccountDayNet, Balance, NegativeBalanceCount,
                     NegativeCountChange, Task, ClosedDay, Account)
