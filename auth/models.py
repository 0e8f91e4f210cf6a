"""The tables of the auth database.

Secrets that grant access (authorization codes, refresh tokens, SSO session tokens) are
stored only as SHA-256 digests, so a leaked table cannot be replayed.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from auth.domain import ROLES


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), str: Text}


def _id() -> Mapped[int]:
    return mapped_column(BigInteger, Identity(), primary_key=True)


def _now() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def _public_id() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), unique=True, default=uuid.uuid4)


def _account_ref() -> Mapped[int]:
    return mapped_column(BigInteger, ForeignKey("accounts.id"), index=True)


def _session_ref() -> Mapped[int | None]:
    return mapped_column(BigInteger, ForeignKey("sso_sessions.id"), index=True)


_role_list = ", ".join(f"'{role}'" for role in ROLES)


class Account(Base):
    """A person who can sign in. Deleted accounts stay as tombstones (``deleted_at``)."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(f"role IN ({_role_list})", name="accounts_role_known"),
        CheckConstraint("email = lower(email)", name="accounts_email_lower_case"),
        Index("accounts_email_unique", "email", unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = _id()
    public_id: Mapped[uuid.UUID] = _public_id()
    email: Mapped[str]
    full_name: Mapped[str]
    role: Mapped[str]
    active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None]
    # Two-factor (TOTP, RFC 6238): the secret in use, one being enrolled, and the last
    # time step accepted (a code is never accepted twice).
    totp_secret: Mapped[str | None]
    totp_pending_secret: Mapped[str | None]
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class SsoSession(Base):
    """A browser signed in at the provider; one sign-in serves every dashboard."""

    __tablename__ = "sso_sessions"

    id: Mapped[int] = _id()
    public_id: Mapped[uuid.UUID] = _public_id()
    token_hash: Mapped[str] = mapped_column(unique=True)
    account_id: Mapped[int] = _account_ref()
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    address: Mapped[str | None]
    user_agent: Mapped[str | None]


class AuthorizationCode(Base):
    """A one-time code of the authorization-code flow, bound to client, redirect and PKCE."""

    __tablename__ = "authorization_codes"
    __table_args__ = (Index("authorization_codes_nonce", "client_id", "nonce"),)

    id: Mapped[int] = _id()
    code_hash: Mapped[str] = mapped_column(unique=True)
    client_id: Mapped[str]
    account_id: Mapped[int] = _account_ref()
    sso_session_id: Mapped[int | None] = _session_ref()
    redirect_uri: Mapped[str]
    scope: Mapped[str]
    nonce: Mapped[str | None]
    code_challenge: Mapped[str]
    code_challenge_method: Mapped[str]
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # The refresh-token family issued for this code: revoked if the code is replayed.
    token_family: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class RefreshToken(Base):
    """A refresh token. Each use rotates it; a rotated token used again revokes its family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = _id()
    token_hash: Mapped[str] = mapped_column(unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    rotated_from: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("refresh_tokens.id"))
    client_id: Mapped[str]
    account_id: Mapped[int] = _account_ref()
    sso_session_id: Mapped[int | None] = _session_ref()
    scope: Mapped[str]
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SigningKey(Base):
    """An RS256 key pair; exactly one is active (signs), retired ones stay published a while."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'retired')", name="signing_keys_status_known"),
        Index("signing_keys_one_active", "status", unique=True,
              postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = _id()
    kid: Mapped[str] = mapped_column(unique=True)
    private_pem: Mapped[str]
    status: Mapped[str] = mapped_column(default="active")
    created_at: Mapped[datetime] = _now()
    retired_at: Mapped[datetime | None]


class LoginFailure(Base):
    """One failed sign-in (or one being checked), counted for throttling (``auth.throttle``)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("login_failures_email", "email", "created_at"),
        Index("login_failures_address", "address", "created_at"),
    )

    id: Mapped[int] = _id()
    email: Mapped[str]
    address: Mapped[str]
    created_at: Mapped[datetime] = _now()


class SignInRecord(Base):
    """A sign-in or a failed one, of an existing account, for its owner and admins to see."""

    __tablename__ = "sign_in_records"
    __table_args__ = (
        CheckConstraint("outcome IN ('signed_in', 'failed')", name="sign_in_records_outcome"),
        Index("sign_in_records_account", "account_id", "id"),
    )

    id: Mapped[int] = _id()
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("accounts.id"))
    outcome: Mapped[str]
    reason: Mapped[str | None]
    second_factor: Mapped[str | None]
    address: Mapped[str]
    user_agent: Mapped[str | None]
    created_at: Mapped[datetime] = _now()


class PasswordResetToken(Base):
    """A single-use, expiring password reset link (stored as its digest)."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = _id()
    token_hash: Mapped[str] = mapped_column(unique=True)
    account_id: Mapped[int] = _account_ref()
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PasswordResetRequest(Base):
    """One request for a reset link, counted for throttling whether or not the email exists."""

    __tablename__ = "password_reset_requests"
    __table_args__ = (
        Index("password_reset_requests_email", "email", "created_at"),
        Index("password_reset_requests_address", "address", "created_at"),
    )

    id: Mapped[int] = _id()
    email: Mapped[str]
    address: Mapped[str]
    created_at: Mapped[datetime] = _now()


class RecoveryCode(Base):
    """A single-use two-factor recovery code (stored as its digest)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _account_ref()
    code_hash: Mapped[str]
    created_at: Mapped[datetime] = _now()
    used_at: Mapped[datetime | None]


class TwoFactorRole(Base):
    """A role whose members must sign in with a second factor."""

    __tablename__ = "two_factor_roles"
    __table_args__ = (
        CheckConstraint(f"role IN ({_role_list})", name="two_factor_roles_role_known"),
    )

    role: Mapped[str] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = _now()
