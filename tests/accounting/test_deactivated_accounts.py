"""An account deactivated or deleted in the replica cannot act with its unexpired token."""

from __future__ import annotations

import httpx

from accounting.service import LedgerCommands
from tests.accounting.support import feed_replica


def test_a_deactivated_accountant_is_refused_at_once(accounting_url, engine, sessions, people):
    feed_replica(sessions, people.accountant)
    before = httpx.get(f"{accounting_url}/api/accounts", headers=people.accountant.headers)
    with sessions() as session, session.begin():
        LedgerCommands.apply_account_state(
            session, people.accountant.uuid, email=people.accountant.login.email,
            full_name=people.accountant.name, role="accountant", active=False, version=2)

    after = httpx.get(f"{accounting_url}/api/accounts", headers=people.accountant.headers)
    closing = httpx.post(f"{accounting_url}/api/billing/close-day",
                         headers=people.accountant.headers)

    assert before.status_code == 200
    assert [after.status_code, closing.status_code] == [401, 401]
    assert after.json() == {"detail": "the account is deactivated"}


def test_a_deleted_worker_is_refused_at_once(accounting_url, engine, sessions, people):
    feed_replica(sessions, people.worker)
    with sessions() as session, session.begin():
        LedgerCommands.apply_account_deleted(session, people.worker.uuid, version=2)

    response = httpx.get(f"{accounting_url}/api/me/account", headers=people.worker.headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "the account is deleted"}
