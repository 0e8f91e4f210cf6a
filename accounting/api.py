"""JSON API of the accounting service (bearer access tokens, verified locally).

Every error answers ``{"detail": "<one readable sentence>"}``: the domain's errors map to
the status codes of ``ERROR_STATUS`` (a bad cursor is 400, a range that ends before it
starts is 422, closing a day that has not begun is 409, one before the ledger's first day
422), malformed requests (a date that is not a ``YYYY-MM-DD`` string) to 422. Workers see
their own account only: asking for another account's audit log is 403, whether or not
that account exists; admins and accountants (people or service clients with one of these
roles) see everything.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Response
from fastapi import status as http
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt
from pydantic_core import PydanticCustomError

from accounting import corrections, domain
from accounting.closing import ClosedDay
from accounting.exports import AccountingExports
from accounting.ledger_sql import Books
from accounting.queries import (
    DEFAULT_PAGE_SIZE,
    EVERYTHING,
    MAX_PAGE_SIZE,
    MAX_REPORT_DAYS,
    AccountBalance,
    AccountDay,
    AccountingQueries,
    AccountSummary,
    LedgerLine,
    ManagementDay,
    StatementFilter,
)
from accounting.service import AccountingService, Sessions
from accounting.spreadsheet import csv_lines
from auth_client.guards import current_user
from auth_client.verification import CurrentUser
from platform_kit.dates import is_iso_date
from platform_kit.openapi import error
from platform_kit.service_app import UNPROCESSABLE
from platform_kit.service_app import install_error_handlers as install_shared_error_handlers
from platform_kit.tracing import current_traceparent

ACCOUNTING_ROLES = ("admin", "accountant")
DEFAULT_REPORT_DAYS = 30

ERROR_STATUS: dict[type[domain.AccountingError], int] = {
    domain.InvalidCursor: http.HTTP_400_BAD_REQUEST,
    domain.InvalidRange: UNPROCESSABLE,
    domain.DayNotStarted: http.HTTP_409_CONFLICT,
    domain.DayAlreadyEnded: http.HTTP_409_CONFLICT,
    domain.DayBeforeLedger: UNPROCESSABLE,
    domain.NotFound: http.HTTP_404_NOT_FOUND,
    domain.InvalidCorrection: UNPROCESSABLE,
    domain.AlreadyReversed: http.HTTP_409_CONFLICT,
    domain.IdempotencyKeyReused: http.HTTP_409_CONFLICT,
}

TransactionType = Literal[
    "fee", "reward", "payout", "reversal", "adjustment"]  # domain.TRANSACTION_TYPES

def iso_date_string(value: object) -> object:
    """Let only ``YYYY-MM-DD`` strings (or nothing) through to the date parser: on its
    own it reads a number as Unix time (``0`` is 1970-01-01) and takes datetimes."""
    if value is None or is_iso_date(value):
        return value
    raise PydanticCustomError("iso_date", "must be a date string like 2026-11-22")


# A date in a request, as the API documents it: ``YYYY-MM-DD`` in ``ATES_TIMEZONE``.
OptionalIsoDate = Annotated[date | None, BeforeValidator(iso_date_string)]

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def rfc3339_string(value: object) -> object:
    """Only RFC 3339 date-times with an offset: no Unix times, no local times."""
    if value is None or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise PydanticCustomError(
        "rfc3339", "must be an RFC 3339 date-time with its offset, like 2026-11-22T10:15:00Z"
        " (a + in an offset is %2B in a URL)")


OptionalMoment = Annotated[datetime | None, BeforeValidator(rfc3339_string)]


def status_for(error: Exception) -> int:
    return next(
        (code for kind, code in ERROR_STATUS.items() if isinstance(error, kind)),
        http.HTTP_400_BAD_REQUEST,
    )


def sees_everything(user: CurrentUser) -> bool:
    return user.has_role(*ACCOUNTING_ROLES)


def own_account(user: CurrentUser) -> uuid.UUID:
    """The caller's account; service clients (whose ``sub`` is a client id) have none."""
    try:
        return uuid.UUID(user.id)
    except ValueError:
        raise HTTPException(
            http.HTTP_403_FORBIDDEN, "this needs a person's account, not a service client"
        ) from None


def ensure_sees_everything(user: CurrentUser) -> None:
    if not sees_everything(user):
        raise HTTPException(
            http.HTTP_403_FORBIDDEN, f"this needs one of the roles: {', '.join(ACCOUNTING_ROLES)}"
        )


