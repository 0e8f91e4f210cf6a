"""The dashboard's reads and a batch's writes use indexes: with tens of thousands of
accounts, nets and tasks (enough for PostgreSQL to scan a whole table when it has no
better way), no statement they run scans accounts' nets, balances, names or tasks; the
names of a page are looked up by primary key for its rows only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, text

from analytics import queries
from analytics.domain import Period
from analytics.service import AnalyticsService
from tests.analytics.conftest import DAY, at, completed, priced, transaction
from tests.analytics.test_dashboard import account_state

ACCOUNTS = 20_000
TASKS = 20_000
BIG_TABLES = {"account_day_nets", "account_balances", "tasks", "accounts"}
FIRST = DAY - timedelta(days=39)


@pytest.fixture
def large_projection(engine, sessions) -> Engine:
    with engine.begin() as connection:
        connection.execute(text("""
            INSERT INTO account_day_nets (account_id, day, net)
            SELECT md5('a' || i)::uuid, CAST(:first AS date) + d,
                   (i * 7919 + d * 104729) % 5000 - 2600
            FROM generate_series(1, :accounts) AS i, generate_series(0, 38, 19) AS d
        """), {"first": FIRST, "accounts": ACCOUNTS})
        connection.execute(text("""
            INSERT INTO tasks (task_id, title, version, fee, reward, completed_at,
                               completed_day)
            SELECT md5('t' || i)::uuid, 'Task ' || i, 1, 1500, 1000 + i * 37 % 3000,
                   CAST(:first AS timestamptz) + i * interval '3 minutes',
                   CAST(:first AS date) + (i * 3 / 1440)
            FROM generate_series(1, :tasks) AS i
        """), {"first": FIRST, "tasks": TASKS})
        connection.execute(text("""
            INSERT INTO accounts (public_id, email, full_name, role, active, version,
                                  role_version)
            SELECT md5('a' || i)::uuid, 'popug' || i || '@popug.example', 'Popug ' || i,
                   'worker', true, 1, 1
            FROM generate_series(1, :accounts) AS i
        """), {"accounts": ACCOUNTS})
    AnalyticsService(sessions, ZoneInfo("UTC")).derive_balances()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(
            "ANALYZE account_day_nets, account_balances, negative_count_changes, tasks, accounts"))
    return engine


def statements_run(engine: Engine, action: Callable[[], object]) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if not executemany:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def plan_of(engine: Engine, statement: str, parameters) -> list[dict]:
    with engine.connect() as connection:
        explained = connection.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    return list(plan_nodes(plan))


def scanned_whole(engine: Engine, statement: str, parameters) -> set[str]:
    return {node["Relation Name"] for node in plan_of(engine, statement, parameters)
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES}


def assert_no_whole_table_scan(engine: Engine, action: Callable[[], object]) -> None:
    statements = statements_run(engine, action)
    assert statements
    for statement, parameters in statements:
        assert not scanned_whole(engine, statement, parameters), statement


def test_the_tables_are_large_enough_for_a_whole_table_scan_to_be_chosen(large_projection):
    grouped = "SELECT account_id, sum(net) FROM account_day_nets GROUP BY account_id"
    assert scanned_whole(large_projection, grouped, {}) == {"account_day_nets"}
    by_reward = "SELECT max(fee) FROM tasks WHERE reward > 0"
    assert scanned_whole(large_projection, by_reward, {}) == {"tasks"}
    named = "SELECT count(*) FROM accounts WHERE active"
    assert scanned_whole(large_projection, named, {}) == {"accounts"}


def test_the_summary_its_pages_and_the_history_read_no_whole_table(large_projection, sessions):
    with sessions() as session:
        first = queries.summary(session, DAY)
    assert first.negative.count > 1000 and first.negative.next
    assert all(b.name and b.name.startswith("Popug ") for b in first.negative.accounts)

    def read() -> None:
        with sessions() as session:
            queries.summary(session, DAY)
            queries.negative_balances(session, first.negative.next, 500)
            queries.first_day_with_data(session)
            queries.history(session, DAY - timedelta(days=365), DAY)

    assert_no_whole_table_scan(large_projection, read)


def test_the_names_of_a_page_are_looked_up_by_primary_key_for_its_rows_only(
    large_projection, sessions
):
    def read() -> None:
        with sessions() as session:
            queries.negative_balances(session, limit=50)

    page = next(s for s in statements_run(large_projection, read) if "accounts" in s[0])
    nodes = plan_of(large_projection, *page)
    lookups = [n for n in nodes if n.get("Relation Name") == "accounts"]
    assert [n["Node Type"] for n in lookups] in (["Index Scan"], ["Index Only Scan"])
    assert lookups[0]["Index Name"] == "accounts_pkey"
    assert lookups[0]["Plan Rows"] == 1  # once per row of the page, not a join of all


def test_the_most_expensive_task_of_a_day_week_or_month_reads_no_whole_table(
    large_projection, sessions
):
    day = DAY - timedelta(days=10)
    with sessions() as session:
        assert all(queries.most_expensive_task(session, p, day).task for p in Period)

    def read() -> None:
        with sessions() as session:
            for period in Period:
                queries.most_expensive_task(session, period, day)

    assert_no_whole_table_scan(large_projection, read)


def test_a_batch_of_transactions_and_tasks_reads_no_whole_table(large_projection, project):
    with large_projection.connect() as connection:
        known = [str(a) for a in connection.execute(text(
            "SELECT account_id FROM account_balances ORDER BY account_id LIMIT 5")).scalars()]
    late = FIRST + timedelta(days=3)
    events = [transaction(a, "fee", 1200, 0, day=late, applied_at=at(late)) for a in known]
    events += [priced(a, 2500) for a in known] + [completed(a, at(DAY)) for a in known]
    events += [account_state(a, f"Renamed {n}", version=2, event_type="account.updated")
               for n, a in enumerate(known)]

    assert_no_whole_table_scan(large_projection, lambda: project(*events))
