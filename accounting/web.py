"""The accounting dashboard: server-rendered pages for people signed in through auth's SSO.

Everyone sees their own account (balance, today's earnings, audit log, per-day history);
admins and accountants also see management's earnings (a table and a bar chart drawn
here, no script), every balance with each account's audit log, the CSV exports and the
form that closes a day. Forms carry a CSRF token (``auth.client.FormGuard``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from accounting import corrections, domain, service
from accounting.api import sees_everything, status_for
from accounting.ledger import Books
from accounting.service import AccountBalance, ManagementDay, Sessions
from auth.client import AuthClientConfig, CurrentUser
from auth.dashboard_ui import CsrfField, DashboardLinks, DashboardPages, Visitor, page_templates
from messaging.service_app import as_sentence
from messaging.tracing import current_traceparent

STATIC_DIR = Path(__file__).parent / "static"
PAGE_SIZE = 20
HISTORY_DAYS = 14
CSRF_COOKIE = "ates_accounting_csrf"
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


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: list[Bar]


CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 360, 160, 4


def bar_chart(days: Sequence[ManagementDay]) -> Chart:
    """One bar per day (oldest left), above the baseline for earnings, below for losses."""
    top = max([0, *(day.earned for day in days)])
    bottom = min([0, *(day.earned for day in days)])
    span = (top - bottom) or 1
    usable = CHART_HEIGHT - 2 * CHART_PAD
    baseline = CHART_PAD + usable * top / span
    slot = CHART_WIDTH / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        height = usable * abs(day.earned) / span
        y = baseline - height if day.earned >= 0 else baseline
        bars.append(Bar(round(index * slot + slot * 0.15, 2), round(y, 2), round(slot * 0.7, 2),
                        round(height, 2), day.day, day.earned))
    return Chart(CHART_WIDTH, CHART_HEIGHT, round(baseline, 2), bars)


# -- pages --------------------------------------------------------------------------------


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


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


class Dashboard(DashboardPages):
    def __init__(self, sessions: Sessions, books: Books, auth: AuthClientConfig,
                 links: DashboardLinks):
        super().__init__(templates, auth, CSRF_COOKIE, links)
        self.sessions = sessions
        self.books = books

    # --- rendering ------------------------------------------------------------------

    def user_context(self, user: CurrentUser) -> dict[str, Any]:
        return {"sees_everything": sees_everything(user)}

    def not_allowed(self, request: Request, user: CurrentUser) -> HTMLResponse:
        return self.message(request, user, "Not allowed",
                            "Only admins and accountants may see this.", 403)

    def refused(self, request: Request, user: CurrentUser, error: domain.AccountingError,
                link: str = "/") -> HTMLResponse:
        titles = {400: "Page not found", 409: "Not possible now", 422: "Cannot do that"}
        code = status_for(error)
        return self.message(request, user, titles.get(code, "Cannot do that"),
                            as_sentence(str(error)), code, link)

    # --- one account ----------------------------------------------------------------

    def account_page(self, request: Request, user: CurrentUser, account_id: uuid.UUID,
                     cursor: str | None, path: str, notice: str | None = None
                     ) -> HTMLResponse:
        own = user.id == str(account_id)
        account = service.find_account(self.sessions, account_id)
        if account is None and not own:
            return self.message(request, user, "Not found", "No such account.", 404)
        try:
            lines, next_cursor = service.audit_log(self.sessions, account_id, cursor, PAGE_SIZE)
        except domain.AccountingError as error:
            return self.refused(request, user, error, link=path)
        days, _ = service.account_days(self.sessions, account_id, limit=HISTORY_DAYS)
        context = {
            "own": own, "account": account,
            "summary": service.account_summary(self.sessions, self.books, account_id),
            "lines": lines, "days": days,
            "next_url": next_cursor and f"{path}?{urlencode({'cursor': next_cursor})}",
            "first_url": cursor and path,
            "notice": NOTICES.get(notice or ""),
        }
        return self.render(request, user, "account.html", context)

    def my_account(self, request: Request, user: CurrentUser, cursor: str | None
                   ) -> HTMLResponse:
        account_id = _account_id(user.id)
        if account_id is None:
            return self.message(request, user, "No account",
                                "Service clients have no account of their own.", 403)
        return self.account_page(request, user, account_id, cursor, "/")

    def other_account(self, request: Request, user: CurrentUser, raw_id: str,
                      cursor: str | None, notice: str | None = None) -> HTMLResponse:
        account_id = _account_id(raw_id)
        if account_id is not None and user.id == str(account_id):
            return self.account_page(request, user, account_id, cursor,
                                     f"/accounts/{account_id}", notice)
        if not sees_everything(user):
            return self.message(request, user, "Not allowed",
                                "You may only see your own account.", 403)
        if account_id is None:
            return self.message(request, user, "Not found", "No such account.", 404)
        return self.account_page(request, user, account_id, cursor, f"/accounts/{account_id}",
                                 notice)

    # --- corrections ----------------------------------------------------------------

    def _reversible(self, request: Request, user: CurrentUser, raw_id: str
                    ) -> service.LedgerLine | HTMLResponse:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        transaction_id = _account_id(raw_id)
        line = transaction_id and service.ledger_line(self.sessions, transaction_id)
        if not line:
            return self.message(request, user, "Not found", "No such transaction.", 404)
        return line

    def reverse_page(self, request: Request, user: CurrentUser, raw_id: str) -> HTMLResponse:
        line = self._reversible(request, user, raw_id)
        if not isinstance(line, service.LedgerLine):
            return line
        account = service.find_account(self.sessions, line.account_id)
        # one key per form shown: submitting it twice books the reversal once
        return self.render(request, user, "reverse.html", {
            "line": line, "account": account, "idempotency_key": str(uuid.uuid4())})

    def reverse(self, request: Request, user: CurrentUser, raw_id: str, reason: str,
                key: str, csrf_token: str) -> Response:
        line = self._reversible(request, user, raw_id)
        if not isinstance(line, service.LedgerLine):
            return line
        back = f"/accounts/{line.account_id}"
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user, link=back)
        try:
            corrections.reverse(self.sessions, self.books, line.id, reason, user.id,
                                key or None, current_traceparent())
        except domain.AccountingError as error:
            return self.refused(request, user, error, link=back)
        return _see_other(f"{back}?notice=reversed")

    # --- management -----------------------------------------------------------------

    def management_page(self, request: Request, user: CurrentUser, cursor: str | None,
                        notice: str | None, paid: str | None) -> HTMLResponse:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        try:
            balances, next_cursor = service.list_balances(self.sessions, cursor, PAGE_SIZE)
        except domain.AccountingError as error:
            return self.refused(request, user, error, link="/management")
        today = service.open_day(self.sessions, self.books)
        first = today - timedelta(days=HISTORY_DAYS - 1)
        days = service.management_days(self.sessions, first, today)
        context = {
            "today": days[-1], "days": list(reversed(days)), "chart": bar_chart(days),
            "balances": balances, "names": _names(balances),
            "export_query": urlencode({"from": first.isoformat(), "to": today.isoformat()}),
            "notice": _notice(notice, paid), "open_day": today,
            "next_url": next_cursor and f"/management?{urlencode({'cursor': next_cursor})}",
            "first_url": cursor and "/management",
        }
        return self.render(request, user, "management.html", context)

    # --- closing a day --------------------------------------------------------------

    def close_day_page(self, request: Request, user: CurrentUser, raw_day: str | None
                       ) -> HTMLResponse:
        if not sees_everything(user):
            return self.not_allowed(request, user)
        try:
            day = _parse_day(raw_day) or service.open_day(self.sessions, self.books)
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
            closed = service.close_day(self.sessions, self.books, _parse_day(raw_day),
                                       current_traceparent())
        except domain.AccountingError as error:
            return self.refused(request, user, error, link="/management")
        if not closed:
            return _see_other("/management?notice=already-closed")
        paid = sum(day.total_paid for day in closed)
        return _see_other(f"/management?{urlencode({'notice': 'closed', 'paid': paid})}")


# Pages say what just happened through a fixed code in the URL, never through free text.
NOTICES = {"closed": "Day closed.", "already-closed": "That day was already closed.",
           "reversed": "Reversed: the reversal is booked today."}


def _notice(code: str | None, paid: str | None) -> str | None:
    text = NOTICES.get(code or "")
    if text is not None and code == "closed" and paid and paid.isdigit():
        text += f" Paid out: {money(int(paid))}."
    return text


def _names(balances: list[AccountBalance]) -> dict[uuid.UUID, str]:
    return {b.account_id: b.full_name or b.email or str(b.account_id) for b in balances}


def web_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def my_account(request: Request, user: Visitor, cursor: str | None = None) -> Response:
        return dashboard.my_account(request, user, cursor)

    @router.get("/accounts/{account_id}")
    def account(request: Request, user: Visitor, account_id: str,
                cursor: str | None = None, notice: str | None = None) -> Response:
        return dashboard.other_account(request, user, account_id, cursor, notice)

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
                   notice: str | None = None, paid: str | None = None) -> Response:
        return dashboard.management_page(request, user, cursor, notice, paid)

    @router.get("/close-day")
    def close_day_page(request: Request, user: Visitor, date: str | None = None) -> Response:
        return dashboard.close_day_page(request, user, date)

    @router.post("/close-day")
    def close_day(request: Request, user: Visitor, csrf_token: CsrfField = "",
                  day: Annotated[str, Form()] = "") -> Response:
        return dashboard.close_day(request, user, day, csrf_token)

    return router
