"""Kafka client configuration and topic administration."""

from __future__ import annotations

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from messaging.settings import Settings


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
    missing = [
        NewTopic(name, settings.topic_partitions if not name.endswith(".dlq") else 1, 1)
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
