"""Reports and scraped gauges read totals kept as the ledger is written, never the ledger
itself: their cost does not grow with the number of transactions or accounts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, text

from accounting import metrics
from accounting.queries import AccountingQueries
from accounting.service import AccountingService
from tests.accounting.conftest import DAY, add_account, assign, complete, moment, new_id
from tests.accounting.test_closing import earn


def statements_run(engine, action) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_management_days_and_the_negative_balance_gauge_read_no_ledger_table(
    sessions, engine, books
):
    worker = add_account(sessions)
    for _ in range(3):
        task = new_id()
        assign(sessions, books, task, worker)
    complete(sessions, books, task, worker)

    def read() -> None:
        AccountingQueries(sessions).management_days(DAY, DAY)
        metrics.negative_balances(sessions)

    for statement in statements_run(engine, read):
        for table in ("transactions", "entries", "balances"):
            assert f" {table}" not in statement.replace("\n", " "), statement


def test_the_totals_match_the_ledger_after_bookings_and_a_close(sessions, engine, books):
    workers = [add_account(sessions) for _ in range(4)]
    for n, worker in enumerate(workers):
        for _ in range(n + 1):
            assign(sessions, books, new_id(), worker)
    task = new_id()
    assign(sessions, books, task, workers[0])
    complete(sessions, books, task, workers[0])
    with engine.connect() as connection:
        negative = connection.execute(
            text("SELECT count(*) FROM balances WHERE balance < 0")).scalar_one()
        booked_on, fees, rewards = connection.execute(text(
            "SELECT max(day), -sum(amount) FILTER (WHERE type = 'fee'),"
            " sum(amount) FILTER (WHERE type = 'reward') FROM transactions")).one()
    assert metrics.negative_balances(sessions) == negative > 0
    [day] = AccountingQueries(sessions).management_days(booked_on, booked_on)
    assert (day.fees_charged, day.rewards_paid) == (fees, rewards) != (0, 0)


def test_the_gauges_behind_the_alerts_see_a_missed_close_and_waiting_mails(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    rich = add_account(sessions)
    earn(sessions, books, engine, rich)
    assert metrics.ended_days_not_closed(sessions, books) == 0  # the day is still today
    clock.set(moment(DAY + timedelta(days=2), hour=3))
    assert metrics.ended_days_not_closed(sessions, books) == 2
    assert metrics.oldest_due_mail_age(sessions, clock()) == 0.0

    AccountingService(sessions, books).close_due_days()
    assert metrics.ended_days_not_closed(sessions, books) == 0
    clock.advance(minutes=20)
    assert metrics.oldest_due_mail_age(sessions, clock()) == pytest.approx(1200, abs=1)


def test_a_page_of_balances_reads_only_its_own_accounts_and_their_names_from_an_index(
        sessions, engine):
    """The balances page reads the replica's names of its own accounts only: a page deep
    in a million accounts reads as few account rows as the first page. It reads them from
    the covering index, where they are neighbours, not from the table's pages, where they
    are scattered (the accounts arrive in any order)."""
    with engine.begin() as connection:
        # committed durably: VACUUM marks a page all-visible only once its rows' commits
        # are on disk, and the test server commits asynchronously
        connection.execute(text("SET LOCAL synchronous_commit = on"))
        connection.execute(text(
            "INSERT INTO accounts (public_id, email, full_name, role, active)"
            " SELECT gen_random_uuid(), 'p' || n || '@example.com', 'Popug ' || n, 'worker',"
            " true FROM generate_series(1, 20000) AS n"))
        connection.execute(text("INSERT INTO balances (account_id) SELECT public_id FROM accounts"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE accounts"))
        connection.execute(text("VACUUM ANALYZE balances"))
    page, cursor = AccountingQueries(sessions).list_balances(limit=50)
    for _ in range(3):
        page, cursor = AccountingQueries(sessions).list_balances(cursor, limit=50)
    assert len(page) == 50 and all(b.full_name for b in page)

    seen: list[tuple[str, dict]] = []

    def record(conn, cursor, statement, parameters, *args) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        AccountingQueries(sessions).list_balances(cursor, limit=50)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    plans = []
    with engine.connect() as connection:
        for statement, parameters in seen:
            [[plan]] = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters).all()
            plans.append(plan[0]["Plan"])
    assert sum(rows_read_from(plan, "accounts") for plan in plans) <= 51
    [accounts] = [node for plan in plans for node in nodes_of(plan, "accounts")]
    assert accounts["Node Type"] == "Index Only Scan" and accounts["Heap Fetches"] == 0
    assert accounts["Index Name"] == "accounts_names"


def test_a_page_of_balances_names_whom_the_replica_knows_and_leaves_the_others_blank(
        sessions, engine):
    known, unknown = new_id(), new_id()
    add_account(sessions, known)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO balances (account_id) VALUES (:a), (:b)"
                                " ON CONFLICT DO NOTHING"), {"a": str(known), "b": str(unknown)})
    page, _ = AccountingQueries(sessions).list_balances(limit=50)
    by_id = {balance.account_id: balance for balance in page}
    assert by_id[known].full_name == f"Popug {known.hex[:4]}" and by_id[known].active
    assert by_id[unknown].full_name is None and not by_id[unknown].active
    queries = AccountingQueries(sessions)
    assert queries.find_account(known) == by_id[known]
    assert queries.find_account(unknown) == by_id[unknown]


def nodes_of(node: dict, table: str) -> list[dict]:
    own = [node] if node.get("Relation Name") == table else []
    return own + [found for child in node.get("Plans", []) for found in nodes_of(child, table)]


def rows_read_from(node: dict, table: str) -> int:
    return sum(scan.get("Actual Rows", 0) * scan.get("Actual Loops", 1)
               for scan in nodes_of(node, table))
