"""Dead letters: events that can never be handled, kept in ``<topic>.dlq``.

A dead letter is the original message (key, value, headers) plus ``ates-dlq-*`` headers
that say which consumer failed, why, and where the message came from. A letter always
fits in the broker's limits: one too big keeps the start of its payload, with the size and
SHA-256 of the whole and the event id in headers (the original stays in its topic).

Redriving republishes a letter's message to its topic addressed to the consumer that
failed it (header ``ates-redriven-for``): the other consumer groups of the topic skip it.
Each event is redriven once per consumer, whatever the number of its letters; a marker
appended to the ``.dlq`` topic records it, so running the same redrive again does nothing
until the event is dead-lettered anew.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from messaging.kafka import (
    ConsumedMessage,
    OutgoingHeader,
    OutgoingMessage,
    ReceivedHeader,
    position_of,
    produce_waiting,
    producer_config,
    received_headers,
)
from platform_kit.progress import Progress
from platform_kit.settings import Settings

log = structlog.get_logger("messaging.dlq")

PREFIX = "ates-dlq-"
REDRIVEN_FOR = "ates-redriven-for"
REDRIVEN_FROM = "ates-redriven-from"
QUIET_SECONDS = 0.3

# Well under librdkafka's default ``message.max.bytes`` (1,000,000) and Kafka's default
# broker limit; a broker that refuses even that makes the publisher halve it.
MAX_LETTER_BYTES = 512 * 1024
MIN_LETTER_BYTES = 4 * 1024
MAX_ERROR_CHARS = 2000
MAX_KEY_BYTES = 256
# Share of a truncated letter's room that the original headers may take.
HEADER_SHARE = 4


def redriven_for(message: ConsumedMessage) -> str | None:
    """The one consumer a redriven copy is meant for (None: not a redriven copy)."""
    for name, value in received_headers(message):
        if name == REDRIVEN_FOR and value is not None:
            return value.decode(errors="replace")
    return None


def _size(key: bytes | None, value: bytes | None, headers: Iterable[OutgoingHeader]) -> int:
    return len(key or b"") + len(value or b"") + sum(len(k) + len(v or b"") for k, v in headers)


def _event_id_in(value: bytes | None) -> str | None:
    try:
        envelope = json.loads(value) if value else None
    except ValueError:
        return None
    event_id = envelope.get("id") if isinstance(envelope, dict) else None
    return event_id if isinstance(event_id, str) and len(event_id) <= 64 else None


def build_letter(message: ConsumedMessage, error: str, consumer: str,
                 limit: int = MAX_LETTER_BYTES) -> OutgoingMessage:
    """The ``produce`` arguments of the dead letter of ``message``, at most ``limit`` bytes."""
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + f"... ({len(error)} characters)"
    topic, partition, offset = position_of(message)
    meta: list[OutgoingHeader] = [
        (PREFIX + "error", error.encode(errors="replace")),
        (PREFIX + "consumer", consumer.encode()),
        (PREFIX + "topic", topic.encode()),
        (PREFIX + "partition", str(partition).encode()),
        (PREFIX + "offset", str(offset).encode()),
        (PREFIX + "failed-at", datetime.now(UTC).isoformat().encode()),
    ]
    key, value = message.key(), message.value()
    original: list[OutgoingHeader] = [
        (k, v) for k, v in received_headers(message) if not k.startswith(PREFIX)
    ]
    if _size(key, value, original + meta) <= limit:
        return {"key": key, "value": value, "headers": original + meta}
    return _truncated_letter(key, value or b"", original, meta, limit)


def _truncated_letter(key: bytes | None, value: bytes, original: list[OutgoingHeader],
                      meta: list[OutgoingHeader], limit: int) -> OutgoingMessage:
    meta = meta + [
        (PREFIX + "truncated", b"true"),
        (PREFIX + "original-size", str(len(value)).encode()),
        (PREFIX + "original-sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    if event_id := _event_id_in(value):
        meta.append((PREFIX + "event-id", event_id.encode()))
    key = key[:MAX_KEY_BYTES] if key else key
    kept: list[OutgoingHeader] = []
    room = limit // HEADER_SHARE
    for header in original:
        room -= _size(None, None, [header])
        if room < 0:
            break
        kept.append(header)
    headers = kept + meta
    room = max(0, limit - _size(key, None, headers))
    return {"key": key, "value": value[:room], "headers": headers}


def _is_size_error(error: KafkaError) -> bool:
    # librdkafka reports a message over its own limit with the broker's code too
    return error.code() == KafkaError.MSG_SIZE_TOO_LARGE


class _Pending:
    """A dead letter until the broker acknowledged it."""

    def __init__(self, message: ConsumedMessage, error: str, limit: int):
        self.message, self.error, self.limit = message, error, limit
        self.stored = False
        self.failure: KafkaError | None = None

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        self.stored, self.failure = err is None, err

    def shrink_if_too_big(self) -> None:
        if self.failure is not None and _is_size_error(self.failure):
            self.limit = max(MIN_LETTER_BYTES, self.limit // 2)


class DeadLetterPublisher:
    def __init__(self, producer: Producer, consumer_name: str,
                 max_letter_bytes: int = MAX_LETTER_BYTES):
        self.producer = producer
        self.consumer_name = consumer_name
        self.max_letter_bytes = max_letter_bytes

    def store(self, failed: Iterable[tuple[ConsumedMessage, str]],
              wait: Callable[[int], None]) -> None:
        """Write the dead letter of every ``(message, error)``; returns once the broker
        acknowledged each. A letter it refused is written again (smaller if it was too
        big) after ``wait(attempt)``, which may raise to give up: offsets must not be
        committed past a letter that was not stored."""
        pending = [_Pending(message, error, self.max_letter_bytes) for message, error in failed]
        attempt = 0
        while pending := self._attempt(pending):
            attempt += 1
            log.warning("dead letters not stored, retrying", consumer=self.consumer_name,
                        letters=len(pending), attempt=attempt, error=str(pending[0].failure))
            wait(attempt)

    def _attempt(self, pending: list[_Pending]) -> list[_Pending]:
        """Produce every letter of ``pending``; returns those the broker did not take."""
        for letter in pending:
            letter.stored, letter.failure = False, None
            try:
                produce_waiting(
                    self.producer, position_of(letter.message)[0] + ".dlq",
                    **build_letter(letter.message, letter.error, self.consumer_name,
                                   letter.limit),
                    on_delivery=letter.delivered,
                )
            except KafkaException as exc:
                letter.failure = exc.args[0]
        self.flush()
        for letter in pending:
            letter.shrink_if_too_big()
        return [letter for letter in pending if not letter.stored]

    def flush(self) -> None:
        """Wait until every letter produced so far is acknowledged or has failed."""
        # librdkafka's flush costs ~10 ms even with nothing queued: skip it when idle.
        # Each letter fails at the latest after ``message.timeout.ms``.
        while len(self.producer):
            self.producer.flush(1.0)


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
    value: bytes | None
    headers: list[ReceivedHeader]
    dlq_partition: int = 0
    truncated: bool = False
    original_size: int | None = None
    original_sha256: str | None = None
    recorded_event_id: str | None = None
    redriven: bool = False

    @property
    def event_id(self) -> str | None:
        return self._envelope().get("id") or self.recorded_event_id

    @property
    def event_type(self) -> str | None:
        return self._envelope().get("type")

    @property
    def dataversion(self) -> object:  # an int in a valid event
        return self._envelope().get("dataversion")

    @property
    def identity(self) -> str:
        """What makes two letters of one consumer the same event: its id, else its bytes."""
        return self.event_id or "sha256:" + (
            self.original_sha256 or hashlib.sha256(self.value or b"").hexdigest()
        )

    def _envelope(self) -> dict[str, Any]:
        if self.truncated or not self.value:
            return {}
        try:
            envelope = json.loads(self.value)
        except ValueError:
            return {}
        return envelope if isinstance(envelope, dict) else {}

    def summary(self) -> dict[str, object]:
        """What ``ates dlq list`` shows of the letter (as one JSON object)."""
        summary: dict[str, object] = {
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
            "redriven": self.redriven,
        }
        if self.truncated:
            summary |= {"truncated": True, "original_size": self.original_size,
                        "original_sha256": self.original_sha256}
        return summary


def _meta(message: Message) -> dict[str, str]:
    return {
        k[len(PREFIX) :]: (v or b"").decode(errors="replace")
        for k, v in received_headers(message)
        if k.startswith(PREFIX)
    }


def _from_message(message: Message, meta: dict[str, str]) -> DeadLetter:
    original = [(k, v) for k, v in received_headers(message) if not k.startswith(PREFIX)]
    dlq_topic, dlq_partition, dlq_offset = position_of(message)
    return DeadLetter(
        dlq_offset=dlq_offset,
        dlq_partition=dlq_partition,
        topic=meta.get("topic", dlq_topic[: -len(".dlq")]),
        partition=int(meta.get("partition", -1)),
        offset=int(meta.get("offset", -1)),
        consumer=meta.get("consumer", ""),
        error=meta.get("error", ""),
        failed_at=meta.get("failed-at", ""),
        key=message.key(),
        value=message.value(),
        headers=original,
        truncated=meta.get("truncated") == "true",
        original_size=int(meta["original-size"]) if "original-size" in meta else None,
        original_sha256=meta.get("original-sha256"),
        recorded_event_id=meta.get("event-id"),
    )


@dataclass(frozen=True)
class _Marker:
    """Appended to a ``.dlq`` topic by a redrive: the letters of ``consumer`` with
    ``identity`` up to ``through`` (offset in ``partition``) were redriven."""

    partition: int
    consumer: str
    identity: str
    through: int

    @classmethod
    def of(cls, message: Message, meta: dict[str, str]) -> _Marker:
        return cls(position_of(message)[1], meta.get("consumer", ""), meta["redriven"],
                   int(meta.get("redriven-through", -1)))

    def headers(self) -> list[OutgoingHeader]:
        return [(PREFIX + "redriven", self.identity.encode()),
                (PREFIX + "consumer", self.consumer.encode()),
                (PREFIX + "redriven-through", str(self.through).encode())]


class UnknownTopic(LookupError):
    """The topic does not exist on the broker."""


def read_dead_letters(
    settings: Settings, dlq_topic: str, timeout: float = 10.0
) -> list[DeadLetter]:
    """Every dead letter currently stored in ``dlq_topic``, oldest first per partition,
    each saying whether a redrive already republished it."""
    letters: list[DeadLetter] = []
    redriven_through: dict[tuple[int, str, str], int] = {}
    for message in read_all(settings.kafka_bootstrap, dlq_topic, timeout):
        meta = _meta(message)
        if "redriven" in meta:
            marker = _Marker.of(message, meta)
            key = (marker.partition, marker.consumer, marker.identity)
            redriven_through[key] = max(redriven_through.get(key, -1), marker.through)
        else:
            letters.append(_from_message(message, meta))
    return [
        replace(letter, redriven=redriven_through.get(
            (letter.dlq_partition, letter.consumer, letter.identity), -1) >= letter.dlq_offset)
        for letter in letters
    ]


def read_all(bootstrap: str, topic: str, timeout: float = 10.0) -> list[Message]:
    """Every message in ``topic`` up to its current end, ordered by partition and offset.

    Raises ``UnknownTopic`` when the broker has no such topic.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ates-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if not starts:
            return []
        consumer.assign(starts)
        messages = _consume_until(consumer, ends, timeout)
        return sorted(messages, key=lambda m: position_of(m)[1:])
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
        _, partition, offset = position_of(message)
        if offset + 1 >= pending.get(partition, 0):
            pending.pop(partition, None)
    # Some brokers (Tansu) report the high watermark at the start of the last record
    # batch, so records of that batch may still follow: read until the topic is quiet.
    while (message := consumer.poll(QUIET_SECONDS)) is not None:
        if message.error() is None:
            messages.append(message)
    return messages


