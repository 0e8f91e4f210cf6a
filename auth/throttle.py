"""Throttling of failed sign-ins, per account email and per client address."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from auth.config import LoginThrottling
from auth.models import LoginFailure


def _recent(rules: LoginThrottling):
    return LoginFailure.created_at > func.now() - rules.window


def _count(session: Session, condition, rules: LoginThrottling) -> int:
    query = select(func.count()).select_from(LoginFailure).where(condition, _recent(rules))
    return session.scalar(query) or 0


def is_throttled(session: Session, email: str, address: str, rules: LoginThrottling) -> bool:
    return (
        _count(session, LoginFailure.email == email, rules) >= rules.per_account
        or _count(session, LoginFailure.address == address, rules) >= rules.per_address
    )


def record_failure(session: Session, email: str, address: str, rules: LoginThrottling) -> None:
    session.add(LoginFailure(email=email, address=address))
    session.execute(
        delete(LoginFailure).where(
            or_(LoginFailure.email == email, LoginFailure.address == address),
            LoginFailure.created_at <= func.now() - rules.window,
        )
    )


def forget_failures(session: Session, email: str) -> None:
    """A successful sign-in clears the account's count (not the address's)."""
    session.execute(delete(LoginFailure).where(LoginFailure.email == email))
