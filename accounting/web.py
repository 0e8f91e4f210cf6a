"""The accounting dashboard: server-rendered pages for people signed in through auth's SSO.

Everyone sees their own account (balance, today's earnings, a statement filtered by dates
and type, its CSV, per-day history), kept up to date by ``static/account.js``: it listens
to ``/events`` (Server-Sent Events of the ledger's ``NOTIFY``, see migration 0011) and
fetches the page again when something is booked for the account. Admins and accountants
also see management's earnings over a range of days (a table and a bar chart drawn here,
no script), every balance with each account's statement, the CSV exports and the form
that closes a day. Forms carry a CSRF token (``dashboard_kit.forms.FormGuard``); every page works
without script.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from accounting import domain
from accounting.api import sees_everything, statement_filter, status_for
from accounting.ledger_sql import Books
from accounting.queries import (
    MAX_REPORT_DAYS,
    AccountBalance,
    AccountingQueries,
    LedgerLine,
    ManagementDay,
    StatementFilter,
)
from accounting.service import AccountingService, Sessions
from auth_client.sign_in import AuthClientConfig
from auth_client.verification import CurrentUser
from dashboard_kit.pages import CsrfField, DashboardLinks, DashboardPages, Visitor, page_templates
from platform_kit import live
from platform_kit.db import engine_of
from platform_kit.tracing import current_traceparent

STATIC_DIR = Path(__file__).parent / "static"
PAGE_SIZE = 20
HISTORY_DAYS = 14
CSRF_COOKIE = "ates_accounting_csrf"
BOOKED_CHANNEL = "accounting_booked"  # migration 0011
REFUSAL_TITLES = {400: "Page not found", 409: "Not possible now", 422: "Cannot do that"}
TYPE_NAMES = {domain.FEE: "Fee", domain.REWARD: "Reward", domain.PAYOUT: "Payout",
              domain.REVERSAL: "Reversal", domain.ADJUSTMENT: "Adjustment"}

templates = page_templates(Path(__file__).parent / "templates")


def money(cents: int) -> str:
    """Integer cents as dollars: ``-1250`` -> ``-$12.50``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


templates.env.filters["money"] = money
templates.env.globals["type_names"] = TYPE_NAMES


# -- the bar chart ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    earned: int

    @property
    def negative(self) -> bool:
        return self.earned < 0

    @property
    def middle(self) -> float:
        return round(self.x + self.width / 2, 2)

    @property
    def value_y(self) -> float:
        """Where the bar's value is written: just beyond its end."""
        return round(self.y + self.height + 12 if self.negative else self.y - 4, 2)


@dataclass(frozen=True)
class Tick:
    """A mark of an axis: where, and what it says."""

    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: list[Bar]
    left: int = 0
    bottom: float = 0
    values: list[Tick] = field(default_factory=list)  # the money axis
    days: list[Tick] = field(default_factory=list)  # the day axis
    with_values: bool = False  # each bar's value written beside it
    summary: str = ""


CHART_WIDTH, CHART_HEIGHT = 480, 220
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 96, 4, 18, 44
TICK_SPACING = 16  # closer ticks would write over each other
BARS_WITH_VALUES = 7  # more bars are too narrow for their values
DAY_LABELS = 7


def bar_chart(days: Sequence[ManagementDay]) -> Chart:
    """One bar per day (oldest left), above the baseline for earnings, below for losses,
    with a money axis (highest, zero, lowest), a day axis and a summary in words."""
    top = max([0, *(day.earned for day in days)])
    bottom = min([0, *(day.earned for day in days)])
    span = (top - bottom) or 1
    usable = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    baseline = PLOT_TOP + usable * top / span
    slot = (CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT) / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        height = usable * abs(day.earned) / span
        y = baseline - height if day.earned >= 0 else baseline
        bars.append(Bar(round(PLOT_LEFT + index * slot + slot * 0.15, 2), round(y, 2),
                        round(slot * 0.7, 2), round(height, 2), day.day, day.earned))
    values = _money_ticks(top, bottom, usable)
    return Chart(CHART_WIDTH, CHART_HEIGHT, round(baseline, 2), bars, PLOT_LEFT,
                 CHART_HEIGHT - PLOT_BOTTOM, values, _day_ticks(bars),
                 0 < len(bars) <= BARS_WITH_VALUES, chart_summary(days))


