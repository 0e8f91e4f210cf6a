"""The relay publishes again what a broker forgot: a memory-only broker restarted under
it, or restarted while the relay was down too, or another cluster on the same address."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import Counter

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from sqlalchemy import func, select

from deploy.embedded import TansuBroker, free_port
from messaging.consumer import ConsumerRuntime
from messaging.kafka import ensure_topics
from messaging.relay import Relay, _Deliveries
from messaging.replay import BrokerState, BrokerWatch
from messaging.tables import outbox as outbox_table
from tests.e2e.platform import wait_until
from tests.messaging.conftest import (
    account_event,
    effect_rows,
    handlers_recording,
    read_topic,
)


class Broker:
    """A Tansu broker of the test's own, restarted empty on the same port."""

    def __init__(self, log_dir, settings):
        self.tansu = TansuBroker(port=free_port(), log_path=log_dir / "tansu.log")
        self.settings = dataclasses.replace(settings, kafka_bootstrap=self.tansu.bootstrap)

    def start(self) -> None:
        self.tansu.start()
        ensure_topics(self.settings)

    def kill_and_start_empty(self) -> None:
        self.tansu.process.kill()
        self.tansu.stop()
        self.start()


@pytest.fixture
def broker(tmp_path, settings):
    broker = Broker(tmp_path, settings)
    broker.start()
    yield broker
    broker.tansu.stop()


def write_events(sessions, outbox, account: str, versions) -> list:
    events = [account_event(account, version=v) for v in versions]
    with sessions() as session, session.begin():
        outbox.publish_many(session, events)
    return events


def drain(relay: Relay) -> None:
    while relay.run_once():
        pass


def publish_everything(relay: Relay, engine) -> None:
    """What the relay's loop does: check the broker when in doubt, then publish."""
    for _ in range(10):
        if relay.heal_when_due():
            drain(relay)
        if not unsent(engine):
            return
    raise AssertionError("the outbox was not drained")


def unsent(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox_table)
                            .where(outbox_table.c.sent_at.is_(None))).scalar()


def ids_on(settings) -> Counter:
    return Counter(account_event_id(m) for m in read_topic(settings, topic_of(settings)))


def account_event_id(message) -> str:
    import json

    return json.loads(message.value())["id"]


def topic_of(settings) -> str:
    return settings.topic("accounts-stream")


def versions_in_order(settings) -> list[int]:
    import json

    return [json.loads(m.value())["data"]["version"]
            for m in read_topic(settings, topic_of(settings))]


def test_a_running_relay_publishes_again_what_a_restarted_broker_lost(
    engine, sessions, outbox, broker
):
    account = str(uuid.uuid4())  # one key: one partition, in order
    before = write_events(sessions, outbox, account, range(1, 41))
    relay = Relay(engine, broker.settings)
    try:
        drain(relay)
        assert relay.heal() == {}, "nothing lost on a broker that kept everything"
        broker.kill_and_start_empty()
        after = write_events(sessions, outbox, account, range(41, 44))
        # the broker was unreachable: nothing is published before it was checked
        assert relay.run_once() == 0 and relay.healer.watch.doubt
        assert relay.heal() == {topic_of(broker.settings): len(before)}
        publish_everything(relay, engine)
    finally:
        relay.close()
    assert ids_on(broker.settings) == Counter(e.id for e in before + after)
    assert versions_in_order(broker.settings) == list(range(1, 44))


def test_a_relay_starting_next_to_an_emptied_broker_publishes_again_what_it_lost(
    engine, sessions, outbox, broker
):
    events = write_events(sessions, outbox, str(uuid.uuid4()), range(1, 21))
    first = Relay(engine, broker.settings)
    drain(first)
    first.close()

    intact = Relay(engine, broker.settings)
    try:
        assert intact.heal(at_start=True) == {}, "the broker holds every event sent"
    finally:
        intact.close()

    broker.kill_and_start_empty()
    restarted = Relay(engine, broker.settings)
    try:
        assert restarted.heal(at_start=True) == {topic_of(broker.settings): len(events)}
        assert unsent(engine) == len(events)
        drain(restarted)
    finally:
        restarted.close()
    assert ids_on(broker.settings) == Counter(e.id for e in events)


