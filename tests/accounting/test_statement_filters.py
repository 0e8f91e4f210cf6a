"""A statement filtered by days and type: the same through the service, the API and the CSV,
read through the account's indexes, paged by keyset."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import event, text

from accounting import domain
from accounting.exports import AUDIT_LOG_CSV_HEADER, AccountingExports
from accounting.queries import AccountingQueries, StatementFilter
from tests.accounting.conftest import DAY, add_account, assign, complete, moment, new_id
from tests.accounting.support import book_task, feed_replica, parse_csv
from tests.auth.support import People

YESTERDAY, TOMORROW = DAY - timedelta(days=1), DAY + timedelta(days=1)


@pytest.fixture
def three_days(sessions, books, clock):
    """One account with a task done on each of three days (fee, then reward), and another
    account booked in between."""
    worker, other = add_account(sessions), add_account(sessions)
    for day in (YESTERDAY, DAY, TOMORROW):
        clock.set(moment(day))
        task = new_id()
        assign(sessions, books, task, worker)
        assign(sessions, books, new_id(), other)
        clock.advance(minutes=5)
        complete(sessions, books, task, worker)
    return worker


def kinds_and_days(lines) -> list[tuple[str, str]]:
    return [(line.type, line.created_at.astimezone(UTC).date().isoformat()) for line in lines]


def statement(sessions, account, cursor=None, limit=50, **filters):
    return AccountingQueries(sessions).audit_log(account, cursor, limit,
                             statement=StatementFilter(**filters))


def test_the_statement_shows_the_days_asked_for_newest_first(sessions, three_days):
    one_day, _ = statement(sessions, three_days, first=DAY, last=DAY)
    since, _ = statement(sessions, three_days, first=DAY)
    until, _ = statement(sessions, three_days, last=YESTERDAY)
    later, _ = statement(sessions, three_days, first=TOMORROW + timedelta(days=1))

    assert kinds_and_days(one_day) == [("reward", str(DAY)), ("fee", str(DAY))]
    assert kinds_and_days(since) == [("reward", str(TOMORROW)), ("fee", str(TOMORROW)),
                                     ("reward", str(DAY)), ("fee", str(DAY))]
    assert kinds_and_days(until) == [("reward", str(YESTERDAY)), ("fee", str(YESTERDAY))]
    assert later == []
    assert {line.account_id for line in since} == {three_days}


def test_the_statement_shows_one_type_and_pages_keep_the_filters(sessions, three_days):
    first_page, cursor = statement(sessions, three_days, limit=2, type=domain.FEE)
    second_page, last = statement(sessions, three_days, cursor=cursor, limit=2,
                                  type=domain.FEE)
    rewards_since, _ = statement(sessions, three_days, first=DAY, type=domain.REWARD)

    assert kinds_and_days(first_page) == [("fee", str(TOMORROW)), ("fee", str(DAY))]
    assert kinds_and_days(second_page) == [("fee", str(YESTERDAY))] and last is None
    assert kinds_and_days(rewards_since) == [("reward", str(TOMORROW)), ("reward", str(DAY))]


def test_the_days_of_a_statement_are_those_of_its_time_zone(sessions, books, clock):
    worker = add_account(sessions)
    clock.set(datetime(2026, 11, 22, 23, 30, tzinfo=UTC))  # already the 23rd in Berlin
    assign(sessions, books, new_id(), worker)
    berlin = ZoneInfo("Europe/Berlin")

    in_utc, _ = statement(sessions, worker, first=DAY, last=DAY)
    in_berlin, _ = statement(sessions, worker, first=DAY, last=DAY, zone=berlin)
    next_in_berlin, _ = statement(sessions, worker, first=TOMORROW, zone=berlin)

    assert len(in_utc) == 1 and in_berlin == [] and len(next_in_berlin) == 1


def test_the_first_and_last_days_of_the_calendar_are_ranges_too(sessions, three_days):
    everything, _ = statement(sessions, three_days, first=date.min, last=date.max,
                              zone=ZoneInfo("Europe/Berlin"))

    assert len(everything) == 6


def test_filters_that_make_no_sense_are_refused():
    with pytest.raises(domain.InvalidRange, match="before it starts"):
        StatementFilter(first=DAY, last=YESTERDAY)
    with pytest.raises(domain.InvalidRange, match="type must be one of"):
        StatementFilter(type="bonus")


def test_the_csv_rows_follow_the_same_filters_oldest_first(sessions, three_days):
    csv = AccountingExports(AccountingQueries(sessions))
    rows = list(csv.audit_log_csv_rows(
        three_days, StatementFilter(first=DAY, type=domain.REWARD)))
    nothing = list(csv.audit_log_csv_rows(
        three_days, StatementFilter(last=YESTERDAY - timedelta(days=1))))

    header = AUDIT_LOG_CSV_HEADER
    assert rows[0] == header
    found = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [(r["type"], r["day"]) for r in found] == [("reward", str(DAY)),
                                                      ("reward", str(TOMORROW))]
    assert nothing == [header]


def test_a_filtered_statement_is_read_through_the_accounts_indexes(sessions, engine,
                                                                   three_days):
    """Whatever the table's size, every statement a filtered page runs can be served by an
    index on the account (a predicate no index serves would still scan the table)."""
    seen: list[tuple[str, dict]] = []

    def record(conn, cursor, sql, parameters, *args) -> None:
        if "transactions" in sql:
            seen.append((sql, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        _, cursor = statement(sessions, three_days, limit=1, first=DAY, last=TOMORROW,
                              type=domain.FEE)
        statement(sessions, three_days, cursor=cursor, limit=1, first=DAY, last=TOMORROW,
                  type=domain.FEE)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert len(seen) >= 4
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        for sql, parameters in seen:
            plan = connection.exec_driver_sql(f"EXPLAIN {sql}", parameters).scalars().all()
            assert not any("Seq Scan on transactions" in line for line in plan), plan


# -- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def api(accounting_url, engine) -> str:
    return accounting_url


@pytest.fixture
def booked_today(sessions, live_books, people: People):
    feed_replica(sessions, people.worker, people.other_worker)
    book_task(sessions, live_books, people.worker, "Feed the parrots")
    book_task(sessions, live_books, people.worker, "Clean the cage", done=False)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_the_api_filters_the_callers_statement(api, people: People, booked_today):
    def get(path: str, **params) -> httpx.Response:
        return httpx.get(f"{api}{path}", headers=people.worker.headers, params=params)

    fees = get("/api/me/transactions", type="fee", **{"from": today(), "to": today()})
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    later = get(f"/api/accounts/{people.worker.id}/transactions", **{"from": tomorrow})
    csv_rewards = get("/api/me/transactions.csv", type="reward")

    assert fees.status_code == 200
    assert [(i["type"], i["task"]["title"]) for i in fees.json()["items"]] == [
        ("fee", "Clean the cage"), ("fee", "Feed the parrots")]
    assert later.json() == {"items": [], "next": None}
    assert [(r["type"], r["task_title"]) for r in parse_csv(csv_rewards)] == [
        ("reward", "Feed the parrots")]


@pytest.mark.parametrize(("params", "says"), [
    ({"type": "bonus"}, "type"),
    ({"from": "22.11.2026"}, "must be a date string like 2026-11-22"),
    ({"from": "0"}, "must be a date string like 2026-11-22"),
    ({"from": "2026-11-22", "to": "2026-11-21"}, "before it starts"),
])
@pytest.mark.parametrize("path", ["/api/me/transactions", "/api/me/transactions.csv"])
def test_bad_filters_are_422_with_a_sentence(api, people: People, path, params, says):
    response = httpx.get(f"{api}{path}", headers=people.worker.headers, params=params)

    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_the_filters_are_described_in_the_api_description(api):
    description = httpx.get(f"{api}/openapi.json").json()
    for path in ("/api/me/transactions", "/api/accounts/{account_id}/transactions",
                 "/api/me/transactions.csv", "/api/accounts/{account_id}/transactions.csv"):
        operation = description["paths"][path]["get"]
        names = {parameter["name"] for parameter in operation["parameters"]}
        assert {"from", "to", "type"} <= names, path
        assert "422" in operation["responses"], path