def _money_ticks(top: int, bottom: int, usable: float) -> list[Tick]:
    """Zero, and the highest and lowest values unless too close to zero to be read."""
    span = (top - bottom) or 1

    def at(value: int) -> float:
        return round(PLOT_TOP + usable * (top - value) / span, 2)

    zero = at(0)
    ends = [value for value in (top, bottom) if value and abs(at(value) - zero) >= TICK_SPACING]
    return [Tick(at(value), money(value)) for value in sorted({*ends, 0}, reverse=True)]


def _day_ticks(bars: Sequence[Bar]) -> list[Tick]:
    step = max(1, math.ceil(len(bars) / DAY_LABELS))
    shown = bars[::-1][::step][::-1]  # the latest day always has its label
    short = len({bar.day.year for bar in bars}) == 1
    return [Tick(bar.middle, bar.day.strftime("%b %d") if short else bar.day.isoformat())
            for bar in shown]


def chart_summary(days: Sequence[ManagementDay]) -> str:
    """The chart in one sentence, for those who do not see it."""
    if not days:
        return "Nothing earned yet."
    best = max(days, key=lambda day: day.earned)
    worst = min(days, key=lambda day: day.earned)
    total = sum(day.earned for day in days)
    noun = "day" if len(days) == 1 else "days"
    return (f"Management earned {money(total)} over {len(days)} {noun}, {days[0].day} to"
            f" {days[-1].day}; best day {best.day} ({money(best.earned)}), worst day"
            f" {worst.day} ({money(worst.earned)}). The table below lists every day.")


# -- pages --------------------------------------------------------------------------------


def _parse_day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        raise domain.InvalidRange(f"{raw!r} is not a date like 2026-11-22") from None


def _account_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class StatementQuery:
    """The statement's filters and page as the address gives them (text, maybe wrong)."""

    first: str = ""
    last: str = ""
    type: str = ""
    cursor: str = ""

    def filters(self) -> dict[str, str]:
        """The filters set, as query parameters."""
        named = {"from": self.first, "to": self.last, "type": self.type}
        return {name: value for name, value in named.items() if value}

    def url(self, path: str, **more: str) -> str:
        query = urlencode({**self.filters(), **more})
        return f"{path}?{query}" if query else path


