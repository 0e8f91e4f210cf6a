"""Events/s through outbox -> relay -> broker -> consumer with inbox, beside raw baselines,
on each broker the platform runs on: Tansu (the light default) and Apache Kafka (one local
KRaft node, the pinned version of ``deploy/kafka``).

Baselines, measured in the same run on the same servers:
- raw psycopg: ``executemany`` of the same rows into a plain table;
- raw broker: plain confluent-kafka produce + consume of the same messages, on that broker.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, select, text

from bench.common import Result, Stopwatch, command_line, kafka_broker, postgres_server
from deploy.kafka import ApacheKafka, KafkaUnavailable, kafka_version
from event_schemas import default_registry
from messaging.consumer import ConsumerRuntime, HandlerRegistry
from messaging.kafka import consumer_config, ensure_topics, producer_config
from messaging.outbox import Outbox
from messaging.relay import Relay
from messaging.tables import create_messaging_tables
from platform_kit.db import ensure_database, make_engine, make_session_factory
from platform_kit.settings import Settings, with_database

metadata = MetaData()
effects = Table(
    "effects", metadata, Column("event_id", Text), Column("key", Text), Column("seq", Integer)
)
BATCH = 500
APPLY_EFFECTS = text(
    "INSERT INTO effects (event_id, key, seq) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:keys AS text[]), CAST(:seqs AS int[]))"
)


def make_events(n: int) -> list:
    registry = default_registry()
    keys = [str(uuid.uuid4()) for _ in range(100)]
    return [
        registry.build(
            "account.updated",
            {
                "account_id": keys[i % 100],
                "email": f"popug{i % 100}@popug.inc",
                "full_name": "Bench Popug",
                "role": "worker",
                "active": True,
                "version": i + 1,
            },
            source="bench",
        )
        for i in range(n)
    ]


def raw_psycopg_rate(dsn: str, events: list) -> float:
    rows = [(e.id, e.data["account_id"], e.data["version"]) for e in events]
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE raw_rows (event_id text, key text, seq int)")
        conn.commit()
        with Stopwatch() as watch:
            for start in range(0, len(rows), BATCH):
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO raw_rows VALUES (%s, %s, %s)", rows[start : start + BATCH]
                    )
                conn.commit()
    return len(rows) / watch.seconds


def raw_kafka_rate(settings: Settings, events: list) -> float:
    topic = settings.topic("raw-bench")
    ensure_topics(settings, [topic])
    producer = Producer(producer_config(settings))
    consumer = Consumer(
        consumer_config(settings, "raw-bench", **{"enable.auto.offset.store": True})
    )
    consumer.subscribe([topic])
    while not consumer.assignment():  # join the group before the clock starts
        consumer.poll(0.05)
    with Stopwatch() as watch:
        for event in events:
            producer.produce(topic, key=event.data["account_id"].encode(), value=event.to_json())
            producer.poll(0)
        producer.flush(60)
        received = 0
        while received < len(events):
            batch = consumer.consume(BATCH, 0.05)
            received += sum(1 for m in batch if m.error() is None)
            if batch:
                consumer.commit(asynchronous=False)
    consumer.close()
    return len(events) / watch.seconds


def pipeline_rate(engine, settings: Settings, events: list) -> float:
    create_messaging_tables(engine)
    metadata.create_all(engine)
    handlers = HandlerRegistry()

    def apply(session, batch):
        # A set-based effect, as the services' batch handlers write theirs.
        session.execute(
            APPLY_EFFECTS,
            {
                "ids": [e.id for e in batch],
                "keys": [e.data["account_id"] for e in batch],
                "seqs": [e.data["version"] for e in batch],
            },
        )

    handlers.register_batch("account.updated", [1], apply)
    runtime = ConsumerRuntime("bench", engine, settings, handlers, ["accounts-stream"])
    runtime.wait_for_assignment()  # join the group before the clock starts
    # Producer, relay and consumer each run in their own process, as in a deployment.
    stop = multiprocessing.get_context("spawn").Event()
    relay = multiprocessing.get_context("spawn").Process(
        target=_run_relay, args=(engine.url.render_as_string(hide_password=False), settings, stop)
    )
    ready, go = (multiprocessing.get_context("spawn").Event() for _ in range(2))
    writer = multiprocessing.get_context("spawn").Process(
        target=_write_outbox,
        args=(
            engine.url.render_as_string(hide_password=False),
            settings,
            [e.envelope() for e in events],
            ready,
            go,
        ),
    )
    relay.start()
    writer.start()
    ready.wait()
    with Stopwatch() as watch:
        go.set()
        while _count(engine) < len(events):
            runtime.poll_once(0.2)
    stop.set()
    relay.join()
    writer.join()
    runtime.close()
    return len(events) / watch.seconds


def _write_outbox(url: str, settings: Settings, envelopes: list[dict], ready, go) -> None:
    """The producing service: commits events to its outbox in transactions of BATCH."""
    registry = default_registry()
    events = [registry.parse(e) for e in envelopes]
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    outbox = Outbox(settings)
    ready.set()
    go.wait()
    for start in range(0, len(events), BATCH):
        with sessions() as session, session.begin():
            outbox.publish_many(session, events[start : start + BATCH])
    engine.dispose()


def _run_relay(url: str, settings: Settings, stop) -> None:
    engine = make_engine(url)
    Relay(engine, settings).run(stop)
    engine.dispose()


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(effects)).scalar()


@contextmanager
def apache_kafka() -> Iterator[ApacheKafka]:
    """One Apache Kafka node on a throwaway data folder; a clear one-line error when Java,
    Maven or the jars are missing."""
    base = Path(tempfile.mkdtemp(prefix="ates-bench-kafka-"))
    broker = ApacheKafka(base, nodes=1)
    try:
        try:
            broker.start()
        except KafkaUnavailable as exc:
            raise SystemExit(f"bench.messaging on Apache Kafka: {exc}") from None
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)


def brokers() -> dict[str, Callable[[], AbstractContextManager]]:
    """Each broker the pipeline is measured on, by name, with how to start one."""
    return {"Tansu": kafka_broker, f"Apache Kafka {kafka_version()}": apache_kafka}


def broker_results(pg, bootstrap: str, broker: str, events: list, raw_db: float
                   ) -> list[Result]:
    """The pipeline on one broker, beside raw psycopg and raw produce+consume on it."""
    settings = Settings(
        database_url=pg.url,
        kafka_bootstrap=bootstrap,
        topic_prefix="bench.",
        kafka_session_timeout_ms=2000,
    )
    ensure_topics(settings)
    # Each broker's pipeline writes into a database of its own.
    url = with_database(pg.url, "bench_pipeline_" + "".join(c for c in broker if c.isalnum()))
    ensure_database(url)
    engine = make_engine(url)
    raw_broker = raw_kafka_rate(settings, make_events(len(events)))
    pipeline = pipeline_rate(engine, settings, events)
    engine.dispose()
    name = f"pipeline on {broker} (events/s)"
    return [
        Result("messaging", name, pipeline, "events/s", "psycopg executemany (rows/s)", raw_db),
        Result("messaging", name, pipeline, "events/s", f"raw produce+consume, {broker}",
               raw_broker),
    ]


def run(events: int = 20000) -> list[Result]:
    batch = make_events(events)
    results = []
    with postgres_server() as pg:
        url = with_database(pg.url, "bench_messaging")
        ensure_database(url)
        raw_db = raw_psycopg_rate(
            f"postgresql://postgres@{pg.host}:{pg.port}/bench_messaging", batch
        )
        for broker, start in brokers().items():
            with start() as server:
                results += broker_results(pg, server.bootstrap, broker, batch, raw_db)
    return results


def main() -> None:
    command_line(run)


if __name__ == "__main__":
    main()
