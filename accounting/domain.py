"""The rules of accounting that run in Python, free of any I/O.

The rules that run as SQL (what a task charges, both legs of every transaction, what a
day's close pays out) are stated once, in SQL (``accounting.ledger_sql``,
``accounting.bulk_sql``, ``accounting.closing``); the tests check them against the
oracle in ``tests/accounting/ledger_oracle.py``.

Money is integer cents everywhere. Every ledger transaction moves money between one
popug's account and the company's account: its two entries sum to zero. Amounts "as
seen from the account" are signed: fees and payouts negative, rewards positive.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from event_schemas import task_v1_to_v2

FEE = "fee"
REWARD = "reward"
PAYOUT = "payout"
REVERSAL = "reversal"
ADJUSTMENT = "adjustment"
TRANSACTION_TYPES = (FEE, REWARD, PAYOUT, REVERSAL, ADJUSTMENT)
CORRECTIONS = (REVERSAL, ADJUSTMENT)
REVERSIBLE = (FEE, REWARD)
# The largest adjustment, either way: a typo of a few digits is refused, not booked.
MAX_ADJUSTMENT_CENTS = 100_000_000
MAX_REASON_LENGTH = 500

FEE_CENTS = (1000, 2000)
REWARD_CENTS = (2000, 4000)

# The single account on the other side of every transaction; no popug has this id.
COMPANY_ACCOUNT_ID = uuid.UUID(int=0)


class AccountingError(Exception):
    """Base of the errors a caller may show to a user."""


class DayNotStarted(AccountingError):
    def __init__(self, day: date, open_day: date) -> None:
        super().__init__(f"{day.isoformat()} has not begun: the current day is {open_day}")


class DayAlreadyEnded(AccountingError):
    """Ending the current day again the same day: the next one has not begun."""

    def __init__(self, today: date) -> None:
        tomorrow = today + timedelta(days=1)
        super().__init__(
            f"{today.isoformat()} is already closed and {tomorrow.isoformat()} has not begun"
        )


class DayBeforeLedger(AccountingError):
    def __init__(self, day: date, first: date) -> None:
        super().__init__(
            f"{day.isoformat()} is before {first.isoformat()}, the first day that can be closed"
        )


class InvalidCursor(AccountingError):
    def __init__(self) -> None:
        super().__init__("invalid cursor")


class InvalidRange(AccountingError):
    pass


class NotFound(AccountingError):
    pass


class InvalidCorrection(AccountingError):
    """A correction that can never be booked as asked (422)."""


class AlreadyReversed(AccountingError):
    def __init__(self, original: uuid.UUID, reversal: uuid.UUID) -> None:
        super().__init__(f"transaction {original} is already reversed by {reversal}")


class IdempotencyKeyReused(AccountingError):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for another request; use a new key"
        )


def counted_as_when_adjusting(amount: int) -> str:
    """An adjustment counts in management's report as a fee when it charges the popug and
    as a reward when it credits them, on the day it is booked."""
    return FEE if amount < 0 else REWARD


def check_reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise InvalidCorrection("a reason is required")
    if len(cleaned) > MAX_REASON_LENGTH:
        raise InvalidCorrection(f"a reason has at most {MAX_REASON_LENGTH} characters")
    return cleaned


def check_adjustment(amount: int) -> int:
    if amount == 0:
        raise InvalidCorrection("an adjustment of 0 cents changes nothing")
    if abs(amount) > MAX_ADJUSTMENT_CENTS:
        raise InvalidCorrection(
            f"an adjustment is at most {MAX_ADJUSTMENT_CENTS} cents either way")
    return amount


# -- prices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    fee: int
    reward: int


def price_task(rng: random.Random) -> Price:
    """Fee and reward drawn uniformly (in whole cents) from their ranges."""
    return Price(fee=rng.randint(*FEE_CENTS), reward=rng.randint(*REWARD_CENTS))


# -- the ledger -----------------------------------------------------------------------


def signed_amount(transaction_type: str, cents: int) -> int:
    """``cents`` (a positive price or payout) as seen from the popug's account."""
    if cents <= 0:
        raise ValueError(f"an amount is a positive number of cents, not {cents}")
    if transaction_type == REWARD:
        return cents
    if transaction_type in (FEE, PAYOUT):
        return -cents
    raise ValueError(f"unknown transaction type {transaction_type!r}")


def management_earned(fees_charged: int, rewards_paid: int) -> int:
    """Fees charged on a day (positive cents) minus rewards paid on it; payouts excluded."""
    return fees_charged - rewards_paid