def ensure_may_see(user: CurrentUser, account_id: uuid.UUID) -> None:
    """Admins and accountants see any account, everyone else only their own."""
    if sees_everything(user) or user.id == str(account_id):
        return
    raise HTTPException(http.HTTP_403_FORBIDDEN, "you may only see your own account")


def known_account(queries: AccountingQueries, account_id: uuid.UUID) -> AccountBalance:
    found = queries.find_account(account_id)
    if found is None:
        raise HTTPException(http.HTTP_404_NOT_FOUND, f"no account {account_id}")
    return found


def report_range(queries: AccountingQueries, first: date | None,
                 last: date | None) -> tuple[date, date]:
    """``from``/``to`` of a per-day report: by default the 30 days up to the current one."""
    last = last or queries.open_day()
    first = first or last - timedelta(days=DEFAULT_REPORT_DAYS - 1)
    if (last - first).days >= MAX_REPORT_DAYS:  # before a list of its days is built
        raise domain.InvalidRange(f"a report covers at most {MAX_REPORT_DAYS} days")
    return first, last


# -- response bodies ----------------------------------------------------------------------


class TaskOut(BaseModel):
    title: str | None
    jira_id: str | None
    description: str | None


class LedgerLineOut(BaseModel):
    id: uuid.UUID
    type: TransactionType
    amount: int = Field(description="Signed cents as seen from the account")
    balance_after: int
    task_id: uuid.UUID | None
    task: TaskOut | None = Field(description="null while the task is unknown")
    created_at: datetime
    day: date
    corrects: uuid.UUID | None = Field(description="The transaction a reversal reverses")
    reversed_by: uuid.UUID | None = Field(description="The reversal of this one, if any")
    reason: str | None = Field(description="Why a correction was booked")
    booked_by: str | None = Field(description="Who booked a correction (account or client)")

    @classmethod
    def of(cls, line: LedgerLine) -> LedgerLineOut:
        task = line.task
        return cls(
            corrects=line.corrects, reversed_by=line.reversed_by, reason=line.reason,
            booked_by=line.booked_by,
            id=line.id,
            type=line.type,  # type: ignore[arg-type]
            amount=line.amount,
            balance_after=line.balance_after,
            task_id=line.task_id,
            task=None if task is None else TaskOut(
                title=task.title, jira_id=task.jira_id, description=task.description),
            created_at=line.created_at.astimezone(UTC),
            day=line.day,
        )


class BalanceAtOut(BaseModel):
    account_id: uuid.UUID
    at: datetime
    balance: int = Field(description="Cents: the balance right after `transaction_id`")
    transaction_id: uuid.UUID | None = Field(
        description="The account's last transaction recorded at or before `at`; null if none")


class CorrectionOut(LedgerLineOut):
    account_id: uuid.UUID

    @classmethod
    def of_line(cls, line: LedgerLine) -> CorrectionOut:
        return cls(account_id=line.account_id, **LedgerLineOut.of(line).model_dump())


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why; required, at most 500 characters")


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictInt = Field(
        description="Signed cents as seen from the account: negative charges, positive credits")
    reason: str = Field(description="Why; required, at most 500 characters")


class LedgerPage(BaseModel):
    items: list[LedgerLineOut]
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class AccountOut(BaseModel):
    balance: int
    earned_today: int = Field(description="Rewards minus fees of the current day")
    day: date = Field(description="The current billing day")

    @classmethod
    def of(cls, summary: AccountSummary) -> AccountOut:
        return cls(balance=summary.balance, earned_today=summary.earned_today, day=summary.day)


class AccountDayOut(BaseModel):
    day: date
    fees: int
    rewards: int
    payout: int
    earned: int

    @classmethod
    def of(cls, day: AccountDay) -> AccountDayOut:
        return cls(day=day.day, fees=day.fees, rewards=day.rewards, payout=day.payout,
                   earned=day.earned)


class AccountDayPage(BaseModel):
    items: list[AccountDayOut]
    next: str | None


class BalanceOut(BaseModel):
    id: uuid.UUID
    email: str | None
    full_name: str | None
    role: str | None
    active: bool
    deleted: bool
    balance: int

    @classmethod
    def of(cls, account: AccountBalance) -> BalanceOut:
        return cls(id=account.account_id, email=account.email, full_name=account.full_name,
                   role=account.role, active=account.active, deleted=account.deleted,
                   balance=account.balance)


class BalancePage(BaseModel):
    items: list[BalanceOut]
    next: str | None


class ManagementDayOut(BaseModel):
    day: date
    fees_charged: int
    rewards_paid: int
    earned: int = Field(description="Fees charged minus rewards paid; payouts excluded")

    @classmethod
    def of(cls, day: ManagementDay) -> ManagementDayOut:
        return cls(day=day.day, fees_charged=day.fees_charged, rewards_paid=day.rewards_paid,
                   earned=day.earned)


