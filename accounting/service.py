"""Use cases of the accounting service: one function per command or query.

The ``apply_*`` commands take the consumer's session: they run inside the transaction
that also records the handled events in the inbox. ``close_day`` runs its own
transaction. Queries only read; lists come as ``(items, next_cursor)``, the cursor being
None on the last page.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Unpack

from sqlalchemy import ColumnElement, Row, Select, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased, sessionmaker

from accounting import domain, metrics
from accounting.closing import ClosedDay, close_next_day, closing_target, last_ended_day
from accounting.domain import FEE, PAYOUT, REWARD, TaskDescription, TaskFacts
from accounting.ledger import (
    Booked,
    Books,
    TaskCharge,
    book_task_charges,
    current_day,
    ensure_priced,
)
from accounting.models import Account, Balance, DayTotal, LedgerTransaction, Task
from auth_client import replica
from platform_kit.db import array_literal

Sessions = sessionmaker[Session]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_REPORT_DAYS = 1000


# -- task events ----------------------------------------------------------------------


def apply_task_assigned(
    session: Session, books: Books, assignments: Sequence[TaskCharge], report: bool = True
) -> list[Booked]:
    """``task.assigned``: debit each assignee the task's fee (pricing new tasks first);
    returns the transactions booked if asked to ``report`` them."""
    return book_task_charges(session, books, FEE, assignments, report)


def apply_task_completed(
    session: Session, books: Books, completions: Sequence[TaskCharge], report: bool = True
) -> list[Booked]:
    """``task.completed``: credit each assignee the task's reward; returns the transactions
    booked if asked to ``report`` them."""
    return book_task_charges(session, books, REWARD, completions, report)


_UPSERT_TASK_STATES = text(
    """
    INSERT INTO tasks AS k (public_id, title, jira_id, description, assignee_id, status, version)
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:jira_ids AS text[]),
        CAST(:descriptions AS text[]), CAST(:assignees AS uuid[]), CAST(:statuses AS text[]),
        CAST(:versions AS int[])
    )
    ON CONFLICT (public_id) DO UPDATE
    SET title = excluded.title, jira_id = excluded.jira_id,
        description = excluded.description, assignee_id = excluded.assignee_id,
        status = excluded.status, version = excluded.version, updated_at = now()
    WHERE k.version < excluded.version
    """
)


def apply_task_states(
    session: Session,
    books: Books,
    states: Sequence[TaskFacts],
    traceparents: Mapping[uuid.UUID, str | None] | None = None,
) -> None:
    """``task.created``/``task.updated`` (either version): keep the newest state of each
    task and price the tasks seen for the first time (``traceparents``: the trace context
    of the event each task's state came with)."""
    newest = domain.newest_per_task(states)
    if not newest:
        return
    session.execute(
        _UPSERT_TASK_STATES,
        {
            "ids": array_literal(s.task_id for s in newest),
            "titles": array_literal(s.title for s in newest),
            "jira_ids": array_literal(s.jira_id for s in newest),
            "descriptions": array_literal(s.description for s in newest),
            "assignees": array_literal(s.assignee_id for s in newest),
            "statuses": array_literal(s.status for s in newest),
            "versions": array_literal(s.version for s in newest),
        },
    )
    traceparents = traceparents or {}
    tasks = {state.task_id: traceparents.get(state.task_id) for state in newest}
    ensure_priced(session, books, tasks, books.clock())


_UPSERT_TASK_DESCRIPTIONS = text(
    """
    INSERT INTO tasks AS k (public_id, title, jira_id, description)
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:jira_ids AS text[]),
        CAST(:descriptions AS text[])
    )
    ON CONFLICT (public_id) DO UPDATE
    SET title = excluded.title, jira_id = excluded.jira_id, description = excluded.description
    WHERE k.version = 0
    """
)


def apply_tasks_added(
    session: Session,
    books: Books,
    added: Sequence[TaskDescription],
    traceparents: Mapping[uuid.UUID, str | None] | None = None,
) -> None:
    """``task.added``: what each task is about, kept until a CUD event brings its state;
    tasks seen for the first time are priced."""
    latest = {task.task_id: task for task in added}  # one row per task in one statement
    if not latest:
        return
    session.execute(
        _UPSERT_TASK_DESCRIPTIONS,
        {
            "ids": array_literal(latest),
            "titles": array_literal(t.title for t in latest.values()),
            "jira_ids": array_literal(t.jira_id for t in latest.values()),
            "descriptions": array_literal(t.description for t in latest.values()),
        },
    )
    traceparents = traceparents or {}
    ensure_priced(session, books, {i: traceparents.get(i) for i in latest}, books.clock())


# -- accounts replica -----------------------------------------------------------------


def _open_balance(session: Session, account_id: uuid.UUID) -> None:
    """Every known account is listed with its balance, zero until something is booked."""
    session.execute(insert(Balance).values(account_id=account_id).on_conflict_do_nothing())


def apply_account_state(
    session: Session, account_id: uuid.UUID, **state: Unpack[replica.AccountState]
) -> None:
    """``account.created``/``account.updated`` (see :func:`auth_client.replica.apply_state`)."""
    replica.apply_state(session, Account, account_id, state)
    _open_balance(session, account_id)


_OPEN_BALANCES = text(
    "INSERT INTO balances (account_id) SELECT DISTINCT unnest(CAST(:ids AS uuid[])) ORDER BY 1"
    " ON CONFLICT DO NOTHING"
)


def apply_account_states(
    session: Session, states: Iterable[tuple[uuid.UUID | str, replica.AccountState]]
) -> None:
    """A run of ``account.created``/``account.updated`` events at once."""
    states = list(states)
    replica.apply_states(session, Account, states)
    session.execute(_OPEN_BALANCES, {"ids": array_literal(a for a, _ in states)})


def apply_role_change(session: Session, account_id: uuid.UUID, role: str, version: int) -> None:
    """``account.role_changed``: take the role unless a newer one is already known."""
    replica.apply_role_change(session, Account, account_id, role, version)
    _open_balance(session, account_id)


def apply_account_deleted(session: Session, account_id: uuid.UUID, version: int) -> None:
    """``account.deleted``: a tombstone, and inactive as in auth; its ledger stays as it is."""
    replica.apply_deleted(session, Account, account_id, version, deactivate=True)


# -- billing days ---------------------------------------------------------------------


def close_day(
    sessions: Sessions, books: Books, day: date | None = None, traceparent: str | None = None,
    on_closed: Callable[[ClosedDay], None] | None = None,
) -> list[ClosedDay]:
    """End of day: pay out every positive balance, once per day.

    Without ``day`` the current day ends at once (later transactions belong to the next
    one); asked again the same day, ``DayAlreadyEnded``. A ``day`` after today or before
    the ledger's first day is refused. Open days before ``day`` are closed first, in
    order, each in its own transaction. Returns the days closed by this call: none if
    ``day`` was already closed. ``on_closed`` is told of each day as it is closed.
    """
    with sessions() as session:
        through = closing_target(session, books, day)
    return _close_through(sessions, books, through, traceparent, on_closed)


def close_due_days(sessions: Sessions, books: Books) -> list[ClosedDay]:
    """Close every day that has ended and is still open (what the scheduler runs)."""
    with sessions() as session:
        through = last_ended_day(session, books)
    return [] if through is None else _close_through(sessions, books, through, None)


def _close_through(
    sessions: Sessions, books: Books, through: date, traceparent: str | None,
    on_closed: Callable[[ClosedDay], None] | None = None,
) -> list[ClosedDay]:
    closed: list[ClosedDay] = []
    while True:
        with sessions() as session, session.begin():
            next_closed = close_next_day(session, books, through, traceparent)
        if next_closed is None:
            break
        closed.append(next_closed)
        metrics.count_payouts([next_closed])
        if on_closed is not None:
            on_closed(next_closed)
    return closed


def open_day(sessions: Sessions, books: Books) -> date:
    """The billing day new transactions currently belong to."""
    with sessions() as session:
        return current_day(session, books)[0]


# -- queries: one account -------------------------------------------------------------


@dataclass(frozen=True)
class AccountSummary:
    account_id: uuid.UUID
    balance: int
    earned_today: int
    day: date


@dataclass(frozen=True)
class TaskInfo:
    title: str | None
    jira_id: str | None
    description: str | None


@dataclass(frozen=True)
class LedgerLine:
    """A fee, reward, payout, reversal or adjustment; ``amount`` as seen from the account.
    ``corrects``: the transaction a reversal reverses; ``reversed_by``: the reversal of
    this one, if any; ``reason`` and ``booked_by`` of a correction."""

    id: uuid.UUID
    account_id: uuid.UUID
    type: str
    amount: int
    balance_after: int
    task_id: uuid.UUID | None
    task: TaskInfo | None
    created_at: datetime
    day: date
    corrects: uuid.UUID | None = None
    reversed_by: uuid.UUID | None = None
    reason: str | None = None
    booked_by: str | None = None

    @property
    def reversible(self) -> bool:
        return self.type in domain.REVERSIBLE and self.reversed_by is None


@dataclass(frozen=True)
class AccountDay:
    """One day of an account: sums as seen from the account (fees and payout negative)."""

    day: date
    fees: int
    rewards: int
    payout: int

    @property
    def earned(self) -> int:
        return self.fees + self.rewards


Transaction = LedgerTransaction


def _sum_of(transaction_type: str) -> ColumnElement[int]:
    """Sum of the amounts (as seen from the account) of one type of transaction, with the
    corrections that count as that type (``corrections``)."""
    counted_as = func.coalesce(Transaction.counts_as, Transaction.type)
    return func.coalesce(func.sum(Transaction.amount).filter(counted_as == transaction_type), 0)


def account_summary(sessions: Sessions, books: Books, account_id: uuid.UUID) -> AccountSummary:
    """Balance and what the account earned (rewards minus fees) in the current day."""
    with sessions() as session:
        day = current_day(session, books)[0]
        balance = session.scalar(select(Balance.balance).where(Balance.account_id == account_id))
        earned = session.scalar(
            select(func.coalesce(func.sum(Transaction.amount), 0)).where(
                Transaction.account_id == account_id,
                Transaction.day == day,
                Transaction.type != PAYOUT,
            )
        )
    return AccountSummary(account_id, balance or 0, int(earned), day)


_Corrected = aliased(Transaction)
_Reversal = aliased(Transaction)


def _ledger_lines() -> Select:
    return (
        select(Transaction, Task.title, Task.jira_id, Task.description,
               _Corrected.public_id.label("corrects"), _Reversal.public_id.label("reversed_by"))
        .outerjoin(Task, Task.public_id == Transaction.task_id)
        .outerjoin(_Corrected, _Corrected.id == Transaction.corrects_id)
        .outerjoin(_Reversal, _Reversal.corrects_id == Transaction.id)
    )


def _ledger_line(row: Row[Any]) -> LedgerLine:
    transaction = row[0]
    known = any(value is not None for value in (row.title, row.jira_id, row.description))
    return LedgerLine(
        id=transaction.public_id,
        account_id=transaction.account_id,
        type=transaction.type,
        amount=transaction.amount,
        balance_after=transaction.balance_after,
        task_id=transaction.task_id,
        task=TaskInfo(row.title, row.jira_id, row.description) if known else None,
        created_at=transaction.created_at,
        day=transaction.day,
        corrects=row.corrects,
        reversed_by=row.reversed_by,
        reason=transaction.reason,
        booked_by=transaction.booked_by,
    )


def ledger_line(sessions: Sessions, transaction_id: uuid.UUID) -> LedgerLine | None:
    """One transaction as the audit log shows it."""
    with sessions() as session:
        row = session.execute(
            _ledger_lines().where(Transaction.public_id == transaction_id)).first()
    return None if row is None else _ledger_line(row)


@dataclass(frozen=True)
class BalanceAt:
    """An account's balance at a moment: that after ``transaction_id``, the last of its
    transactions recorded at or before then (None: nothing was booked by then)."""

    account_id: uuid.UUID
    at: datetime
    balance: int
    transaction_id: uuid.UUID | None


_LAST_AT = text(
    """
    SELECT id, public_id, balance_after FROM transactions
    WHERE account_id = :account AND created_at <= :at
    ORDER BY created_at DESC, id DESC LIMIT 1
    """
)


def _last_transaction_at(session: Session, account_id: uuid.UUID, at: datetime) -> Row | None:
    """One descent of the index on (account, time): transaction times grow with ids
    (``ledger.lock_chain``), so the balance then is the ``balance_after`` of this one."""
    return session.execute(_LAST_AT, {"account": account_id, "at": at}).first()


def balance_at(sessions: Sessions, account_id: uuid.UUID, at: datetime) -> BalanceAt:
    with sessions() as session:
        last = _last_transaction_at(session, account_id, at)
    if last is None:
        return BalanceAt(account_id, at, 0, None)
    return BalanceAt(account_id, at, last.balance_after, last.public_id)


@dataclass(frozen=True)
class StatementFilter:
    """Which transactions of an account a statement shows: those recorded from the day
    ``first`` to the day ``last`` (both included, days in ``zone``) of one ``type``; None
    is no limit."""

    first: date | None = None
    last: date | None = None
    type: str | None = None
    zone: tzinfo = UTC

    def __post_init__(self) -> None:
        if self.first and self.last and self.last < self.first:
            raise domain.InvalidRange(
                f"the range ends ({self.last}) before it starts ({self.first})")
        if self.type is not None and self.type not in domain.TRANSACTION_TYPES:
            raise domain.InvalidRange(
                f"type must be one of {', '.join(domain.TRANSACTION_TYPES)}")

    @property
    def by_time(self) -> bool:
        return self.first is not None or self.last is not None

    def starts(self) -> datetime | None:
        return self.first and datetime.combine(self.first, time(), self.zone)

    def ends(self) -> datetime | None:
        """The first moment after the range (None: there is none)."""
        if self.last is None or self.last == date.max:
            return None
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)


