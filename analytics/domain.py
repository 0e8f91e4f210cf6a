"""Pure rules of analytics: periods, management earnings, balances, the most expensive
task and the geometry of the per-day chart. No database, no broker, no clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def iso_week_bounds(day: date) -> tuple[date, date]:
    """Monday and Sunday of the ISO week holding ``day`` (it may straddle a year end)."""
    monday = day - timedelta(days=day.isoweekday() - 1)
    return monday, monday + timedelta(days=6)


def month_bounds(day: date) -> tuple[date, date]:
    """First and last day of the calendar month holding ``day``."""
    first = day.replace(day=1)
    next_first = (first + timedelta(days=31)).replace(day=1)
    return first, next_first - timedelta(days=1)


def period_bounds(period: Period, day: date) -> tuple[date, date]:
    """First and last day (both included) of the ``period`` around ``day``."""
    if period is Period.WEEK:
        return iso_week_bounds(day)
    if period is Period.MONTH:
        return month_bounds(day)
    return day, day


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def parse_instant(value: str) -> datetime:
    """An RFC 3339 timestamp of an event (``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(value)


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    """The calendar day ``instant`` falls on in ``zone`` (the platform's time zone)."""
    return instant.astimezone(zone).date()


def open_day(now: datetime, zone: ZoneInfo, last_closed: date | None) -> date:
    """The billing day accounting books into at ``now`` (its rule, known here from
    ``billing_cycle.closed``): today, unless today was already ended by hand, after which
    bookings belong to the day after the last closed one."""
    today = local_day(now, zone)
    if last_closed is None or last_closed < today:
        return today
    return last_closed + timedelta(days=1)


def format_cents(cents: int) -> str:
    """``-123456`` -> ``"-$1,234.56"``."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def format_whole_dollars(cents: int) -> str:
    """``-123456`` -> ``"-$1,235"``: short enough for an axis label on a phone."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${round(abs(cents) / 100):,}"


# --- management earnings and balances -------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """What ``transaction.applied`` says; ``amount`` is signed as seen from the account.

    The event's ``balance_after`` and ``applied_at`` are left out: accounting books many
    transactions with one ``applied_at``, so neither orders them, while the amounts add
    up to the balance in any order.
    """

    transaction_id: uuid.UUID
    account_id: uuid.UUID
    type: str
    amount: int
    day: date

    @classmethod
    def from_event_data(cls, data: Mapping[str, Any]) -> Transaction:
        return cls(
            transaction_id=uuid.UUID(data["transaction_id"]),
            account_id=uuid.UUID(data["account_id"]),
            type=data["type"],
            amount=data["amount"],
            day=date.fromisoformat(data["day"]),
        )


@dataclass(frozen=True)
class DayEarnings:
    """Fees charged and rewards paid on a day, both as positive cents."""

    fees: int = 0
    rewards: int = 0

    @property
    def management_earned(self) -> int:
        """Fees minus rewards; payouts are the popugs' own money and do not count."""
        return self.fees - self.rewards


def earnings_by_day(transactions: Iterable[Transaction]) -> dict[date, DayEarnings]:
    """Management earnings per billing day; days with only payouts are left out."""
    # Plain sums per day (a batch holds thousands of transactions), made into
    # ``DayEarnings`` once per day.
    fees: dict[date, int] = {}
    rewards: dict[date, int] = {}
    for transaction in transactions:
        if transaction.amount == 0:
            continue
        if transaction.type == "fee":
            fees[transaction.day] = fees.get(transaction.day, 0) - transaction.amount
        elif transaction.type == "reward":
            rewards[transaction.day] = rewards.get(transaction.day, 0) + transaction.amount
    return {day: DayEarnings(fees.get(day, 0), rewards.get(day, 0))
            for day in fees | rewards}


def net_by_account_day(transactions: Iterable[Transaction]) -> dict[tuple[uuid.UUID, date], int]:
    """Per account and billing day, the sum of the given transactions' amounts.

    A balance is the sum of its transactions, so an account's balance at the end of a day
    is the sum of its nets up to that day, however the transactions were ordered.
    """
    nets: dict[tuple[uuid.UUID, date], int] = {}
    for transaction in transactions:
        key = (transaction.account_id, transaction.day)
        nets[key] = nets.get(key, 0) + transaction.amount
    return nets


def negative_changes(opening: int, nets: Mapping[date, int]) -> dict[date, int]:
    """+1 on each day the closing balance drops below zero and -1 on each day it gets back
    to zero or above, walking ``nets`` day by day from ``opening``, the balance before the
    first of them."""
    changes: dict[date, int] = {}
    balance = opening
    for day in sorted(nets):
        closing = balance + nets[day]
        if (closing < 0) != (balance < 0):
            changes[day] = 1 if closing < 0 else -1
        balance = closing
    return changes


def add_changes(into: dict[date, int], changes: Mapping[date, int], sign: int = 1) -> None:
    for day, change in changes.items():
        into[day] = into.get(day, 0) + sign * change


@dataclass(frozen=True)
class BalanceUpdate:
    """Nets added to one account, with what is needed to tell how its days in the red
    change: its balance before, and its nets from the first day added on (earlier days
    keep their closing balances, so their changes stay as they are)."""

    balance: int
    later_nets: Mapping[date, int]
    added: Mapping[date, int]

    @property
    def new_balance(self) -> int:
        return self.balance + sum(self.added.values())

    @property
    def crossed_zero(self) -> int:
        """+1 if the balance went below zero, -1 if it got out of the red, else 0."""
        return int(self.new_balance < 0) - int(self.balance < 0)

    def negative_changes(self) -> dict[date, int]:
        """How the difference array of the negative days changes with ``added``."""
        opening = self.balance - sum(self.later_nets.values())
        updated = dict(self.later_nets)
        add_changes(updated, self.added)
        changes = negative_changes(opening, updated)
        add_changes(changes, negative_changes(opening, self.later_nets), sign=-1)
        return {day: change for day, change in changes.items() if change}


def balances_added(nets: Mapping[tuple[uuid.UUID, date], int]
                   ) -> dict[uuid.UUID, dict[date, int]]:
    """The nets of a batch, per account."""
    per_account: dict[uuid.UUID, dict[date, int]] = {}
    for (account_id, day), net in nets.items():
        per_account.setdefault(account_id, {})[day] = net
    return per_account


# --- tasks and billing days, as their events tell them --------------------------------------


@dataclass(frozen=True)
class TaskTitle:
    """A version of a task's title and Jira id (``task.created``, ``task.updated``)."""

    task_id: uuid.UUID
    title: str
    jira_id: str | None
    version: int


@dataclass(frozen=True)
class TaskPrices:
    """What a task costs its assignee and pays on completion (``task.priced``)."""

    task_id: uuid.UUID
    fee: int
    reward: int


@dataclass(frozen=True)
class TaskCompletion:
    """When a task was completed (``task.completed``)."""

    task_id: uuid.UUID
    completed_at: datetime


@dataclass(frozen=True)
class DayClosed:
    """A billing day accounting closed (``billing_cycle.closed``)."""

    day: date
    closed_at: datetime
    accounts_paid: int
    total_paid: int


# --- the most expensive task --------------------------------------------------------------


@dataclass(frozen=True)
class CompletedTask:
    task_id: uuid.UUID
    title: str | None
    jira_id: str | None
    reward: int
    completed_at: datetime
    completed_day: date


def most_expensive(tasks: Iterable[CompletedTask]) -> CompletedTask | None:
    """The task with the highest reward; on a tie the one completed first."""
    ranked = sorted(tasks, key=lambda t: (-t.reward, t.completed_at, t.task_id))
    return ranked[0] if ranked else None


# --- the per-day chart ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartDay:
    day: date
    management_earned: int
    negative_balances: int


@dataclass(frozen=True)
class Bar:
    day: date
    value: int
    x: float
    y: float
    width: float
    height: float

    @property
    def negative(self) -> bool:
        return self.value < 0


@dataclass(frozen=True)
class Point:
    day: date
    value: int
    x: float
    y: float


@dataclass(frozen=True)
class AxisLabel:
    text: str
    x: float
    y: float


@dataclass(frozen=True)
class ChartLayout:
    width: int = 640
    height: int = 260
    left: int = 72
    right: int = 40
    top: int = 16
    bottom: int = 28
    max_day_labels: int = 7

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class ChartGeometry:
    """Everything an SVG needs: bars of management earnings around a zero line, and the
    points of the negative-balance count on their own scale (right-hand axis)."""

    layout: ChartLayout
    bars: list[Bar]
    points: list[Point]
    zero_y: float
    earnings_labels: list[AxisLabel]
    count_labels: list[AxisLabel]
    day_labels: list[AxisLabel]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x},{p.y}" for p in self.points)


