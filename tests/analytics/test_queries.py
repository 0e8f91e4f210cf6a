"""Projection rules applied directly by the projector (no broker): time zone, redelivery,
balances of transactions booked at the same instant."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics import queries
from analytics.consumers import task_prices
from analytics.domain import DayEarnings, Period
from analytics.models import Task
from analytics.service import AnalyticsService
from analytics.stream import Projector
from messaging.consumer import HandlerRegistry
from tests.analytics.conftest import (
    DAY,
    DirectDelivery,
    at,
    completed,
    handled_ids,
    inbox_size,
    new_id,
    priced,
    received,
    snapshot,
    transaction,
)


def test_completion_day_is_taken_in_the_platform_time_zone(engine, sessions, direct_settings):
    task_id = new_id()
    tokyo = Projector.create(engine, direct_settings.with_(timezone="Asia/Tokyo"))
    DirectDelivery(tokyo)(priced(task_id, 3300), completed(task_id, at(DAY, 23, 30)))

    with sessions() as session:
        on_the_utc_day = queries.most_expensive_task(session, Period.DAY, DAY).task
        next_day = queries.most_expensive_task(session, Period.DAY, DAY + timedelta(days=1)).task
    assert on_the_utc_day is None
    assert next_day.reward == 3300 and next_day.completed_day == DAY + timedelta(days=1)


def test_redelivered_events_change_nothing_in_the_same_batch_or_later(
    engine, sessions, project
):
    popug = new_id()
    fee = transaction(popug, "fee", 1500, -1500)
    reward = transaction(popug, "reward", 2000, 500, applied_at=at(DAY, 13))
    project(fee, fee, reward)
    once = snapshot(sessions)
    project(reward, fee)

    assert snapshot(sessions) == once
    assert inbox_size(engine) == 2
    with sessions() as session:
        assert queries.earnings_on(session, DAY) == DayEarnings(fees=1500, rewards=2000)
        assert queries.negative_balances_now(session) == []


def test_a_later_day_decides_the_balance_even_if_applied_earlier_in_the_batch(
    sessions, project
):
    popug = new_id()
    next_day = DAY + timedelta(days=1)
    project(
        transaction(popug, "fee", 4000, -2500, day=next_day, applied_at=at(next_day, 0, 1)),
        transaction(popug, "reward", 3000, 1500, applied_at=at(DAY, 18)),
        transaction(popug, "fee", 1500, -1500, applied_at=at(DAY, 10)),
    )
    with sessions() as session:
        negative = queries.negative_balances_now(session)
        days = queries.history(session, DAY, next_day)
    assert [b.balance for b in negative] == [-2500]
    assert [d.negative_balances for d in days] == [0, 1]


class CollectedLetters:
    """Stands in for the dead-letter publisher."""

    def __init__(self) -> None:
        self.errors: list[tuple[bytes, str]] = []

    def store(self, failed, wait) -> None:
        self.errors.extend((message.value(), error) for message, error in failed)


def test_an_event_that_keeps_failing_is_dead_lettered_and_a_transient_failure_retried(
    engine, sessions
):
    calls = {"transient": 0}
    prices = AnalyticsService(sessions, ZoneInfo("UTC"))

    def flaky_prices(session, events):
        if any(e.data["reward"] == 2222 for e in events):
            raise ValueError("this price cannot be projected")
        if any(e.data["reward"] == 3333 for e in events) and calls["transient"] < 2:
            calls["transient"] += 1
            raise ConnectionError("database went away")
        prices.apply_task_prices(session, [task_prices(e.data) for e in events])

    handlers = HandlerRegistry()
    handlers.register_batch("task.priced", [1], flaky_prices)
    letters = CollectedLetters()
    projector = Projector(engine, handlers, letters, max_attempts=2, backoff_base=0.001)
    good, bad, flaky = priced(new_id(), 2500), priced(new_id(), 2222), priced(new_id(), 3333)
    ignored = completed(new_id(), at(DAY))  # a type this projector does not handle

    projector.project(received([good, bad, flaky, ignored]), threading.Event())

    assert [(value, error.split(":")[0]) for value, error in letters.errors] == [
        (bad.to_json(), "ValueError")]
    assert handled_ids(engine) == {good.id, flaky.id}
    with sessions() as session:
        assert {t.reward for t in session.query(Task)} == {2500, 3333}



@pytest.mark.parametrize("delivery", ["one batch", "reversed, one batch each"])
def test_balances_of_transactions_booked_at_one_instant_are_the_sums_of_their_amounts(
    sessions, project, delivery
):
    # As accounting books them in one statement: one applied_at per day, and ids that
    # sort opposite to the order the transactions were booked in.
    alice, bob = new_id(), new_id()
    next_day = DAY + timedelta(days=1)
    ids = iter(str(uuid.UUID(int=n)) for n in range(99, 0, -1))

    def booked(popug, kind, amount, balance_after, day=DAY):
        return transaction(popug, kind, amount, balance_after, day=day,
                           applied_at=at(day, 12), transaction_id=next(ids))

    events = [
        booked(alice, "fee", 1500, -1500),
        booked(alice, "reward", 3000, 1500),
        booked(alice, "fee", 2000, -500),  # alice ends the day below zero...
        booked(bob, "fee", 1000, -1000),
        booked(bob, "reward", 2500, 1500),  # ...bob above it
        booked(bob, "fee", 1800, -300, day=next_day),
        booked(bob, "reward", 1000, 700, day=next_day),  # and above it the next day too
    ]
    if delivery == "one batch":
        project(*events)
    else:
        for event in reversed(events):
            project(event)

    with sessions() as session:
        negative = queries.negative_balances_now(session)
        days = queries.history(session, DAY - timedelta(days=1), next_day + timedelta(days=1))
    assert [(str(b.account_id), b.balance) for b in negative] == [(alice, -500)]
    assert [d.negative_balances for d in days] == [0, 1, 1, 1]
    nets = {(str(a), day): net for a, day, net in snapshot(sessions)["account_day_nets"]}
    assert nets == {(alice, DAY): -500, (bob, DAY): 1500, (bob, next_day): -800}