class Dashboard(DashboardPages):
    def __init__(self, sessions: Sessions, books: Books, auth: AuthClientConfig,
                 links: DashboardLinks):
        super().__init__(templates, auth, CSRF_COOKIE, links)
        self.service = AccountingService(sessions, books)
        self.queries = AccountingQueries(sessions, books.clock, books.settings.timezone)
        self.sessions = sessions
        self.books = books
        self.live = live.LiveFeed(live.conninfo_of(engine_of(sessions)), BOOKED_CHANNEL)

    # --- rendering ------------------------------------------------------------------

    def user_context(self, user: CurrentUser) -> dict[str, Any]:
        return {"sees_everything": sees_everything(user)}

    def not_allowed(self, request: Request, user: CurrentUser) -> HTMLResponse:
        return self.message(request, user, "Not allowed",
                            "Only admins and accountants may see this.", 403)

    def refused(self, request: Request, user: CurrentUser, error: domain.AccountingError,
                link: str = "/") -> HTMLResponse:
        return self.refusal(request, user, error, status_for(error), REFUSAL_TITLES, link)

    # --- one account ----------------------------------------------------------------

    def _statement(self, query: StatementQuery) -> StatementFilter:
        return statement_filter(self.queries, _parse_day(query.first),
                                _parse_day(query.last), query.type or None)

    def account_page(self, request: Request, user: CurrentUser, account_id: uuid.UUID,
                     query: StatementQuery, path: str) -> HTMLResponse:
        own = user.id == str(account_id)
        account = self.queries.find_account(account_id)
        if account is None and not own:
            return self.message(request, user, "Not found", "No such account.", 404)
        try:
            statement = self._statement(query)
            lines, next_cursor = self.queries.audit_log(account_id, query.cursor or None,
                                                        PAGE_SIZE, statement=statement)
        except domain.AccountingError as error:
            return self.refused(request, user, error, link=path)
        days, _ = self.queries.account_days(account_id, limit=HISTORY_DAYS)
        context = {
            "own": own, "account": account, "query": query, "filtered": statement.by_time
            or statement.type is not None,
            "summary": self.queries.account_summary(account_id),
            "lines": lines, "days": days,
            "next_url": next_cursor and query.url(path, cursor=next_cursor),
            "first_url": query.cursor and query.url(path),
            "csv_url": query.url(f"/api/accounts/{account_id}/transactions.csv"),
            "events_url": f"/events?{urlencode({'account': str(account_id)})}",
            "clear_url": path,
        }
        return self.render(request, user, "account.html", context)

    def my_account(self, request: Request, user: CurrentUser, query: StatementQuery
                   ) -> HTMLResponse:
        account_id = _account_id(user.id)
        if account_id is None:
            return self.message(request, user, "No account",
                                "Service clients have no account of their own.", 403)
        return self.account_page(request, user, account_id, query, "/")

    def _may_see(self, request: Request, user: CurrentUser, raw_id: str
                 ) -> uuid.UUID | HTMLResponse:
        account_id = _account_id(raw_id)
        if account_id is not None and user.id == str(account_id):
            return account_id
        if not sees_everything(user):
            return self.message(request, user, "Not allowed",
                                "You may only see your own account.", 403)
        if account_id is None:
            return self.message(request, user, "Not found", "No such account.", 404)
        return account_id

    def other_account(self, request: Request, user: CurrentUser, raw_id: str,
                      query: StatementQuery) -> HTMLResponse:
        account_id = self._may_see(request, user, raw_id)
        if not isinstance(account_id, uuid.UUID):
            return account_id
        return self.account_page(request, user, account_id, query, f"/accounts/{account_id}")

    # --- live updates ---------------------------------------------------------------

    def events(self, request: Request, user: CurrentUser, raw_id: str | None) -> Response:
        """Server-Sent Events: ``ready`` once listening, then ``change`` whenever something
        is booked for the account (the visitor's own unless ``raw_id`` names another)."""
        account_id = self._may_see(request, user, raw_id or user.id)
        if not isinstance(account_id, uuid.UUID):
            return account_id
        return StreamingResponse(live.event_stream(self.live, _booked_for(account_id)),
                                 media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    # --- corrections ----------------------------------------------------------------

    def _reversible(self, request: Request, user: CurrentUser, raw_id: str
                    ) -> LedgerLine | HTMLResponse:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        transaction_id = _account_id(raw_id)
        line = transaction_id and self.queries.ledger_line(transaction_id)
        if not line:
            return self.message(request, user, "Not found", "No such transaction.", 404)
        return line

    def reverse_page(self, request: Request, user: CurrentUser, raw_id: str) -> HTMLResponse:
        line = self._reversible(request, user, raw_id)
        if not isinstance(line, LedgerLine):
            return line
        account = self.queries.find_account(line.account_id)
        # one key per form shown: submitting it twice books the reversal once
        return self.render(request, user, "reverse.html", {
            "line": line, "account": account, "idempotency_key": str(uuid.uuid4())})

    def reverse(self, request: Request, user: CurrentUser, raw_id: str, reason: str,
                key: str, csrf_token: str) -> Response:
        line = self._reversible(request, user, raw_id)
        if not isinstance(line, LedgerLine):
            return line
        back = f"/accounts/{line.account_id}"
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user, link=back)
        try:
            self.service.reverse(line.id, reason, user.id, key or None, current_traceparent())
        except domain.AccountingError as error:
            return self.refused(request, user, error, link=back)
        return self.redirect(back, notice="Reversed: the reversal is booked today.")

    # --- management -----------------------------------------------------------------

    def _report_days(self, raw_first: str | None, raw_last: str | None
                     ) -> tuple[date, date, list[ManagementDay]]:
        """The range asked for (by default the last ``HISTORY_DAYS`` days) and its days
        from the first with fees or rewards on: none before anything was booked."""
        last = _parse_day(raw_last) or self.queries.open_day()
        first = _parse_day(raw_first) or last - timedelta(days=HISTORY_DAYS - 1)
        domain.days_between(first, last)  # refuses a range that ends before it starts
        if (last - first).days >= MAX_REPORT_DAYS:
            raise domain.InvalidRange(f"a report covers at most {MAX_REPORT_DAYS} days")
        with_data = self.queries.first_management_day()
        if with_data is None or with_data > last:
            return first, last, []
        return first, last, self.queries.management_days(max(first, with_data), last)

    def management_page(self, request: Request, user: CurrentUser, cursor: str | None,
                        raw_first: str | None, raw_last: str | None) -> HTMLResponse:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        try:
            balances, next_cursor = self.queries.list_balances(cursor, PAGE_SIZE)
            first, last, days = self._report_days(raw_first, raw_last)
        except domain.AccountingError as error:
            return self.refused(request, user, error, link="/management")
        today = self.queries.open_day()
        shown = {"from": first.isoformat(), "to": last.isoformat()}
        asked = {name: value for name, value in (("from", raw_first), ("to", raw_last)) if value}
        page_url = f"/management?{urlencode(asked)}".rstrip("?")
        context = {
            "today": self.queries.management_earnings(today),
            "days": list(reversed(days)), "chart": bar_chart(days), "first": first,
            "last": last, "balances": balances, "names": _names(balances),
            "export_query": urlencode(shown), "open_day": today,
            "next_url": next_cursor and
            f"/management?{urlencode({**asked, 'cursor': next_cursor})}",
            "first_url": cursor and page_url,
        }
        return self.render(request, user, "management.html", context)

    # --- closing a day --------------------------------------------------------------

    def close_day_page(self, request: Request, user: CurrentUser, raw_day: str | None
                       ) -> HTMLResponse:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        try:
            day = _parse_day(raw_day) or self.queries.open_day()
        except domain.AccountingError as error:
            return self.refused(request, user, error, link="/management")
        return self.render(request, user, "close_day.html", {"day": day})

    def close_day(self, request: Request, user: CurrentUser, raw_day: str,
                  csrf_token: str) -> Response:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user, link="/management")
        try:
            closed = self.service.close_day(_parse_day(raw_day), current_traceparent())
        except domain.AccountingError as error:
            return self.refused(request, user, error, link="/management")
        if not closed:
            return self.redirect("/management", notice="That day was already closed.")
        paid = sum(day.total_paid for day in closed)
        return self.redirect("/management", notice=f"Day closed. Paid out: {money(paid)}.")


