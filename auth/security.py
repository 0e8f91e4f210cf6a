"""Sign-in security: the sign-in itself (password, then a second factor when the account
has one or its role requires one), sign-in records and events, password change and reset
by email, two-factor enrolment, and the sessions an account has open.

- Every sign-in and every refused attempt on an existing account is kept
  (``sign_in_records``) and published (``account.logged_in`` / ``account.login_failed``)
  in the same transaction, through the outbox. Attempts on unknown emails are only
  counted by the throttle: they belong to no account.
- Password, second-factor and current-password checks all count against the sign-in
  throttle (``auth.throttle``) of the account's email and the client address.
- A password reset link is single-use and expires; asking for one answers the same
  whether or not the email has an account, and is throttled per email and per address.
  Setting a new password through it ends every session of the account.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from auth import two_factor
from auth.config import AuthConfig
from auth.domain import ROLES, check_password, normalise_email, parse_role
from auth.identity import Principal
from auth.mail import Mail
from auth.models import (
    Account,
    LoginFailure,
    PasswordResetRequest,
    PasswordResetToken,
    RecoveryCode,
    RefreshToken,
    SignInRecord,
    SsoSession,
    TwoFactorRole,
)
from auth.queries import AccountNotFound
from auth.service import SIGNING_IN, AccountService, signing_in_of
from auth.sessions import (
    INSERT_SESSION,
    SignedIn,
    clients_of_session,
    end_account_sessions,
    end_session,
    new_session,
    shortened_user_agent,
)
from auth.throttle import (
    FORGET_FAILURES,
    admit_attempt,
    admit_attempt_reading,
    forget_failures,
    locking_and_reading,
)
from auth.tokens import digest, expiry, new_secret, revoke_account_tokens, revoke_family
from messaging.outbox import INSERT_FROM_ARRAYS
from platform_kit.db import driver_transaction, engine_of

SIGN_IN_HISTORY = 50

# A sign-in, in one statement: its address's failures for the account forgotten, the sign-in
# recorded, ``account.logged_in`` written to the outbox and the SSO session opened (its id
# and start returned).
_SIGNED_IN = text(f"""
WITH forgotten AS (
    {FORGET_FAILURES}
), recorded AS (
    INSERT INTO sign_in_records (account_id, outcome, second_factor, address, user_agent)
    VALUES (:account_id, 'signed_in', :second_factor, :address, :user_agent)
), published AS (
    {INSERT_FROM_ARRAYS}
)
{INSERT_SESSION}
RETURNING id, created_at
""")
# A sign-in's account, read by the statement that takes its throttling's locks.
_SIGNING_IN_UNDER_LOCKS = locking_and_reading(SIGNING_IN)
ADDRESS_MAX_LENGTH = 100


class WrongPassword(Exception):
    """The current password given to confirm a change is not the account's."""


class Throttled(Exception):
    """Too many attempts; the message says so."""


class TwoFactorProblem(Exception):
    """A two-factor request that cannot be done; the message is meant for the user."""


@dataclass(frozen=True)
class SignInResult:
    """Signed in (``session_token``), refused, throttled, or waiting for a second factor
    (``second_factor`` is ``"verify"`` or ``"enrol"``, ``principal`` the account)."""

    principal: Principal | None = None
    session_token: str | None = None
    throttled: bool = False
    second_factor: str | None = None
    used_factor: str | None = None
    answer: object = None  # what ``then`` made of the new session (``sign_in``)


@dataclass(frozen=True)
class SignInView:
    outcome: str
    reason: str | None
    second_factor: str | None
    address: str
    user_agent: str | None
    at: datetime


@dataclass(frozen=True)
class SessionView:
    id: str
    created_at: datetime
    expires_at: datetime
    address: str | None
    user_agent: str | None
    clients: list[str]
    current: bool


@dataclass(frozen=True)
class TokenFamilyView:
    id: str
    client_id: str
    session_id: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSessions:
    sessions: list[SessionView]
    token_families: list[TokenFamilyView]


