"""Consumer-group offsets: move a stopped group back to the beginning of its topics.

Every consumer of the platform is idempotent (its inbox skips event ids already handled),
so replaying a group from the start must change nothing; ``ates consumers reset`` does it.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from platform_kit.settings import Settings
from platform_kit.spec import service_spec


def consumer_group_of(service: str, settings: Settings) -> tuple[str, list[str]]:
    """The group id and the Kafka topics of ``service``'s consumer (its spec's
    ``consumer``); ``ValueError`` for a service that consumes nothing."""
    consumer = service_spec(service).consumer
    if consumer is None:
        raise ValueError(f"{service} has no consumer")
    return consumer.group_id(settings), consumer.kafka_topics(settings)


# What the broker answers a commit from outside a group that has running members.
_GROUP_IN_USE = (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION,
                 KafkaError.REBALANCE_IN_PROGRESS)


class GroupInUse(RuntimeError):
    """The consumer group has running members: its offsets cannot be moved."""


def reset_to_beginning(
    settings: Settings, group_id: str, topics: list[str], timeout: float = 10.0,
    progress: Any = None,
) -> list[TopicPartition]:
    """Commit the first available offset of every partition of ``topics`` for the group.

    The group must have no running member (``GroupInUse`` otherwise). ``progress`` (like
    a tqdm bar: ``total``, ``update(n)``) counts the partitions looked up.
    """
    consumer = _group_consumer(settings, group_id)
    try:
        offsets = []
        partitions = list(_partitions(consumer, topics, timeout))
        if progress is not None:
            progress.total = len(partitions)
        for tp in partitions:
            low, _ = consumer.get_watermark_offsets(tp, timeout=timeout)
            offsets.append(TopicPartition(tp.topic, tp.partition, low))
            if progress is not None:
                progress.update(1)
        try:
            committed = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() in _GROUP_IN_USE:
                raise GroupInUse(f"{group_id} has running consumers: stop them first") from exc
            raise
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
    consumer = _group_consumer(settings, group_id)
    try:
        result = {}
        for tp in consumer.committed(_partitions(consumer, topics, timeout), timeout=timeout):
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            result[(tp.topic, tp.partition)] = (tp.offset, high)
        return result
    finally:
        consumer.close()


def _group_consumer(settings: Settings, group_id: str) -> Consumer:
    """A client of the group that never joins it: it only reads and commits offsets."""
    return Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": group_id,
         "enable.auto.commit": False}
    )


def _partitions(consumer: Consumer, topics: list[str], timeout: float) -> list[TopicPartition]:
    partitions = []
    for topic in topics:
        numbers = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
    return partitions
