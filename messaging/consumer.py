"""Consumer runtime: validated, idempotent, batched event handling with dead letters.

For every batch polled from Kafka:
1. each message is parsed and validated against ``event_schemas``; an invalid one, or one
   whose version has no handler, is a dead letter;
2. the handled events run in one database transaction together with the inbox rows that
   record their ids (an id already in the inbox is skipped: redelivery is a no-op);
3. if that fails, each event is retried on its own: transient errors (database or network
   down) with backoff until they pass, other errors ``max_attempts`` times, then the
   event goes to ``<topic>.dlq`` and the partition moves on;
4. dead letters are written until the broker has them all (retried with backoff), and
   only then are the offsets committed. A batch that fails anywhere is read again from
   its first message: no offset moves past an event neither applied nor dead-lettered.

A copy republished by a redrive for another consumer (``messaging.dlq.redriven_for``) is
skipped: this consumer already applied or dead-lettered the original.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import structlog
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from opentelemetry.trace import Span
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from event_schemas import (
    Event,
    EventSchemaError,
    SchemaRegistry,
    UnknownEventVersion,
    default_registry,
)
from messaging import event_telemetry
from messaging.dlq import DeadLetterPublisher, redriven_for
from messaging.kafka import ConsumedMessage, consumer_config, position_of, producer_config
from messaging.tables import inbox
from platform_kit import metrics, tracing
from platform_kit.db import driver_of, make_session_factory
from platform_kit.settings import Settings

log = structlog.get_logger("messaging.consumer")

Handler = Callable[[Session, Event], None]
BatchHandler = Callable[[Session, list[Event]], None]


class TransientError(Exception):
    """Raised by a handler when the event may succeed later (retried with backoff)."""


class PermanentError(Exception):
    """Raised by a handler when the event can never be handled (dead-lettered at once)."""


class HandlerRegistry:
    """Handlers keyed by (event type, data version)."""

    def __init__(self) -> None:
        self._handlers: dict[str, dict[int, Handler]] = {}

    def register(self, event_type: str, versions: Iterable[int], handler: Handler) -> None:
        by_version = self._handlers.setdefault(event_type, {})
        for version in versions:
            if version in by_version:
                raise ValueError(f"{event_type} v{version} already has a handler")
            by_version[version] = handler

    def register_batch(
        self, event_type: str, versions: Iterable[int], handler: BatchHandler
    ) -> None:
        """Register a handler that takes a run of consecutive events of this type at once.

        For high-volume events whose effects are cheaper written in bulk; the events of
        a run are still applied in the order they were consumed.
        """
        self.register(event_type, versions, _BatchAdapter(handler))

    def on(self, event_type: str, *versions: int) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self.register(event_type, versions or (1,), handler)
            return handler

        return decorator

    def find(self, event: Event) -> Handler | None:
        """The handler for ``event``; None if this consumer ignores the type."""
        by_version = self._handlers.get(event.type)
        if by_version is None:
            return None
        handler = by_version.get(event.dataversion)
        if handler is None:
            raise UnknownEventVersion(
                f"no handler for {event.type} version {event.dataversion}; "
                f"handled versions: {sorted(by_version)}"
            )
        return handler

    @property
    def event_types(self) -> list[str]:
        return sorted(self._handlers)

    def limited_to(self, accepted: Mapping[str, Collection[int]]) -> HandlerRegistry:
        """A copy that handles only the ``accepted`` versions of the types it names (the
        other versions of those types then fail as unknown, like in an older release)."""
        limited = HandlerRegistry()
        for event_type, by_version in self._handlers.items():
            keep = accepted.get(event_type)
            limited._handlers[event_type] = {
                v: h for v, h in by_version.items() if keep is None or v in keep
            }
        return limited


class _BatchAdapter:
    def __init__(self, handler: BatchHandler):
        self.batch = handler

    def __call__(self, session: Session, event: Event) -> None:
        self.batch(session, [event])


def is_transient(exc: BaseException) -> bool:
    if isinstance(
        exc, TransientError | OperationalError | InterfaceError | psycopg.OperationalError
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


@dataclass
class Delivery:
    message: ConsumedMessage
    event: Event | None = None
    handler: Handler | None = None
    error: str | None = None
    span: Span | None = None

    def work(self) -> tuple[Event, Handler]:
        """The event and its handler, of a delivery this consumer handles."""
        if self.event is None or self.handler is None:
            raise ValueError("a delivery without an event or a handler is not handled")
        return self.event, self.handler


def runs_in_key_order(deliveries: Iterable[Delivery]) -> list[list[Delivery]]:
    """The deliveries as runs of one handler each, as few runs as per-key order allows.

    Kafka orders events per key only, so events of different keys may be applied in any
    order: a batch alternating two types (``task.added``, ``task.assigned`` of task after
    task) takes two runs instead of one per event. Each delivery joins the first run of
    its handler that comes after the run holding the previous delivery of its key (that
    very run when it has the same handler), else opens a new run at the end. Should that
    ever give more runs than taking consecutive deliveries of one handler together, the
    latter is used.
    """
    deliveries = list(deliveries)
    if len({id(d.handler) for d in deliveries}) <= 1:
        return [deliveries] if deliveries else []  # one handler: one run, in order
    merged = _first_fit_runs(deliveries)
    consecutive = [list(run) for _, run in itertools.groupby(deliveries, lambda d: d.handler)]
    return merged if len(merged) <= len(consecutive) else consecutive


def runs_by_handler(deliveries: Iterable[Delivery]) -> list[list[Delivery]]:
    """The deliveries as one run per handler, each in the order consumed: for handlers
    whose effects commute, so the order across keys and handlers does not matter."""
    runs: dict[Handler | None, list[Delivery]] = {}
    for delivery in deliveries:
        runs.setdefault(delivery.handler, []).append(delivery)
    return list(runs.values())


def _first_fit_runs(deliveries: list[Delivery]) -> list[list[Delivery]]:
    runs: list[tuple[Handler | None, list[Delivery]]] = []
    run_of_key: dict[bytes | None, int] = {}
    for delivery in deliveries:
        key, handler = delivery.message.key(), delivery.handler
        earliest = run_of_key.get(key, 0)
        if key in run_of_key and runs[earliest][0] is not handler:
            earliest += 1
        chosen = next(
            (i for i in range(earliest, len(runs)) if runs[i][0] is handler), len(runs)
        )
        if chosen == len(runs):
            runs.append((handler, []))
        runs[chosen][1].append(delivery)
        run_of_key[key] = chosen
    return [run for _, run in runs]


def next_offsets(messages: Iterable[ConsumedMessage]) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the offset after the last of ``messages`` read from it."""
    after: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = position_of(message)
        key = (topic, partition)
        after[key] = max(after.get(key, 0), offset + 1)
    return after