@dataclass(frozen=True)
class TwoFactorStatus:
    enabled: bool
    required: bool
    recovery_codes_left: int


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def _address(address: str) -> str:
    return address[:ADDRESS_MAX_LENGTH] or "unknown"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class SecurityService:
    def __init__(self, accounts: AccountService, config: AuthConfig):
        self.accounts = accounts
        self.sessions = accounts.sessions
        self.passwords = accounts.passwords
        self.config = config

    # --- sign-in --------------------------------------------------------------------

    def sign_in(self, email: str, password: str, address: str, user_agent: str | None = None,
                then: Callable[[Session, SignedIn], object] | None = None) -> SignInResult:
        """Check the password (throttled); open an SSO session unless a second factor is
        due, in which case the caller asks for it (``complete_sign_in``). ``then`` runs in
        the transaction that opens the session, with it: what the sign-in was for (an
        authorization code) commits with the session; its answer is the result's."""
        email, address = email.strip().lower(), _address(address)
        with driver_transaction(engine_of(self.sessions)) as cursor:
            admitted, row = admit_attempt_reading(cursor, email, address,
                                                  self.config.throttling,
                                                  _SIGNING_IN_UNDER_LOCKS, {"email": email})
            if not admitted:
                return SignInResult(throttled=True)
        signing_in = signing_in_of(row)
        principal = self.accounts.check_password(signing_in, password)
        if signing_in is None or principal is None:  # the attempt stays counted as a failure
            self._record_refusal(email, password, address, user_agent)
            return SignInResult()
        with self.sessions.begin() as session:
            if signing_in.has_second_factor or signing_in.second_factor_required:
                forget_failures(session, email, address)
                return SignInResult(principal=principal, second_factor=(
                    "verify" if signing_in.has_second_factor else "enrol"))
            token, signed_in = self._open_session(session, principal, address, user_agent,
                                                  None)
            answer = None if then is None else then(session, signed_in)
        return SignInResult(principal=principal, session_token=token, answer=answer)

    def complete_sign_in(self, account_public_id: str, code: str, address: str,
                         user_agent: str | None = None) -> SignInResult:
        """The second step of a sign-in: a TOTP code or a recovery code (throttled)."""
        address = _address(address)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            if not admit_attempt(session, account.email, address, self.config.throttling):
                return SignInResult(throttled=True)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id, lock=True)
            if not account.active:
                return SignInResult()
            factor = self._use_second_factor(session, account, code)
            if factor is None:
                self._record_failure(session, account, address, user_agent,
                                     "wrong_second_factor")
                return SignInResult()
            principal = Principal.of(account)
            token, _ = self._open_session(session, principal, address, user_agent, factor)
            return SignInResult(principal=principal, session_token=token, used_factor=factor)

    def finish_enforced_enrolment(self, account_public_id: str, code: str, address: str,
                                  user_agent: str | None = None
                                  ) -> tuple[SignInResult, list[str]]:
        """Sign-in of an account whose role requires a second factor it did not have yet:
        confirm the enrolment with a first code, then open the session."""
        address = _address(address)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            if not account.active:
                return SignInResult(), []
            if not admit_attempt(session, account.email, address, self.config.throttling):
                return SignInResult(throttled=True), []
        try:
            codes = self.confirm_enrolment(account_public_id, code)
        except TwoFactorProblem:
            with self.sessions.begin() as session:
                account = self._account(session, account_public_id)
                self._record_failure(session, account, address, user_agent,
                                     "wrong_second_factor")
            return SignInResult(), []
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            principal = Principal.of(account)
            token, _ = self._open_session(session, principal, address, user_agent, "totp")
            return SignInResult(principal=principal, session_token=token,
                                used_factor="totp"), codes

    def _open_session(self, session: Session, principal: Principal, address: str,
                      user_agent: str | None, factor: str | None) -> tuple[str, SignedIn]:
        """Sign in: forget this address's failures for the account, open an SSO session,
        record the sign-in and publish it, in one statement; the session's cookie secret,
        and the session."""
        opened = new_session(principal.account_id, self.config.sso_session_ttl, address,
                             user_agent)
        event = self.accounts.registry.build("account.logged_in", {
            "account_id": principal.public_id, "session_id": str(opened.public_id),
            "second_factor": factor, "address": address}, source="auth")
        row = session.execute(_SIGNED_IN, {**opened.row, "email": principal.email,
                                           "second_factor": factor,
                                           **self.accounts.outbox.arrays([event])}).one()
        return opened.token, SignedIn(principal, row.id, str(opened.public_id), row.created_at)

    def _record_refusal(self, email: str, password: str, address: str,
                        user_agent: str | None) -> None:
        with self.sessions.begin() as session:
            account = session.scalars(select(Account).where(
                Account.email == email, Account.deleted_at.is_(None))).first()
            if account is None:
                return
            # A deactivated account is named as such only when the password was right.
            reason = ("account_deactivated"
                      if not account.active and self.passwords.verify(account.password_hash,
                                                                      password)
                      else "wrong_password")
            self._record_failure(session, account, address, user_agent, reason)

    def _record_failure(self, session: Session, account: Account, address: str,
                        user_agent: str | None, reason: str) -> None:
        session.add(SignInRecord(account_id=account.id, outcome="failed", reason=reason,
                                 address=address, user_agent=shortened_user_agent(user_agent)))
        self._publish(session, "account.login_failed", {
            "account_id": str(account.public_id), "reason": reason, "address": address})

    def _publish(self, session: Session, event_type: str, data: dict[str, Any]) -> None:
        self.accounts.outbox.publish(
            session, self.accounts.registry.build(event_type, data, source="auth"))

    def sign_ins(self, account_public_id: str, limit: int = SIGN_IN_HISTORY) -> list[SignInView]:
        """The account's latest sign-ins and refused attempts, newest first."""
        with self.sessions() as session:
            account = self._account(session, account_public_id)
            rows = session.scalars(
                select(SignInRecord).where(SignInRecord.account_id == account.id)
                .order_by(SignInRecord.id.desc()).limit(limit))
            return [SignInView(r.outcome, r.reason, r.second_factor, r.address, r.user_agent,
                               r.created_at) for r in rows]

    # --- sessions -------------------------------------------------------------------

    def active_sessions(self, account_public_id: str,
                        current_session_id: int | None = None) -> ActiveSessions:
        with self.sessions() as session:
            account = self._account(session, account_public_id)
            rows = session.scalars(
                select(SsoSession).where(SsoSession.account_id == account.id,
                                         SsoSession.ended_at.is_(None),
                                         SsoSession.expires_at > func.now())
                .order_by(SsoSession.created_at.desc()))
            sessions = [SessionView(str(s.public_id), s.created_at, s.expires_at, s.address,
                                    s.user_agent, clients_of_session(session, s.id),
                                    s.id == current_session_id) for s in rows]
            return ActiveSessions(sessions, self._token_families(session, account.id))

    @staticmethod
    def _token_families(session: Session, account_id: int) -> list[TokenFamilyView]:
        """Refresh-token families with a live token (at most one per family: rotation)."""
        live = select(RefreshToken).where(
            RefreshToken.account_id == account_id, RefreshToken.revoked_at.is_(None),
            RefreshToken.rotated_at.is_(None), RefreshToken.expires_at > func.now(),
        ).order_by(RefreshToken.created_at.desc())
        families = []
        for token in session.scalars(live):
            started = session.scalar(select(func.min(RefreshToken.created_at)).where(
                RefreshToken.family_id == token.family_id))
            sso = (session.get(SsoSession, token.sso_session_id)
                   if token.sso_session_id is not None else None)
            families.append(TokenFamilyView(str(token.family_id), token.client_id,
                                            str(sso.public_id) if sso else None,
                                            started or token.created_at, token.created_at,
                                            token.expires_at))
        return families

    def end_session(self, account_public_id: str, session_public_id: str) -> bool:
        """End one of the account's sessions (and its refresh tokens); False if unknown."""
        wanted = _uuid(session_public_id)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            sso_id = None if wanted is None else session.scalar(
                select(SsoSession.id).where(SsoSession.public_id == wanted,
                                            SsoSession.account_id == account.id,
                                            SsoSession.ended_at.is_(None)))
            if sso_id is None:
                return False
            end_session(session, sso_id)
            return True

    def end_token_family(self, account_public_id: str, family_id: str) -> bool:
        wanted = _uuid(family_id)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            live = None if wanted is None else session.scalar(
                select(RefreshToken.id).where(RefreshToken.family_id == wanted,
                                              RefreshToken.account_id == account.id,
                                              RefreshToken.revoked_at.is_(None)).limit(1))
            if wanted is None or live is None:
                return False
            revoke_family(session, wanted)
            return True

    def end_all_sessions(self, account_public_id: str) -> None:
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            self._end_everything(session, account.id)

    @staticmethod
    def _end_everything(session: Session, account_id: int,
                        except_session: int | None = None) -> None:
        if except_session is None:
            end_account_sessions(session, account_id)
            revoke_account_tokens(session, account_id)
            return
        others = session.scalars(select(SsoSession.id).where(
            SsoSession.account_id == account_id, SsoSession.ended_at.is_(None),
            SsoSession.id != except_session))
        for sso_id in list(others):
            end_session(session, sso_id)
        session.execute(
            update(RefreshToken).where(
                RefreshToken.account_id == account_id, RefreshToken.revoked_at.is_(None),
                or_(RefreshToken.sso_session_id.is_(None),
                    RefreshToken.sso_session_id != except_session))
            .values(revoked_at=func.now()))

    # --- password change and reset --------------------------------------------------

    def change_password(self, account_public_id: str, current: str, new: str, address: str,
                        keep_session: int | None = None) -> None:
        """Change the password after checking the current one (throttled like a sign-in).
        Every other session ends and every refresh token not of ``keep_session`` is revoked."""
        check_password(new)
        address = _address(address)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id)
            email = account.email
            if not admit_attempt(session, email, address, self.config.throttling):
                raise Throttled("too many failed attempts; wait a while and try again")
        if self.accounts.authenticate(email, current) is None:
            raise WrongPassword("the current password is not right")
        new_hash = self.passwords.hash(new)
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id, lock=True)
            account.password_hash = new_hash
            forget_failures(session, email, address)
            self._end_everything(session, account.id, except_session=keep_session)

    def request_reset(self, email: str, address: str, link_base: str) -> tuple[bool, Mail | None]:
        """Ask for a reset link: ``(throttled, mail to send)``. The mail is None when the
        email has no active account; the caller answers the same either way. Raises
        ``InvalidAccountData`` for what is not an email address at all."""
        email, address = normalise_email(email), _address(address)
        rules = self.config.password_reset
        with self.sessions.begin() as session:
            for key in (f"reset-email:{email}", f"reset-address:{address}"):
                session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
            session.execute(delete(PasswordResetRequest).where(
                or_(PasswordResetRequest.email == email, PasswordResetRequest.address == address),
                PasswordResetRequest.created_at <= func.now() - rules.window))
            if (self._count_requests(session, PasswordResetRequest.email == email)
                    >= rules.per_email
                    or self._count_requests(session, PasswordResetRequest.address == address)
                    >= rules.per_address):
                return True, None
            session.add(PasswordResetRequest(email=email, address=address))
            account = session.scalars(select(Account).where(
                Account.email == email, Account.deleted_at.is_(None),
                Account.active.is_(True))).first()
            if account is None:
                return False, None
            # A new link replaces the ones sent before.
            session.execute(update(PasswordResetToken).where(
                PasswordResetToken.account_id == account.id, PasswordResetToken.used_at.is_(None))
                .values(used_at=func.now()))
            token = new_secret()
            session.add(PasswordResetToken(token_hash=digest(token), account_id=account.id,
                                           expires_at=expiry(rules.link_ttl)))
            minutes = int(rules.link_ttl.total_seconds() // 60)
            body = (f"Hello {account.full_name},\n\n"
                    "Somebody (hopefully you) asked to reset the password of your aTES account.\n"
                    f"Choose a new password here within {minutes} minutes:\n\n"
                    f"{link_base}/password/reset/{token}\n\n"
                    "The link works once. If you did not ask for it, ignore this mail: your "
                    "password stays as it is.\n")
            return False, Mail(account.email, "Reset your aTES password", body)

    @staticmethod
    def _count_requests(session: Session, condition: ColumnElement[bool]) -> int:
        return session.scalar(
            select(func.count()).select_from(PasswordResetRequest).where(condition)) or 0

    def reset_link_valid(self, token: str) -> bool:
        with self.sessions() as session:
            return session.scalar(select(PasswordResetToken.id).where(
                self._usable_link(token))) is not None

    @staticmethod
    def _usable_link(token: str) -> ColumnElement[bool]:
        return and_(PasswordResetToken.token_hash == digest(token),
                    PasswordResetToken.used_at.is_(None),
                    PasswordResetToken.expires_at > func.now())

    def complete_reset(self, token: str, new_password: str) -> bool:
        """Set the new password through a link, once; False when the link is not usable.
        Every session of the account ends and its failed sign-ins are forgotten."""
        check_password(new_password)
        new_hash = self.passwords.hash(new_password)
        with self.sessions.begin() as session:
            account_id = session.scalar(
                update(PasswordResetToken).where(self._usable_link(token))
                .values(used_at=func.now()).returning(PasswordResetToken.account_id))
            if account_id is None:
                return False
            account = session.get_one(Account, account_id, with_for_update=True)
            if account.deleted_at is not None or not account.active:
                return False
            account.password_hash = new_hash
            session.execute(delete(LoginFailure).where(LoginFailure.email == account.email))
            self._end_everything(session, account.id)
            return True

    # --- two-factor -----------------------------------------------------------------

    def two_factor_status(self, account_public_id: str) -> TwoFactorStatus:
        with self.sessions() as session:
            account = self._account(session, account_public_id)
            left = session.scalar(select(func.count()).select_from(RecoveryCode).where(
                RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None))) or 0
            return TwoFactorStatus(account.totp_secret is not None,
                                   self._required(session, account.role), left)

    def begin_enrolment(self, account_public_id: str) -> Enrolment:
        """A new secret to enrol (replacing an unfinished enrolment)."""
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id, lock=True)
            if account.totp_secret is not None:
                raise TwoFactorProblem("two-factor sign-in is already on; turn it off first")
            account.totp_pending_secret = two_factor.new_secret()
            return Enrolment(account.totp_pending_secret,
                             two_factor.provisioning_uri(account.totp_pending_secret,
                                                         account.email))

    def pending_enrolment(self, account_public_id: str) -> Enrolment | None:
        with self.sessions() as session:
            account = self._account(session, account_public_id)
            secret = account.totp_pending_secret
            if secret is None or account.totp_secret is not None:
                return None
            return Enrolment(secret, two_factor.provisioning_uri(secret, account.email))

    def confirm_enrolment(self, account_public_id: str, code: str) -> list[str]:
        """Turn two-factor on with the first code of the app; returns the recovery codes."""
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id, lock=True)
            if account.totp_pending_secret is None or account.totp_secret is not None:
                raise TwoFactorProblem("start the enrolment first")
            step = two_factor.accepted_step(account.totp_pending_secret, code, None)
            if step is None:
                raise TwoFactorProblem("that code is not right; check the app's clock and "
                                       "enter the code it shows now")
            account.totp_secret, account.totp_pending_secret = account.totp_pending_secret, None
            account.totp_last_step = step
            account.totp_enabled_at = func.now()
            return self._replace_recovery_codes(session, account)

    def new_recovery_codes(self, account_public_id: str, code: str) -> list[str]:
        """New recovery codes (the old ones stop working), confirmed by a current code."""
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id, lock=True)
            if account.totp_secret is None:
                raise TwoFactorProblem("two-factor sign-in is off")
            if self._use_second_factor(session, account, code, recovery=False) is None:
                raise TwoFactorProblem("that code is not right")
            return self._replace_recovery_codes(session, account)

    def turn_off(self, account_public_id: str, password: str) -> None:
        """The owner turns two-factor off, confirming with the password; refused when the
        role requires it."""
        with self.sessions() as session:
            account = self._account(session, account_public_id)
            email, required = account.email, self._required(session, account.role)
        if required:
            raise TwoFactorProblem("your role requires two-factor sign-in")
        if self.accounts.authenticate(email, password) is None:
            raise WrongPassword("the password is not right")
        self.reset_two_factor(account_public_id)

    def reset_two_factor(self, account_public_id: str) -> None:
        """Remove the second factor (an admin does this for a user who lost their device)."""
        with self.sessions.begin() as session:
            account = self._account(session, account_public_id, lock=True)
            account.totp_secret = account.totp_pending_secret = None
            account.totp_enabled_at = account.totp_last_step = None
            session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))

    def required_roles(self) -> list[str]:
        with self.sessions() as session:
            chosen = set(session.scalars(select(TwoFactorRole.role)))
        return [role for role in ROLES if role in chosen]

    def set_required_roles(self, roles: list[str]) -> list[str]:
        wanted = {parse_role(role).value for role in roles}
        with self.sessions.begin() as session:
            session.execute(delete(TwoFactorRole).where(TwoFactorRole.role.not_in(wanted)))
            present = set(session.scalars(select(TwoFactorRole.role)))
            session.add_all(TwoFactorRole(role=role) for role in wanted - present)
        return [role for role in ROLES if role in wanted]

    @staticmethod
    def _required(session: Session, role: str) -> bool:
        return session.get(TwoFactorRole, role) is not None

    @staticmethod
    def _replace_recovery_codes(session: Session, account: Account) -> list[str]:
        session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
        codes = two_factor.new_recovery_codes()
        session.add_all(RecoveryCode(account_id=account.id,
                                     code_hash=two_factor.recovery_digest(code))
                        for code in codes)
        return codes

    @staticmethod
    def _use_second_factor(session: Session, account: Account, code: str,
                           recovery: bool = True) -> str | None:
        """Accept a TOTP code (never the same step twice) or use up a recovery code."""
        if account.totp_secret is None:
            return None
        step = two_factor.accepted_step(account.totp_secret, code, account.totp_last_step)
        if step is not None:
            account.totp_last_step = step
            return "totp"
        if not recovery or not two_factor.looks_like_recovery_code(code):
            return None
        used = session.execute(
            update(RecoveryCode).where(RecoveryCode.account_id == account.id,
                                       RecoveryCode.code_hash == two_factor.recovery_digest(code),
                                       RecoveryCode.used_at.is_(None))
            .values(used_at=func.now()).returning(RecoveryCode.id)).first()
        return "recovery_code" if used is not None else None

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _account(session: Session, public_id: str, lock: bool = False) -> Account:
        wanted = _uuid(public_id)
        query = select(Account).where(Account.public_id == wanted, Account.deleted_at.is_(None))
        account = None if wanted is None else session.scalars(
            query.with_for_update() if lock else query).first()
        if account is None:
            raise AccountNotFound(public_id)
        return account

