"""Publishing again what a broker lost: the outbox is the source of truth.

A memory-only broker (Tansu) that restarts comes back empty, and a topic can be lost in
production too: events the relay had marked sent are then gone from the broker. Their
outbox rows, while retained (``ates prune`` deletes them after a grace period), are marked
unsent again, so the relay publishes them once more, oldest first; consumers skip those
they had already applied (their inbox).

The relay tells a broker that forgot by what it observed of it, kept in memory:

- the cluster id changed (another cluster answers on the same address);
- a partition ends lower than an offset the broker once acknowledged or reported;
- at start-up, a topic holds fewer messages than the outbox rows marked sent to it (a
  missing or empty topic among them): nothing was observed yet, so the outbox says what
  the broker must at least hold.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import prometheus_client
import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition
from sqlalchemy import Engine, text

from messaging.kafka import ClientConfig, position_of
from messaging.tables import outbox
from platform_kit.db import array_literal
from platform_kit.settings import Settings

log = structlog.get_logger("messaging.replay")

REPUBLISHED = prometheus_client.Counter(
    "ates_outbox_republished_total",
    "Outbox events marked unsent again because the broker lost them, by why.",
    ["outbox", "topic", "reason"],
)

_MARK_UNSENT = (
    f"WITH marked AS (UPDATE {outbox.name} SET sent_at = NULL "
    "WHERE sent_at IS NOT NULL AND sent_at >= :since {topics} RETURNING topic) "
    "SELECT topic, count(*) FROM marked GROUP BY topic"
)
# Deferred rows stand for any number of events, maybe none: they prove nothing here.
_SENT_PER_TOPIC = text(
    f"SELECT topic, count(*) FROM {outbox.name} "
    "WHERE sent_at IS NOT NULL AND renderer IS NULL GROUP BY topic"
)
_EPOCH = datetime(1970, 1, 1).astimezone()


def mark_unsent(
    engine: Engine, since: datetime | None = None, topics: Collection[str] | None = None
) -> Counter[str]:
    """Mark the retained rows sent at or after ``since`` (default: all) to ``topics``
    (default: every topic) unsent, for the relay to publish again; returns how many per
    topic."""
    params: dict[str, object] = {"since": since or _EPOCH}
    only = ""
    if topics is not None:
        only, params["topics"] = "AND topic = ANY(CAST(:topics AS text[]))", array_literal(topics)
    with engine.begin() as conn:
        rows: Sequence[tuple[str, int]] = conn.execute(
            text(_MARK_UNSENT.format(topics=only)), params
        ).all()
    return Counter(dict(rows))


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A moment: ISO 8601 (``2026-12-03T06:00``, UTC unless it names a zone) or an age
    back from now (``90s``, ``15m``, ``12h``, ``7d``)."""
    from messaging.retention import parse_age

    try:
        return (now or datetime.now(UTC)) - parse_age(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use e.g. 2026-12-03T06:00, "
                         "2026-12-03T06:00+01:00 or an age such as 90m)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sent_per_topic(engine: Engine) -> dict[str, int]:
    """How many single-event rows the outbox holds as sent, per topic."""
    with engine.connect() as conn:
        rows: Sequence[tuple[str, int]] = conn.execute(_SENT_PER_TOPIC).all()
        return dict(rows)


@dataclass(frozen=True)
class BrokerState:
    cluster_id: str | None
    # topic -> partition -> end offset; a topic the broker lacks is absent
    ends: dict[str, dict[int, int]]
    # topic -> messages it holds, when counted (``BrokerProbe.read_counted``)
    counted: dict[str, int] | None = None

    def messages(self, topic: str) -> int:
        if self.counted is not None:
            return self.counted.get(topic, 0)
        return sum(self.ends.get(topic, {}).values())


class BrokerProbe:
    """Reads the cluster id and the end offsets of topics (one client, kept open)."""

    def __init__(self, settings: Settings, timeout: float = 10.0):
        self.settings = settings
        self.timeout = timeout
        self.consumer = Consumer(_reader_config(settings))

    def read(self, topics: Iterable[str]) -> BrokerState:
        metadata = self.consumer.list_topics(timeout=self.timeout)
        ends = {}
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                continue
            ends[topic] = {
                partition: self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), self.timeout)[1]
                for partition in meta.partitions
            }
        return BrokerState(metadata.cluster_id, ends)

    def read_counted(self, topics: Iterable[str]) -> BrokerState:
        """Like ``read``, with the messages of each topic counted from the offsets of
        their partitions' last messages: Tansu reports the offset after the first message
        of the last batch as a partition's end, less than the messages it holds."""
        state = self.read(topics)
        counted = {
            topic: sum(_last_offsets(self.settings, topic, by_partition, self.timeout).values())
            for topic, by_partition in state.ends.items()}
        return BrokerState(state.cluster_id, state.ends, counted)

    def close(self) -> None:
        self.consumer.close()


def _reader_config(settings: Settings, **overrides: Any) -> ClientConfig:
    return {"bootstrap.servers": settings.kafka_bootstrap, "group.id": "ates-outbox-watch",
            "enable.auto.commit": False} | overrides


