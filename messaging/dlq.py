"""Dead letters: events that can never be handled, kept in ``<topic>.dlq``.

A dead letter is the original message (key, value, headers) plus ``ates-dlq-*`` headers
that say which consumer failed, why, and where the message came from. Redriving
republishes the original message to its topic; consumers that already handled it skip
it by event id, so a redrive is safe to repeat.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from messaging.kafka import producer_config
from messaging.settings import Settings

PREFIX = "ates-dlq-"
QUIET_SECONDS = 0.3


class DeadLetterPublisher:
    def __init__(self, producer: Producer, consumer_name: str):
        self.producer = producer
        self.consumer_name = consumer_name
        self.failures: list[str] = []

    def send(self, message: Message, error: str) -> None:
        headers = list(message.headers() or []) + [
            (PREFIX + "error", error.encode()),
            (PREFIX + "consumer", self.consumer_name.encode()),
            (PREFIX + "topic", message.topic().encode()),
            (PREFIX + "partition", str(message.partition()).encode()),
            (PREFIX + "offset", str(message.offset()).encode()),
            (PREFIX + "failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        self.producer.produce(
            message.topic() + ".dlq",
            key=message.key(),
            value=message.value(),
            headers=headers,
            on_delivery=self._on_delivery,
        )

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.failures.append(str(err))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every dead letter is stored; offsets must not be committed before."""
        # librdkafka's flush costs ~10 ms even with nothing queued: skip it when idle
        remaining = self.producer.flush(timeout) if len(self.producer) else 0
        if remaining or self.failures:
            failures, self.failures = self.failures, []
            raise RuntimeError(f"dead letters not stored: {remaining} pending, errors {failures}")


@dataclass(frozen=True)
class DeadLetter:
    dlq_offset: int
    topic: str
    partition: int
    offset: int
    consumer: str
    error: str
    failed_at: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def event_id(self) -> str | None:
        return self._envelope().get("id")

    @property
    def event_type(self) -> str | None:
        return self._envelope().get("type")

    @property
    def dataversion(self):
        return self._envelope().get("dataversion")

    def _envelope(self) -> dict:
        try:
            envelope = json.loads(self.value)
        except ValueError:
            return {}
        return envelope if isinstance(envelope, dict) else {}

    def summary(self) -> dict:
        return {
            "dlq_offset": self.dlq_offset,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "consumer": self.consumer,
            "error": self.error,
            "failed_at": self.failed_at,
            "event_id": self.event_id,
            "type": self.event_type,
            "dataversion": self.dataversion,
        }


def _from_message(message: Message) -> DeadLetter:
    meta = {
        k[len(PREFIX) :]: v.decode() for k, v in message.headers() or [] if k.startswith(PREFIX)
    }
    original = [(k, v) for k, v in message.headers() or [] if not k.startswith(PREFIX)]
    return DeadLetter(
        dlq_offset=message.offset(),
        topic=meta.get("topic", message.topic()[: -len(".dlq")]),
        partition=int(meta.get("partition", -1)),
        offset=int(meta.get("offset", -1)),
        consumer=meta.get("consumer", ""),
        error=meta.get("error", ""),
        failed_at=meta.get("failed-at", ""),
        key=message.key(),
        value=message.value(),
        headers=original,
    )


def read_dead_letters(
    settings: Settings, dlq_topic: str, timeout: float = 10.0
) -> list[DeadLetter]:
    """Every dead letter currently stored in ``dlq_topic``, oldest first per partition."""
    return [_from_message(m) for m in read_all(settings.kafka_bootstrap, dlq_topic, timeout)]


def read_all(bootstrap: str, topic: str, timeout: float = 10.0) -> list[Message]:
    """Every message in ``topic`` up to its current end, ordered by partition and offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ates-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends, starts = {}, []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if not starts:
            return []
        consumer.assign(starts)
        messages = _consume_until(consumer, ends, timeout)
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def _consume_until(consumer: Consumer, ends: dict[int, int], timeout: float) -> list[Message]:
    messages: list[Message] = []
    pending = dict(ends)
    while pending:
        message = consumer.poll(timeout)
        if message is None:
            raise TimeoutError(f"could not read up to offsets {pending}")
        if message.error() is not None:
            continue
        messages.append(message)
        if message.offset() + 1 >= pending.get(message.partition(), 0):
            pending.pop(message.partition(), None)
    # Some brokers (Tansu) report the high watermark at the start of the last record
    # batch, so records of that batch may still follow: read until the topic is quiet.
    while (message := consumer.poll(QUIET_SECONDS)) is not None:
        if message.error() is None:
            messages.append(message)
    return messages


def redrive(
    settings: Settings, dlq_topic: str, event_id: str | None = None, consumer: str | None = None
) -> list[DeadLetter]:
    """Republish dead letters (optionally one event id or one consumer's) to their topics."""
    letters = [
        letter
        for letter in read_dead_letters(settings, dlq_topic)
        if (event_id is None or letter.event_id == event_id)
        and (consumer is None or letter.consumer == consumer)
    ]
    producer = Producer(producer_config(settings))
    for letter in letters:
        producer.produce(
            letter.topic,
            key=letter.key,
            value=letter.value,
            headers=letter.headers + [("ates-redriven-from", dlq_topic.encode())],
        )
    if producer.flush(30):
        raise RuntimeError("redrive: not every message reached the broker")
    return letters
