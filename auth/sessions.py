"""SSO sessions: a browser signed in at the provider, identified by an opaque cookie."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from auth.identity import Principal
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


def start_session(session: Session, account_id: int, ttl: timedelta,
                  address: str | None = None, user_agent: str | None = None
                  ) -> tuple[str, uuid.UUID]:
    """Open a session for the account; returns the secret for the browser's cookie and the
    session's public id."""
    token = new_secret()
    public_id = uuid.uuid4()
    session.add(SsoSession(public_id=public_id, token_hash=digest(token), account_id=account_id,
                           expires_at=expiry(ttl), address=address,
                           user_agent=(user_agent or "")[:USER_AGENT_MAX_LENGTH] or None))
    return token, public_id


def find_session(session: Session, token: str | None) -> SignedIn | None:
    """The live session behind a cookie, if its account may still sign in."""
    if not token:
        return None
    row = session.execute(
        select(SsoSession, Account)
        .join(Account, Account.id == SsoSession.account_id)
        .where(
            SsoSession.token_hash == digest(token),
            SsoSession.ended_at.is_(None),
            SsoSession.expires_at > func.now(),
            Account.active.is_(True),
            Account.deleted_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    sso, account = row
    return SignedIn(Principal.of(account), sso.id, str(sso.public_id), sso.created_at)


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
