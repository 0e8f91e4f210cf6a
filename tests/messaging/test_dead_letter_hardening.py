"""Dead letters are always written, and no consumer moves past an event it neither applied
nor dead-lettered: oversized events, events the broker cannot take back, every topic."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from accounting.consumers import make_handlers as accounting_handlers
from deploy.embedded import free_port
from messaging.consumer import ConsumerRuntime, Interrupted
from messaging.dlq import DeadLetterPublisher, read_dead_letters, redrive
from messaging.groups import committed_offsets
from messaging.kafka import producer_config
from tasks.consumers import handlers as tasks_handlers
from tests.messaging.conftest import (
    account_event,
    effect_rows,
    handlers_recording,
    make_runtime,
    poll_until,
)

OVERSIZED_BYTES = 1_500_000  # over the producers' default limit of 1,000,000 bytes


def produce_raw(settings, logical_topic: str, key: str, *values: bytes | None) -> None:
    """Write ``values`` as a hostile client would, with a producer that allows big ones,
    on a topic whose limit was raised (Apache Kafka refuses records over 1 MB by default)."""
    topic = settings.topic(logical_topic)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    limit = ConfigEntry("max.message.bytes", str(4 * OVERSIZED_BYTES),
                        incremental_operation=AlterConfigOpType.SET)
    for future in admin.incremental_alter_configs(
            [ConfigResource("topic", topic, incremental_configs=[limit])]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                         "message.max.bytes": 4 * OVERSIZED_BYTES})
    errors: list = []
    for value in values:
        # Every broker applies the new limit a moment after the controller stored it.
        for _ in range(100):
            errors.clear()
            producer.produce(topic, key=key.encode(), value=value,
                             on_delivery=lambda error, _: error and errors.append(error))
            assert producer.flush(30) == 0
            if not errors or errors[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                break
            time.sleep(0.1)
        assert errors == []


def oversized_event(account_id: str) -> bytes:
    envelope = account_event(account_id).envelope()
    envelope["data"]["full_name"] = "x" * OVERSIZED_BYTES  # far beyond the schema's limit
    return json.dumps(envelope).encode()


def test_an_invalid_event_over_the_size_limit_is_dead_lettered_truncated_with_hash_and_size(
    engine, settings
):
    account_id = str(uuid.uuid4())
    oversized = oversized_event(account_id)
    later = account_event(account_id, 2)
    produce_raw(settings, "accounts-stream", account_id, oversized, later.to_json())
    dlq = settings.dlq_topic("accounts-stream")

    runtime = make_runtime(engine, settings, handlers_recording())
    try:
        poll_until(runtime, lambda: effect_rows(engine) and read_dead_letters(settings, dlq))
    finally:
        runtime.close()

    [letter] = read_dead_letters(settings, dlq)
    assert letter.truncated and letter.event_id == json.loads(oversized)["id"]
    assert letter.original_size == len(oversized)
    assert letter.original_sha256 == hashlib.sha256(oversized).hexdigest()
    assert oversized.startswith(letter.value) and len(letter.value) < 1_000_000
    assert "InvalidEventData" in letter.error and len(letter.error) < 10_000
    assert [r.event_id for r in effect_rows(engine)] == [later.id]
    report = redrive(settings, dlq)  # only the start of the event is in the letter
    assert report.redriven == [] and report.truncated == [letter]


def test_a_consumer_that_cannot_store_a_dead_letter_commits_nothing_past_it(engine, settings):
    account_id = str(uuid.uuid4())
    first, later = account_event(account_id, 1), account_event(account_id, 2)
    produce_raw(settings, "accounts-stream", account_id, b"{broken", first.to_json())
    topic = settings.topic("accounts-stream")

    stranded = make_runtime(engine, settings, handlers_recording())
    unreachable = settings.with_(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    stranded.processor.dead_letters.producer = Producer(
        producer_config(unreachable, **{"message.timeout.ms": 1000})
    )
    stranded.stop_requested.set()  # give up at the first failed attempt instead of retrying
    try:
        for _ in range(2):  # the batch fails, then an event behind it arrives
            with pytest.raises(Exception):  # noqa: B017 (how it gives up is not the point)
                stranded.poll_once(10.0)
            produce_raw(settings, "accounts-stream", account_id, later.to_json())
    finally:
        stranded.close()

    committed = committed_offsets(settings, stranded.group_id, [topic])
    assert all(offset < 1 for offset, _ in committed.values()), committed

    # The events behind the failed letter were applied (the inbox keeps them from being
    # applied twice), but the letter is written only when the partition is read again.
    dlq = settings.dlq_topic("accounts-stream")
    recovered = make_runtime(engine, settings, handlers_recording())
    try:
        poll_until(recovered, lambda: read_dead_letters(settings, dlq))
    finally:
        recovered.close()
    [letter] = read_dead_letters(settings, dlq)
    assert letter.value == b"{broken" and "InvalidEnvelope" in letter.error
    assert sorted(r.seq for r in effect_rows(engine)) == [1, 2]


@pytest.mark.parametrize("consumer", ["tasks", "accounting"])
def test_invalid_events_on_accounts_lifecycle_are_dead_lettered(engine, settings, consumer):
    handlers = tasks_handlers if consumer == "tasks" else accounting_handlers(books=None)
    account_id = str(uuid.uuid4())
    wrong_shape = account_event(account_id).envelope() | {"type": "account.role_changed"}
    invalid = [b"garbage", None, json.dumps(wrong_shape).encode(), oversized_event(account_id)]
    produce_raw(settings, "accounts-lifecycle", account_id, *invalid)
    topic = settings.topic("accounts-lifecycle")
    dlq = settings.dlq_topic("accounts-lifecycle")

    runtime = ConsumerRuntime(consumer, engine, settings, handlers,
                              topics=["accounts-lifecycle"], backoff_base=0.01, backoff_max=0.05)

    def all_dead_lettered_and_committed() -> bool:
        offsets = committed_offsets(settings, runtime.group_id, [topic]).values()
        return (len(read_dead_letters(settings, dlq)) == len(invalid)
                and all(offset == end for offset, end in offsets if end > 0))

    try:
        poll_until(runtime, all_dead_lettered_and_committed)
    finally:
        runtime.close()
    letters = read_dead_letters(settings, dlq)
    assert [letter.offset for letter in letters] == [0, 1, 2, 3]
    assert {letter.consumer for letter in letters} == {consumer}
    assert [letter.truncated for letter in letters] == [False, False, False, True]


def test_the_backoff_of_a_long_outage_stays_at_its_ceiling(engine, settings):
    """A broker or database down for hours means thousands of attempts."""
    runtime = make_runtime(engine, settings, handlers_recording())
    stop = threading.Event()
    stop.set()
    try:
        with pytest.raises(Interrupted):
            runtime.processor._sleep_backoff(5000, stop)
    finally:
        runtime.close()


class RefusingProducer:
    """Refuses the first letters it is given with ``refusals`` (error codes), then takes
    every letter; records the size of each value it was given."""

    def __init__(self, *refusals: int):
        self.refusals = list(refusals)
        self.sizes: list[int] = []

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None) -> None:
        self.sizes.append(len(value))
        refusal = self.refusals.pop(0) if self.refusals else None
        on_delivery(None if refusal is None else KafkaError(refusal), None)

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("refusal", [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._MSG_TIMED_OUT])
def test_a_dead_letter_the_broker_refused_is_written_again_smaller_if_it_was_too_big(refusal):
    producer = RefusingProducer(refusal)
    publisher = DeadLetterPublisher(producer, "tasks", max_letter_bytes=64 * 1024)
    failed = Message(topic="ates.accounts-stream", partition=0, offset=7, key=b"key",
                     value=b"x" * 100_000, headers=[])
    attempts: list[int] = []
    publisher.store([(failed, "InvalidEventData: too long")], wait=attempts.append)
    assert attempts == [1]
    first, second = producer.sizes
    assert first < 64 * 1024
    if refusal == KafkaError.MSG_SIZE_TOO_LARGE:
        assert second < 32 * 1024  # half the room
    else:
        assert second == first
