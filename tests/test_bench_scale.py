"""The scale benchmark's seeding, at a tiny size: the ledger invariants hold and the
services' own queries see the seeded data."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
from sqlalchemy import text

from accounting.domain import COMPANY_ACCOUNT_ID
from accounting.queries import AccountingQueries
from accounting.verify import first_chain_break
from analytics import queries as analytics_queries
from auth.config import FAST_PASSWORD_HASHING
from auth.passwords import Passwords
from bench import scale_seed
from bench.scale_seed import Plan, derived_id, dsn
from platform_kit.db import make_session_factory
from platform_kit.migrations import upgrade
from tasks.queries import TaskQueries


def test_seeding_satisfies_the_ledger_and_the_services_see_it(make_database):
    engines = {name: make_database(name) for name in scale_seed.SERVICES}
    urls = {name: engine.url.render_as_string(hide_password=False)
            for name, engine in engines.items()}
    for name, url in urls.items():
        upgrade(f"{name}.migrations", url)
    today = date(2026, 11, 30)
    plan = Plan(users=50, tasks=200, transactions=1_000, today=today,
                now=datetime(2026, 11, 30, 15, tzinfo=UTC))
    hashed = Passwords(FAST_PASSWORD_HASHING).hash(scale_seed.PASSWORD)
    seeded = scale_seed.seed(urls, plan, progress=False, hashed=hashed)

    assert seeded.users == 50 and seeded.tasks == 200
    assert 500 <= seeded.transactions <= 2_000
    with psycopg.connect(dsn(urls["accounting"])) as conn:
        one = conn.execute

        assert one("SELECT count(*) FROM transactions").fetchone()[0] == seeded.transactions
        # The hash chain holds over the seeded transactions, as `ates accounting verify` sees it.
        with engines["accounting"].connect() as connection:
            assert first_chain_break(connection) is None
        # Two entries per transaction, summing to zero; one of them on the company.
        assert one("""SELECT count(*) FROM (SELECT transaction_id FROM entries
                      GROUP BY transaction_id
                      HAVING count(*) <> 2 OR sum(amount) <> 0
                         OR count(*) FILTER (WHERE account_id = %s) <> 1) AS bad""",
                   (COMPANY_ACCOUNT_ID,)).fetchone()[0] == 0
        # Each balance is the sum of its entries and the last balance_after.
        assert one("""SELECT count(*) FROM balances b
                      LEFT JOIN (SELECT account_id, sum(amount) AS total FROM entries
                                 GROUP BY account_id) e USING (account_id)
                      WHERE b.balance <> coalesce(e.total, 0)""").fetchone()[0] == 0
        assert one("""SELECT count(*) FROM balances b JOIN LATERAL (
                          SELECT balance_after FROM transactions t
                          WHERE t.account_id = b.account_id ORDER BY id DESC LIMIT 1) last
                      ON true WHERE last.balance_after <> b.balance""").fetchone()[0] == 0
        assert one("""SELECT count(*) FROM (SELECT account_id, amount,
                          balance_after - lag(balance_after, 1, 0::bigint)
                              OVER (PARTITION BY account_id ORDER BY id) AS moved
                      FROM transactions) t WHERE moved <> amount""").fetchone()[0] == 0
        # Past days are closed and paid what their payouts say; today is open.
        assert one("SELECT count(*), max(day) FROM billing_days").fetchone() == (
            29, date(2026, 11, 29))
        assert one("""SELECT count(*) FROM billing_days d LEFT JOIN (
                          SELECT day, count(*) AS n, sum(amount) AS total FROM payouts
                          GROUP BY day) p USING (day)
                      WHERE d.accounts_paid <> coalesce(p.n, 0)
                         OR d.total_paid <> coalesce(p.total, 0)""").fetchone()[0] == 0
        assert one("""SELECT count(*) FROM payouts p JOIN transactions t
                      ON t.id = p.transaction_id AND t.type = 'payout'
                      AND t.amount = -p.amount""").fetchone()[0] == seeded.payouts
        # Fees and rewards at the prices of their tasks.
        assert one("""SELECT count(*) FROM transactions t JOIN task_prices p
                      ON p.task_id = t.task_id
                      WHERE t.amount <> CASE t.type WHEN 'fee' THEN -p.fee
                                                    ELSE p.reward END""").fetchone()[0] == 0
        balances = dict(one("SELECT account_id, balance FROM balances").fetchall())
        if one("SELECT to_regclass('day_totals') IS NOT NULL").fetchone()[0]:
            assert one("SELECT sum(fees_charged), sum(rewards_paid) FROM day_totals"
                       ).fetchone() == (sum(seeded.fees), sum(seeded.rewards))
    with psycopg.connect(dsn(urls["analytics"])) as conn:
        nets = dict(conn.execute("SELECT account_id, sum(net)::bigint FROM account_day_nets"
                                 " GROUP BY account_id").fetchall())
        assert {a: b for a, b in balances.items() if b or a in nets} == nets
    with psycopg.connect(dsn(urls["tasks"])) as conn:
        assert conn.execute("SELECT count(*) FROM assignee_slots").fetchone()[0] == 49
    with psycopg.connect(dsn(urls["auth"])) as conn:
        stored = conn.execute("SELECT password_hash FROM accounts WHERE email = %s",
                              (scale_seed.email_of(3),)).fetchone()[0]
    assert Passwords(FAST_PASSWORD_HASHING).verify(stored, scale_seed.PASSWORD)

    # The services' own queries.
    tasks_sessions = make_session_factory(engines["tasks"])
    page, cursor = TaskQueries(tasks_sessions).list_tasks(limit=20)
    assert len(page) == 20 and cursor
    assert TaskQueries(tasks_sessions).get_task(derived_id(scale_seed.TASK, 7)).title == (
        "Seeded task 7")
    sessions = make_session_factory(engines["accounting"])
    worker = derived_id(scale_seed.ACCOUNT, 3)
    lines, _ = AccountingQueries(sessions).audit_log(worker)
    assert lines and lines[0].balance_after == balances[worker]
    listed, _ = AccountingQueries(sessions).list_balances(limit=100)
    assert len(listed) == 50
    days = AccountingQueries(sessions).management_days(plan.first_day, today)
    assert sum(d.fees_charged for d in days) == sum(seeded.fees)
    with make_session_factory(engines["analytics"])() as session:
        history = analytics_queries.history(session, plan.first_day, today)
        assert [d.closed for d in history] == [True] * 29 + [False]
        assert sum(d.earnings.fees for d in history) == sum(seeded.fees)
        expected = session.execute(text("""
            WITH timeline AS (
                SELECT sum(net) OVER (PARTITION BY account_id ORDER BY day) AS balance,
                       day AS since,
                       lead(day) OVER (PARTITION BY account_id ORDER BY day) AS until
                FROM account_day_nets)
            SELECT count(t.since) FROM generate_series(CAST(:first AS date),
                                                       CAST(:last AS date), '1 day') AS d
            LEFT JOIN timeline t
                ON t.balance < 0 AND t.since <= d AND (t.until IS NULL OR t.until > d)
            GROUP BY d ORDER BY d"""), {"first": plan.first_day, "last": today}).scalars()
        assert [d.negative_balances for d in history] == list(expected)
        negative = analytics_queries.negative_balances_now(session)
        assert {b.account_id for b in negative} == {a for a, b in balances.items() if b < 0}