def _run(session: Session, run: list[Delivery]) -> None:
    """Apply a run of deliveries that share one handler (all at once if it is a batch one)."""
    _, handler = run[0].work()
    if isinstance(handler, _BatchAdapter):
        handler.batch(session, [d.work()[0] for d in run])
        return
    for delivery in run:
        event, _ = delivery.work()
        with event_telemetry.handling(event, delivery.span):
            handler(session, event)


# One statement over two JSON arrays: a multi-row VALUES list of a whole batch costs more
# to build and send than the insert itself, and a JSON array is serialised in one C call.
# The ids recorded come back as one row (how many, and their list), not a row each.
# Written for the driver: it is sent in one round trip with the transaction's BEGIN.
RECORD_IN_INBOX = (
    f"WITH recorded AS (INSERT INTO {inbox.name} (consumer, event_id, event_type) "
    "SELECT %(consumer)s, CAST(e.id AS uuid), e.type "
    "FROM ROWS FROM (json_array_elements_text(CAST(%(ids)s AS json)),"
    " json_array_elements_text(CAST(%(types)s AS json))) AS e(id, type) "
    "ON CONFLICT DO NOTHING RETURNING event_id) "
    "SELECT count(*), coalesce(string_agg(CAST(event_id AS text), ','), '') FROM recorded"
)


