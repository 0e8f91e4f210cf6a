"""Throttling of failed sign-ins.

Failures count per (account email, client address), per client address over all accounts,
and per account over all addresses. The account-wide ceiling is far above the per-pair
limit: locking an owner out means failing from many addresses, while one address guessing
at an account is stopped after a few tries and the owner elsewhere can still sign in.

An attempt is counted as a failure *before* its password is checked (and forgotten if it
succeeds), in a transaction serialised per account and per address: parallel attempts
cannot all pass the check before any of them is counted.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from auth.config import LoginThrottling
from auth.models import LoginFailure


def admit_attempt(session: Session, email: str, address: str, rules: LoginThrottling) -> bool:
    """Count one sign-in attempt as failed, unless a limit is reached (then ``False``)."""
    # Always account first, then address: no two attempts wait for each other in a cycle.
    _lock(session, f"login-account:{email}")
    _lock(session, f"login-address:{address}")
    _forget_expired(session, email, address, rules)
    if _over_a_limit(session, email, address, rules):
        return False
    session.add(LoginFailure(email=email, address=address))
    return True


def forget_failures(session: Session, email: str, address: str) -> None:
    """A successful sign-in clears its own address's failures for the account, no others."""
    session.execute(delete(LoginFailure).where(_pair(email, address)))


def _lock(session: Session, key: str) -> None:
    session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def _pair(email: str, address: str) -> ColumnElement[bool]:
    return and_(LoginFailure.email == email, LoginFailure.address == address)


def _over_a_limit(session: Session, email: str, address: str, rules: LoginThrottling) -> bool:
    """Whether a limit is reached: the three counts in one query."""
    by_account = LoginFailure.email == email
    by_address = LoginFailure.address == address
    pair, account, per_address = session.execute(
        select(_count(_pair(email, address)), _count(by_account), _count(by_address))
        .where(or_(by_account, by_address))
    ).one()
    return (pair >= rules.per_account_and_address or account >= rules.per_account
            or per_address >= rules.per_address)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(condition)


def _forget_expired(session: Session, email: str, address: str, rules: LoginThrottling) -> None:
    session.execute(
        delete(LoginFailure).where(
            or_(LoginFailure.email == email, LoginFailure.address == address),
            LoginFailure.created_at <= func.now() - rules.window,
        )
    )
