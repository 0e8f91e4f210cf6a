"""Events/s projected by the analytics stream (faust, validation, inbox, projection
tables), beside the raw rate of consuming the same messages with a plain confluent-kafka
consumer that does nothing with them, and with the same faust stream doing nothing.

Both clocks run from the first message received to the last, so neither counts the time
it takes to join its consumer group.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from confluent_kafka import Consumer, Producer

from analytics.consumers import CONSUMED_TOPICS
from analytics.stream import CatchUp, ProjectionStream, Projector, end_offsets
from bench.common import Result, command_line, kafka_broker, postgres_server, rate
from event_schemas import Event, default_registry
from messaging.db import make_engine
from messaging.kafka import consumer_config, ensure_topics, produce_waiting, producer_config
from messaging.migrations import upgrade
from messaging.settings import Settings, with_database

DAY = date(2026, 11, 22)
POPUGS = 200


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ActivityGenerator:
    """A plausible mix: each task is created, priced, charged, and often completed."""

    def __init__(self, seed: int = 1):
        self.rng = random.Random(seed)
        self.registry = default_registry()
        self.popugs = [str(uuid.uuid4()) for _ in range(POPUGS)]
        self.balances = dict.fromkeys(self.popugs, 0)
        self.clock = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)

    def events(self, count: int) -> list[Event]:
        events: list[Event] = []
        while len(events) < count:
            events += self._task()
        return events[:count]

    def _task(self) -> list[Event]:
        self.clock += timedelta(seconds=self.rng.randint(1, 20))
        task_id, popug = str(uuid.uuid4()), self.rng.choice(self.popugs)
        fee, reward = self.rng.randint(1000, 2000), self.rng.randint(2000, 4000)
        events = [self._created(task_id, popug),
                  self._build("task.priced", {"task_id": task_id, "fee": fee, "reward": reward,
                                              "priced_at": _instant(self.clock)}),
                  self._transaction(popug, "fee", -fee, task_id)]
        if self.rng.random() < 0.6:
            events += [self._build("task.completed", {"task_id": task_id, "assignee_id": popug,
                                                      "completed_at": _instant(self.clock)}),
                       self._transaction(popug, "reward", reward, task_id)]
        return events

    def _created(self, task_id: str, popug: str) -> Event:
        return self._build("task.created", {
            "task_id": task_id, "title": "Bench task", "jira_id": None, "description": None,
            "status": "open", "assignee_id": popug, "created_at": _instant(self.clock),
            "completed_at": None, "version": 1,
        })

    def _transaction(self, popug: str, kind: str, amount: int, task_id: str) -> Event:
        self.balances[popug] += amount
        return self._build("transaction.applied", {
            "transaction_id": str(uuid.uuid4()), "account_id": popug, "type": kind,
            "amount": amount, "balance_after": self.balances[popug], "task_id": task_id,
            "day": self.clock.date().isoformat(), "applied_at": _instant(self.clock),
        })

    def _build(self, event_type: str, data: dict) -> Event:
        return self.registry.build(event_type, data, source="bench")


def publish(settings: Settings, events: list[Event]) -> None:
    registry = default_registry()
    producer = Producer(producer_config(settings))
    for event in events:
        topic = settings.topic(registry.topic_of(event.type))
        produce_waiting(producer, topic, key=registry.key_of(event).encode(),
                        value=event.to_json())
        producer.poll(0)
    assert producer.flush(60) == 0


def raw_consume_rate(settings: Settings, count: int) -> float:
    consumer = Consumer(consumer_config(settings, f"bench-raw-{uuid.uuid4()}"))
    consumer.subscribe([settings.topic(t) for t in CONSUMED_TOPICS])
    received, first = 0, None
    while received < count:
        batch = [m for m in consumer.consume(500, 0.1) if m.error() is None]
        if batch and first is None:
            first = time.perf_counter()
        received += len(batch)
    seconds = time.perf_counter() - first
    consumer.close()
    return rate(count, seconds)


class DiscardingProjector:
    """Takes every batch and does nothing: what faust alone costs."""

    def project(self, messages: list, stop: threading.Event) -> None:
        pass


def stream_rate(settings: Settings, count: int, projector, group_id: str) -> float:
    topics = [settings.topic(t) for t in CONSUMED_TOPICS]
    catch_up = CatchUp(end_offsets(settings, topics), clock=time.perf_counter)
    ProjectionStream(settings, projector, group_id).run(threading.Event(), catch_up)
    assert catch_up.seen == count, f"{catch_up.seen} of {count} read"
    return rate(count, catch_up.last_seen - catch_up.first_seen)


def projection_rate(settings: Settings, count: int) -> float:
    engine = make_engine(settings.database_for("analytics"))
    try:
        return stream_rate(settings, count, Projector.create(engine, settings), "bench-analytics")
    finally:
        engine.dispose()


def run(events: int = 20000) -> list[Result]:
    batch = ActivityGenerator().events(events)
    with postgres_server() as pg, kafka_broker() as broker:
        database_url = with_database(pg.url, "bench_analytics")
        settings = Settings(database_url=pg.url, kafka_bootstrap=broker.bootstrap,
                            topic_prefix="bench.", kafka_session_timeout_ms=2000,
                            service_database_urls={"analytics": database_url})
        ensure_topics(settings)
        upgrade("analytics", database_url)
        publish(settings, batch)
        raw = raw_consume_rate(settings, events)
        faust_only = stream_rate(settings, events, DiscardingProjector(), "bench-faust-only")
        projected = projection_rate(settings, events)
    name = "faust projection into PostgreSQL (events/s)"
    return [
        Result("analytics", name, projected, "events/s", "confluent-kafka consume only", raw),
        Result("analytics", name, projected, "events/s", "faust stream, no processing",
               faust_only),
    ]


def main() -> None:
    command_line(run)


if __name__ == "__main__":
    main()