def _booked_for(account_id: uuid.UUID) -> Callable[[live.Message], bool]:
    """Whether a message of the ledger's trigger concerns ``account_id``."""
    wanted = str(account_id)

    def concerns(message: live.Message) -> bool:
        accounts = message.get("accounts")
        return accounts == "all" or (isinstance(accounts, list) and wanted in accounts)

    return concerns


def _names(balances: list[AccountBalance]) -> dict[uuid.UUID, str]:
    return {b.account_id: b.full_name or b.email or str(b.account_id) for b in balances}


def _statement_query(cursor: str | None = None,
                     first: Annotated[str | None, Query(alias="from")] = None,
                     last: Annotated[str | None, Query(alias="to")] = None,
                     kind: Annotated[str | None, Query(alias="type")] = None
                     ) -> StatementQuery:
    return StatementQuery(first or "", last or "", kind or "", cursor or "")


Statement = Annotated[StatementQuery, Depends(_statement_query)]


def web_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def my_account(request: Request, user: Visitor, query: Statement) -> Response:
        return dashboard.my_account(request, user, query)

    @router.get("/accounts/{account_id}")
    def account(request: Request, user: Visitor, account_id: str, query: Statement
                ) -> Response:
        return dashboard.other_account(request, user, account_id, query)

    @router.get("/events")
    async def events(request: Request, user: Visitor, account: str | None = None
                     ) -> Response:
        return dashboard.events(request, user, account)

    @router.get("/transactions/{transaction_id}/reverse")
    def reverse_page(request: Request, user: Visitor, transaction_id: str) -> Response:
        return dashboard.reverse_page(request, user, transaction_id)

    @router.post("/transactions/{transaction_id}/reverse")
    def reverse(request: Request, user: Visitor, transaction_id: str,
                csrf_token: CsrfField = "", reason: Annotated[str, Form()] = "",
                idempotency_key: Annotated[str, Form()] = "") -> Response:
        return dashboard.reverse(request, user, transaction_id, reason, idempotency_key,
                                 csrf_token)

    @router.get("/management")
    def management(request: Request, user: Visitor, cursor: str | None = None,
                   first: Annotated[str | None, Query(alias="from")] = None,
                   last: Annotated[str | None, Query(alias="to")] = None) -> Response:
        return dashboard.management_page(request, user, cursor, first, last)

    @router.get("/close-day")
    def close_day_page(request: Request, user: Visitor, date: str | None = None) -> Response:
        return dashboard.close_day_page(request, user, date)

    @router.post("/close-day")
    def close_day(request: Request, user: Visitor, csrf_token: CsrfField = "",
                  day: Annotated[str, Form()] = "") -> Response:
        return dashboard.close_day(request, user, day, csrf_token)

    return router
