"""The 0002 migration turns stored end-of-day balances into daily nets and back; 0004
derives the balances now, their count and the negative days from those nets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text

from analytics import queries
from platform_kit.db import make_session_factory
from platform_kit.migrations import alembic_config, upgrade
from tests.analytics.conftest import DAY

ALICE, BOB = uuid.UUID(int=1), uuid.UUID(int=2)
D1, D2, D3, D4 = (DAY + timedelta(days=n) for n in range(4))
BALANCES = {(ALICE, D1): -1500, (ALICE, D3): 500, (ALICE, D4): -200, (BOB, D2): -1000}


def test_balances_become_nets_whose_running_sums_are_the_balances_and_back(make_database):
    engine = make_database("analytics_migrations")
    url = engine.url.render_as_string(hide_password=False)
    upgrade("analytics.migrations", url, "0001")
    with engine.begin() as connection:
        for (account, day), balance in BALANCES.items():
            connection.execute(
                text("INSERT INTO account_day_balances VALUES (:a, :d, :b, :at, :id)"),
                {"a": account, "d": day, "b": balance, "id": uuid.uuid4(),
                 "at": datetime(day.year, day.month, day.day, 12, tzinfo=UTC)},
            )

    upgrade("analytics.migrations", url)
    with engine.connect() as connection:
        nets = {(r.account_id, r.day): r.net
                for r in connection.execute(text("SELECT * FROM account_day_nets"))}
    assert nets == {(ALICE, D1): -1500, (ALICE, D3): 2000, (ALICE, D4): -700,
                    (BOB, D2): -1000}
    with make_session_factory(engine)() as session:
        negative = queries.negative_balances_now(session)
        days = queries.history(session, D1, D4)
        count = queries.negative_count(session)
    assert [(b.account_id, b.balance) for b in negative] == [(BOB, -1000), (ALICE, -200)]
    assert [d.negative_balances for d in days] == [1, 2, 1, 2]
    assert count == 2

    command.downgrade(alembic_config("analytics.migrations", url), "0001")
    with engine.connect() as connection:
        rows = list(connection.execute(text("SELECT * FROM account_day_balances")))
    assert {(r.account_id, r.day): r.balance for r in rows} == BALANCES
    assert {(r.applied_at, r.transaction_id) for r in rows if r.day == D3} == {
        (datetime(D2.year, D2.month, D2.day, tzinfo=UTC), uuid.UUID(int=0))}
