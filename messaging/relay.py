"""Outbox relay: publishes stored events to Kafka, in order per key, at least once.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several relay replicas can run side
by side. A row is marked sent only after the broker acknowledged it (acks=all) — a
deferred row once every event it renders was acknowledged; a relay that dies in between
publishes the row again later, and consumers drop the duplicate by event id.

A broker can forget what it acknowledged (a memory-only one restarted, a topic lost): the
relay checks at start-up and every few seconds, and marks the retained rows of what was
lost unsent again (``messaging.replay``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from opentelemetry.trace import Span, SpanKind
from sqlalchemy import Connection, Engine, func, select, text

from messaging.kafka import DeliveryCallback, OutgoingHeader, produce_waiting, producer_config
from messaging.outbox import OutboxRow, RenderedEvent, Renderer, UnknownRenderer, events_of
from messaging.replay import Healer
from messaging.tables import outbox
from platform_kit import metrics, tracing
from platform_kit.db import array_literal
from platform_kit.settings import Settings

log = structlog.get_logger("messaging.relay")

BACKLOG_INTERVAL_SECONDS = 5.0
BROKER_CHECK_SECONDS = 5.0


# Batch statements bind their ids as one array: lists of a thousand parameters cost more
# to build and send than the statements themselves.
# A deferred row stands for events of any key: every later row waits for it.
_EARLIER_UNSENT_PER_KEY = text(
    f"SELECT key, min(id), renderer IS NOT NULL AS deferred FROM {outbox.name} "
    "WHERE sent_at IS NULL AND (key = ANY(CAST(:keys AS text[])) OR renderer IS NOT NULL) "
    "AND id < :last_id AND NOT id = ANY(CAST(:ids AS bigint[])) GROUP BY key, deferred"
)
_MARK_SENT = text(
    f"UPDATE {outbox.name} SET sent_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"
)


@dataclass(frozen=True)
class Backlog:
    unsent: int
    oldest_age_seconds: float


class Relay:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        batch_size: int = 1000,
        idle_sleep: float = 0.1,
        flush_timeout: float = 30.0,
        producer: Producer | None = None,
        renderers: Mapping[str, Renderer] | None = None,
        broker_check_seconds: float = BROKER_CHECK_SECONDS,
    ):
        self.engine = engine
        self.settings = settings
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.flush_timeout = flush_timeout
        self._brokers_were_down = self._replaced = False
        self.producer = producer or self._new_producer()
        self.renderers = renderers or {}
        self._held_rows: set[int] = set()  # deferred rows already reported unrenderable
        self.outbox_name = engine.url.database or outbox.name
        self._backlog_reading = metrics.Every(BACKLOG_INTERVAL_SECONDS)
        self.healer = Healer(engine, settings, self.outbox_name)
        self._broker_check = metrics.Every(broker_check_seconds)
        self._checked_at_start = False

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set; sleeps briefly whenever the outbox is empty."""
        while not stop.is_set():
            try:
                if not self.heal_when_due():
                    stop.wait(1.0)
                    continue
                published = self.run_once()
                if self._backlog_reading.due():
                    self.record_backlog()
            except Exception:
                log.exception("relay batch failed; retrying")
                published = 0
                stop.wait(1.0)
            if not published:
                stop.wait(self.idle_sleep)

    def heal_when_due(self) -> bool:
        """Check that the broker still holds what it acknowledged: first the start-up
        check, then every few seconds, and at once after the broker was unreachable or
        acknowledged an offset lower than before. False when the broker did not answer:
        nothing is published until it was checked."""
        if not (self.healer.watch.doubt or self._broker_check.due()):
            return True
        try:
            self.heal(at_start=not self._checked_at_start)
        except Exception as exc:
            log.warning("broker not checked; trying again", error=str(exc))
            self.healer.watch.suspect()
            return False
        self._checked_at_start = True
        return True

    def heal(self, at_start: bool = False) -> dict[str, int]:
        """Mark unsent the retained rows of every topic the broker lost; returns how many
        per topic. ``at_start``: compare the broker with the rows marked sent (nothing was
        observed of it yet)."""
        return self.healer.check_at_start() if at_start else self.healer.check()

    def run_once(self) -> int:
        """Publish one batch; returns how many events were confirmed by the broker."""
        with self.engine.begin() as conn:
            rows = self._claim(conn)
            if not rows:
                return 0
            rows = self._without_overtaking(conn, rows)
            try:
                deliveries = self._produce(conn, rows)
            except (KafkaException, SystemError) as error:
                # A fatal producer (an idempotent one whose broker forgot its sequence
                # numbers; the client may report it as a SystemError from ``flush``)
                # refuses every message for good: the batch is published by a new one.
                if isinstance(error, SystemError) or _is_fatal(error):
                    self._replace_producer()
                raise
            self._mark_sent(conn, deliveries.rows_done)
            return deliveries.events_done

    def _claim(self, conn: Connection) -> Sequence[OutboxRow]:
        query = (
            select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.headers,
                   outbox.c.event_type, outbox.c.dataversion, outbox.c.renderer)
            .where(outbox.c.sent_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        return conn.execute(query).all()

    def _without_overtaking(
        self, conn: Connection, rows: Sequence[OutboxRow]
    ) -> Sequence[OutboxRow]:
        """Drop rows whose key has an earlier unsent row held by another relay.

        Publishing them now would overtake that earlier event; they are picked up again
        once it has been sent.
        """
        ids = [r.id for r in rows]
        # (key, its first unsent row, whether that row is a deferred one)
        earlier: Sequence[tuple[str, int, bool]] = conn.execute(
            _EARLIER_UNSENT_PER_KEY,
            {"keys": array_literal({r.key for r in rows}), "ids": array_literal(ids),
             "last_id": max(ids)},
        ).all()
        if not earlier:
            return rows
        first_foreign = {key: first for key, first, deferred in earlier if not deferred}
        first_deferred = min((first for _, first, deferred in earlier if deferred), default=None)
        return [
            r for r in rows
            if (first_deferred is None or r.id < first_deferred)
            and (r.key not in first_foreign or r.id < first_foreign[r.key])
        ]

    def _produce(self, conn: Connection, rows: Sequence[OutboxRow]) -> _Deliveries:
        deliveries = _Deliveries(acknowledged_at=self.healer.watch.acknowledged)
        traced = tracing.enabled()
        for row in rows:
            span = _publish_span(row) if traced else None
            headers = _with_trace(row.headers or {}, span)
            try:
                self._produce_row(conn, row, [(k, v.encode()) for k, v in headers.items()],
                                  deliveries)
            except UnknownRenderer as unknown:
                # Nothing after it may overtake its events: stop here until a relay that
                # knows the renderer publishes them.
                if row.id not in self._held_rows:
                    self._held_rows.add(row.id)
                    log.error("outbox row needs a renderer this relay lacks; holding it and "
                              "every later row", row=row.id, renderer=str(unknown))
                break
            finally:
                if span is not None:
                    span.end()
        remaining = self._flush()
        if (deliveries.failures or remaining) and not self._replaced:
            self._replace_producer()
        deliveries.count_published()
        if deliveries.failures or remaining:
            log.warning(
                "relay deliveries failed",
                failed=len(deliveries.failures),
                undelivered=remaining,
                first_error=deliveries.failures[0] if deliveries.failures else None,
            )
        return deliveries

    def _flush(self) -> int:
        """Wait for the broker's acknowledgements; returns how many did not come. Gives
        up at once when the broker was unreachable meanwhile: a broker started again
        empty would never accept this producer's next sequence numbers (idempotence), so
        a fresh producer publishes the batch again once the broker was checked."""
        self._brokers_were_down = self._replaced = False
        deadline = time.monotonic() + self.flush_timeout
        while True:
            remaining = self.producer.flush(min(0.5, max(0.0, deadline - time.monotonic())))
            if not remaining or time.monotonic() >= deadline:
                return remaining
            if self._brokers_were_down:
                self._replace_producer()
                return remaining

    def _replace_producer(self) -> None:
        self._replaced = True
        try:
            self.producer.purge()
            self.producer.flush(0)  # serves the purged messages' callbacks (failures)
        except (KafkaException, SystemError):
            log.warning("the producer being replaced could not be emptied", exc_info=True)
        self.producer = self._new_producer()
        self.healer.watch.suspect()
        log.warning("deliveries failed or the broker was unreachable; publishing the rest "
                    "again with a new producer once the broker was checked")

    def _new_producer(self) -> Producer:
        return Producer(producer_config(self.settings, error_cb=self._on_client_error))

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_were_down = True

    def _produce_row(self, conn: Connection, row: OutboxRow, headers: list[OutgoingHeader],
                     deliveries: _Deliveries) -> None:
        events = events_of(conn, row, self.renderers)
        produced, callback = deliveries.start(row.id)
        for event in events:
            produced[(row.topic, event.event_type, str(event.dataversion))] += 1
            self._produce_one(row.topic, event, headers, callback)

    def _produce_one(self, topic: str, event: RenderedEvent, headers: list[OutgoingHeader],
                     callback: DeliveryCallback) -> None:
        produce_waiting(self.producer, topic, key=event.key.encode(), value=event.payload,
                        headers=headers, on_delivery=callback)

    def _mark_sent(self, conn: Connection, ids: list[int]) -> None:
        if ids:
            conn.execute(_MARK_SENT, {"ids": array_literal(ids)})

    def backlog(self) -> Backlog:
        with self.engine.connect() as conn:
            return outbox_backlog(conn)

    def record_backlog(self) -> Backlog:
        """Measure the backlog into the outbox gauges; returns it."""
        backlog = self.backlog()
        metrics.record_backlog(self.outbox_name, backlog.unsent, backlog.oldest_age_seconds)
        return backlog

    def close(self) -> None:
        self.producer.flush(10)
        self.healer.close()


def _publish_span(row: OutboxRow) -> Span:
    """A producer span, child of the context the event was written in."""
    return tracing.start_span(
        f"publish {row.event_type}", (row.headers or {}).get(tracing.TRACEPARENT),
        SpanKind.PRODUCER,
        {"messaging.system": "kafka", "messaging.destination.name": row.topic,
         "ates.outbox.row": row.id},
    )


def _with_trace(headers: dict[str, str], span: Span | None) -> dict[str, str]:
    """Consumers continue the trace from the publish span (the payload keeps the context
    the event was written in)."""
    traceparent = tracing.traceparent_of(span) if span is not None else None
    return headers | {tracing.TRACEPARENT: traceparent} if traceparent else headers


# The labels of a published event: (topic, event type, data version).
_Labels = tuple[str, str, str]


def _is_fatal(error: KafkaException) -> bool:
    reason = error.args[0] if error.args else None
    return isinstance(reason, KafkaError) and reason.fatal()


@dataclass
class _Deliveries:
    """What one batch produced and what the broker acknowledged, per outbox row."""

    produced: dict[int, Counter[_Labels]] = field(default_factory=dict)  # per row
    acknowledged: Counter[int] = field(default_factory=Counter)  # events per row
    failures: list[str] = field(default_factory=list)
    # told (topic, partition, offset) of each acknowledged event whose offset the broker
    # reported (the client gives none otherwise: it is delivered all the same)
    acknowledged_at: Callable[[str, int, int], None] | None = None

    def start(self, row_id: int) -> tuple[Counter[_Labels], DeliveryCallback]:
        """The counter of the row's produced events and the delivery callback of each."""
        produced = self.produced[row_id] = Counter()

        def callback(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                self.acknowledged[row_id] += 1
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if (self.acknowledged_at is not None and topic is not None
                        and partition is not None and offset is not None):
                    self.acknowledged_at(topic, partition, offset)
            else:
                self.failures.append(str(err))

        return produced, callback

    @property
    def rows_done(self) -> list[int]:
        """Rows every event of which the broker acknowledged, in order."""
        return [i for i, kinds in self.produced.items()
                if self.acknowledged[i] == kinds.total()]

    @property
    def events_done(self) -> int:
        return sum(self.acknowledged[i] for i in self.rows_done)

    def count_published(self) -> None:
        published: Counter[_Labels] = Counter()
        for row_id in self.rows_done:
            published.update(self.produced[row_id])
        for labels, count in published.items():
            metrics.EVENTS_PUBLISHED.labels(*labels).inc(count)


def outbox_backlog(conn: Connection) -> Backlog:
    count, oldest = conn.execute(
        select(
            func.count(),
            func.extract("epoch", func.now() - func.min(outbox.c.created_at)),
        ).where(outbox.c.sent_at.is_(None))
    ).one()
    return Backlog(unsent=count, oldest_age_seconds=float(oldest or 0.0))


def run_relay_forever(
    engine: Engine,
    settings: Settings,
    stop: threading.Event,
    renderers: Mapping[str, Renderer] | None = None,
) -> None:
    relay = Relay(engine, settings, renderers=renderers)
    log.info("relay started")
    try:
        relay.run(stop)
    finally:
        relay.close()
        log.info("relay stopped")