LAG_INTERVAL_SECONDS = 5.0


class Interrupted(Exception):
    """Stop was requested while a transient failure was being retried."""


class EventProcessor:
    """Turns consumed messages into applied effects, exactly once per event id.

    Independent of how messages are fetched: the confluent-kafka runtime below and the
    analytics stream both feed it. Messages need the accessors of a confluent-kafka
    ``Message`` (topic, partition, offset, key, value, headers).

    A consumer whose handlers' effects commute (``effects_commute``: sums, "newest
    version wins") has each handler run once per batch; otherwise the events of one key
    are applied in the order consumed (``runs_in_key_order``).
    """

    def __init__(
        self,
        name: str,
        session_factory: Callable[[], Session],
        handlers: HandlerRegistry,
        dead_letters: DeadLetterPublisher,
        registry: SchemaRegistry | None = None,
        max_attempts: int = 3,
        backoff_base: float = 0.05,
        backoff_max: float = 5.0,
        effects_commute: bool = False,
    ):
        self.name = name
        self.session_factory = session_factory
        self.handlers = handlers
        self.dead_letters = dead_letters
        self.registry = registry or default_registry()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.runs = runs_by_handler if effects_commute else runs_in_key_order

    def process(self, messages: Sequence[ConsumedMessage], stop: threading.Event) -> None:
        """Apply, skip or dead-letter every message; dead letters are stored on return.

        Raises ``Interrupted`` (nothing may then be acknowledged) when ``stop`` is set
        while a transient failure is being retried.
        """
        traced = tracing.enabled()  # once per batch: it looks up the global provider
        deliveries = [self._decode(m, traced) for m in messages]
        try:
            self._handle(deliveries, stop)
        finally:
            for delivery in deliveries:
                if delivery.span is not None:
                    tracing.end_span(delivery.span, delivery.error)
        dead = [(d.message, d.event, d.error) for d in deliveries if d.error is not None]
        self.dead_letters.store(
            [(message, error) for message, _, error in dead],
            wait=lambda attempt: self._sleep_backoff(attempt, stop),
        )
        event_telemetry.count(metrics.EVENTS_CONSUMED, self.name, [d.event for d in deliveries])
        event_telemetry.count(metrics.EVENTS_DEAD_LETTERED, self.name,
                              [event for _, event, _ in dead])

    def _decode(self, message: ConsumedMessage, traced: bool) -> Delivery:
        delivery = Delivery(message)
        if redriven_for(message) not in (None, self.name):
            return delivery
        try:
            delivery.event = self.registry.parse(message.value())
            delivery.handler = self.handlers.find(delivery.event)
        except EventSchemaError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        if traced and delivery.handler is not None:
            delivery.span, delivery.event = event_telemetry.start_processing(
                self.name, message, delivery.work()[0]
            )
        return delivery

    def _handle(self, deliveries: list[Delivery], stop: threading.Event) -> None:
        work = [d for d in deliveries if d.handler is not None and d.error is None]
        if not work:
            return
        try:
            self._apply(work)
            return
        except Exception as exc:
            log.info("batch failed, handling events one by one", consumer=self.name, error=str(exc))
        for delivery in work:
            self._handle_one(delivery, stop)

    def _apply(self, work: list[Delivery]) -> None:
        """Run handlers for the not-yet-seen events of ``work`` in one transaction."""
        with self.session_factory() as session, session.begin():
            events = [d.work()[0] for d in work]
            count, fresh = self._record_in_inbox(session, events)
            unseen = work if count == len(work) else _unseen(work, events, fresh)
            for run in self.runs(unseen):
                _run(session, run)

    def _record_in_inbox(self, session: Session, events: list[Event]) -> tuple[int, set[str]]:
        """Insert the events' ids into the inbox; returns how many were not there yet,
        and which (lower-case text)."""
        parameters = {"consumer": self.name, "ids": orjson.dumps([e.id for e in events]).decode(),
                      "types": orjson.dumps([e.type for e in events]).decode()}
        # The first statement of the transaction: in a pipeline, the driver sends the
        # BEGIN it opens the transaction with and the insert together, and reads both
        # answers at the pipeline's end, instead of a round trip for each.
        driver = driver_of(session)
        with driver.pipeline():
            cursor = driver.execute(RECORD_IN_INBOX, parameters)
        recorded = cursor.fetchone()
        assert recorded is not None
        count: int = recorded[0]
        ids: str = recorded[1]
        return count, set(ids.split(",")) if ids else set()

    def _handle_one(self, delivery: Delivery, stop: threading.Event) -> None:
        event, _ = delivery.work()
        attempt = 0
        while True:
            attempt += 1
            try:
                with event_telemetry.handling(event, delivery.span):
                    self._apply([delivery])
                return
            except Exception as exc:
                event_telemetry.count(metrics.EVENTS_FAILED, self.name, [event])
                if is_transient(exc):
                    log.warning("transient failure, retrying", consumer=self.name,
                                event_id=event.id, attempt=attempt, error=str(exc))
                elif isinstance(exc, PermanentError) or attempt >= self.max_attempts:
                    log.error("event dead-lettered", consumer=self.name,
                              event_id=event.id, error=str(exc))
                    delivery.error = f"{type(exc).__name__}: {exc}"
                    return
                self._sleep_backoff(attempt, stop)

    def _sleep_backoff(self, attempt: int, stop: threading.Event) -> None:
        # the exponent is capped: an outage of hours means attempts beyond a float's range
        delay = min(self.backoff_max, self.backoff_base * 2 ** min(attempt - 1, 32))
        if stop.wait(delay * random.uniform(0.5, 1.0)):
            raise Interrupted()


