"""The reads of the accounting service: balances, statements, per-day histories and
management's earnings. Nothing here writes; lists come as ``(items, next_cursor)``, the
cursor (``platform_kit.cursor``) being None on the last page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ARRAY, UUID, ColumnElement, Row, Select, cast, func, select, text
from sqlalchemy.orm import Session, aliased, sessionmaker

from accounting import domain
from accounting.domain import FEE, PAYOUT, REWARD
from accounting.ledger_sql import last_closed_day, utc_now
from accounting.models import Account, Balance, DayTotal, LedgerTransaction, Task
from platform_kit import cursor as cursors

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_REPORT_DAYS = 1000

Transaction = LedgerTransaction


# -- what the reads answer ------------------------------------------------------------


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


@dataclass(frozen=True)
class BalanceAt:
    """An account's balance at a moment: that after ``transaction_id``, the last of its
    transactions recorded at or before then (None: nothing was booked by then)."""

    account_id: uuid.UUID
    at: datetime
    balance: int
    transaction_id: uuid.UUID | None


@dataclass(frozen=True)
class AccountBalance:
    account_id: uuid.UUID
    email: str | None
    full_name: str | None
    role: str | None
    active: bool
    deleted: bool
    balance: int


@dataclass(frozen=True)
class ManagementDay:
    """What management earned on a day: fees charged minus rewards paid (payouts aside)."""

    day: date
    fees_charged: int
    rewards_paid: int

    @property
    def earned(self) -> int:
        return domain.management_earned(self.fees_charged, self.rewards_paid)


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
        if self.first is None:
            return None
        return datetime.combine(self.first, time(), self.zone)

    def ends(self) -> datetime | None:
        """The first moment after the range (None: there is none)."""
        if self.last is None or self.last == date.max:
            return None
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)


EVERYTHING = StatementFilter()


# -- SQL of the reads -----------------------------------------------------------------


def _sum_of(transaction_type: str) -> ColumnElement[int]:
    """Sum of the amounts (as seen from the account) of one type of transaction, with the
    corrections that count as that type (``corrections``)."""
    counted_as = func.coalesce(Transaction.counts_as, Transaction.type)
    return func.coalesce(func.sum(Transaction.amount).filter(counted_as == transaction_type), 0)


_Corrected = aliased(Transaction)
_Reversal = aliased(Transaction)


def ledger_lines() -> Select[*tuple[Any, ...]]:
    """The transactions with what the audit log shows beside each (see ``ledger_line``)."""
    return (
        select(Transaction, Task.title, Task.jira_id, Task.description,
               _Corrected.public_id.label("corrects"), _Reversal.public_id.label("reversed_by"))
        .outerjoin(Task, Task.public_id == Transaction.task_id)
        .outerjoin(_Corrected, _Corrected.id == Transaction.corrects_id)
        .outerjoin(_Reversal, _Reversal.corrects_id == Transaction.id)
    )


def ledger_line(row: Row[Any]) -> LedgerLine:
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


_LAST_AT = text(
    """
    SELECT id, public_id, balance_after FROM transactions
    WHERE account_id = :account AND created_at <= :at
    ORDER BY created_at DESC, id DESC LIMIT 1
    """
)
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


def _last_transaction_at(session: Session, account_id: uuid.UUID, at: datetime
                         ) -> Row[Any] | None:
    """One descent of the index on (account, time): transaction times grow with ids
    (``ledger_sql.lock_chain``), so the balance then is the ``balance_after`` of this one."""
    return session.execute(_LAST_AT, {"account": account_id, "at": at}).first()


def id_range(session: Session, account_id: uuid.UUID, statement: StatementFilter,
             as_of: datetime | None = None) -> tuple[int, int] | None:
    """The ids the statement's period spans, by at most two descents of the index on
    (account, time): transaction times grow with ids (``ledger_sql.lock_chain``), so the
    period's transactions are those between its first and last ids. None: it has none."""
    lowest: int | None = 0
    highest: int | None = 2**63 - 1
    start, end = statement.starts(), statement.ends()
    if start is not None:
        lowest = session.scalar(_FIRST_FROM, {"account": account_id, "at": start})
    if end is not None:
        highest = session.scalar(_LAST_BEFORE, {"account": account_id, "at": end})
    if as_of is not None:
        last = _last_transaction_at(session, account_id, as_of)
        highest = None if last is None or highest is None else min(highest, last.id)
    if lowest is None or highest is None or highest < lowest:
        return None
    return lowest, highest


