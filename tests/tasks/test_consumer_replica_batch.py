"""A run of account states written by one statement: every character of a name arrives
as it was sent, and of several states of one account the newest wins whatever the order."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from auth_client.replica import AccountState
from tasks.consumers import apply_account_states
from tasks.models import Account

AWKWARD = ['O"Brien, Jr.', "back\\slash {braces}", "Ünïcödé 'quotes'", "NULL", "", " a,b "]


def state(version: int, name: str = "Kesha", role: str = "worker") -> AccountState:
    return AccountState(email=f"{name}@popug.inc", full_name=name, role=role, active=True,
                        version=version)


def stored(sessions, account_id: uuid.UUID) -> tuple[str | None, str | None, str | None, int]:
    with sessions() as session:
        account = session.scalar(select(Account).where(Account.public_id == account_id))
    assert account is not None
    return account.email, account.full_name, account.role, account.version


def test_names_with_quotes_commas_backslashes_and_accents_are_stored_as_sent(sessions):
    ids = [uuid.uuid4() for _ in AWKWARD]
    with sessions() as session, session.begin():
        apply_account_states(
            session, [(i, state(1, name)) for i, name in zip(ids, AWKWARD, strict=True)]
        )
    for account_id, name in zip(ids, AWKWARD, strict=True):
        assert stored(sessions, account_id) == (f"{name}@popug.inc", name, "worker", 1)


def test_the_newest_state_of_an_account_wins_within_a_run_and_across_runs(sessions):
    account_id = uuid.uuid4()
    with sessions() as session, session.begin():
        apply_account_states(session, [
            (account_id, state(2, "Second")),
            (str(account_id).upper(), state(3, "Third", role="manager")),
            (str(account_id), state(1, "First")),
        ])
    with sessions() as session, session.begin():
        apply_account_states(session, [(account_id, state(2, "Late"))])
    assert stored(sessions, account_id) == ("Third@popug.inc", "Third", "manager", 3)
