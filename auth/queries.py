"""Reads of the accounts: one account, an account by email, pages of accounts, their count,
and who an account signs in as. Nothing here changes the database; the commands are in
:mod:`auth.service`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from auth.domain import InvalidAccountData, normalise_email
from auth.identity import PRINCIPAL_COLUMNS, Principal
from auth.models import Account
from platform_kit.cursor import InvalidCursor, decode_text, encode_text

Sessions = sessionmaker[Session]

MAX_PAGE_SIZE = 200


class AccountNotFound(LookupError):
    pass


@dataclass(frozen=True)
class AccountView:
    id: str
    email: str
    full_name: str
    role: str
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountView:
        return cls(str(account.public_id), account.email, account.full_name, account.role,
                   account.active, account.version, account.created_at, account.updated_at)


@dataclass(frozen=True)
class AccountPage:
    items: list[AccountView]
    next: str | None


def _parse_public_id(public_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(public_id))
    except ValueError:
        raise AccountNotFound(public_id) from None


def live_account(session: Session, public_id: str, lock: bool = False) -> Account:
    """The account with this public id unless deleted (locked for update when ``lock``)."""
    query = select(Account).where(Account.public_id == _parse_public_id(public_id),
                                  Account.deleted_at.is_(None))
    account = session.scalars(query.with_for_update() if lock else query).first()
    if account is None:
        raise AccountNotFound(public_id)
    return account


def live_account_by_email(session: Session, email: str) -> Account | None:
    """The account that is not deleted with this (normalised) email, if any."""
    query = select(Account).where(Account.email == email, Account.deleted_at.is_(None))
    return session.scalars(query).first()


_ACTIVE_PRINCIPAL = select(*PRINCIPAL_COLUMNS).where(
    Account.id == bindparam("account_id"), Account.active.is_(True),
    Account.deleted_at.is_(None))


class AccountQueries:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def get_account(self, public_id: str) -> AccountView:
        with self.sessions() as session:
            return AccountView.of(live_account(session, public_id))

    def find_account_by_email(self, email: str) -> AccountView | None:
        with self.sessions() as session:
            account = live_account_by_email(session, normalise_email(email))
            return None if account is None else AccountView.of(account)

    def list_accounts(self, cursor: str | None = None, limit: int = 50) -> AccountPage:
        """Accounts by email, ``limit`` at a time after ``cursor``; a cursor this list did
        not issue is :class:`InvalidAccountData`."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        query = select(Account).where(Account.deleted_at.is_(None)).order_by(Account.email)
        if cursor:
            try:
                after = decode_text(cursor)
            except InvalidCursor:
                raise InvalidAccountData("invalid cursor") from None
            query = query.where(Account.email > after)
        with self.sessions() as session:
            rows = list(session.scalars(query.limit(limit + 1)))
        items = [AccountView.of(row) for row in rows[:limit]]
        has_more = len(rows) > limit
        return AccountPage(items, encode_text(items[-1].email) if has_more else None)

    def count_accounts(self) -> int:
        with self.sessions() as session:
            query = select(func.count()).select_from(Account).where(Account.deleted_at.is_(None))
            return session.scalar(query) or 0

    def active_principal(self, account_id: int, session: Session | None = None
                         ) -> Principal | None:
        """The account as a principal, if it may still sign in; in ``session`` when given
        (the caller's transaction), else in one of its own."""
        if session is None:
            with self.sessions() as own:
                return self.active_principal(account_id, own)
        row = session.execute(_ACTIVE_PRINCIPAL, {"account_id": account_id}).first()
        return None if row is None else Principal.of(row)