def produce_foreign(settings, n: int) -> None:
    """One event written by someone else, acknowledged on its own."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(topic_of(settings), key=b"foreign",
                     value=account_event(str(uuid.uuid4()), version=n + 1).to_json())
    assert producer.flush(10) == 0


def test_another_cluster_on_the_same_address_gets_every_retained_event(
    engine, sessions, outbox, broker, monkeypatch
):
    events = write_events(sessions, outbox, str(uuid.uuid4()), range(1, 6))
    relay = Relay(engine, broker.settings)
    try:
        drain(relay)
        relay.heal()  # observes the cluster
        monkeypatch.setenv("CLUSTER_ID", "another-cluster")
        broker.kill_and_start_empty()
        # the other cluster already holds more than the relay ever published there:
        # only its cluster id tells it apart
        for n in range(2 * len(events)):
            produce_foreign(broker.settings, n)
        assert relay.heal() == {topic_of(broker.settings): len(events)}
        publish_everything(relay, engine)
    finally:
        relay.close()
    assert {e.id for e in events} <= set(ids_on(broker.settings))


def test_a_consumer_applies_every_event_once_across_a_broker_that_forgot_under_load(
    engine, sessions, outbox, broker
):
    """Writers, relay and consumer keep running while the broker is killed and started
    empty: every event ends applied exactly once."""
    stop = threading.Event()
    relay = Relay(engine, broker.settings, broker_check_seconds=0.5)
    runtime = ConsumerRuntime("consumer", engine, broker.settings, handlers_recording(),
                              topics=["accounts-stream"], backoff_base=0.01, backoff_max=0.05)
    workers = [threading.Thread(target=relay.run, args=(stop,)),
               threading.Thread(target=runtime.run, args=(stop,))]
    written: list = []
    accounts = [str(uuid.uuid4()) for _ in range(5)]
    try:
        for worker in workers:
            worker.start()
        for round_ in range(1, 31):
            for account in accounts:
                written += write_events(sessions, outbox, account, [round_])
            if round_ == 15:
                wait_until(lambda: len(effect_rows(engine)) > 0, 30, 0.05,
                           what="the consumer applying the first events")
                broker.kill_and_start_empty()
        wait_until(lambda: len(effect_rows(engine)) >= len(written) and not unsent(engine),
                   60, 0.2, what="every event applied")
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
        relay.close()
    applied = Counter(row.event_id for row in effect_rows(engine))
    assert set(applied) == {e.id for e in written}, "no event lost"
    assert max(applied.values()) == 1, "no event applied twice"


def test_an_acknowledgement_lower_than_one_before_marks_its_topic_lost():
    watch = BrokerWatch()
    for offset in range(10):
        watch.acknowledged("topic", 0, offset)
    assert watch.lost_topics(BrokerState("cluster", {"topic": {0: 10}})) == {}
    watch.acknowledged("topic", 0, 10)
    assert not watch.doubt
    watch.acknowledged("topic", 0, 3)  # the broker counts from the start again
    assert watch.doubt
    assert watch.lost_topics(BrokerState("cluster", {"topic": {0: 11}})) == {
        "topic": "offsets-lower"}
    assert not watch.doubt
    assert watch.lost_topics(BrokerState("cluster", {"topic": {0: 12}})) == {}


def test_an_acknowledgement_without_an_offset_still_counts_as_delivered():
    """The client gives no offset when the broker did not report one: the event is
    delivered all the same, there is only nothing to observe of the broker's offsets."""
    watch = BrokerWatch()
    deliveries = _Deliveries(acknowledged_at=watch.acknowledged)
    produced, callback = deliveries.start(7)
    produced[("topic", "task.added", "1")] += 2
    callback(None, Message(topic="topic", partition=0, offset=4))
    callback(None, Message(topic="topic", partition=0, offset=-1001))  # no offset reported
    assert deliveries.rows_done == [7]
    assert watch.acked == {("topic", 0): 5}
    assert not watch.doubt


class FatalProducer:
    """A producer in librdkafka's fatal state (as an idempotent producer ends up when a
    broker forgot its sequence numbers): every ``produce`` is refused for good."""

    def produce(self, *args, **kwargs) -> None:
        raise KafkaException(KafkaError(KafkaError._FATAL, "fatal idempotent producer error",
                                        fatal=True))

    def purge(self) -> None:
        pass

    def flush(self, timeout: float = 0) -> int:
        return 0


def test_a_relay_whose_producer_became_fatal_publishes_with_a_new_one(
    engine, sessions, outbox, broker
):
    events = write_events(sessions, outbox, str(uuid.uuid4()), range(1, 6))
    relay = Relay(engine, broker.settings)
    try:
        relay.producer = FatalProducer()
        with pytest.raises(KafkaException):
            relay.run_once()
        assert unsent(engine) == len(events), "nothing is marked sent by a refused batch"
        assert isinstance(relay.producer, Producer), "the fatal producer was replaced"
        publish_everything(relay, engine)
    finally:
        relay.close()
    assert ids_on(broker.settings) == Counter(e.id for e in events)


class BrokenFlushProducer(FatalProducer):
    """A producer whose ``flush`` fails as the client does when it turns fatal under it."""

    def __init__(self, real: Producer):
        self.real = real

    def produce(self, *args, **kwargs) -> None:
        self.real.produce(*args, **kwargs)

    def flush(self, timeout: float = 0) -> int:
        raise SystemError("<method 'flush' of 'cimpl.Producer' objects> returned NULL "
                          "without setting an exception")


def test_a_relay_whose_producer_broke_in_flush_publishes_with_a_new_one(
    engine, sessions, outbox, broker
):
    events = write_events(sessions, outbox, str(uuid.uuid4()), range(1, 6))
    relay = Relay(engine, broker.settings)
    try:
        relay.producer = BrokenFlushProducer(relay.producer)
        with pytest.raises(SystemError):
            relay.run_once()
        assert unsent(engine) == len(events)
        assert isinstance(relay.producer, Producer), "the broken producer was replaced"
        publish_everything(relay, engine)
    finally:
        relay.close()
    # published at least once: what the broken producer sent may come again
    assert set(ids_on(broker.settings)) == {e.id for e in events}
