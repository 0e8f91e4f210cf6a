"""JSON API of analytics, for admins only: summary, most expensive task, per-day history."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from analytics.domain import CompletedTask, DayEarnings, Period
from analytics.queries import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AccountBalance,
    AnalyticsQueries,
    DayHistory,
    MostExpensive,
    NegativeBalances,
    Summary,
)
from auth_client.guards import require_role
from auth_client.verification import CurrentUser
from platform_kit.cursor import InvalidCursor
from platform_kit.dates import parse_iso_date
from platform_kit.openapi import error

HISTORY_DEFAULT_DAYS = 30
HISTORY_MAX_DAYS = 366

Admin = Annotated[CurrentUser, Depends(require_role("admin"))]




class BadRequest(HTTPException):
    def __init__(self, detail: str, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(status_code, detail)


class InvalidDate(BadRequest):
    def __init__(self, name: str, raw: str):
        super().__init__(f"{name} must be a date like 2026-11-22, not {raw!r}",
                         status.HTTP_422_UNPROCESSABLE_CONTENT)


def parse_day(raw: str | None, default: date, name: str = "date") -> date:
    """A ``YYYY-MM-DD`` query parameter; ``default`` when it is absent or empty.

    Only that form: ``date.fromisoformat`` alone also reads ``20261122`` and week dates.
    """
    if not raw:
        return default
    day = parse_iso_date(raw)
    if day is None:
        raise InvalidDate(name, raw)
    return day


def parse_period(raw: str) -> Period:
    try:
        return Period(raw)
    except ValueError:
        choices = ", ".join(p.value for p in Period)
        raise BadRequest(f"period must be one of {choices}, not {raw!r}") from None


def parse_range(raw_from: str | None, raw_to: str | None, today: date) -> tuple[date, date]:
    """``from``..``to`` (both included); by default the 30 days up to ``to`` or today."""
    last = parse_day(raw_to, today, "to")
    first = parse_day(raw_from, last - timedelta(days=HISTORY_DEFAULT_DAYS - 1), "from")
    if first > last:
        raise BadRequest("from must not be after to")
    if (last - first).days >= HISTORY_MAX_DAYS:
        raise BadRequest(f"a history spans at most {HISTORY_MAX_DAYS} days")
    return first, last


def _earnings(earnings: DayEarnings) -> dict[str, int]:
    return {
        "fees": earnings.fees,
        "rewards": earnings.rewards,
        "management_earned": earnings.management_earned,
    }


def _account(balance: AccountBalance) -> dict[str, Any]:
    return {"id": str(balance.account_id), "name": balance.name, "balance": balance.balance}


def negative_json(negative: NegativeBalances) -> dict[str, Any]:
    return {
        "count": negative.count,
        "accounts": [_account(b) for b in negative.accounts],
        "next": negative.next,
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "date": summary.day.isoformat(),
        **_earnings(summary.earnings),
        "negative_balances": negative_json(summary.negative),
    }


def task_json(task: CompletedTask | None) -> dict[str, Any] | None:
    if task is None:
        return None
    return {
        "id": str(task.task_id),
        "title": task.title,
        "jira_id": task.jira_id,
        "reward": task.reward,
        "completed_at": task.completed_at.isoformat(),
        "completed_on": task.completed_day.isoformat(),
    }


def most_expensive_json(result: MostExpensive, day: date) -> dict[str, Any]:
    return {
        "period": result.period.value,
        "date": day.isoformat(),
        "from": result.first.isoformat(),
        "to": result.last.isoformat(),
        "task": task_json(result.task),
    }


def day_json(day: DayHistory) -> dict[str, Any]:
    return {
        "date": day.day.isoformat(),
        **_earnings(day.earnings),
        "negative_balances": day.negative_balances,
        "closed": day.closed,
    }


# -- response bodies ----------------------------------------------------------------------

IsoDate = date  # a field named ``date`` must not hide its type


class Earnings(BaseModel):
    fees: int = Field(description="Fees charged on the day, in cents")
    rewards: int = Field(description="Rewards paid on the day, in cents")
    management_earned: int = Field(description="Fees minus rewards")


class NegativeAccount(BaseModel):
    id: uuid.UUID
    name: str | None = Field(description="The account's full name (its email when it has "
                             "none); null until analytics has its account.created")
    balance: int = Field(description="In cents, below zero")


class NegativeBalancesOut(BaseModel):
    count: int = Field(description="Accounts in the red now")
    accounts: list[NegativeAccount] = Field(description="A page of them, the deepest first")
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class SummaryOut(Earnings):
    date: IsoDate
    negative_balances: NegativeBalancesOut


class ExpensiveTask(BaseModel):
    id: uuid.UUID
    title: str | None
    jira_id: str | None
    reward: int
    completed_at: str = Field(json_schema_extra={"format": "date-time"})
    completed_on: IsoDate


class MostExpensiveOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    period: Period
    date: IsoDate
    first: IsoDate = Field(alias="from")
    last: IsoDate = Field(alias="to")
    task: ExpensiveTask | None


class DayOut(Earnings):
    date: IsoDate
    negative_balances: int = Field(description="Accounts negative at the end of the day")
    closed: bool


class DaysOut(BaseModel):
    items: list[DayOut]
    next: str | None


INVALID: dict[int | str, dict[str, Any]] = {400: error("An invalid cursor, period or range")}


def api_router(analytics: AnalyticsQueries) -> APIRouter:
    router = APIRouter(prefix="/api/analytics", tags=["analytics"], responses=INVALID)

    @router.get("/summary", response_model=SummaryOut)
    def summary(
        _: Admin,
        date: str | None = None,
        cursor: Annotated[str | None, Query(
            description="`negative_balances.next` of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        """Management earnings of a day (default today) and the popugs in the red now:
        their count and a page of them, the deepest first (`next` is null on the last)."""
        day = parse_day(date, analytics.today())
        try:
            return summary_json(analytics.summary(day, cursor, limit))
        except InvalidCursor as invalid:
            raise BadRequest(str(invalid)) from None

    @router.get("/most-expensive-task", response_model=MostExpensiveOut)
    def most_expensive_task(_: Admin, period: str = "day", date: str | None = None
                            ) -> dict[str, Any]:
        """The highest reward among tasks completed in the day, ISO week or calendar month
        around ``date``; on a tie the task completed first. ``task`` is null when none."""
        day = parse_day(date, analytics.today())
        return most_expensive_json(analytics.most_expensive_task(parse_period(period), day), day)

    @router.get("/days", response_model=DaysOut)
    def days(
        _: Admin,
        first: Annotated[str | None, Query(alias="from")] = None,
        last: Annotated[str | None, Query(alias="to")] = None,
    ) -> dict[str, Any]:
        """Per day: fees, rewards, management earnings, accounts negative at its end."""
        first_day, last_day = parse_range(first, last, analytics.today())
        return {"items": [day_json(d) for d in analytics.history(first_day, last_day)],
                "next": None}

    return router
