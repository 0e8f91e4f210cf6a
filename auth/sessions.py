"""SSO sessions: a browser signed in at the provider, identified by an opaque cookie."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from auth.identity import PRINCIPAL_COLUMNS, Principal
from auth.models import Account, AuthorizationCode, SsoSession
from auth.tokens import digest, expiry, new_secret, revoke_session_tokens

USER_AGENT_MAX_LENGTH = 300


@dataclass(frozen=True)
class SignedIn:
    """A live SSO session and its account: what the authorization endpoint grants to."""

    principal: Principal
    session_id: int
    session_public_id: str
    auth_time: datetime


@dataclass(frozen=True)
class NewSession:
    """A session about to be opened: the secret for the browser's cookie, and the row that
    stores its digest (the columns of ``INSERT_SESSION``, as its parameters)."""

    token: str
    public_id: uuid.UUID
    row: dict[str, Any]


# The new session's row; the caller runs it, as a statement or within one of its own.
INSERT_SESSION = """
INSERT INTO sso_sessions (public_id, token_hash, account_id, expires_at, address, user_agent)
VALUES (:session_public_id, :session_token_hash, :account_id, :session_expires_at,
        :address, :user_agent)
"""


def new_session(account_id: int, ttl: timedelta, address: str | None = None,
                user_agent: str | None = None) -> NewSession:
    """A session for the account, to store with ``INSERT_SESSION``."""
    token, public_id = new_secret(), uuid.uuid4()
    return NewSession(token, public_id, {
        "session_public_id": public_id, "session_token_hash": digest(token),
        "account_id": account_id, "session_expires_at": expiry(ttl), "address": address,
        "user_agent": shortened_user_agent(user_agent)})


def shortened_user_agent(user_agent: str | None) -> str | None:
    return (user_agent or "")[:USER_AGENT_MAX_LENGTH] or None


_LIVE_SESSION = (
    select(SsoSession.id.label("session_id"), SsoSession.public_id.label("session_public_id"),
           SsoSession.created_at, *PRINCIPAL_COLUMNS)
    .join(Account, Account.id == SsoSession.account_id)
    .where(
        SsoSession.token_hash == bindparam("token_hash"),
        SsoSession.ended_at.is_(None),
        SsoSession.expires_at > func.now(),
        Account.active.is_(True),
        Account.deleted_at.is_(None),
    )
)


def find_session(session: Session, token: str | None) -> SignedIn | None:
    """The live session behind a cookie, if its account may still sign in."""
    if not token:
        return None
    row = session.execute(_LIVE_SESSION, {"token_hash": digest(token)}).first()
    if row is None:
        return None
    return SignedIn(Principal.of(row), row.session_id, str(row.session_public_id),
                    row.created_at)


def find_session_id(session: Session, public_id: str) -> int | None:
    return session.scalars(
        select(SsoSession.id).where(SsoSession.public_id == public_id)
    ).first()


def end_session(session: Session, sso_session_id: int) -> None:
    """End a session and revoke every refresh token issued through it."""
    session.execute(
        update(SsoSession).where(SsoSession.id == sso_session_id, SsoSession.ended_at.is_(None))
        .values(ended_at=func.now())
    )
    revoke_session_tokens(session, sso_session_id)


def end_account_sessions(session: Session, account_id: int) -> None:
    session.execute(
        update(SsoSession).where(SsoSession.account_id == account_id, SsoSession.ended_at.is_(None))
        .values(ended_at=func.now())
    )


def clients_of_session(session: Session, sso_session_id: int) -> list[str]:
    """The clients that received an authorization code through this session."""
    query = select(AuthorizationCode.client_id).where(
        AuthorizationCode.sso_session_id == sso_session_id
    ).distinct()
    return sorted(session.scalars(query))
