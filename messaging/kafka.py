"""Kafka client configuration and topic administration."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from platform_kit.settings import Settings


def producer_config(settings: Settings, **overrides) -> dict:
    """An idempotent producer: acks=all, no duplicates or reordering from retries."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "none",
        "message.timeout.ms": 30000,
    }
    return config | overrides


def produce_waiting(producer: Producer, topic: str, **message) -> None:
    """``producer.produce(topic, **message)``, serving delivery callbacks while the
    producer's queue is full instead of failing."""
    while True:
        try:
            producer.produce(topic, **message)
            return
        except BufferError:
            producer.poll(0.1)


def consumer_config(settings: Settings, group_id: str, **overrides) -> dict:
    config = {
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
