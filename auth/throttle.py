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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Cursor
from psycopg.rows import namedtuple_row
from sqlalchemy import Select, bindparam, func, literal, select, text, true
from sqlalchemy.orm import Session

from auth.config import LoginThrottling
from platform_kit.db import DriverStatement, driver_of

# Both locks in one round trip, always the account's first, then the address's (a select
# list is evaluated in order): no two attempts wait for each other in a cycle.
_LOCKS = (
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("account_key"), 0)),
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("address_key"), 0)),
)
_LOCK_ACCOUNT_AND_ADDRESS = select(*_LOCKS)


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
    with _cursor_in(session) as cursor:
        admitted, _ = admit_attempt_reading(cursor, email, address, rules, _LOCKS_ONLY, {})
    return admitted


def locking_and_reading(query: Select[*tuple[Any, ...]]) -> DriverStatement:
    """The statement taking an attempt's locks, reading beside them the first row of
    ``query`` (its columns null when there is none): for :func:`admit_attempt_reading`."""
    found = query.subquery()
    one_row = select(literal(1)).subquery()
    return DriverStatement(select(*_LOCKS, *found.c).select_from(one_row.outerjoin(found, true())))


_LOCKS_ONLY = DriverStatement(_LOCK_ACCOUNT_AND_ADDRESS)
_ADMIT_ON_DRIVER = DriverStatement(_ADMIT)


def admit_attempt_reading(cursor: Cursor[Any], email: str, address: str, rules: LoginThrottling,
                          locks: DriverStatement, parameters: dict[str, Any]
                          ) -> tuple[bool, Any]:
    """:func:`admit_attempt` on the driver's cursor of the transaction (the sign-in's
    hottest statements: see ``driver_transaction``), and the row that ``locks`` (of
    :func:`locking_and_reading`, with ``parameters``) read as it took the locks, by name."""
    cursor.row_factory = namedtuple_row
    # Locked in a statement of its own: the counting statement's snapshot, taken after the
    # locks, sees every attempt committed before.
    read = locks.run(cursor, account_key=f"login-account:{email}",
                     address_key=f"login-address:{address}", **parameters).fetchone()
    counted = _ADMIT_ON_DRIVER.run(
        cursor, email=email, address=address, window=rules.window,
        pair_limit=rules.per_account_and_address, account_limit=rules.per_account,
        address_limit=rules.per_address).fetchone()
    return counted is not None and bool(counted[0]), read


@contextmanager
def _cursor_in(session: Session) -> Iterator[Cursor[Any]]:
    """A driver's cursor in ``session``'s transaction."""
    with driver_of(session).cursor() as cursor:
        yield cursor


# A successful sign-in clears its own address's failures for the account, no others; run
# by ``forget_failures``, or within a sign-in's own statement.
FORGET_FAILURES = "DELETE FROM login_failures WHERE email = :email AND address = :address"


def forget_failures(session: Session, email: str, address: str) -> None:
    session.execute(text(FORGET_FAILURES), {"email": email, "address": address})