def in_statement(query: Select[*tuple[Any, ...]], ids: tuple[int, int],
                 statement: StatementFilter) -> Select[*tuple[Any, ...]]:
    query = query.where(Transaction.id.between(*ids))
    if statement.type is not None:
        query = query.where(Transaction.type == statement.type)
    return query


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise domain.InvalidRange(f"limit must be between 1 and {MAX_PAGE_SIZE}")


def _id_cursor(token: str) -> uuid.UUID:
    """The id a page ends with; a token this list did not issue is ``InvalidCursor``, the
    accounting error the API answers 400."""
    try:
        return cursors.decode_id(token)
    except cursors.InvalidCursor:
        raise domain.InvalidCursor() from None


def _day_cursor(token: str) -> date:
    try:
        return cursors.decode_day(token)
    except cursors.InvalidCursor:
        raise domain.InvalidCursor() from None


# What a page of balances shows of each account: the columns of ``accounts_names``.
ACCOUNT_NAMES = (Account.email, Account.full_name, Account.role, Account.active,
                 Account.deleted)
Names = tuple[Any, ...]


def _named_balance(balance: Balance, names: Names | None) -> AccountBalance:
    if names is None:  # accounting has not heard of the account yet
        return AccountBalance(balance.account_id, None, None, None, False, False,
                              balance.balance)
    email, full_name, role, active, deleted = names
    return AccountBalance(balance.account_id, email, full_name, role, active, deleted,
                          balance.balance)


# -- the reads ------------------------------------------------------------------------


