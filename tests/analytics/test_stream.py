"""The faust projector on the real broker: hand-built event sequences published to the
real topics, interleaved across topics, duplicated, out of order, or broken."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import pytest

from analytics import service
from analytics.domain import DayEarnings, Period
from analytics.models import Task
from messaging.dlq import read_dead_letters
from tests.analytics.conftest import (
    DAY,
    RunningProjector,
    Topics,
    at,
    build,
    completed,
    day_closed,
    new_id,
    poll_until,
    priced,
    settings_for,
    task_state,
    transaction,
    wait_handled,
)
from tests.messaging.test_dead_letter_hardening import produce_raw


@pytest.fixture(scope="module")
def stream_settings(postgres_server, kafka_broker, analytics_database_url):
    return settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)


@pytest.fixture(scope="module")
def live_projector(analytics_engine, stream_settings):
    with RunningProjector(analytics_engine, stream_settings) as running:
        yield running


@pytest.fixture
def topics(live_projector, engine, stream_settings) -> Topics:
    return Topics(stream_settings)


def test_earnings_and_negative_balances_from_shuffled_and_repeated_transactions(
    topics, engine, sessions
):
    alice, bob = new_id(), new_id()
    events = [
        transaction(alice, "fee", 1500, -1500, applied_at=at(DAY, 9)),
        transaction(bob, "fee", 1200, -1200, applied_at=at(DAY, 9, 5)),
        transaction(alice, "reward", 3000, 1500, applied_at=at(DAY, 10)),
        transaction(bob, "fee", 1800, -3000, applied_at=at(DAY, 11)),
        transaction(alice, "payout", 1500, 0, applied_at=at(DAY, 23, 59)),
    ]
    shuffled = events[::-1] + events[:2]  # newest first, then two of them again
    topics.publish(*shuffled)
    wait_handled(engine, events)

    with sessions() as session:
        result = service.summary(session, DAY)
    assert result.earnings == DayEarnings(fees=4500, rewards=3000)
    assert result.earnings.management_earned == 1500
    assert [(str(b.account_id), b.balance) for b in result.negative_balances] == [(bob, -3000)]


def test_a_task_completed_before_it_is_priced_or_titled_still_counts(topics, engine, sessions):
    fixed, legacy = new_id(), new_id()
    events = [
        completed(fixed, at(DAY, 15)),
        priced(legacy, reward=2500),
        completed(legacy, at(DAY, 14)),
        priced(fixed, reward=3900),
        task_state(legacy, "Feed the parrots", "UBERPOP-7", dataversion=1),
        task_state(fixed, "Fix the button", "UBERPOP-42", version=3, event_type="task.updated"),
        task_state(fixed, "Old title", None, version=2, event_type="task.updated",
                   dataversion=1),
    ]
    topics.publish(*events)
    wait_handled(engine, events)

    with sessions() as session:
        top = service.most_expensive_task(session, Period.DAY, DAY).task
        both = sorted(service.most_expensive_task(session, p, DAY).task.task_id for p in Period)
    assert (str(top.task_id), top.title, top.jira_id, top.reward) == (
        fixed, "Fix the button", "UBERPOP-42", 3900)
    assert {str(t) for t in both} == {fixed}

    later = [completed(new_id(), at(DAY, 16)), task_state(legacy, "Feed the parrots twice",
                                                          "UBERPOP-7", version=2,
                                                          event_type="task.updated")]
    topics.publish(*later)
    wait_handled(engine, later)
    with sessions() as session:
        legacy_row = session.get(Task, legacy)
    assert (legacy_row.title, legacy_row.jira_id, legacy_row.reward) == (
        "Feed the parrots twice", "UBERPOP-7", 2500)


def test_most_expensive_task_respects_iso_week_and_month_boundaries(topics, engine, sessions):
    rewards = {  # completion day -> reward
        date(2026, 12, 27): 4000,  # Sunday: the week before
        date(2026, 12, 28): 2100,  # Monday of the week that straddles the year end
        date(2026, 12, 31): 2200,  # last day of December
        date(2027, 1, 1): 2300,   # first day of January, same ISO week
        date(2027, 1, 3): 2300,   # Sunday, same week, same reward: loses the tie
        date(2027, 1, 4): 3999,   # Monday: the week after
    }
    tasks = {day: new_id() for day in rewards}
    events = [e for day, reward in rewards.items()
              for e in (priced(tasks[day], reward), completed(tasks[day], at(day, 10)))]
    topics.publish(*events)
    wait_handled(engine, events)

    def winner(period: Period, day: date) -> date | None:
        with sessions() as session:
            found = service.most_expensive_task(session, period, day).task
        return found.completed_day if found else None

    assert winner(Period.WEEK, date(2026, 12, 31)) == date(2027, 1, 1)
    assert winner(Period.WEEK, date(2027, 1, 3)) == date(2027, 1, 1)
    assert winner(Period.WEEK, date(2026, 12, 27)) == date(2026, 12, 27)
    assert winner(Period.MONTH, date(2026, 12, 1)) == date(2026, 12, 27)
    assert winner(Period.MONTH, date(2027, 1, 31)) == date(2027, 1, 4)
    assert winner(Period.DAY, date(2026, 12, 31)) == date(2026, 12, 31)
    assert winner(Period.DAY, date(2026, 12, 30)) is None


def test_one_generated_day_earns_fees_minus_rewards(topics, engine, sessions):
    rng = random.Random(11)
    popugs = [new_id() for _ in range(6)]
    balances = dict.fromkeys(popugs, 0)
    events, fees, rewards = [], 0, 0
    for minute in range(48):
        popug = rng.choice(popugs)
        kind = rng.choice(["fee", "fee", "reward"])
        amount = rng.randint(1000, 2000) if kind == "fee" else rng.randint(2000, 4000)
        balances[popug] += -amount if kind == "fee" else amount
        fees, rewards = (fees + amount, rewards) if kind == "fee" else (fees, rewards + amount)
        events.append(transaction(popug, kind, amount, balances[popug],
                                  applied_at=at(DAY, 8 + minute // 60, minute % 60)))
    rng.shuffle(events)
    topics.publish(*events)
    wait_handled(engine, events)

    with sessions() as session:
        result = service.summary(session, DAY)
    assert result.earnings.management_earned == fees - rewards
    assert {str(b.account_id): b.balance for b in result.negative_balances} == {
        p: b for p, b in balances.items() if b < 0}


def test_history_counts_accounts_negative_at_each_day_end(topics, engine, sessions):
    alice, bob = new_id(), new_id()
    first = DAY - timedelta(days=2)
    second, third = first + timedelta(days=1), first + timedelta(days=2)
    events = [
        transaction(alice, "fee", 1500, -1500, day=first),
        transaction(bob, "fee", 1000, -1000, day=first),
        day_closed(first),
        transaction(bob, "reward", 3000, 2000, day=second),  # bob recovers on the 2nd day
        transaction(bob, "payout", 2000, 0, day=second, applied_at=at(second, 23, 59)),
        day_closed(second, accounts_paid=1, total_paid=2000),
        transaction(alice, "reward", 2000, 500, day=third),  # alice on the 3rd
    ]
    topics.publish(*reversed(events))
    wait_handled(engine, events)

    with sessions() as session:
        days = service.history(session, first - timedelta(days=1), third + timedelta(days=1))
    assert [(d.negative_balances, d.earnings.management_earned, d.closed) for d in days] == [
        (0, 0, False), (2, 2500, True), (1, -3000, True), (0, -2000, False), (0, 0, False)]


def test_broken_events_go_to_the_dead_letter_topic_and_the_rest_moves_on(
    topics, engine, sessions, stream_settings
):
    task_id = new_id()
    future = build("task.completed", {"task_id": task_id, "assignee_id": new_id(),
                                      "completed_at": at(DAY)}).envelope()
    future["dataversion"] = 9
    unknown_type = {**future, "type": "task.exploded", "dataversion": 1}
    topics.send("tasks-lifecycle", task_id, b"{not json")
    topics.send("tasks-lifecycle", task_id, json.dumps(future).encode())
    topics.send("tasks-stream", task_id, json.dumps(unknown_type).encode())
    good = [priced(task_id, reward=3100), completed(task_id, at(DAY, 13))]
    topics.publish(*good)
    wait_handled(engine, good)

    dlq = stream_settings.dlq_topic("tasks-lifecycle")
    letters = poll_until(lambda: read_dead_letters(stream_settings, dlq, timeout=5)
                         if len(read_dead_letters(stream_settings, dlq, timeout=5)) >= 2
                         else None, what="two dead letters")
    errors = sorted(letter.error.split(":")[0] for letter in letters)
    assert errors == ["InvalidEnvelope", "UnknownEventVersion"]
    assert {letter.consumer for letter in letters} == {"analytics"}
    other = read_dead_letters(stream_settings, stream_settings.dlq_topic("tasks-stream"))
    assert [letter.error.split(":")[0] for letter in other] == ["UnknownEventType"]
    with sessions() as session:
        assert service.most_expensive_task(session, Period.DAY, DAY).task.reward == 3100


def test_an_oversized_broken_event_is_dead_lettered_truncated_and_the_projector_keeps_going(
    live_projector, topics, engine, stream_settings
):
    task_id = new_id()
    huge = priced(task_id, reward=2500).envelope()
    huge["data"]["note"] = "x" * 1_500_000  # over the producers' limit of 1,000,000 bytes
    raw = json.dumps(huge).encode()
    # as a hostile client would, on a topic whose record limit was raised to take it
    produce_raw(stream_settings, "accounting-lifecycle", task_id, raw)
    good = [priced(task_id, reward=2600)]
    topics.publish(*good)
    wait_handled(engine, good)

    dlq = stream_settings.dlq_topic("accounting-lifecycle")
    [letter] = poll_until(lambda: read_dead_letters(stream_settings, dlq, timeout=5),
                          what="the dead letter")
    assert letter.truncated and letter.original_size == len(raw)
    assert letter.event_id == huge["id"] and letter.consumer == "analytics"
    assert not live_projector.failures and live_projector.thread.is_alive()