EVERYTHING = StatementFilter()

_FIRST_FROM = text(
    """
    SELECT id FROM transactions WHERE account_id = :account AND created_at >= :at
    ORDER BY created_at, id LIMIT 1
    """
)
_LAST_BEFORE = text(
    """
    SELECT id FROM transactions WHERE account_id = :account AND created_at < :at
    ORDER BY created_at DESC, id DESC LIMIT 1
    """
)


def _id_range(session: Session, account_id: uuid.UUID, statement: StatementFilter,
              as_of: datetime | None = None) -> tuple[int, int] | None:
    """The ids the statement's period spans, by at most two descents of the index on
    (account, time): transaction times grow with ids (``ledger.lock_chain``), so the
    period's transactions are those between its first and last ids. None: it has none."""
    lowest, highest = 0, 2**63 - 1
    start, end = statement.starts(), statement.ends()
    if start is not None:
        lowest = session.scalar(_FIRST_FROM, {"account": account_id, "at": start})
    if end is not None:
        highest = session.scalar(_LAST_BEFORE, {"account": account_id, "at": end})
    if as_of is not None:
        last = _last_transaction_at(session, account_id, as_of)
        highest = last and min(highest, last.id)
    if lowest is None or highest is None or highest < lowest:
        return None
    return lowest, highest


