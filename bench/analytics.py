"""Events/s projected by the analytics stream (faust, validation, inbox, projection
tables), beside the raw rate of consuming the same messages with a plain confluent-kafka
consumer that does nothing with them, with the same faust stream doing nothing, and
against the aim of 10,000 events/s.

Both clocks run from the first message received to the last, so neither counts the time
it takes to join its consumer group.

Then the latency at a steady load: a producer publishes ``task.completed`` events at a
fixed ``rate`` for ``seconds`` while the projector runs, and the time from handing each to
the producer (already connected: it published the warm-up event) until the analytics
database shows it handled (its inbox row, committed in the same transaction as its
effects) gives the p50 and p99, against the aim of 300 ms for the p99. The machine's load
average is printed beside the figures.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from confluent_kafka import Consumer, Producer
from sqlalchemy import Engine, text

from analytics.consumers import CONSUMED_TOPICS, CONSUMER_NAME
from analytics.stream import CatchUp, ProjectionStream, Projector, end_offsets
from bench.common import Result, command_line, kafka_broker, postgres_server, rate
from event_schemas import Event, default_registry
from messaging.kafka import consumer_config, ensure_topics, produce_waiting, producer_config
from platform_kit.db import make_engine
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings, with_database

DAY = date(2026, 11, 22)
POPUGS = 200
RATE_AIM = 10_000  # events/s
P99_AIM_MS = 300
POLL_SECONDS = 0.005


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


def projection_rate(settings: Settings, engine: Engine, count: int) -> float:
    return stream_rate(settings, count, Projector.create(engine, settings), "bench-analytics")


class Visibility:
    """Polls the inbox for the events sent and not yet seen; notes when each shows up."""

    SEEN = text(
        "SELECT CAST(event_id AS text) FROM inbox WHERE consumer = :consumer "
        "AND event_id = ANY(CAST(:ids AS uuid[]))"
    )

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.pending: set[str] = set()
        self.lock = threading.Lock()

    def note_sent(self, event_id: str) -> None:
        with self.lock:
            self.sent[event_id] = time.perf_counter()
            self.pending.add(event_id)

    def poll_until(self, stop: threading.Event) -> None:
        # It shares the projector's process: it only asks for the ids still pending, so
        # its own work stays small beside what it measures.
        with self.engine.connect() as connection:
            while not stop.is_set():
                with self.lock:
                    pending = list(self.pending)
                if pending:
                    rows = connection.execute(self.SEEN, {
                        "consumer": CONSUMER_NAME, "ids": "{" + ",".join(pending) + "}"})
                    now = time.perf_counter()
                    seen = list(rows.scalars())
                    with self.lock:
                        self.seen.update((event_id, now) for event_id in seen)
                        self.pending.difference_update(seen)
                    connection.commit()  # a fresh snapshot for the next poll
                time.sleep(POLL_SECONDS)

    def latencies_ms(self) -> list[float]:
        return [1000 * (self.seen[i] - sent) for i, sent in self.sent.items() if i in self.seen]


def completions(count: int) -> list[Event]:
    registry, moment = default_registry(), _instant(datetime.combine(DAY, datetime.min.time()))
    return [registry.build("task.completed", {
        "task_id": str(uuid.uuid4()), "assignee_id": str(uuid.uuid4()),
        "completed_at": moment}, source="bench") for _ in range(count)]


def publish_steadily(settings: Settings, producer: Producer, events: list[Event],
                     rate_per_second: int, visibility: Visibility) -> None:
    registry = default_registry()
    started = time.perf_counter()
    for n, event in enumerate(events):
        time.sleep(max(0.0, started + n / rate_per_second - time.perf_counter()))
        produce_waiting(producer, settings.topic(registry.topic_of(event.type)),
                        key=registry.key_of(event).encode(), value=event.to_json())
        visibility.note_sent(event.id)
        producer.poll(0)
    assert producer.flush(60) == 0


def steady_latencies(settings: Settings, engine: Engine, rate_per_second: int,
                     seconds: int) -> tuple[list[float], int]:
    """Milliseconds from sending to visible of each ``task.completed`` sent at the rate,
    with the projector already caught up; and how many were sent."""
    stop = threading.Event()
    projector = threading.Thread(target=ProjectionStream(
        settings, Projector.create(engine, settings), "bench-analytics").run, args=(stop,))
    projector.start()
    # One producer for the warm-up and the load: the load's clocks start once it is
    # connected and knows the topic's leader, so they time the projector, not that.
    producer = Producer(producer_config(settings))
    try:
        warm_up = Visibility(engine)
        _wait_visible(settings, producer, warm_up, completions(1))
        visibility = Visibility(engine)
        polling = threading.Event()
        poller = threading.Thread(target=visibility.poll_until, args=(polling,))
        poller.start()
        events = completions(rate_per_second * seconds)
        publish_steadily(settings, producer, events, rate_per_second, visibility)
        deadline = time.monotonic() + 30
        while len(visibility.seen) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
        polling.set()
        poller.join()
        return visibility.latencies_ms(), len(events)
    finally:
        stop.set()
        projector.join()


def _wait_visible(settings: Settings, producer: Producer, visibility: Visibility,
                  events: list[Event]) -> None:
    """Until the projector (just started, joining its group) has handled ``events``."""
    done = threading.Event()
    poller = threading.Thread(target=visibility.poll_until, args=(done,))
    poller.start()
    publish_steadily(settings, producer, events, 1000, visibility)
    deadline = time.monotonic() + 120
    while len(visibility.seen) < len(events):
        if time.monotonic() > deadline:
            done.set()
            raise SystemExit("the projector did not start in 120 s")
        time.sleep(0.05)
    done.set()
    poller.join()


def percentile(values: list[float], share: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


def load_average() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def run(events: int = 20000, rate: int = 300, seconds: int = 20) -> list[Result]:
    print(f"before: {load_average()} on {os.cpu_count()} cores")
    batch = ActivityGenerator().events(events)
    with postgres_server() as pg, kafka_broker() as broker:
        database_url = with_database(pg.url, "bench_analytics")
        settings = Settings(database_url=pg.url, kafka_bootstrap=broker.bootstrap,
                            topic_prefix="bench.", kafka_session_timeout_ms=2000,
                            service_database_urls={"analytics": database_url})
        ensure_topics(settings)
        upgrade("analytics.migrations", database_url)
        publish(settings, batch)
        raw = raw_consume_rate(settings, events)
        faust_only = stream_rate(settings, events, DiscardingProjector(), "bench-faust-only")
        engine = make_engine(settings.database_for("analytics"))
        try:
            projected = projection_rate(settings, engine, events)
            print(f"after the rates: {load_average()}")
            latencies, sent = steady_latencies(settings, engine, rate, seconds)
        finally:
            engine.dispose()
    print(f"after the latency: {load_average()}")
    if len(latencies) < 2:
        raise SystemExit(f"only {len(latencies)} of {sent} task.completed events were seen")
    print(f"latency: {len(latencies):,} of {sent:,} task.completed seen at {rate}/s for "
          f"{seconds} s; p50 {percentile(latencies, 50):.0f} ms, "
          f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms")
    name = "faust projection into PostgreSQL (events/s)"
    latency = "task.completed -> analytics"
    return [
        Result("analytics", name, projected, "events/s", "confluent-kafka consume only", raw),
        Result("analytics", name, projected, "events/s", "faust stream, no processing",
               faust_only),
        Result("analytics", name, projected, "events/s", "aim", RATE_AIM),
        Result("analytics", f"{latency} p50", percentile(latencies, 50), "ms",
               "aim for the p99", P99_AIM_MS),
        Result("analytics", f"{latency} p99", percentile(latencies, 99), "ms",
               "aim for the p99", P99_AIM_MS),
    ]


def main() -> None:
    command_line(run, events="messages published, then projected from the start",
                 rate="task.completed events/s of the steady load",
                 seconds="how long the steady load lasts")


if __name__ == "__main__":
    main()
