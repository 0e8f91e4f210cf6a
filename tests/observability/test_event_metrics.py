"""Metrics of the event pipeline: published, consumed, failed, dead-lettered, backlog, lag."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Producer
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from analytics.stream import live_group_id
from messaging.consumer import PermanentError, TransientError
from messaging.dlq import read_all, read_dead_letters
from messaging.kafka import producer_config
from messaging.outbox import Outbox
from messaging.relay import Relay
from messaging.tables import inbox, outbox
from platform_kit.db import make_session_factory
from tests.analytics.conftest import RunningProjector, Topics, new_id, transaction, wait_handled
from tests.helpers import engine_of, migrated_database
from tests.messaging.conftest import account_event, handlers_recording, make_runtime, poll_until
from tests.observability.conftest import reading

TYPE = {"type": "account.updated", "version": "1"}


def write_events(engine, settings, events) -> None:
    with make_session_factory(engine)() as session, session.begin():
        Outbox(settings).publish_many(session, events)


def drain(relay: Relay) -> int:
    total = 0
    while published := relay.run_once():
        total += published
    return total


def unsent(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).where(outbox.c.sent_at.is_(None)))


def handled(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(inbox))


def test_the_relay_counts_what_it_publishes_and_measures_the_outbox_backlog(
    outbox_engine, settings
):
    relay = Relay(outbox_engine, settings)
    name = outbox_engine.url.database
    topic = settings.topic("accounts-stream")
    write_events(outbox_engine, settings, [account_event(str(uuid.uuid4())) for _ in range(3)])

    backlog = relay.record_backlog()
    assert reading("ates_outbox_unsent_events", outbox=name) == 3
    assert reading("ates_outbox_oldest_unsent_age_seconds", outbox=name) == (
        backlog.oldest_age_seconds)
    assert backlog.oldest_age_seconds > 0

    before = reading("ates_events_published_total", topic=topic, **TYPE)
    assert drain(relay) == 3
    assert reading("ates_events_published_total", topic=topic, **TYPE) - before == 3
    relay.record_backlog()
    assert reading("ates_outbox_unsent_events", outbox=name) == 0
    assert reading("ates_outbox_oldest_unsent_age_seconds", outbox=name) == 0


def test_the_relay_loop_keeps_the_backlog_gauges(outbox_engine, settings):
    name = outbox_engine.url.database
    assert REGISTRY.get_sample_value("ates_outbox_unsent_events", {"outbox": name}) is None
    write_events(outbox_engine, settings, [account_event(str(uuid.uuid4()))])
    stop = threading.Event()
    loop = threading.Thread(target=Relay(outbox_engine, settings, idle_sleep=0.05).run,
                            args=(stop,))
    loop.start()
    try:
        poll_until_true(lambda: unsent(outbox_engine) == 0 and REGISTRY.get_sample_value(
            "ates_outbox_unsent_events", {"outbox": name}) is not None)
    finally:
        stop.set()
        loop.join(10)
    assert reading("ates_outbox_unsent_events", outbox=name) == 0


def poll_until_true(condition, attempts: int = 1200) -> None:
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_the_consumer_counts_consumed_failed_and_dead_lettered_events_and_its_lag(
    outbox_engine, settings
):
    flaky, refused = account_event(str(uuid.uuid4())), account_event(str(uuid.uuid4()))
    good = [account_event(str(uuid.uuid4())) for _ in range(2)]
    calls = {flaky.id: 0}

    def handle(session, event):
        if event.id == refused.id:
            raise PermanentError("never")
        if event.id == flaky.id:
            calls[flaky.id] += 1
            if calls[flaky.id] <= 3:  # the batch attempt, then two attempts alone
                raise TransientError("database briefly unavailable")

    consumer = f"observed-{uuid.uuid4().hex[:8]}"
    labels = {"consumer": consumer, **TYPE}
    relay = Relay(outbox_engine, settings)
    runtime = make_runtime(outbox_engine, settings, handlers_recording(handler=handle),
                           name=consumer)
    try:
        runtime.wait_for_assignment()
        write_events(outbox_engine, settings, [flaky])
        drain(relay)
        poll_until(runtime, lambda: handled(outbox_engine) == 1)
        assert reading("ates_events_failed_total", **labels) == 2

        # One at a time: the embedded broker reports a partition's end at the start of
        # its last record batch, so a batch of several would hide some of the lag.
        for event in (refused, *good):
            write_events(outbox_engine, settings, [event])
            drain(relay)
        produce_raw(settings, b"not an event")
        lags = runtime.record_lag()
        assert sum(lags.values()) == 4
        assert set(lags) == {(settings.topic("accounts-stream"), p) for p in range(3)}
        assert sum(reading("ates_consumer_lag", group=runtime.group_id, topic=topic,
                           partition=str(partition))
                   for topic, partition in lags) == 4

        dlq = settings.dlq_topic("accounts-stream")
        poll_until(runtime, lambda: handled(outbox_engine) == 3
                   and len(read_dead_letters(settings, dlq)) == 2)
        assert sum(runtime.record_lag().values()) == 0
    finally:
        runtime.close()

    assert reading("ates_events_consumed_total", **labels) == 4
    assert reading("ates_events_failed_total", **labels) == 3
    assert reading("ates_events_dead_lettered_total", **labels) == 1
    invalid = {"consumer": consumer, "type": "invalid", "version": ""}
    assert reading("ates_events_consumed_total", **invalid) == 1
    assert reading("ates_events_dead_lettered_total", **invalid) == 1
    assert REGISTRY.get_sample_value(
        "ates_consumer_lag", {"group": runtime.group_id, "partition": "0",
                              "topic": settings.topic("accounts-stream")}) is None, (
        "a closed consumer holds no lag")


def produce_raw(settings, value: bytes) -> None:
    producer = Producer(producer_config(settings))
    producer.produce(settings.topic("accounts-stream"), key=b"raw", value=value)
    assert producer.flush(10) == 0


def test_the_analytics_stream_reports_its_lag(settings, postgres_server):
    events = [transaction(new_id(), "reward", 2500, 2500) for _ in range(4)]
    group = live_group_id(settings)
    topic = settings.topic("accounting-lifecycle")

    def lag_samples() -> dict[int, float]:
        found = {p: REGISTRY.get_sample_value(
            "ates_consumer_lag", {"group": group, "topic": topic, "partition": str(p)})
            for p in range(settings.topic_partitions)}
        return {p: value for p, value in found.items() if value is not None}

    with (
        migrated_database(postgres_server.url, "analytics") as url,
        engine_of(url) as engine,
    ):
        platform = settings.with_(service_database_urls={"analytics": url})
        Topics(platform).publish(*events)
        with RunningProjector(engine, platform):
            wait_handled(engine, events)
            partitions = {message.partition() for message in read_all(
                settings.kafka_bootstrap, topic)}
            # each partition's lag is recorded after its batches: it reaches 0 once all are in
            poll_until_true(lambda: lag_samples() == dict.fromkeys(partitions, 0))
        assert lag_samples() == {}, "a stopped stream holds no lag"