def _scale(low: int, high: int, top: float, height: float) -> Callable[[int], float]:
    span = (high - low) or 1

    def y(value: int) -> float:
        return round(top + (high - value) / span * height, 1)

    return y


def chart_geometry(days: Sequence[ChartDay], layout: ChartLayout = ChartLayout()) -> ChartGeometry:
    earned = [d.management_earned for d in days]
    low, high = min([0, *earned]), max([0, *earned])
    earnings_y = _scale(low, high, layout.top, layout.plot_height)
    peak_count = max([1, *(d.negative_balances for d in days)])
    count_y = _scale(0, peak_count, layout.top, layout.plot_height)
    slot = layout.plot_width / max(1, len(days))
    zero_y = earnings_y(0)
    bars, points = [], []
    for index, day in enumerate(days):
        centre = layout.left + slot * (index + 0.5)
        top = earnings_y(day.management_earned)
        bars.append(Bar(day.day, day.management_earned, round(centre - slot * 0.35, 1),
                        min(top, zero_y), round(slot * 0.7, 1), round(abs(top - zero_y), 1)))
        points.append(Point(day.day, day.negative_balances, round(centre, 1),
                            count_y(day.negative_balances)))
    return ChartGeometry(
        layout=layout,
        bars=bars,
        points=points,
        zero_y=zero_y,
        earnings_labels=_value_labels({low, 0, high}, earnings_y, layout.left - 6,
                                       format_whole_dollars),
        count_labels=_value_labels({0, peak_count}, count_y, layout.width - layout.right + 6),
        day_labels=_day_labels(points, layout),
    )


def _value_labels(values: set[int], y: Callable[[int], float], x: float,
                  text: Callable[[int], str] = str) -> list[AxisLabel]:
    return [AxisLabel(text(value), x, y(value)) for value in sorted(values)]


def _day_labels(points: list[Point], layout: ChartLayout) -> list[AxisLabel]:
    step = max(1, -(-len(points) // layout.max_day_labels))
    return [AxisLabel(p.day.strftime("%m-%d"), p.x, layout.height - 8) for p in points[::step]]


def describe_chart(days: Sequence[ChartDay]) -> str:
    """The chart in a sentence, for those who cannot see it (the table below it has every
    value): its days, the range of the earnings, the most negative balances on a day."""
    if not days:
        return "No figures yet."
    earned = [d.management_earned for d in days]
    negative = max(d.negative_balances for d in days)
    return (f"Management earnings per day from {days[0].day.isoformat()} to "
            f"{days[-1].day.isoformat()}, between {format_cents(min(earned))} and "
            f"{format_cents(max(earned))} a day; at most {negative} "
            f"{'popug' if negative == 1 else 'popugs'} with a negative balance at the end of "
            f"a day. Every value is in the table below.")
