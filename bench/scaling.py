"""Horizontal scaling of a consumer: one process against two in the same group.

    python -m bench.scaling [--events 20000] [--partitions 6]

``--events`` ``account.updated`` events are produced beforehand onto a topic of
``--partitions`` partitions. Then, each time with a fresh database and a fresh consumer
group, one and then two ``ConsumerRuntime`` processes (as ``ates serve <svc> --role workers
--only consumer`` runs them) apply them: validation, inbox, and a per-event handler doing
one ``INSERT`` each, as most of the services' handlers do. The processes first join the
group (the clock waits until every one holds partitions), then the clock runs until the
last effect is in the database. The raw baseline is the one-process rate; the two-process
figure's ratio to it is the speed-up.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid

from confluent_kafka import Producer, TopicPartition
from sqlalchemy import func, select

from bench.common import Result, command_line, kafka_broker, postgres_server
from bench.messaging import effects, make_events, metadata
from messaging.consumer import ConsumerRuntime, HandlerRegistry
from messaging.kafka import ensure_topics, producer_config
from messaging.tables import create_messaging_tables
from platform_kit.db import ensure_database, make_engine
from platform_kit.settings import Settings, with_database

JOIN_TIMEOUT_SECONDS = 60.0


def run(events: int = 20_000, partitions: int = 6) -> list[Result]:
    with postgres_server() as pg, kafka_broker() as broker:
        settings = Settings(database_url=pg.url, kafka_bootstrap=broker.bootstrap,
                            topic_prefix="scaling.", topic_partitions=partitions,
                            kafka_session_timeout_ms=2000)
        ensure_topics(settings)
        _preload(settings, events)
        rates = {}
        for processes in (1, 2):
            url = with_database(pg.url, f"bench_scaling_{processes}")
            ensure_database(url)
            rates[processes] = _rate(url, settings, events, processes)
            print(f"{processes} consumer process(es): {rates[processes]:,.0f} events/s",
                  flush=True)
    return [Result("scaling", f"{events:,} events, {partitions} partitions, 2 consumer procs",
                   rates[2], "events/s", "the same with 1 consumer process (events/s)",
                   rates[1])]


def _preload(settings: Settings, count: int) -> None:
    producer = Producer(producer_config(settings))
    topic = settings.topic("accounts-stream")
    for event in make_events(count):
        producer.produce(topic, key=event.data["account_id"].encode(), value=event.to_json())
        producer.poll(0)
    producer.flush(60)


def _rate(url: str, settings: Settings, events: int, processes: int) -> float:
    engine = make_engine(url)
    create_messaging_tables(engine)
    metadata.create_all(engine)
    context = multiprocessing.get_context("spawn")
    group = f"scaling-{processes}-{uuid.uuid4().hex[:6]}"
    held = [context.Value("i", 0) for _ in range(processes)]
    go, stop = context.Event(), context.Event()
    children = [context.Process(target=_consume, args=(url, settings, group, h, go, stop))
                for h in held]
    for child in children:
        child.start()
    try:
        _wait_for_split(held, settings.topic_partitions)
        started = time.perf_counter()
        go.set()
        while _count(engine) < events:
            if not all(child.is_alive() for child in children):
                raise RuntimeError("a consumer process stopped")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        go.set()
        for child in children:
            child.join(30)
        engine.dispose()
    return events / seconds


def _wait_for_split(held: list, partitions: int) -> None:
    """Until every process holds partitions, all of them are held, for a whole second."""
    deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
    stable_since = None
    while True:
        counts = [h.value for h in held]
        if all(counts) and sum(counts) == partitions:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 1.0:
                return
        else:
            stable_since = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"partitions not split among the consumers: {counts}")
        time.sleep(0.05)


def _consume(url: str, settings: Settings, group: str, held, go, stop) -> None:
    """One consumer process: join the group, then handle events until stopped."""
    engine = make_engine(url)
    handlers = HandlerRegistry()

    @handlers.on("account.updated")
    def apply(session, event) -> None:
        session.execute(effects.insert().values(
            event_id=event.id, key=event.data["account_id"], seq=event.data["version"]))

    runtime = ConsumerRuntime(group, engine, settings, handlers, ["accounts-stream"])
    # Take part in the group's rebalances (nothing is handled) until the clock starts.
    while not go.wait(0.05):
        message = runtime.consumer.poll(0)
        if message is not None and message.error() is None:  # not handled yet: rewind
            runtime.consumer.seek(
                TopicPartition(message.topic(), message.partition(), message.offset()))
        held.value = len(runtime.consumer.assignment())
    runtime.run(stop)
    engine.dispose()


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(effects)).scalar()


def main() -> None:
    command_line(run)


if __name__ == "__main__":
    main()
