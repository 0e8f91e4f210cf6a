"""Corrections reach analytics: reversals and adjustments booked by accounting move the
projected balances and management's earnings exactly as accounting counts them."""

from __future__ import annotations

import random

from sqlalchemy import text

from accounting.closing import RENDERERS
from accounting.ledger_sql import Books
from accounting.queries import AccountingQueries
from accounting.service import AccountingService
from accounting.settings import AccountingSettings
from analytics import queries as analytics
from messaging.relay import Relay
from platform_kit.db import make_session_factory
from tests.analytics.conftest import RunningProjector, poll_until
from tests.analytics.test_agrees_with_accounting import generate_day_of_activity
from tests.helpers import engine_of, migrated_database


def _transactions(engine, transaction_type: str) -> list:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT public_id, account_id FROM transactions WHERE type = :t ORDER BY id"
        ), {"t": transaction_type}).all()


def test_reversals_and_adjustments_count_alike_in_analytics(settings, postgres_server):
    with (
        migrated_database(postgres_server.url, "accounting") as accounting_url,
        migrated_database(postgres_server.url, "analytics") as analytics_url,
        engine_of(accounting_url) as accounting_engine,
        engine_of(analytics_url) as analytics_engine,
    ):
        sessions = make_session_factory(accounting_engine)
        books = Books.create(AccountingSettings(settings), rng=random.Random(5))
        popugs = generate_day_of_activity(sessions, books, random.Random(11))
        fees, rewards = _transactions(accounting_engine, "fee"), _transactions(
            accounting_engine, "reward")
        for fee, _ in fees[:3]:
            AccountingService(sessions, books).reverse(fee, "Assigned by mistake", "accountant")
        AccountingService(sessions, books).reverse(rewards[0][0], "Not done", "accountant")
        AccountingService(sessions, books).adjust(popugs[0], 1234, "Bonus", "accountant")
        AccountingService(sessions, books).adjust(popugs[1], -4321, "Broken cage", "accountant")
        reads = AccountingQueries(sessions, books.clock, books.settings.timezone)
        day = reads.open_day()
        report = reads.management_earnings(day)
        listed, _ = reads.list_balances(limit=50)
        balances = {b.account_id: b.balance for b in listed}
        relay = Relay(accounting_engine, settings, renderers=RENDERERS)
        while relay.run_once():
            pass

        projected = make_session_factory(analytics_engine)

        def projected_earnings():
            with projected() as session:
                return analytics.earnings_on(session, day)

        with RunningProjector(analytics_engine, settings):
            poll_until(lambda: projected_earnings().fees == report.fees_charged
                       and projected_earnings().rewards == report.rewards_paid,
                       timeout=60, what="analytics to count the corrections")
            with projected() as session:
                below_zero = analytics.negative_balances_now(session)

        assert negative_of(below_zero) == {p: balances[p] for p in popugs if balances[p] < 0}
        earned = projected_earnings()
        assert earned.management_earned == report.earned


def negative_of(balances) -> dict:
    return {b.account_id: b.balance for b in balances}