def _in_statement(query: Select, ids: tuple[int, int], statement: StatementFilter) -> Select:
    query = query.where(Transaction.id.between(*ids))
    if statement.type is not None:
        query = query.where(Transaction.type == statement.type)
    return query


def audit_log(
    sessions: Sessions,
    account_id: uuid.UUID,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    as_of: datetime | None = None,
    statement: StatementFilter = EVERYTHING,
) -> tuple[list[LedgerLine], str | None]:
    """The account's transactions that ``statement`` shows, newest first; ``as_of`` a
    moment, only those recorded by then (without other filters the first line's
    ``balance_after`` is the balance at that moment)."""
    _check_limit(limit)
    query = (
        _ledger_lines()
        .where(Transaction.account_id == account_id)
        .order_by(Transaction.id.desc())
        .limit(limit + 1)
    )
    with sessions() as session:
        ids = _id_range(session, account_id, statement, as_of)
        if ids is None:
            return [], None
        query = _in_statement(query, ids, statement)
        if cursor:
            query = query.where(Transaction.id < _transaction_position(session, cursor))
        rows = session.execute(query).all()
    lines = [_ledger_line(row) for row in rows[:limit]]
    return lines, encode_cursor(lines[-1].id) if len(rows) > limit else None


def account_days(
    sessions: Sessions,
    account_id: uuid.UUID,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> tuple[list[AccountDay], str | None]:
    """Per-day history of the account, newest day first."""
    _check_limit(limit)
    query = (
        select(Transaction.day, _sum_of(FEE), _sum_of(REWARD), _sum_of(PAYOUT))
        .where(Transaction.account_id == account_id)
        .group_by(Transaction.day)
        .order_by(Transaction.day.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(Transaction.day < _decode_day_cursor(cursor))
    with sessions() as session:
        rows = session.execute(query).all()
    days = [
        AccountDay(day, int(fees), int(rewards), int(payout))
        for day, fees, rewards, payout in rows[:limit]
    ]
    return days, days[-1].day.isoformat() if len(rows) > limit else None


# -- queries: everyone ----------------------------------------------------------------


@dataclass(frozen=True)
class AccountBalance:
    account_id: uuid.UUID
    email: str | None
    full_name: str | None
    role: str | None
    active: bool
    deleted: bool
    balance: int


def list_balances(
    sessions: Sessions, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
) -> tuple[list[AccountBalance], str | None]:
    """Every known account with its balance, in a stable order."""
    _check_limit(limit)
    after = decode_cursor(cursor) if cursor else None
    page = select(Balance).order_by(Balance.account_id).limit(limit + 1)
    if after is not None:
        page = page.where(Balance.account_id > after)
    # The page is cut before the join: joined whole, the planner may merge the two tables
    # from their first rows, reading every account before a deep page.
    paged = aliased(Balance, page.subquery())
    query = (
        select(paged, Account)
        .outerjoin(Account, Account.public_id == paged.account_id)
        .order_by(paged.account_id)
    )
    with sessions() as session:
        rows = session.execute(query).all()
    items = [_account_balance(balance, account) for balance, account in rows[:limit]]
    return items, encode_cursor(items[-1].account_id) if len(rows) > limit else None


def _account_balance(balance: Balance, account: Account | None) -> AccountBalance:
    return AccountBalance(
        account_id=balance.account_id,
        email=account.email if account else None,
        full_name=account.full_name if account else None,
        role=account.role if account else None,
        active=account.active if account else False,
        deleted=account.deleted if account else False,
        balance=balance.balance,
    )


def find_account(sessions: Sessions, account_id: uuid.UUID) -> AccountBalance | None:
    """One known account with its balance, or None when accounting never heard of it."""
    query = (
        select(Balance, Account)
        .outerjoin(Account, Account.public_id == Balance.account_id)
        .where(Balance.account_id == account_id)
    )
    with sessions() as session:
        row = session.execute(query).first()
    return _account_balance(row[0], row[1]) if row else None


@dataclass(frozen=True)
class ManagementDay:
    """What management earned on a day: fees charged minus rewards paid (payouts aside)."""

    day: date
    fees_charged: int
    rewards_paid: int

    @property
    def earned(self) -> int:
        return domain.management_earned(self.fees_charged, self.rewards_paid)


def management_earnings(sessions: Sessions, books: Books, day: date | None = None) -> ManagementDay:
    """Management's earnings on ``day`` (default: the current day)."""
    if day is None:
        day = open_day(sessions, books)
    return management_days(sessions, day, day)[0]


def first_management_day(sessions: Sessions) -> date | None:
    """The first day with fees or rewards (the start of the day totals' key); None before
    anything was booked."""
    with sessions() as session:
        return session.scalar(select(func.min(DayTotal.day)))


def management_days(sessions: Sessions, first: date, last: date) -> list[ManagementDay]:
    """Management's earnings for every day from ``first`` to ``last``, oldest first."""
    days = domain.days_between(first, last)
    if len(days) > MAX_REPORT_DAYS:
        raise domain.InvalidRange(f"a report covers at most {MAX_REPORT_DAYS} days")
    query = (
        select(DayTotal.day, func.sum(DayTotal.fees_charged), func.sum(DayTotal.rewards_paid))
        .where(DayTotal.day.between(first, last))
        .group_by(DayTotal.day)
    )
    with sessions() as session:
        rows = session.execute(query).all()
    found = {day: ManagementDay(day, int(fees), int(rewards)) for day, fees, rewards in rows}
    return [found.get(day, ManagementDay(day, 0, 0)) for day in days]


# -- CSV exports ----------------------------------------------------------------------


AUDIT_LOG_CSV_HEADER = [
    "id",
    "account_id",
    "day",
    "created_at",
    "type",
    "amount",
    "balance_after",
    "task_id",
    "task_jira_id",
    "task_title",
    "task_description",
    "corrects",
    "reversed_by",
    "reason",
    "booked_by",
]
MANAGEMENT_CSV_HEADER = ["day", "fees_charged", "rewards_paid", "earned"]


def audit_log_csv_rows(
    sessions: Sessions, account_id: uuid.UUID | None = None,
    statement: StatementFilter = EVERYTHING,
) -> Iterator[list[str]]:
    """The audit log (of one account, or of all) as CSV rows, header first, oldest first;
    ``statement`` filters one account's."""
    yield AUDIT_LOG_CSV_HEADER
    query = _ledger_lines().order_by(Transaction.id).execution_options(yield_per=1000)
    with sessions() as session:
        if account_id:
            query = query.where(Transaction.account_id == account_id)
            ids = _id_range(session, account_id, statement)
            if ids is None:
                return
            query = _in_statement(query, ids, statement)
        for row in session.execute(query):
            yield _csv_line(_ledger_line(row))


def _csv_line(line: LedgerLine) -> list[str]:
    task = line.task or TaskInfo(None, None, None)
    return [
        str(line.id),
        str(line.account_id),
        line.day.isoformat(),
        line.created_at.isoformat(),
        line.type,
        str(line.amount),
        str(line.balance_after),
        str(line.task_id or ""),
        task.jira_id or "",
        task.title or "",
        task.description or "",
        str(line.corrects or ""),
        str(line.reversed_by or ""),
        line.reason or "",
        line.booked_by or "",
    ]


def management_csv_rows(sessions: Sessions, first: date, last: date) -> Iterator[list[str]]:
    """The per-day management report as CSV rows, header first."""
    yield MANAGEMENT_CSV_HEADER
    for day in management_days(sessions, first, last):
        yield [day.day.isoformat(), str(day.fees_charged), str(day.rewards_paid), str(day.earned)]


# -- cursors --------------------------------------------------------------------------


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise domain.InvalidRange(f"limit must be between 1 and {MAX_PAGE_SIZE}")


def encode_cursor(last_id: uuid.UUID) -> str:
    """Opaque to clients: the public id of the last item of the page."""
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise domain.InvalidCursor() from None


def _transaction_position(session: Session, cursor: str) -> int:
    position = session.scalar(
        select(Transaction.id).where(Transaction.public_id == decode_cursor(cursor))
    )
    if position is None:
        raise domain.InvalidCursor()
    return position


def _decode_day_cursor(cursor: str) -> date:
    try:
        return date.fromisoformat(cursor)
    except ValueError:
        raise domain.InvalidCursor() from None