@dataclass(frozen=True)
class RedriveReport:
    redriven: list[DeadLetter]
    # Letters holding only the start of their event: the original is still in its topic
    # (``topic``/``partition``/``offset`` of the letter) as long as retention keeps it.
    truncated: list[DeadLetter]


def redrive(
    settings: Settings, dlq_topic: str, event_id: str | None = None, consumer: str | None = None,
    progress: Progress | None = None,
) -> RedriveReport:
    """Republish the letters not redriven yet (optionally of one event id or one consumer)
    to their topics, each event once per consumer and addressed to that consumer only.
    ``progress`` (like a tqdm bar: ``total``, ``update(n)``) counts the copies sent."""
    letters = [
        letter
        for letter in read_dead_letters(settings, dlq_topic)
        if not letter.redriven
        and (event_id is None or letter.event_id == event_id)
        and (consumer is None or letter.consumer == consumer)
    ]
    truncated = [letter for letter in letters if letter.truncated]
    latest: dict[tuple[int, str, str], DeadLetter] = {}
    for letter in letters:
        if not letter.truncated:
            latest[(letter.dlq_partition, letter.consumer, letter.identity)] = letter
    chosen = sorted(latest.values(), key=lambda x: (x.dlq_partition, x.dlq_offset))
    producer = Producer(producer_config(settings))
    if progress is not None:
        progress.total = len(chosen)
    _produce_all(producer, [(letter.topic, _copy_of(letter, dlq_topic)) for letter in chosen],
                 progress)
    # Only once every copy is stored: a redrive interrupted in between is redone in full.
    _produce_all(producer, [(dlq_topic, _marker_of(letter)) for letter in chosen])
    return RedriveReport(chosen, truncated)


def _copy_of(letter: DeadLetter, dlq_topic: str) -> OutgoingMessage:
    headers: list[OutgoingHeader] = [
        (k, v) for k, v in letter.headers if k not in (REDRIVEN_FOR, REDRIVEN_FROM)
    ]
    headers.append((REDRIVEN_FROM, dlq_topic.encode()))
    if letter.consumer:
        headers.append((REDRIVEN_FOR, letter.consumer.encode()))
    return {"key": letter.key, "value": letter.value, "headers": headers}


def _marker_of(letter: DeadLetter) -> OutgoingMessage:
    marker = _Marker(letter.dlq_partition, letter.consumer, letter.identity, letter.dlq_offset)
    return {"partition": letter.dlq_partition, "key": letter.key, "value": None,
            "headers": marker.headers()}


def _produce_all(producer: Producer, messages: list[tuple[str, OutgoingMessage]],
                 progress: Progress | None = None) -> None:
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))
        elif progress is not None:
            progress.update(1)

    for topic, message in messages:
        produce_waiting(producer, topic, **message, on_delivery=delivered)
    if producer.flush(30) or failures:
        raise RuntimeError(f"redrive: not every message reached the broker: {failures[:3]}")
