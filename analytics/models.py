"""Tables of the analytics database: a projection of the accounting and tasks topics.

Every table is written only by the stream projector and can be emptied and rebuilt by
replaying the topics. Each effect commutes with the others (sums, "keep the newest",
"keep the first"), so the projection ends the same whatever order the topics interleave.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class Task(Base):
    """What analytics knows of a task: its title from the CUD stream (newest ``version``
    wins), its prices from ``task.priced`` and when it was completed."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("tasks_completed", "completed_day", "reward"),
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


PROJECTION_TABLES = (DailyEarnings, AccountDayNet, Task, ClosedDay)
