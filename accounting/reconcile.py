"""Reconciliation across services: what tasks published against what the ledger booked.

Every ``task.assigned`` on the tasks' business topic must have exactly one fee in the
ledger, and every ``task.completed`` one reward, booked for the same task and account and
caused by that event (``source_event_id``); every fee and reward of the ledger must have
been caused by such an event. ``reconcile`` reads the topic from its beginning to its end
and the ledger's fees and rewards, and lists every difference.

An event the accounting consumer has not committed yet (its offset is at or after the
group's committed offset) is still on its way: without a booking it is counted as
pending, not as a difference. Fees and rewards reversed later still count as booked
(the reversal is a deliberate correction; ``ates accounting verify`` checks its links).
Events removed from the topic by its retention cannot be compared: their bookings show as
"booked without a published event".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import click
from confluent_kafka import Consumer, Message, TopicPartition
from sqlalchemy import Engine, text

from accounting.domain import FEE, REWARD
from messaging.dlq import QUIET_SECONDS
from messaging.groups import committed_offsets, consumer_group_of
from platform_kit.settings import Settings

TASKS_TOPIC = "tasks-lifecycle"
BOOKED_AS = {"task.assigned": FEE, "task.completed": REWARD}
_TIMEOUT = 10.0


@dataclass(frozen=True)
class Published:
    event_id: str
    type: str
    task_id: str
    account_id: str
    partition: int
    offset: int
    consumed: bool


@dataclass(frozen=True)
class Difference:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class Reconciliation:
    compared: dict[str, int] = field(default_factory=lambda: {FEE: 0, REWARD: 0})
    pending: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.differences


def published_events(settings: Settings) -> Iterator[Published]:
    """The assignments and completions on the tasks' business topic, beginning to end,
    each marked with whether accounting's consumer has committed past it."""
    topic = settings.topic(TASKS_TOPIC)
    group, _ = consumer_group_of("accounting", settings)
    committed = committed_offsets(settings, group, [topic], timeout=_TIMEOUT)
    reader = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                       "group.id": f"ates-reconcile-{uuid.uuid4()}",
                       "enable.auto.commit": False})
    try:
        starts, ends = [], {}
        for (_, partition), (_done, _end) in sorted(committed.items()):
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), _TIMEOUT)
            starts.append(TopicPartition(topic, partition, low))
            if high > low:
                ends[partition] = high
        reader.assign(starts)
        for message in _read_to_the_end(reader, topic, ends):
            found = _assignment_or_completion(message.value())
            if found is not None:
                event_id, event_type, data = found
                partition, offset = _position(message)
                yield Published(event_id, event_type, data.get("task_id", ""),
                                data.get("assignee_id", ""), partition, offset,
                                offset < committed[(topic, partition)][0])
    finally:
        reader.close()


def _position(message: Message) -> tuple[int, int]:
    """The partition and offset of a message read from a topic (which always has both)."""
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    return partition, offset


def _read_to_the_end(reader: Consumer, topic: str, ends: dict[int, int]) -> Iterator[Message]:
    """Every message up to the high watermarks, then on until the topic is quiet: some
    brokers (Tansu) report the watermark at the start of the last record batch."""
    pending = dict(ends)
    while pending:
        message = reader.poll(_TIMEOUT)
        if message is None:
            raise click.ClickException(
                f"{topic}: partitions {sorted(pending)} not read to their end within"
                f" {_TIMEOUT:.0f} s")
        if message.error():
            continue
        yield message
        partition, offset = _position(message)
        if offset + 1 >= pending.get(partition, 0):
            pending.pop(partition, None)
    while (message := reader.poll(QUIET_SECONDS)) is not None:
        if not message.error():
            yield message


def _assignment_or_completion(value: bytes | None) -> tuple[str, str, dict[str, Any]] | None:
    try:
        event = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in BOOKED_AS:
        return None
    data = event.get("data")
    return str(event.get("id")), str(event["type"]), data if isinstance(data, dict) else {}


_BOOKED = text(
    """
    SELECT public_id, type, CAST(source_event_id AS text) AS source,
           CAST(task_id AS text) AS task_id, CAST(account_id AS text) AS account_id
    FROM transactions WHERE type IN ('fee', 'reward') ORDER BY id
    """
)


def reconcile(settings: Settings, engine: Engine) -> Reconciliation:
    result = Reconciliation()
    published = {event.event_id: event for event in published_events(settings)}
    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=5000).execute(
            _BOOKED)
        for row in rows:
            public_id, booked_type, task_id, account_id = (
                row.public_id, row.type, row.task_id, row.account_id)
            source: str = row.source
            event = published.pop(source, None)
            if event is None:
                result.differences.append(Difference(
                    f"{booked_type} booked without a published event",
                    f"transaction {public_id} (event {source}, task {task_id})"))
                continue
            result.compared[booked_type] += 1
            expected = BOOKED_AS[event.type]
            if (booked_type, task_id, account_id) != (expected, event.task_id,
                                                      event.account_id):
                result.differences.append(Difference(
                    f"{event.type} booked differently",
                    f"event {event.event_id} says {expected} of task {event.task_id} for"
                    f" {event.account_id}; transaction {public_id} is a {booked_type} of"
                    f" task {task_id} for {account_id}"))
    for event in published.values():
        if not event.consumed:
            result.pending += 1
            continue
        result.differences.append(Difference(
            f"{event.type} without a {BOOKED_AS[event.type]}",
            f"event {event.event_id} (task {event.task_id}, account {event.account_id},"
            f" partition {event.partition} offset {event.offset})"))
    return result


@click.command("reconcile")
def reconcile_command() -> None:
    """Compare the assignments and completions tasks published with the ledger's fees and
    rewards; list every difference (exit 1), or say they agree (exit 0)."""
    from accounting.app import engine_for

    settings = Settings.from_env()
    engine = engine_for(settings)
    try:
        result = reconcile(settings, engine)
    finally:
        engine.dispose()
    for difference in result.differences:
        click.echo(f"DIFFERENCE {difference}", err=True)
    summary = (f"{result.compared[FEE]} assignment(s) and {result.compared[REWARD]}"
               f" completion(s) match the ledger; {result.pending} not consumed yet;"
               f" {len(result.differences)} difference(s)")
    click.echo(summary)
    if not result.holds:
        raise SystemExit(1)