def _last_offsets(settings: Settings, topic: str, ends: dict[int, int],
                  timeout: float) -> dict[int, int]:
    """Per partition, the offset after its last message (reads from the reported end on)."""
    counted = dict(ends)
    waiting = {p for p, end in ends.items() if end > 0}
    if not waiting:
        return counted
    consumer = Consumer(_reader_config(settings, **{"enable.partition.eof": True}))
    try:
        consumer.assign([TopicPartition(topic, p, ends[p] - 1) for p in waiting])
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                _, partition, offset = position_of(message)
                counted[partition] = max(counted[partition], offset + 1)
            elif error.code() == KafkaError._PARTITION_EOF:
                waiting.discard(message.partition())
    finally:
        consumer.close()
    return counted


class BrokerWatch:
    """What one relay observed of its broker, to tell when the broker forgot."""

    def __init__(self) -> None:
        self.cluster_id: str | None = None
        self.reported: dict[tuple[str, int], int] = {}  # end offsets the broker reported
        self.acked: dict[tuple[str, int], int] = {}  # after the highest offset acknowledged
        self.lowered: set[str] = set()  # topics acknowledged lower than before
        self.suspected = False  # the broker was unreachable: it may be another one now

    @property
    def doubt(self) -> bool:
        return bool(self.lowered) or self.suspected

    def suspect(self) -> None:
        self.suspected = True

    def topics(self) -> set[str]:
        return {topic for topic, _ in self.reported} | {topic for topic, _ in self.acked}

    def acknowledged(self, topic: str, partition: int, offset: int) -> None:
        """A broker that keeps its log never acknowledges an offset twice."""
        key = (topic, partition)
        if offset < self.acked.get(key, 0):
            self.lowered.add(topic)
        else:
            self.acked[key] = offset + 1

    def lost_topics(
        self, state: BrokerState, sent: Mapping[str, int] | None = None
    ) -> dict[str, str]:
        """The topics ``state`` shows the broker lost, each with why; then takes ``state``
        as what is observed from now on."""
        topics = self.topics() | set(sent or {})
        if self.cluster_id is not None and state.cluster_id != self.cluster_id:
            lost = dict.fromkeys(topics, "cluster-changed")
        else:
            lost = {topic: reason for topic in topics
                    if (reason := self._lost(topic, state, sent or {}))}
        self._observe(state, topics, lost)
        return lost

    def _lost(self, topic: str, state: BrokerState, sent: Mapping[str, int]) -> str | None:
        if topic not in state.ends and (sent.get(topic) or self._seen(topic)):
            return "topic-missing"
        ends = state.ends.get(topic, {})
        if topic in self.lowered or any(
            ends.get(p, 0) < end for (t, p), end in self.reported.items() if t == topic
        ):
            return "offsets-lower"
        if state.messages(topic) < sent.get(topic, 0):
            return "fewer-than-sent"
        return None

    def _seen(self, topic: str) -> bool:
        return any(end > 0 for (t, _), end in (self.reported | self.acked).items()
                   if t == topic)

    def _observe(self, state: BrokerState, topics: Iterable[str], lost: Iterable[str]) -> None:
        self.cluster_id = state.cluster_id
        for topic in topics:
            self.reported = {k: v for k, v in self.reported.items() if k[0] != topic}
            self.reported |= {(topic, p): end for p, end in state.ends.get(topic, {}).items()}
        for topic in lost:
            self.acked = {k: v for k, v in self.acked.items() if k[0] != topic}
        self.lowered.clear()
        self.suspected = False


class Healer:
    """Checks the broker against what was observed and marks what it lost unsent."""

    def __init__(self, engine: Engine, settings: Settings, outbox_name: str,
                 probe: BrokerProbe | None = None):
        self.engine = engine
        self.outbox_name = outbox_name
        self.watch = BrokerWatch()
        self._settings = settings
        self._probe = probe

    @property
    def probe(self) -> BrokerProbe:
        if self._probe is None:
            self._probe = BrokerProbe(self._settings)
        return self._probe

    def check_at_start(self) -> Counter[str]:
        """The start-up check: the outbox says what the broker must at least hold."""
        sent = sent_per_topic(self.engine)
        return self._heal(self.probe.read_counted(self.watch.topics() | set(sent)), sent)

    def check(self) -> Counter[str]:
        """Mark unsent every retained row of the topics the broker lost; returns how many
        per topic (empty when it lost nothing)."""
        return self._heal(self.probe.read(self.watch.topics()))

    def _heal(self, state: BrokerState, sent: Mapping[str, int] | None = None) -> Counter[str]:
        lost = self.watch.lost_topics(state, sent)
        if not lost:
            return Counter()
        marked = mark_unsent(self.engine, topics=list(lost))
        for topic, reason in sorted(lost.items()):
            REPUBLISHED.labels(self.outbox_name, topic, reason).inc(marked[topic])
            log.warning("the broker lost events it had acknowledged; publishing the "
                        "retained ones again", outbox=self.outbox_name, topic=topic,
                        reason=reason, events=marked[topic])
        return marked

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
