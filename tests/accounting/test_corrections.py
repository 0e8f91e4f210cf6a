"""Corrections over real HTTP: reversals of fees and rewards, manual adjustments, and the
Idempotency-Key that makes a retried request book nothing twice."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from accounting.ledger_sql import Books
from accounting.service import AccountingService
from accounting.verify import verify
from tests.accounting.conftest import DAY, Clock, balance_of, count, moment, price_of, stored_events
from tests.accounting.support import LINE_FIELDS, book_task, feed_replica, parse_csv
from tests.auth.support import People


@pytest.fixture
def api(accounting_url, engine) -> str:
    return accounting_url


def _post(api: str, path: str, person, body: dict, key: str | None = None) -> httpx.Response:
    headers = dict(person.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{api}{path}", headers=headers, json=body)


def _get(api: str, path: str, person, **params) -> httpx.Response:
    return httpx.get(f"{api}{path}", headers=person.headers, params=params)


def _lines(api, people, person=None) -> list[dict]:
    person = person or people.worker
    return _get(api, f"/api/accounts/{person.id}/transactions", people.accountant).json()["items"]


def _line_of(api, people, line_type: str) -> dict:
    return next(line for line in _lines(api, people) if line["type"] == line_type)


@pytest.fixture
def done_task(sessions, live_books, people: People) -> uuid.UUID:
    feed_replica(sessions, people.worker, people.other_worker, people.accountant, people.admin)
    return book_task(sessions, live_books, people.worker, "Feed the parrots", "UBERPOP-7")


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_an_accountant_reverses_a_fee(api, engine, sessions, people, done_task):
    fee, reward = price_of(engine, done_task)
    original = _line_of(api, people, "fee")

    answer = _post(api, f"/api/transactions/{original['id']}/reversal", people.accountant,
                   {"reason": "Assigned while on leave"})

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == LINE_FIELDS | {"account_id"}
    assert (body["type"], body["amount"], body["corrects"], body["task_id"]) == (
        "reversal", fee, original["id"], str(done_task))
    assert (body["reason"], body["booked_by"], body["account_id"]) == (
        "Assigned while on leave", people.accountant.id, people.worker.id)
    assert body["balance_after"] == reward == balance_of(engine, people.worker.uuid)
    assert body["task"]["title"] == "Feed the parrots" and body["day"] == _today()
    # the audit log shows both, the original pointing at its reversal
    lines = {line["id"]: line for line in _lines(api, people)}
    assert lines[original["id"]]["reversed_by"] == body["id"]
    assert lines[original["id"]]["amount"] == -fee  # never edited
    assert lines[body["id"]]["corrects"] == original["id"]
    # management counts the reversed fee on the day the reversal is booked
    today = _get(api, "/api/management/earnings", people.admin).json()
    assert (today["fees_charged"], today["rewards_paid"], today["earned"]) == (0, reward, -reward)
    mine = _get(api, "/api/me/days", people.worker).json()["items"][0]
    assert (mine["fees"], mine["rewards"], mine["earned"]) == (0, reward, reward)
    [event] = stored_events(engine, "transaction.corrected")
    assert event.key == people.worker.id
    assert event.event.data == {
        "transaction_id": body["id"], "account_id": people.worker.id, "type": "reversal",
        "amount": fee, "balance_after": reward, "task_id": str(done_task), "day": _today(),
        "applied_at": event.event.data["applied_at"], "corrects_transaction_id": original["id"],
        "counts_as": "fee", "reason": "Assigned while on leave",
        "booked_by": people.accountant.id,
    }
    assert verify(engine, lambda: datetime.now(UTC)).holds


def test_an_admin_reverses_a_reward(api, engine, people, done_task):
    fee, reward = price_of(engine, done_task)
    original = _line_of(api, people, "reward")

    body = _post(api, f"/api/transactions/{original['id']}/reversal", people.admin,
                 {"reason": "Done by someone else"}).json()

    assert (body["amount"], body["balance_after"]) == (-reward, -fee)
    today = _get(api, "/api/management/earnings", people.admin).json()
    assert (today["fees_charged"], today["rewards_paid"]) == (fee, 0)
    assert stored_events(engine, "transaction.corrected")[0].event.data["counts_as"] == "reward"


def test_a_transaction_is_reversed_at_most_once(api, engine, people, done_task):
    original = _line_of(api, people, "fee")
    path = f"/api/transactions/{original['id']}/reversal"
    first = _post(api, path, people.accountant, {"reason": "Wrong popug"}).json()

    again = _post(api, path, people.admin, {"reason": "Wrong popug, really"})

    assert again.status_code == 409
    assert again.json() == {
        "detail": f"transaction {original['id']} is already reversed by {first['id']}"}
    assert count(engine, "transactions", "type = 'reversal'") == 1


def test_what_cannot_be_reversed(api, engine, sessions, live_books, people, done_task):
    AccountingService(sessions, live_books).close_day()
    payout = _line_of(api, people, "payout")
    fee = _line_of(api, people, "fee")
    reversal = _post(api, f"/api/transactions/{fee['id']}/reversal", people.accountant,
                     {"reason": "Wrong popug"}).json()
    before = count(engine, "transactions")

    for target in (payout["id"], reversal["id"]):
        refused = _post(api, f"/api/transactions/{target}/reversal", people.accountant,
                        {"reason": "Try"})
        assert refused.status_code == 422, target
        assert "only fees and rewards can be reversed" in refused.json()["detail"]
    missing = _post(api, f"/api/transactions/{uuid.uuid4()}/reversal", people.accountant,
                    {"reason": "Try"})
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no transaction")
    assert count(engine, "transactions") == before


@pytest.mark.parametrize("body", [
    {}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": 5},
    {"reason": "ok", "amount": 5},
])
def test_a_reversal_needs_a_reason(api, engine, people, done_task, body):
    original = _line_of(api, people, "fee")
    answer = _post(api, f"/api/transactions/{original['id']}/reversal", people.accountant, body)
    assert answer.status_code == 422 and answer.json()["detail"]
    assert count(engine, "transactions", "type = 'reversal'") == 0


def test_adjustments_charge_or_credit_an_account(api, engine, people, done_task):
    fee, reward = price_of(engine, done_task)
    path = f"/api/accounts/{people.worker.id}/adjustments"

    credit = _post(api, path, people.accountant, {"amount": 500, "reason": "Bonus"})
    charge = _post(api, path, people.admin, {"amount": -300, "reason": "Lost cage key"})

    assert credit.status_code == charge.status_code == 201
    assert (credit.json()["type"], credit.json()["amount"], credit.json()["task_id"]) == (
        "adjustment", 500, None)
    assert credit.json()["corrects"] is None and credit.json()["task"] is None
    assert charge.json()["balance_after"] == reward - fee + 200 == balance_of(
        engine, people.worker.uuid)
    today = _get(api, "/api/management/earnings", people.admin).json()
    assert (today["fees_charged"], today["rewards_paid"]) == (fee + 300, reward + 500)
    counted = [e.event.data["counts_as"] for e in stored_events(engine, "transaction.corrected")]
    assert counted == ["reward", "fee"]


@pytest.mark.parametrize("body", [
    {"amount": 0, "reason": "Nothing"}, {"amount": 12.5, "reason": "Half"},
    {"amount": "500", "reason": "Text"}, {"amount": True, "reason": "Bool"},
    {"amount": 100_000_001, "reason": "Typo"}, {"amount": 500}, {"amount": 500, "reason": ""},
])
def test_a_bad_adjustment_is_422_and_books_nothing(api, engine, people, done_task, body):
    answer = _post(api, f"/api/accounts/{people.worker.id}/adjustments", people.accountant, body)
    assert answer.status_code == 422 and answer.json()["detail"]
    assert count(engine, "transactions", "type = 'adjustment'") == 0


def test_an_adjustment_of_an_unknown_account_is_404(api, people, done_task):
    answer = _post(api, f"/api/accounts/{uuid.uuid4()}/adjustments", people.accountant,
                   {"amount": 100, "reason": "Who?"})
    assert answer.status_code == 404


def test_only_admins_and_accountants_correct(api, engine, people, done_task):
    original = _line_of(api, people, "fee")
    for person in (people.worker, people.manager):
        reversal = _post(api, f"/api/transactions/{original['id']}/reversal", person,
                         {"reason": "Mine"})
        adjustment = _post(api, f"/api/accounts/{person.id}/adjustments", person,
                           {"amount": 100000, "reason": "Mine"})
        assert reversal.status_code == adjustment.status_code == 403
    assert httpx.post(f"{api}/api/transactions/{original['id']}/reversal",
                      json={"reason": "x"}).status_code == 401
    assert count(engine, "transactions", "type IN ('reversal', 'adjustment')") == 0


# -- Idempotency-Key --------------------------------------------------------------------


def test_the_same_key_and_body_answer_the_same_and_book_nothing(api, engine, people, done_task):
    original = _line_of(api, people, "fee")
    path = f"/api/transactions/{original['id']}/reversal"

    first = _post(api, path, people.accountant, {"reason": "Wrong popug"}, key="rev-1")
    again = _post(api, path, people.accountant, {"reason": "Wrong popug"}, key="rev-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count(engine, "transactions", "type = 'reversal'") == 1
    assert len(stored_events(engine, "transaction.corrected")) == 1


def test_the_same_key_with_another_body_is_409(api, engine, people, done_task):
    fee = _line_of(api, people, "fee")
    reward = _line_of(api, people, "reward")
    _post(api, f"/api/transactions/{fee['id']}/reversal", people.accountant,
          {"reason": "Wrong popug"}, key="k")

    other_reason = _post(api, f"/api/transactions/{fee['id']}/reversal", people.accountant,
                         {"reason": "Another reason"}, key="k")
    other_target = _post(api, f"/api/transactions/{reward['id']}/reversal", people.accountant,
                         {"reason": "Wrong popug"}, key="k")
    adjustment = _post(api, f"/api/accounts/{people.worker.id}/adjustments", people.accountant,
                       {"amount": 100, "reason": "Wrong popug"}, key="k")

    for refused in (other_reason, other_target, adjustment):
        assert refused.status_code == 409
        assert "Idempotency-Key" in refused.json()["detail"]
    assert count(engine, "transactions", "type IN ('reversal', 'adjustment')") == 1


def test_keys_are_each_callers_own(api, engine, people, done_task):
    path = f"/api/accounts/{people.worker.id}/adjustments"
    mine = _post(api, path, people.accountant, {"amount": 100, "reason": "Bonus"}, key="same")
    theirs = _post(api, path, people.admin, {"amount": 100, "reason": "Bonus"}, key="same")
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_key_is_printable_and_not_too_long(api, engine, people, done_task):
    path = f"/api/accounts/{people.worker.id}/adjustments"
    answer = _post(api, path, people.accountant, {"amount": 100, "reason": "Bonus"},
                   key="k" * 256)
    assert answer.status_code == 422 and "Idempotency-Key" in answer.json()["detail"]
    assert count(engine, "transactions", "type = 'adjustment'") == 0


def test_retries_racing_with_one_key_book_once(api, engine, people, done_task):
    path = f"/api/accounts/{people.worker.id}/adjustments"
    start = threading.Barrier(4)
    answers: list[httpx.Response] = []

    def send():
        start.wait()
        answers.append(_post(api, path, people.accountant, {"amount": 700, "reason": "Bonus"},
                             key="race"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(engine, "transactions", "type = 'adjustment'") == 1


def test_a_failed_request_keeps_no_key(api, engine, people, done_task):
    original = _line_of(api, people, "fee")
    path = f"/api/transactions/{original['id']}/reversal"
    _post(api, path, people.accountant, {"reason": "First"})
    refused = _post(api, path, people.accountant, {"reason": "Second"}, key="after")
    assert refused.status_code == 409
    assert count(engine, "correction_requests") == 0


# -- corrections of earlier days ---------------------------------------------------------


def test_a_fee_of_a_closed_day_is_reversed_on_the_day_the_reversal_is_booked(
    api, engine, sessions, accounting_settings, people
):
    feed_replica(sessions, people.worker, people.accountant)
    books = Books.create(accounting_settings, rng=random.Random(1), clock=Clock(moment(DAY)))
    task = book_task(sessions, books, people.worker, done=False)
    AccountingService(sessions, books).close_day(DAY)
    fee, _ = price_of(engine, task)
    original = _line_of(api, people, "fee")

    body = _post(api, f"/api/transactions/{original['id']}/reversal", people.accountant,
                 {"reason": "Wrong popug"}).json()

    assert body["day"] == _today()
    days = {d["day"]: d for d in _get(api, "/api/management/days", people.admin,
                                      **{"from": DAY.isoformat(), "to": _today()}).json()["items"]}
    assert days[DAY.isoformat()]["fees_charged"] == fee  # a closed day keeps its figures
    assert days[_today()]["fees_charged"] == -fee
    assert body["balance_after"] == 0 == balance_of(engine, people.worker.uuid)


# -- exports -------------------------------------------------------------------------------


def test_the_csv_export_carries_the_links_and_the_reason(api, engine, people, done_task):
    original = _line_of(api, people, "fee")
    reversal = _post(api, f"/api/transactions/{original['id']}/reversal", people.accountant,
                     {"reason": "=HYPERLINK(\"x\")"}).json()

    rows = {row["id"]: row for row in parse_csv(_get(
        api, "/api/exports/transactions.csv", people.accountant, account=people.worker.id))}

    assert rows[original["id"]]["reversed_by"] == reversal["id"]
    assert rows[reversal["id"]]["corrects"] == original["id"]
    assert rows[reversal["id"]]["type"] == "reversal"
    assert rows[reversal["id"]]["reason"] == "'=HYPERLINK(\"x\")"
    assert rows[reversal["id"]]["booked_by"] == people.accountant.id
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT reason FROM transactions WHERE type = 'reversal'")
                                 ) == "=HYPERLINK(\"x\")"
