"""Analytics, fed only by accounting's events, reports what accounting itself reports."""

from __future__ import annotations

import random
import uuid

from accounting.closing import RENDERERS
from accounting.ledger_sql import Books, TaskCharge
from accounting.queries import AccountingQueries
from accounting.service import LedgerCommands
from accounting.settings import AccountingSettings
from analytics import queries as analytics
from messaging.relay import Relay
from platform_kit.db import make_session_factory
from tests.analytics.conftest import RunningProjector, poll_until
from tests.helpers import engine_of, migrated_database


def book(sessions, apply, task_id, account_id) -> None:
    charge = TaskCharge(source_event_id=uuid.uuid4(), task_id=task_id, account_id=account_id)
    with sessions() as session, session.begin():
        apply(session, [charge])


def generate_day_of_activity(sessions, books, rng: random.Random) -> list[uuid.UUID]:
    """Tasks assigned, reshuffled and completed among a few popugs, as accounting sees it."""
    popugs = [uuid.uuid4() for _ in range(6)]
    for popug in popugs:
        with sessions() as session, session.begin():
            LedgerCommands.apply_account_state(
                session, popug, email=f"{popug.hex[:8]}@popug.inc", full_name="Popug",
                role="worker", active=True, version=1,
            )
    ledger = LedgerCommands(books)
    tasks = {uuid.uuid4(): rng.choice(popugs) for _ in range(30)}
    for task_id, assignee in tasks.items():
        book(sessions, ledger.apply_task_assigned, task_id, assignee)
    for task_id in rng.sample(sorted(tasks), 12):  # a reshuffle of some open tasks
        tasks[task_id] = rng.choice(popugs)
        book(sessions, ledger.apply_task_assigned, task_id, tasks[task_id])
    for task_id in rng.sample(sorted(tasks), 10):
        book(sessions, ledger.apply_task_completed, task_id, tasks[task_id])
    return popugs


def test_management_earnings_and_negative_balances_equal_accountings_own_report(
    settings, postgres_server
):
    with (
        migrated_database(postgres_server.url, "accounting") as accounting_url,
        migrated_database(postgres_server.url, "analytics") as analytics_url,
        engine_of(accounting_url) as accounting_engine,
        engine_of(analytics_url) as analytics_engine,
    ):
        sessions = make_session_factory(accounting_engine)
        books = Books.create(AccountingSettings(settings), rng=random.Random(5))
        popugs = generate_day_of_activity(sessions, books, random.Random(11))
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
                       timeout=60, what="analytics to catch up with accounting")
            with projected() as session:
                below_zero = analytics.negative_balances_now(session)
        negative = {b.account_id: b.balance for b in below_zero}

        earned = projected_earnings()
        assert report.fees_charged > 0 and report.rewards_paid > 0
        assert (earned.fees, earned.rewards, earned.management_earned) == (
            report.fees_charged, report.rewards_paid, report.earned)
        assert negative == {p: balances[p] for p in popugs if balances[p] < 0}
        assert negative, "the generated day leaves some popugs below zero"