class ManagementDays(BaseModel):
    items: list[ManagementDayOut]


class CloseDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: OptionalIsoDate = Field(
        default=None, alias="date", description="Default: end the current day now"
    )


class ClosedDayOut(BaseModel):
    day: date
    closed_at: datetime
    accounts_paid: int
    total_paid: int

    @classmethod
    def of(cls, closed: ClosedDay) -> ClosedDayOut:
        return cls(day=closed.day, closed_at=closed.closed_at.astimezone(UTC),
                   accounts_paid=closed.accounts_paid, total_paid=closed.total_paid)


class CloseDayOut(BaseModel):
    closed: list[ClosedDayOut] = Field(description="Days closed now; empty if already closed")


Responses = dict[int | str, dict[str, Any]]


COMMON_ERRORS: Responses = {401: error("No valid access token"),
                            422: error("Malformed request")}
FORBIDDEN: Responses = {403: error("Neither admin nor accountant")}

Caller = Annotated[CurrentUser, Depends(current_user)]
Cursor = Annotated[str | None, Query(description="`next` of the previous page")]
AsOf = Annotated[OptionalMoment, Query(
    description="RFC 3339: only the transactions recorded by then (a statement as of then)")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
From = Annotated[OptionalIsoDate, Query(alias="from", description="Default: 29 days before `to`")]
To = Annotated[OptionalIsoDate, Query(alias="to", description="Default: the current day")]
StatementFrom = Annotated[OptionalIsoDate, Query(
    alias="from", description="Only transactions recorded on this day or later (YYYY-MM-DD)")]
StatementTo = Annotated[OptionalIsoDate, Query(
    alias="to", description="Only transactions recorded on this day or earlier (YYYY-MM-DD)")]
StatementType = Annotated[TransactionType | None, Query(
    alias="type", description="Only transactions of this type")]
STATEMENT_ERRORS: Responses = {400: error("Invalid cursor"),
                               422: error("Not an ISO date, a range that ends before it"
                                           " starts, or an unknown type")}


def statement_filter(queries: AccountingQueries, first: date | None, last: date | None,
                     kind: str | None) -> StatementFilter:
    """The filters of a statement; its days are those of ``ATES_TIMEZONE``."""
    return StatementFilter(first, last, kind, queries.zone)


# -- CSV ----------------------------------------------------------------------------------


def csv_response(rows: Iterable[list[str]], filename: str) -> StreamingResponse:
    return StreamingResponse(
        csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- routes -------------------------------------------------------------------------------


def api_router(sessions: Sessions, books: Books) -> APIRouter:
    """The routes, calling the service's commands, queries and exports (built here from
    ``sessions`` and ``books``)."""
    service = AccountingService(sessions, books)
    queries = AccountingQueries(sessions, books.clock, books.settings.timezone)
    exports = AccountingExports(queries)
    router = APIRouter(prefix="/api", tags=["accounting"], responses=COMMON_ERRORS)
    _add_own_routes(router, queries, exports)
    _add_account_routes(router, queries, exports)
    _add_management_routes(router, service, queries)
    _add_export_routes(router, queries, exports)
    _add_correction_routes(router, service, queries)
    return router


def _add_own_routes(router: APIRouter, queries: AccountingQueries,
                    exports: AccountingExports) -> None:

    @router.get("/me/account")
    def my_account(user: Caller) -> AccountOut:
        """The caller's balance and what they earned in the current day."""
        return AccountOut.of(queries.account_summary(own_account(user)))

    @router.get("/me/transactions", responses=STATEMENT_ERRORS)
    def my_transactions(user: Caller, cursor: Cursor = None,
                        limit: Limit = DEFAULT_PAGE_SIZE, as_of: AsOf = None,
                        first: StatementFrom = None, last: StatementTo = None,
                        kind: StatementType = None) -> LedgerPage:
        """The caller's audit log, newest first (``as_of``: as it stood then; ``from``,
        ``to``, ``type``: only those transactions)."""
        statement = statement_filter(queries, first, last, kind)
        return _ledger_page(queries, own_account(user), cursor, limit, as_of, statement)

    @router.get("/me/transactions.csv", response_class=StreamingResponse,
                responses={422: STATEMENT_ERRORS[422]})
    def my_transactions_csv(user: Caller, first: StatementFrom = None,
                            last: StatementTo = None, kind: StatementType = None
                            ) -> StreamingResponse:
        """The caller's statement as CSV, oldest first, with the same filters."""
        return statement_csv(exports, own_account(user),
                             statement_filter(queries, first, last, kind))

    @router.get("/me/days", responses={400: error("Invalid cursor")})
    def my_days(user: Caller, cursor: Cursor = None,
                limit: Limit = DEFAULT_PAGE_SIZE) -> AccountDayPage:
        """The caller's per-day history, newest day first."""
        items, next_cursor = queries.account_days(own_account(user), cursor, limit)
        return AccountDayPage(items=[AccountDayOut.of(day) for day in items], next=next_cursor)


def _ledger_page(queries: AccountingQueries, account_id: uuid.UUID, cursor: str | None,
                 limit: int, as_of: datetime | None = None,
                 statement: StatementFilter = EVERYTHING) -> LedgerPage:
    lines, next_cursor = queries.audit_log(account_id, cursor, limit, as_of, statement)
    return LedgerPage(items=[LedgerLineOut.of(line) for line in lines], next=next_cursor)


def statement_csv(exports: AccountingExports, account_id: uuid.UUID,
                  statement: StatementFilter) -> StreamingResponse:
    """One account's statement as a CSV download, streamed."""
    rows = exports.audit_log_csv_rows(account_id, statement)
    return csv_response(rows, f"statement-{account_id}{_period_name(statement)}.csv")


def _period_name(statement: StatementFilter) -> str:
    parts = [str(part) for part in (statement.first, statement.last, statement.type) if part]
    return "".join(f"-{part}" for part in parts)


def _add_account_routes(router: APIRouter, queries: AccountingQueries,
                        exports: AccountingExports) -> None:

    @router.get("/accounts", responses={**FORBIDDEN, 400: error("Invalid cursor")})
    def list_accounts(user: Caller, cursor: Cursor = None,
                      limit: Limit = DEFAULT_PAGE_SIZE) -> BalancePage:
        """Every known account with its balance (admins, accountants)."""
        ensure_sees_everything(user)
        items, next_cursor = queries.list_balances(cursor, limit)
        return BalancePage(items=[BalanceOut.of(item) for item in items], next=next_cursor)

    @router.get(
        "/accounts/{account_id}/transactions",
        responses={403: error("Another account, and neither admin nor accountant"),
                   404: error("No such account"), **STATEMENT_ERRORS},
    )
    def account_transactions(account_id: uuid.UUID, user: Caller, cursor: Cursor = None,
                             limit: Limit = DEFAULT_PAGE_SIZE, as_of: AsOf = None,
                             first: StatementFrom = None, last: StatementTo = None,
                             kind: StatementType = None) -> LedgerPage:
        """An account's audit log, newest first (admins, accountants, or the account);
        ``as_of`` a moment, the statement as it stood then; ``from``, ``to``, ``type``:
        only those transactions."""
        ensure_may_see(user, account_id)
        known_account(queries, account_id)
        statement = statement_filter(queries, first, last, kind)
        return _ledger_page(queries, account_id, cursor, limit, as_of, statement)

    @router.get(
        "/accounts/{account_id}/transactions.csv", response_class=StreamingResponse,
        responses={403: error("Another account, and neither admin nor accountant"),
                   404: error("No such account"), 422: STATEMENT_ERRORS[422]},
    )
    def account_transactions_csv(account_id: uuid.UUID, user: Caller,
                                 first: StatementFrom = None, last: StatementTo = None,
                                 kind: StatementType = None) -> StreamingResponse:
        """An account's statement as CSV, oldest first, with the same filters (admins,
        accountants, or the account)."""
        ensure_may_see(user, account_id)
        known_account(queries, account_id)
        return statement_csv(exports, account_id, statement_filter(queries, first, last, kind))

    @router.get(
        "/accounts/{account_id}/balance",
        responses={403: error("Another account, and neither admin nor accountant"),
                   404: error("No such account")},
    )
    def account_balance_at(
        account_id: uuid.UUID, user: Caller,
        at: Annotated[OptionalMoment, Query(description="RFC 3339; default: now")] = None,
    ) -> BalanceAtOut:
        """The account's balance at a moment, exactly as the ledger stood then (admins,
        accountants, or the account)."""
        ensure_may_see(user, account_id)
        known_account(queries, account_id)
        found = queries.balance_at(account_id, at or datetime.now(UTC))
        return BalanceAtOut(account_id=account_id, at=found.at.astimezone(UTC),
                            balance=found.balance, transaction_id=found.transaction_id)


def _add_management_routes(router: APIRouter, service: AccountingService,
                           queries: AccountingQueries) -> None:
    @router.get("/management/earnings", responses=FORBIDDEN)
    def management_earnings(
        user: Caller,
        day: Annotated[OptionalIsoDate, Query(alias="date", description="Default: today")]
        = None,
    ) -> ManagementDayOut:
        """What management earned on a day: fees charged minus rewards paid."""
        ensure_sees_everything(user)
        return ManagementDayOut.of(queries.management_earnings(day))

    @router.get("/management/days", responses=FORBIDDEN)
    def management_days(user: Caller, first: From = None, last: To = None) -> ManagementDays:
        """What management earned on every day of a range, oldest first."""
        ensure_sees_everything(user)
        first, last = report_range(queries, first, last)
        days = queries.management_days(first, last)
        return ManagementDays(items=[ManagementDayOut.of(day) for day in days])

    @router.post(
        "/billing/close-day",
        responses={**FORBIDDEN, 409: error("The day has not begun yet"),
                   422: error("Not an ISO date, or a day before the ledger's first day")},
    )
    def close_day(user: Caller, body: Annotated[CloseDayIn | None, Body()] = None
                  ) -> CloseDayOut:
        """Close a day now (default: the current one; open days before it first): every
        positive balance is paid out. Closing a closed day pays nothing again."""
        ensure_sees_everything(user)
        day = body.day if body else None
        closed = service.close_day(day, current_traceparent())
        return CloseDayOut(closed=[ClosedDayOut.of(item) for item in closed])


def _add_export_routes(router: APIRouter, queries: AccountingQueries,
                       exports: AccountingExports) -> None:
    @router.get("/exports/transactions.csv", response_class=StreamingResponse,
                responses={**FORBIDDEN, 404: error("No such account")})
    def export_transactions(
        user: Caller,
        account: Annotated[uuid.UUID | None, Query(description="One account; all if absent")]
        = None,
    ) -> StreamingResponse:
        """The audit log (of everyone, or of one account) as CSV, oldest first."""
        ensure_sees_everything(user)
        if account is not None:
            known_account(queries, account)
        name = f"transactions-{account}.csv" if account else "transactions.csv"
        return csv_response(exports.audit_log_csv_rows(account), name)

    @router.get("/exports/management-days.csv", response_class=StreamingResponse,
                responses=FORBIDDEN)
    def export_management_days(user: Caller, first: From = None,
                               last: To = None) -> StreamingResponse:
        """The per-day management report as CSV, oldest first."""
        ensure_sees_everything(user)
        first, last = report_range(queries, first, last)
        rows = list(exports.management_csv_rows(first, last))  # errors before 200
        return csv_response(rows, f"management-days-{first}-{last}.csv")


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key",
    description="Same key and body: the same answer, nothing booked again; same key and"
    " another body: 409. Keys are the caller's own.")]