class AccountingQueries:
    """The reads, each in a session of its own from ``sessions``; ``clock`` and ``zone``
    (``ATES_TIMEZONE``) tell the current billing day."""

    def __init__(self, sessions: sessionmaker[Session],
                 clock: Callable[[], datetime] = utc_now, zone: tzinfo = UTC) -> None:
        self.sessions = sessions
        self.clock = clock
        self.zone = zone

    def _open_day(self, session: Session) -> date:
        return domain.open_day(self.clock(), self.zone, last_closed_day(session))

    def open_day(self) -> date:
        """The billing day new transactions currently belong to."""
        with self.sessions() as session:
            return self._open_day(session)

    # -- one account ------------------------------------------------------------------

    def account_summary(self, account_id: uuid.UUID) -> AccountSummary:
        """Balance and what the account earned (rewards minus fees) in the current day."""
        with self.sessions() as session:
            day = self._open_day(session)
            balance = session.scalar(
                select(Balance.balance).where(Balance.account_id == account_id))
            earned = session.scalar(
                select(func.coalesce(func.sum(Transaction.amount), 0)).where(
                    Transaction.account_id == account_id,
                    Transaction.day == day,
                    Transaction.type != PAYOUT,
                )
            )
        return AccountSummary(account_id, balance or 0, int(earned or 0), day)

    def ledger_line(self, transaction_id: uuid.UUID) -> LedgerLine | None:
        """One transaction as the audit log shows it."""
        with self.sessions() as session:
            row = session.execute(
                ledger_lines().where(Transaction.public_id == transaction_id)).first()
        return None if row is None else ledger_line(row)

    def balance_at(self, account_id: uuid.UUID, at: datetime) -> BalanceAt:
        with self.sessions() as session:
            last = _last_transaction_at(session, account_id, at)
        if last is None:
            return BalanceAt(account_id, at, 0, None)
        return BalanceAt(account_id, at, last.balance_after, last.public_id)

    def audit_log(
        self,
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
            ledger_lines()
            .where(Transaction.account_id == account_id)
            .order_by(Transaction.id.desc())
            .limit(limit + 1)
        )
        with self.sessions() as session:
            ids = id_range(session, account_id, statement, as_of)
            if ids is None:
                return [], None
            query = in_statement(query, ids, statement)
            if cursor:
                query = query.where(Transaction.id < _transaction_position(session, cursor))
            rows = session.execute(query).all()
        lines = [ledger_line(row) for row in rows[:limit]]
        return lines, cursors.encode_id(lines[-1].id) if len(rows) > limit else None

    def account_days(
        self, account_id: uuid.UUID, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
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
            query = query.where(Transaction.day < _day_cursor(cursor))
        with self.sessions() as session:
            rows = session.execute(query).all()
        days = [
            AccountDay(day, int(fees), int(rewards), int(payout))
            for day, fees, rewards, payout in rows[:limit]
        ]
        return days, cursors.encode_day(days[-1].day) if len(rows) > limit else None

    # -- everyone ---------------------------------------------------------------------

    def list_balances(
        self, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> tuple[list[AccountBalance], str | None]:
        """Every known account with its balance, in a stable order."""
        _check_limit(limit)
        after = _id_cursor(cursor) if cursor else None
        page = select(Balance).order_by(Balance.account_id).limit(limit + 1)
        if after is not None:
            page = page.where(Balance.account_id > after)
        with self.sessions() as session:
            balances = session.scalars(page).all()
            names = self._names_of(session, [balance.account_id for balance in balances])
        items = [_named_balance(balance, names.get(balance.account_id))
                 for balance in balances[:limit]]
        return items, cursors.encode_id(items[-1].account_id) if len(balances) > limit else None

    @staticmethod
    def _names_of(session: Session, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, Names]:
        """The replica's names of a page's accounts, read apart from the page, from the
        covering index ``accounts_names`` alone: the accounts of a page are neighbours in
        it, while their rows lie on as many pages of the table. (Joined to the page in one
        statement, each was looked up in the table; joined before the page was cut, the
        planner merged the two tables from their first rows, reading every account
        before a deep page.)"""
        query = select(Account.public_id, *ACCOUNT_NAMES).where(
            Account.public_id == func.any(cast(account_ids, ARRAY(UUID(as_uuid=True)))))
        return {row[0]: tuple(row[1:]) for row in session.execute(query)}

    def find_account(self, account_id: uuid.UUID) -> AccountBalance | None:
        """One known account with its balance, or None when accounting never heard of it."""
        query = (
            select(Balance, Account.public_id, *ACCOUNT_NAMES)
            .outerjoin(Account, Account.public_id == Balance.account_id)
            .where(Balance.account_id == account_id)
        )
        with self.sessions() as session:
            row = session.execute(query).first()
        if row is None:
            return None
        balance, known, *names = row
        return _named_balance(balance, tuple(names) if known is not None else None)

    def management_earnings(self, day: date | None = None) -> ManagementDay:
        """Management's earnings on ``day`` (default: the current day)."""
        if day is None:
            day = self.open_day()
        return self.management_days(day, day)[0]

    def first_management_day(self) -> date | None:
        """The first day with fees or rewards (the start of the day totals' key); None
        before anything was booked."""
        with self.sessions() as session:
            first: date | None = session.scalar(select(func.min(DayTotal.day)))
        return first

    def management_days(self, first: date, last: date) -> list[ManagementDay]:
        """Management's earnings for every day from ``first`` to ``last``, oldest first."""
        days = domain.days_between(first, last)
        if len(days) > MAX_REPORT_DAYS:
            raise domain.InvalidRange(f"a report covers at most {MAX_REPORT_DAYS} days")
        query = (
            select(DayTotal.day, func.sum(DayTotal.fees_charged),
                   func.sum(DayTotal.rewards_paid))
            .where(DayTotal.day.between(first, last))
            .group_by(DayTotal.day)
        )
        with self.sessions() as session:
            rows = session.execute(query).all()
        found = {day: ManagementDay(day, int(fees), int(rewards)) for day, fees, rewards in rows}
        return [found.get(day, ManagementDay(day, 0, 0)) for day in days]


def _transaction_position(session: Session, cursor: str) -> int:
    public_id = _id_cursor(cursor)
    position = session.scalar(select(Transaction.id).where(Transaction.public_id == public_id))
    if position is None:
        raise domain.InvalidCursor()
    return position