def _unseen(work: list[Delivery], events: list[Event], fresh: set[str]) -> list[Delivery]:
    """The deliveries whose events were just recorded in the inbox (``fresh``), each id
    once."""
    unseen = []
    for delivery, event in zip(work, events, strict=True):
        event_id = event.id.lower()  # as PostgreSQL spells a uuid
        if event_id in fresh:
            fresh.discard(event_id)
            unseen.append(delivery)
    return unseen


def usable(message: Message, consumer: str) -> bool:
    """Whether a consumed message carries an event; a read error is logged (reaching the
    end of a partition is none)."""
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consume error", consumer=consumer, error=str(error))
    return False


class ConsumerRuntime:
    """An ``EventProcessor`` fed by a confluent-kafka consumer group, committing offsets
    only after each batch is applied and its dead letters are stored."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        settings: Settings,
        handlers: HandlerRegistry,
        topics: Iterable[str],
        registry: SchemaRegistry | None = None,
        batch_size: int = 500,
        max_attempts: int = 3,
        backoff_base: float = 0.05,
        backoff_max: float = 5.0,
        consumer_overrides: dict[str, Any] | None = None,
    ):
        self.name = name
        self.group_id = settings.topic_prefix + name
        self.settings = settings
        self.topics = [settings.topic(t) for t in topics]
        self.batch_size = batch_size
        self.stop_requested = threading.Event()
        self.processor = EventProcessor(
            name, make_session_factory(engine),
            handlers.limited_to(settings.accepted_event_versions),
            DeadLetterPublisher(Producer(producer_config(settings)), name), registry,
            max_attempts, backoff_base, backoff_max,
        )
        self.consumer = Consumer(
            consumer_config(settings, self.group_id, **(consumer_overrides or {}))
        )
        self.consumer.subscribe(self.topics)
        self.lag = metrics.LagGauge(self.group_id)
        self._lag_reading = metrics.Every(LAG_INTERVAL_SECONDS)

    # -- loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self.stop_requested
        log.info("consumer started", consumer=self.name, topics=self.topics)
        try:
            while not stop.is_set() and not self.stop_requested.is_set():
                try:
                    self.poll_once(1.0, stop)
                    self._record_lag_when_due()
                except Interrupted:
                    break
                except Exception:
                    log.exception(
                        "consumer batch failed; it will be redelivered", consumer=self.name
                    )
                    time.sleep(1.0)
        finally:
            self.close()

    def poll_once(self, timeout: float = 1.0, stop: threading.Event | None = None) -> int:
        """Handle one batch; returns the number of messages whose offsets were committed.

        If the batch fails, the consumer is rewound to its first message (the next poll
        reads it again) and the error is raised.
        """
        messages = [m for m in self._next_batch(timeout) if usable(m, self.name)]
        if not messages:
            return 0
        try:
            self.processor.process(messages, stop or self.stop_requested)
        except BaseException:
            self._rewind(messages)
            raise
        self._commit(messages)
        return len(messages)

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            topic, partition, offset = position_of(message)
            key = (topic, partition)
            first[key] = min(first.get(key, offset), offset)
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except Exception as exc:
                # No longer assigned: its next owner starts from the committed offset,
                # which is still before this batch.
                log.warning("rewind failed", consumer=self.name, topic=topic,
                            partition=partition, error=str(exc))

    def _next_batch(self, timeout: float) -> list[Message]:
        # consume(n, timeout) would wait for a full batch; wait for one message instead,
        # then take whatever else has already been fetched.
        first = self.consumer.poll(timeout)
        if first is None:
            return []
        return [first, *self.consumer.consume(self.batch_size - 1, 0)]

    def wait_for_assignment(self, timeout: float = 30.0) -> None:
        """Block until the group has given this consumer its partitions (nothing handled)."""
        deadline = time.monotonic() + timeout
        while not self.consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no partitions assigned after {timeout}s")
            # Serves the rebalance callbacks; a message it happens to return is not handled
            # here, so rewind to it (else the next commit would skip it: a lost event).
            message = self.consumer.poll(0)
            if message is not None and message.error() is None:
                self.consumer.seek(TopicPartition(*position_of(message)))
            time.sleep(0.05)

    def record_lag(self, timeout: float = 5.0) -> dict[tuple[str, int], int]:
        """Set the lag gauge of every partition held (its end offset minus this consumer's
        position, or committed offset before anything was fetched); returns the lags."""
        positions = self.consumer.position(self.consumer.assignment())
        unknown = [tp for tp in positions if tp.offset < 0]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (self.consumer.committed(unknown, timeout) if unknown else [])
        }
        lags = {}
        for tp in positions:
            low, high = self.consumer.get_watermark_offsets(tp, timeout)
            offset = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            lags[(tp.topic, tp.partition)] = max(0, high - (offset if offset >= 0 else low))
        self.lag.update(lags)
        return lags

    def _record_lag_when_due(self) -> None:
        if not self._lag_reading.due():
            return
        try:
            self.record_lag()
        except Exception as exc:
            log.warning("consumer lag not measured", consumer=self.name, error=str(exc))

    def close(self) -> None:
        self.lag.update({})
        try:
            self.consumer.close()
        except RuntimeError:
            pass  # already closed
        self.processor.dead_letters.flush()

    def _commit(self, messages: list[Message]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets(messages).items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:
            # The batch is already applied and recorded in the inbox; whoever gets these
            # partitions next will see them as duplicates.
            log.warning("offset commit failed", consumer=self.name, error=str(exc))
