"""The faust projector on the real broker: hand-built event sequences published to the
real topics, interleaved across topics, duplicated, out of order, or broken."""

from __future__ import annotations

import json
import random
import threading
from datetime import date, timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition

from analytics import queries
from analytics.domain import DayEarnings, Period
from analytics.models import Task
from analytics.stream import ProjectionStream, Projector
from messaging.dlq import read_dead_letters
from messaging.kafka import consumer_config
from tests.analytics.conftest import (
    DAY,
    RunningProjector,
    Topics,
    at,
    build,
    completed,
    day_closed,
    handled_ids,
    key_of,
    new_id,
    poll_until,
    priced,
    settings_for,
    task_state,
    topic_of,
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
        result = queries.summary(session, DAY)
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
        top = queries.most_expensive_task(session, Period.DAY, DAY).task
        both = sorted(queries.most_expensive_task(session, p, DAY).task.task_id for p in Period)
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
            found = queries.most_expensive_task(session, period, day).task
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
        result = queries.summary(session, DAY)
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
        days = queries.history(session, first - timedelta(days=1), third + timedelta(days=1))
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
        assert queries.most_expensive_task(session, Period.DAY, DAY).task.reward == 3100


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


class LosesTheDatabaseOnce(Projector):
    """Fails the first batch holding the given event, as a database that went away would."""

    def __init__(self, *args, failing_event_id: str, **options):
        super().__init__(*args, **options)
        self.failing_event_id = failing_event_id.encode()
        self.failed = False

    def project(self, messages, stop) -> None:
        if not self.failed and any(self.failing_event_id in m.value() for m in messages):
            self.failed = True
            raise ConnectionError("the database went away")
        super().project(messages, stop)


def committed_offsets(settings, group_id: str, partitions) -> dict[tuple[str, int], int]:
    consumer = Consumer(consumer_config(settings, group_id))
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


def publish_noting_offsets(topics: Topics, events) -> list[tuple[str, int, int]]:
    """Publishes ``events``; returns the topic, partition and offset each was stored at."""
    stored = []
    for event in events:
        topics.producer.produce(
            topics.settings.topic(topic_of(event)), key=key_of(event).encode(),
            value=event.to_json(),
            on_delivery=lambda _, message: stored.append(
                (message.topic(), message.partition(), message.offset())),
        )
    topics.flush()
    return stored


class StreamThread:
    def __init__(self, settings, projector: Projector, group_id: str):
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        stream = ProjectionStream(settings, projector, group_id)
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream: ProjectionStream) -> None:
        try:
            stream.run(self.stop)
        except BaseException as exc:
            self.failures.append(exc)

    def stopped(self) -> list[BaseException]:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.failures


def test_a_failed_batch_and_what_follows_it_are_read_again_and_applied_once(
    engine, sessions, analytics_engine, postgres_server, kafka_broker, analytics_database_url
):
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    topics, group_id = Topics(settings), "analytics-redelivery"
    task_id = new_id()
    before = [priced(new_id(), 2000 + n) for n in range(20)]
    failing = priced(task_id, reward=3000)
    after = [priced(task_id, reward=3001 + n) for n in range(5)]  # same partition, later
    usual = Projector.create(analytics_engine, settings)
    projector = LosesTheDatabaseOnce(analytics_engine, usual.handlers, usual.dead_letters,
                                     failing_event_id=failing.id)

    first = StreamThread(settings, projector, group_id)
    topics.publish(*before)
    wait_handled(engine, before)
    stored = publish_noting_offsets(topics, [failing, *after])
    poll_until(lambda: not first.thread.is_alive(), what="the projector to stop on the failure")
    assert [str(f.__cause__) for f in first.stopped()] == ["the database went away"]

    assert not {e.id for e in [failing, *after]} & handled_ids(engine)
    [(topic, partition, failing_offset)] = {stored[0]}
    assert {(t, p) for t, p, _ in stored} == {(topic, partition)}
    committed = committed_offsets(settings, group_id, [(topic, partition)])
    assert committed.get((topic, partition), 0) <= failing_offset

    second = StreamThread(settings, projector, group_id)
    everything = [*before, failing, *after]
    wait_handled(engine, everything)
    last_offset = max(offset for _, _, offset in stored)
    poll_until(lambda: committed_offsets(settings, group_id, [(topic, partition)]) == {
        (topic, partition): last_offset + 1}, what="the applied messages to be committed")
    assert second.stopped() == []
    with sessions() as session:
        assert session.get(Task, task_id).reward == 3000  # the first price, read again
