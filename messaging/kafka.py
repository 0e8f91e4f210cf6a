"""Kafka client configuration and topic administration."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol, TypedDict, Unpack, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

# ``confluent_kafka.admin`` offers ``NewTopic`` (imported from its C module) without
# marking it exported for type checkers.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from platform_kit.settings import Settings

# A client configuration: librdkafka property names to values, callbacks (``error_cb``).
ClientConfig = dict[str, Any]

# One header as ``produce`` takes it: name and value (text is sent UTF-8 encoded).
OutgoingHeader = tuple[str, str | bytes | None]

# One header of a consumed message: name and raw value (None: a header without value).
ReceivedHeader = tuple[str, bytes | None]

# Told the outcome of one produced message: the error (None: the broker has it) and it.
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class OutgoingMessage(TypedDict, total=False):
    """A message to produce, as ``Producer.produce`` takes it besides the topic."""

    key: bytes | None
    value: bytes | None
    headers: list[OutgoingHeader]
    partition: int


class ProduceArgs(OutgoingMessage, total=False):
    """What the platform passes to ``Producer.produce`` besides the topic."""

    on_delivery: DeliveryCallback


class ConsumedMessage(Protocol):
    """A record read from a topic, as the platform reads it: the accessors of a
    confluent-kafka ``Message`` (other consumers, such as the analytics stream, wrap
    their records in them)."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(
        self,
    ) -> Collection[OutgoingHeader] | Mapping[str, str | bytes | None] | None: ...


def position_of(message: ConsumedMessage) -> tuple[str, int, int]:
    """``(topic, partition, offset)`` of a message the broker delivered. The client types
    them optional (a message built by hand may lack them); a delivered one has them all."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"not a delivered message: {topic=}, {partition=}, {offset=}")
    return topic, partition, offset


def received_headers(message: ConsumedMessage) -> list[ReceivedHeader]:
    """The headers of a consumed message, in order. The client hands them back as a list
    of (name, raw value) pairs; its stubs give them the wider type of what ``produce``
    takes (a mapping, or text values too)."""
    return cast(list[ReceivedHeader], message.headers() or [])


def producer_config(settings: Settings, **overrides: Any) -> ClientConfig:
    """An idempotent producer: acks=all, no duplicates or reordering from retries."""
    config: ClientConfig = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "none",
        "message.timeout.ms": 30000,
    }
    return config | overrides


def produce_waiting(producer: Producer, topic: str, **message: Unpack[ProduceArgs]) -> None:
    """``producer.produce(topic, **message)``, serving delivery callbacks while the
    producer's queue is full instead of failing."""
    while True:
        try:
            producer.produce(topic, **message)
            return
        except BufferError:
            producer.poll(0.1)


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> ClientConfig:
    config: ClientConfig = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": max(100, settings.kafka_session_timeout_ms // 6),
        "max.poll.interval.ms": 600000,
        "fetch.wait.max.ms": 50,
    }
    return config | overrides


def ensure_topics(settings: Settings, topics: list[str] | None = None, timeout: float = 30) -> None:
    """Create the platform's topics (and their dead-letter topics) when missing."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    wanted = topics if topics is not None else settings.all_topics()
    existing = set(admin.list_topics(timeout=timeout).topics)
    # Replication factor -1: the cluster's default.replication.factor (3 on a production
    # or test cluster, so a topic outlives one broker; 1 on a single dev broker).
    missing = [
        NewTopic(name, settings.topic_partitions if not name.endswith(".dlq") else 1, -1)
        for name in wanted
        if name not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc
    _wait_until_served(settings, [t.topic for t in missing], timeout)


def _wait_until_served(settings: Settings, topics: list[str], timeout: float) -> None:
    """Until the leader of every partition of ``topics`` answers for it. On a cluster the
    controller creates a topic and its brokers learn of it a moment later: a client
    asking before then is told "not leader for partition" (which librdkafka does not
    retry when reading offsets)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": "ates-topic-check", "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        for topic in topics:
            while True:
                try:
                    meta = consumer.list_topics(topic, timeout=5).topics[topic]
                    if meta.error is None and meta.partitions:
                        for partition in meta.partitions:
                            consumer.get_watermark_offsets(TopicPartition(topic, partition), 5)
                        break
                except KafkaException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"topic {topic} created but not served after {timeout}s")
                time.sleep(0.1)
    finally:
        consumer.close()
