"""Consumer-group offsets: move a stopped group back to the beginning of its topics.

Every consumer of the platform is idempotent (its inbox skips event ids already handled),
so replaying a group from the start must change nothing; ``ates consumers reset`` does it.
"""

from __future__ import annotations

import importlib

from confluent_kafka import Consumer, TopicPartition

from messaging.settings import Settings


def consumer_group_of(service: str, settings: Settings) -> tuple[str, list[str]]:
    """The group id and the Kafka topics of ``service``'s consumer (``<service>.consumers``
    names them in ``CONSUMER_NAME`` and ``CONSUMED_TOPICS``)."""
    module = importlib.import_module(f"{service}.consumers")
    group = settings.topic_prefix + module.CONSUMER_NAME
    return group, [settings.topic(t) for t in module.CONSUMED_TOPICS]


def reset_to_beginning(
    settings: Settings, group_id: str, topics: list[str], timeout: float = 10.0
) -> list[TopicPartition]:
    """Commit the first available offset of every partition of ``topics`` for the group.

    The group must have no running member (the broker refuses the commit otherwise).
    """
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id,
         "enable.auto.commit": False}
    )
    try:
        offsets = []
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
            for partition in sorted(partitions):
                low, _ = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )
                offsets.append(TopicPartition(topic, partition, low))
        committed = consumer.commit(offsets=offsets, asynchronous=False)
        failed = [tp for tp in committed or [] if tp.error is not None]
        if failed:
            raise RuntimeError(f"offsets not reset: {failed}")
        return offsets
    finally:
        consumer.close()


def committed_offsets(
    settings: Settings, group_id: str, topics: list[str], timeout: float = 10.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """``(topic, partition) -> (committed offset, end offset)`` of the group."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id,
         "enable.auto.commit": False}
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
        ]
        result = {}
        for tp in consumer.committed(partitions, timeout=timeout):
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            result[(tp.topic, tp.partition)] = (tp.offset, high)
        return result
    finally:
        consumer.close()