REPLAYED_HEADER = "Idempotent-Replayed"
CORRECTION_ERRORS: Responses = {
    **FORBIDDEN,
    404: error("No such transaction or account"),
    409: error("Already reversed, or the Idempotency-Key was used for another request"),
    422: error("No reason, a payout or correction to reverse, or an amount out of range"),
}


def _corrected(queries: AccountingQueries, done: corrections.Corrected, response: Response
               ) -> CorrectionOut:
    if done.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    line = queries.ledger_line(done.transaction_id)
    assert line is not None
    return CorrectionOut.of_line(line)


def _add_correction_routes(router: APIRouter, service: AccountingService,
                           queries: AccountingQueries) -> None:
    @router.post("/transactions/{transaction_id}/reversal", status_code=http.HTTP_201_CREATED,
                 responses=CORRECTION_ERRORS)
    def reverse_transaction(transaction_id: uuid.UUID, body: ReversalIn, user: Caller,
                            response: Response, key: IdempotencyKey = None) -> CorrectionOut:
        """Reverse a fee or a reward (admins, accountants): a new transaction of the same
        amount the other way, booked today and linked to it. Reversed at most once."""
        ensure_sees_everything(user)
        done = service.reverse(transaction_id, body.reason, user.id, key,
                               current_traceparent())
        return _corrected(queries, done, response)

    @router.post("/accounts/{account_id}/adjustments", status_code=http.HTTP_201_CREATED,
                 responses=CORRECTION_ERRORS)
    def adjust_account(account_id: uuid.UUID, body: AdjustmentIn, user: Caller,
                       response: Response, key: IdempotencyKey = None) -> CorrectionOut:
        """Book a manual adjustment on an account (admins, accountants), booked today."""
        ensure_sees_everything(user)
        done = service.adjust(account_id, body.amount, body.reason, user.id, key,
                              current_traceparent())
        return _corrected(queries, done, response)


# -- errors -------------------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    install_shared_error_handlers(app, domain.AccountingError, status_for)
