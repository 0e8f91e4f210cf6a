"""Point-in-time balances and statements as of a moment, over real HTTP."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import text

from accounting.ledger_sql import Books
from accounting.service import AccountingService
from tests.accounting.conftest import DAY, Clock, moment
from tests.accounting.support import book_task, feed_replica, unknown_account
from tests.auth.support import People


@pytest.fixture
def api(accounting_url, engine) -> str:
    return accounting_url


def _get(api: str, path: str, person, **params) -> httpx.Response:
    return httpx.get(f"{api}{path}", headers=person.headers, params=params)


def _sum_of_entries(engine, account_id, at: datetime) -> int:
    with engine.connect() as connection:
        return connection.scalar(text(
            "SELECT coalesce(sum(e.amount), 0) FROM entries e"
            " JOIN transactions t ON t.id = e.transaction_id"
            " WHERE e.account_id = :a AND t.created_at <= :at"
        ), {"a": account_id, "at": at})


def _z(moment_: datetime) -> str:
    return moment_.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def history(sessions, accounting_settings, people: People):
    """A worker's fees, rewards and a payout over two days, on a clock that moves on by a
    few seconds to a few minutes between bookings; returns every booking time."""
    feed_replica(sessions, people.worker, people.other_worker, people.accountant)
    clock = Clock(moment(DAY, 9))
    books = Books.create(accounting_settings, rng=random.Random(3), clock=clock)
    steps = random.Random(5)
    times = []
    for round_ in range(6):
        for person in (people.worker, people.other_worker):
            clock.advance(seconds=steps.randint(1, 300))
            times.append(clock())
            book_task(sessions, books, person, done=round_ % 2 == 0)
        if round_ == 2:
            clock.advance(hours=14)
            times.append(clock())
            AccountingService(sessions, books).close_day(DAY)
    return times


def test_the_balance_at_any_moment_is_the_sum_of_the_entries_until_then(
    api, engine, people, history
):
    moments = [moment(DAY, 0)] + [
        t + delta for t in history
        for delta in (timedelta(0), timedelta(microseconds=-1), timedelta(seconds=1))
    ]
    for at in moments:
        answer = _get(api, f"/api/accounts/{people.worker.id}/balance", people.accountant,
                      at=_z(at))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["balance"] == _sum_of_entries(engine, people.worker.uuid, at), at
        assert body["account_id"] == people.worker.id
        assert datetime.fromisoformat(body["at"]) == at


def test_before_anything_was_booked_the_balance_is_zero(api, people, history):
    body = _get(api, f"/api/accounts/{people.worker.id}/balance", people.worker,
                at="2026-01-01T00:00:00+03:00").json()
    assert (body["balance"], body["transaction_id"]) == (0, None)


def test_without_a_moment_the_balance_is_the_current_one(api, engine, people, history):
    body = _get(api, f"/api/accounts/{people.worker.id}/balance", people.admin).json()
    assert body["balance"] == _sum_of_entries(engine, people.worker.uuid, datetime.now(UTC))


def test_offsets_name_the_same_moment(api, people, history):
    at = history[3]
    in_utc = _get(api, f"/api/accounts/{people.worker.id}/balance", people.worker,
                  at=_z(at)).json()
    in_moscow = _get(api, f"/api/accounts/{people.worker.id}/balance", people.worker,
                     at=at.astimezone(timezone(timedelta(hours=3))).isoformat()).json()
    assert in_utc["balance"] == in_moscow["balance"]


def test_who_may_ask(api, sessions, people, history):
    path = f"/api/accounts/{people.worker.id}/balance"
    assert _get(api, path, people.worker).status_code == 200
    assert _get(api, path, people.accountant).status_code == 200
    assert _get(api, path, people.admin).status_code == 200
    denied = _get(api, path, people.other_worker)
    assert denied.status_code == 403 and denied.json()["detail"]
    assert _get(api, path, people.manager).status_code == 403
    unknown = _get(api, f"/api/accounts/{unknown_account(sessions)}/balance", people.admin)
    assert unknown.status_code == 404
    assert httpx.get(f"{api}{path}").status_code == 401


@pytest.mark.parametrize("bad", [
    "0", "1700000000", "2026-11-22", "2026-11-22T10:00:00", "yesterday",
    "2026-11-22T10:00:00 03:00", "2026-13-22T10:00:00Z",
])
def test_a_moment_must_be_rfc3339_with_its_offset(api, people, history, bad):
    answer = _get(api, f"/api/accounts/{people.worker.id}/balance", people.worker, at=bad)
    assert answer.status_code == 422
    assert "RFC 3339" in answer.json()["detail"] or "date" in answer.json()["detail"]


def test_the_statement_as_of_a_moment_ends_with_that_balance(api, engine, people, history):
    for at in history[1:]:
        page = _get(api, f"/api/accounts/{people.worker.id}/transactions", people.accountant,
                    as_of=_z(at), limit=500).json()
        lines = page["items"]
        with engine.connect() as connection:
            expected = connection.scalar(text(
                "SELECT count(*) FROM transactions WHERE account_id = :a AND created_at <= :at"
            ), {"a": people.worker.uuid, "at": at})
        assert len(lines) == expected
        assert all(datetime.fromisoformat(line["created_at"]) <= at for line in lines)
        balance = _sum_of_entries(engine, people.worker.uuid, at)
        assert (lines[0]["balance_after"] if lines else 0) == balance
    mine = _get(api, "/api/me/transactions", people.worker, as_of=_z(history[0]),
                limit=1).json()
    assert len(mine["items"]) <= 1


def test_the_statement_as_of_a_moment_before_the_ledger_is_empty(api, people, history):
    page = _get(api, "/api/me/transactions", people.worker, as_of="2020-01-01T00:00:00Z")
    assert page.json() == {"items": [], "next": None}


def test_the_lookup_descends_the_index_on_account_and_time(engine, people, history):
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(connection.execute(text(
            "EXPLAIN SELECT id, public_id, balance_after FROM transactions"
            " WHERE account_id = :a AND created_at <= :at"
            " ORDER BY created_at DESC, id DESC LIMIT 1"
        ), {"a": people.worker.uuid, "at": history[4]}).scalars())
    assert "transactions_account_time" in plan