# -- billing days ---------------------------------------------------------------------


def billing_day(moment: datetime, zone: tzinfo) -> date:
    """The calendar day of ``moment`` (an aware datetime) in ``zone``."""
    if moment.tzinfo is None:
        raise ValueError("billing_day needs an aware datetime")
    return moment.astimezone(zone).date()


def open_day(now: datetime, zone: tzinfo, last_closed: date | None) -> date:
    """The day a transaction recorded at ``now`` belongs to.

    Today's date, unless today was already closed by hand: a closed day takes nothing
    more, so transactions then belong to the day after the last closed one.
    """
    today = billing_day(now, zone)
    if last_closed is None or last_closed < today:
        return today
    return last_closed + timedelta(days=1)


@dataclass(frozen=True)
class Calendar:
    """What closing needs to know: today's date in the time zone, the last closed day and
    the first day of the ledger (its first transaction or closed day; None while empty)."""

    today: date
    last_closed: date | None
    first_day: date | None

    @property
    def first_closable(self) -> date:
        """The ledger's first day, or today for a ledger where nothing happened yet."""
        return min(self.first_day or self.today, self.today)


def closing_target(calendar: Calendar, requested: date | None) -> date:
    """The day that closing ``requested`` closes through (open days before it first).

    Without a date, the current day ends now: today, unless it is already closed (the
    next day has not begun). A date must lie between the first day of the ledger and
    today; a closed one is accepted and closes nothing.
    """
    today, last_closed = calendar.today, calendar.last_closed
    if requested is None:
        if last_closed is not None and last_closed >= today:
            raise DayAlreadyEnded(today)
        return today
    if requested > today:
        raise DayNotStarted(requested, today)
    if requested < calendar.first_closable:
        raise DayBeforeLedger(requested, calendar.first_closable)
    return requested


def next_day_to_close(
    last_closed: date | None, first_unclosed_activity: date | None, through: date
) -> date | None:
    """The oldest day still open up to ``through`` (days close in order), if any.

    Before any day was closed, closing starts with the first day that has a transaction
    (or with ``through`` itself when there is none).
    """
    if last_closed is not None:
        start = last_closed + timedelta(days=1)
    else:
        start = min(first_unclosed_activity or through, through)
    return start if start <= through else None


def last_ended_day_to_close(
    last_closed: date | None, first_unclosed_activity: date | None, today: date
) -> date | None:
    """Once ``today`` has begun, every open day before it is to be closed: through the
    day before today, unless nothing ever happened before today (a new ledger has no day
    to close)."""
    if last_closed is None and (
        first_unclosed_activity is None or first_unclosed_activity >= today
    ):
        return None
    return today - timedelta(days=1)


def days_between(first: date, last: date) -> list[date]:
    if last < first:
        raise InvalidRange(f"the range ends ({last}) before it starts ({first})")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# -- tasks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFacts:
    """What the task CUD events say about a task, in the shape of schema v2."""

    task_id: uuid.UUID
    title: str
    jira_id: str | None
    description: str | None
    status: str
    assignee_id: uuid.UUID
    version: int


@dataclass(frozen=True)
class TaskDescription:
    """What ``task.added`` says: the task's text, before any CUD event brings its state."""

    task_id: uuid.UUID
    title: str
    jira_id: str | None
    description: str | None


def task_facts(data: dict[str, Any], dataversion: int) -> TaskFacts:
    """``task.created``/``task.updated`` data of either version (v1 titles are split)."""
    if dataversion == 1:
        data = task_v1_to_v2(data)
    elif dataversion != 2:
        raise ValueError(f"unknown task data version {dataversion}")
    return TaskFacts(
        task_id=uuid.UUID(data["task_id"]),
        title=data["title"],
        jira_id=data["jira_id"],
        description=data["description"],
        status=data["status"],
        assignee_id=uuid.UUID(data["assignee_id"]),
        version=data["version"],
    )


def newest_per_task(facts: Sequence[TaskFacts]) -> list[TaskFacts]:
    """One state per task: the one with the highest version (the first of equals)."""
    newest: dict[uuid.UUID, TaskFacts] = {}
    for fact in facts:
        known = newest.get(fact.task_id)
        if known is None or fact.version > known.version:
            newest[fact.task_id] = fact
    return list(newest.values())


# -- mail -----------------------------------------------------------------------------


def retry_delay(attempts: int, first: float, maximum: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: doubling, capped."""
    return min(maximum, first * 2.0 ** max(0, attempts - 1))
