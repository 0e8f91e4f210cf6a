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

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from auth.config import LoginThrottling

# Both locks in one round trip, always the account's first, then the address's (a select
# list is evaluated in order): no two attempts wait for each other in a cycle.
_LOCK_ACCOUNT_AND_ADDRESS = select(
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("account_key"), 0)),
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("address_key"), 0)),
)

# Under the locks, in one statement: forget the expired failures, count the others (the
# three counts at once) and, below every limit, count this attempt as one more.
_ADMIT = text("""
WITH expired AS (
    DELETE FROM login_failures
    WHERE (email = :email OR address = :address) AND created_at <= now() - :window
), recent AS (
    SELECT count(*) FILTER (WHERE email = :email AND address = :address) AS pair,
           count(*) FILTER (WHERE email = :email) AS account,
           count(*) FILTER (WHERE address = :address) AS per_address
    FROM login_failures
    WHERE (email = :email OR address = :address) AND created_at > now() - :window
), counted AS (
    INSERT INTO login_failures (email, address)
    SELECT :email, :address FROM recent
    WHERE pair < :pair_limit AND account < :account_limit AND per_address < :address_limit
    RETURNING id
)
SELECT EXISTS (SELECT FROM counted)
""")


def admit_attempt(session: Session, email: str, address: str, rules: LoginThrottling) -> bool:
    """Count one sign-in attempt as failed, unless a limit is reached (then ``False``)."""
    # Locked in a statement of its own: the counting statement's snapshot, taken after the
    # locks, sees every attempt committed before.
    session.execute(_LOCK_ACCOUNT_AND_ADDRESS, {"account_key": f"login-account:{email}",
                                                "address_key": f"login-address:{address}"})
    admitted: bool = session.execute(_ADMIT, {
        "email": email, "address": address, "window": rules.window,
        "pair_limit": rules.per_account_and_address, "account_limit": rules.per_account,
        "address_limit": rules.per_address,
    }).scalar_one()
    return admitted


# A successful sign-in clears its own address's failures for the account, no others; run
# by ``forget_failures``, or within a sign-in's own statement.
FORGET_FAILURES = "DELETE FROM login_failures WHERE email = :email AND address = :address"


def forget_failures(session: Session, email: str, address: str) -> None:
    session.execute(text(FORGET_FAILURES), {"email": email, "address": address})
