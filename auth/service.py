"""Account use cases: the commands (the reads are in :mod:`auth.queries`).

Every change writes its events to the outbox in the same transaction:

- create: ``account.created``;
- rename, role change, (re)activation: ``account.updated`` with the full new state, plus
  the business event ``account.role_changed`` when the role changed;
- deactivation is an update (``active=false``): the account stays listed and can be
  reactivated, but it can no longer sign in, its SSO sessions end and its refresh tokens
  are revoked;
- deletion (``DELETE /api/accounts/{id}``) is a soft delete: the row stays as a tombstone
  (so its public id is never reused and its history still resolves), it disappears from
  every listing, its email becomes free again, and ``account.deleted`` tells replicas to
  drop it. It revokes access like a deactivation.

``version`` counts changes of the replicated state (the fields the events carry); a
password change alters nothing the replicas hold, so it neither bumps it nor emits events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, bindparam, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth.config import AuthConfig
from auth.domain import (
    Role,
    check_password,
    clean_full_name,
    normalise_email,
    parse_role,
)
from auth.identity import PRINCIPAL_COLUMNS, Principal
from auth.models import Account, TwoFactorRole
from auth.passwords import Passwords
from auth.queries import AccountView, Sessions, live_account, live_account_by_email
from auth.sessions import end_account_sessions
from auth.tokens import revoke_account_tokens
from event_schemas import default_registry
from messaging.outbox import Outbox

SOURCE = "auth"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DuplicateEmail(Exception):
    pass


class SelfLockout(Exception):
    """An admin tried to remove their own access."""


@dataclass(frozen=True)
class AccountChanges:
    full_name: str | None = None
    role: str | None = None
    active: bool | None = None
    password: str | None = None

    def validated(self) -> AccountChanges:
        if self.password is not None:
            check_password(self.password)
        return AccountChanges(
            full_name=None if self.full_name is None else clean_full_name(self.full_name),
            role=None if self.role is None else parse_role(self.role).value,
            active=self.active,
            password=self.password,
        )


@dataclass(frozen=True)
class SigningIn:
    """An account as a sign-in reads it: who signs in, the password to check, whether it
    may sign in, and whether it has a second factor or its role requires one."""

    principal: Principal
    password_hash: str
    active: bool
    has_second_factor: bool
    second_factor_required: bool


SIGNING_IN = select(
    *PRINCIPAL_COLUMNS, Account.password_hash, Account.active,
    Account.totp_secret.is_not(None).label("has_second_factor"),
    exists().where(TwoFactorRole.role == Account.role).label("second_factor_required"),
).where(Account.email == bindparam("email"), Account.deleted_at.is_(None))


def signing_in_of(row: Row[*tuple[Any, ...]] | None) -> SigningIn | None:
    """The account a row of ``SIGNING_IN`` (``email`` bound) holds; None when the row is
    missing or empty (no account)."""
    if row is None or row.id is None:
        return None
    return SigningIn(Principal.of(row), row.password_hash, row.active, row.has_second_factor,
                     row.second_factor_required)


def _state(account: Account) -> dict[str, Any]:
    return {"account_id": str(account.public_id), "email": account.email,
            "full_name": account.full_name, "role": account.role, "active": account.active,
            "version": account.version}


class AccountService:
    """The commands on accounts, and the checks of a sign-in's password; the reads are in
    :class:`auth.queries.AccountQueries`. ``clock`` dates the changes."""

    def __init__(self, sessions: Sessions, outbox: Outbox, config: AuthConfig, *,
                 clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.passwords = Passwords(config.password_hashing)
        self.registry = default_registry()

    # --- commands -------------------------------------------------------------------

    def create_account(self, email: str, full_name: str, role: str, password: str) -> AccountView:
        email, full_name = normalise_email(email), clean_full_name(full_name)
        role_value = parse_role(role).value
        check_password(password)
        password_hash = self.passwords.hash(password)
        try:
            with self.sessions.begin() as session:
                if live_account_by_email(session, email) is not None:
                    raise DuplicateEmail(email)
                account = Account(email=email, full_name=full_name, role=role_value,
                                  password_hash=password_hash)
                session.add(account)
                session.flush()
                self._publish(session, "account.created", _state(account))
                return AccountView.of(account)
        except IntegrityError as error:  # a concurrent create with the same email won
            raise DuplicateEmail(email) from error

    def update_account(self, public_id: str, changes: AccountChanges,
                       actor_id: str | None = None) -> AccountView:
        changes = changes.validated()
        password_hash = None if changes.password is None else self.passwords.hash(changes.password)
        with self.sessions.begin() as session:
            account = live_account(session, public_id, lock=True)
            self._refuse_self_lockout(account, actor_id, changes)
            if password_hash is not None:
                account.password_hash = password_hash
            old_role, was_active = account.role, account.active
            if not self._apply(account, changes):
                return AccountView.of(account)
            account.version += 1
            account.updated_at = self.clock()
            if was_active and not account.active:
                self._revoke_access(session, account)
            self._publish_update(session, account, old_role)
            return AccountView.of(account)

    def deactivate_account(self, public_id: str, actor_id: str | None = None) -> AccountView:
        return self.update_account(public_id, AccountChanges(active=False), actor_id)

    def delete_account(self, public_id: str, actor_id: str | None = None) -> None:
        with self.sessions.begin() as session:
            account = live_account(session, public_id, lock=True)
            if actor_id is not None and str(account.public_id) == actor_id:
                raise SelfLockout("you cannot delete your own account")
            account.active = False
            account.deleted_at = account.updated_at = self.clock()
            account.version += 1
            self._revoke_access(session, account)
            self._publish(session, "account.deleted",
                          {"account_id": str(account.public_id), "version": account.version})

    def authenticate(self, email: str, password: str) -> Principal | None:
        """The account these credentials belong to, if it may sign in."""
        with self.sessions() as session:
            account = self.signing_in(session, email)
        return self.check_password(account, password)

    def signing_in(self, session: Session, email: str) -> SigningIn | None:
        """The live account an email signs in to, read in the caller's transaction (a
        sign-in reads it with its throttling, in one round trip to the pool)."""
        return signing_in_of(session.execute(SIGNING_IN,
                                             {"email": email.strip().lower()}).first())

    def check_password(self, account: SigningIn | None, password: str) -> Principal | None:
        """Who signs in with ``password`` to ``account`` (as :meth:`signing_in` found it),
        if the account may sign in. An unknown account costs a hash all the same."""
        matches = self.passwords.verify(account.password_hash if account else None, password)
        if account is None or not matches or not account.active:
            return None
        if self.passwords.needs_rehash(account.password_hash):
            self._store_rehash(account.principal.account_id, password)
        return account.principal

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _apply(account: Account, changes: AccountChanges) -> bool:
        changed = False
        for name in ("full_name", "role", "active"):
            value = getattr(changes, name)
            if value is not None and value != getattr(account, name):
                setattr(account, name, value)
                changed = True
        return changed

    @staticmethod
    def _refuse_self_lockout(account: Account, actor_id: str | None,
                             changes: AccountChanges) -> None:
        if actor_id is None or str(account.public_id) != actor_id:
            return
        if changes.active is False:
            raise SelfLockout("you cannot deactivate your own account")
        if changes.role is not None and changes.role != Role.ADMIN:
            raise SelfLockout("you cannot take the admin role from yourself")

    @staticmethod
    def _revoke_access(session: Session, account: Account) -> None:
        revoke_account_tokens(session, account.id)
        end_account_sessions(session, account.id)

    def _publish_update(self, session: Session, account: Account, old_role: str) -> None:
        self._publish(session, "account.updated", _state(account))
        if account.role != old_role:
            self._publish(session, "account.role_changed", {
                "account_id": str(account.public_id), "old_role": old_role,
                "new_role": account.role, "version": account.version})

    def _publish(self, session: Session, event_type: str, data: dict[str, Any]) -> None:
        self.outbox.publish(session, self.registry.build(event_type, data, source=SOURCE))

    def _store_rehash(self, account_id: int, password: str) -> None:
        with self.sessions.begin() as session:
            account = session.get_one(Account, account_id)
            account.password_hash = self.passwords.hash(password)
