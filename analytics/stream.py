"""The projector: a faust-streaming application that keeps the analytics database.

One agent reads the topics of ``analytics.consumers.CONSUMED_TOPICS`` in batches. Each
batch is validated against ``event_schemas``; its new events (the inbox filters ids
already handled) are applied in one database transaction together with their inbox rows,
and only then are the messages acknowledged, so faust commits their offsets. An event
that can never be applied (invalid, unknown version, a bug) goes to ``<topic>.dlq`` with
the error, in the format of ``messaging.dlq``, and the batch moves on once the broker has
stored its dead letters (retried until it has: a letter too big for it is truncated,
never dropped).

The worker thread runs faust on an event loop of its own; database work runs in a helper
thread so the loop keeps serving the consumer group meanwhile, and keeps taking messages:
those that arrive while a batch is applied make the next batch (batches grow when the
database is slow), applied once the one before it is. A batch is acknowledged after it
is applied; after a failed batch nothing more is applied or acknowledged, and the
projector stops so that a fresh one reads again from the first unacknowledged message.

A rebuild replays the topics through the same ``Projector`` (the same batches, one
statement per table), read by a plain client from partitions assigned to it: a replay
has nothing to share with a group nor offsets to commit, and skips the group join.

Faust's consumer is tuned for this one stream: it hands each fetched message to the stream
directly instead of racing the hand-over against a flow stop (which costs four asyncio
tasks a message), racing only when the stream's buffer is full and the hand-over may
wait; and its monitor sensor (statistics for faust's web pages, which are off) is left
out, with the end offset faust fetched for it per message. Messages become events without
a codec lookup per key and value, and faust's check of its producer buffer before each
message reads the buffer's queue alone. While the app runs, what it is made of is kept
out of the garbage collector's passes.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import faust
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from faust.serializers.schemas import DecodeFunction, OnKeyDecodeErrorFun, OnValueDecodeErrorFun
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP, AppT, EventT, Message, ServiceT
from faust.types.transports import ConsumerT, TransportT
from mode import Service
from sqlalchemy import Engine

from analytics.consumers import CONSUMED_TOPICS, CONSUMER_NAME, make_handlers
from analytics.service import AnalyticsService
from event_schemas import SchemaRegistry
from messaging.consumer import (
    EventProcessor,
    HandlerRegistry,
    Interrupted,
    next_offsets,
    usable,
)
from messaging.dlq import DeadLetterPublisher
from messaging.kafka import ConsumedMessage, consumer_config, position_of, producer_config
from platform_kit.db import make_session_factory
from platform_kit.metrics import LagGauge
from platform_kit.progress import Progress
from platform_kit.settings import Settings

log = structlog.get_logger("analytics.stream")

BATCH_SIZE = 500
# How long the stream gathers messages before handing them to the applier. Short: at a
# low rate a batch is applied soon after its first message; at a high rate batches grow
# anyway, from what arrives while the one before is applied.
BATCH_WAIT_SECONDS = 0.01
# Messages taken while a batch is applied join the next batch, up to this many.
MAX_BATCH_SIZE = 5000
STREAM_BUFFER_SIZE = 16384
REPLAY_QUIET_SECONDS = 1.0
FETCH_MAX_WAIT_MS = 100
# A rebuild's replay reads batches of up to this many messages.
REPLAY_BATCH_SIZE = 5000
REPLAY_POLL_SECONDS = 0.1

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class ReceivedMessage:
    """A consumed record, with the accessors of a confluent-kafka ``Message`` (so dead
    letters are written exactly as every other consumer of the platform writes them)."""

    topic_name: str
    partition_number: int
    offset_number: int
    key_bytes: bytes | None
    value_bytes: bytes | None
    header_items: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def of(cls, message: Message) -> ReceivedMessage:
        headers = message.headers or []
        items = cast(list[tuple[str, bytes]],
                     list(headers.items()) if isinstance(headers, dict) else list(headers))
        return cls(message.topic, message.partition, message.offset, message.key,
                   message.value, items)

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_number

    def offset(self) -> int:
        return self.offset_number

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.value_bytes

    def headers(self) -> list[tuple[str, bytes]]:
        return self.header_items


class Projector(EventProcessor):
    """The analytics consumer: applies consumed messages to the projection. Its effects
    commute (``analytics.service``), so each handler runs once for a batch."""

    def __init__(self, engine: Engine, handlers: HandlerRegistry,
                 dead_letters: DeadLetterPublisher, registry: SchemaRegistry | None = None,
                 **options: Any) -> None:
        super().__init__(CONSUMER_NAME, make_session_factory(engine), handlers, dead_letters,
                         registry, effects_commute=True, **options)

    @classmethod
    def create(cls, engine: Engine, settings: Settings, **options: Any) -> Projector:
        projection = AnalyticsService(make_session_factory(engine), ZoneInfo(settings.timezone))
        handlers = make_handlers(projection).limited_to(settings.accepted_event_versions)
        dead_letters = DeadLetterPublisher(Producer(producer_config(settings)), CONSUMER_NAME)
        return cls(engine, handlers, dead_letters, **options)

    def project(self, messages: list[ReceivedMessage], stop: threading.Event) -> None:
        """Apply ``messages``; returns once each is applied, skipped or dead-lettered."""
        self.process(messages, stop)


class CatchUp:
    """Tells when a replay has read every partition up to where it ended at the start.

    Some brokers report the end of a partition at the start of its last record batch, so
    after the ends are reached the replay also waits until nothing arrived for a while.
    """

    def __init__(self, ends: dict[TopicPartitionKey, int], quiet: float = REPLAY_QUIET_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 progress: Progress | None = None) -> None:
        self.pending = dict(ends)
        self.progress = progress
        if progress is not None:
            progress.total = sum(ends.values())
        self.quiet = quiet
        self.clock = clock
        self.last_seen = clock()
        self.first_seen: float | None = None
        self.seen = 0

    def saw(self, messages: Sequence[ConsumedMessage]) -> None:
        self.seen += len(messages)
        if self.progress is not None:
            self.progress.update(len(messages))
        self.last_seen = self.clock()
        if self.first_seen is None:
            self.first_seen = self.last_seen
        for message in messages:
            topic, partition, offset = position_of(message)
            key = (topic, partition)
            if key in self.pending and offset + 1 >= self.pending[key]:
                del self.pending[key]

    def done(self) -> bool:
        return not self.pending and self.clock() - self.last_seen >= self.quiet


def end_offsets(settings: Settings, topics: list[str], timeout: float = 10.0
                ) -> dict[TopicPartitionKey, int]:
    """The end offset of every non-empty partition of ``topics``."""
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}ends-{uuid.uuid4()}"))
    try:
        ends = {}
        metadata = consumer.list_topics(timeout=timeout).topics
        for topic in topics:
            for partition in metadata[topic].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout
                )
                if high > low:
                    ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


class StreamLag:
    """The lag gauge of the partitions batches came from: the end offset the consumer last
    fetched minus the next offset to read."""

    def __init__(self, group_id: str) -> None:
        self.gauge = LagGauge(group_id)
        self.lags: dict[TopicPartitionKey, int] = {}

    def saw(self, consumer: ConsumerT, messages: list[ReceivedMessage]) -> None:
        for key, next_offset in next_offsets(messages).items():
            try:
                end = consumer.highwater(TP(*key))
            except Exception:  # e.g. the partition was revoked meanwhile
                self.lags.pop(key, None)
                continue
            if end is not None:
                self.lags[key] = max(0, end - next_offset)
        self.gauge.update(self.lags)

    def clear(self) -> None:
        self.lags = {}
        self.gauge.update({})


class StreamConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer client, asking the broker to answer a fetch within
    ``FETCH_MAX_WAIT_MS`` instead of faust's fixed 1.5 s: a broker that holds an
    under-filled fetch until that wait is over would hold every event for as long."""

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class StreamConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, handing fetched messages to the stream without a race
    of asyncio tasks per message while the stream's buffer has room for it."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return StreamConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover (faust's loop)
        fetcher_stopped = cast(Service, fetcher)._stopped.is_set
        try:
            while not (self._stopped.is_set() or fetcher_stopped()):
                self.diag.set_flag(faust_consumer.CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)  # getmany may return at once, again and again
                if not self.should_stop:
                    await self._deliver_all(records)
                self.diag.unset_flag(faust_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(faust_consumer.CONSUMER_FETCHING)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's ``getmany`` (round robin over the topics, nothing of a revoked
        partition or an older generation) without telling the monitor each record's end
        offset: the monitor is left out, yet faust asks the client for the end offset of
        every record for it."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:  # pragma: no cover (faust's own answer: seek back)
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if (active_partitions is None or tp in active_partitions
                    or tp in self._buffered_partitions):
                yield tp, to_message(tp, record)

    async def _deliver_all(self, records: AsyncIterator[tuple[TP, Message]]) -> None:
        delivered = 0
        async for tp, message in records:
            delivered += 1
            if delivered % 1000 == 0:
                await asyncio.sleep(0)  # let the stream take what was handed over
            read = self._read_offset[tp]
            if read is not None and message.offset < read:
                continue
            if read and message.offset - read > 1 and self.app.topics.acks_enabled_for(
                message.topic
            ):
                await self._add_gap(tp, read + 1, message.offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            await self._hand_over(message)
            self._read_offset[tp] = message.offset

    async def _hand_over(self, message: Message) -> None:
        if self.flow_active and not any(channel.queue.full() for channel in self.app.topics):
            await self.callback(message)
        else:  # it may wait for room: a rebalance stopping the flow must not wait for it
            await self.wait_first(self.callback(message), self.suspend_flow.wait())


class StreamProducerBuffer(ProducerBuffer):
    """Faust's buffer of messages to produce, which it asks before every message it hands
    to a stream whether it is over full. The projector produces nothing through faust
    (its dead letters go through a producer of their own), so the answer is read from
    the buffer's queue, without faust's settings lookups per message."""

    async def wait_until_ebb(self) -> None:
        if self.pending.qsize() > self.max_messages:
            await super().wait_until_ebb()


class StreamProducer(faust_aiokafka.Producer):
    def __init__(self, transport: TransportT, loop: asyncio.AbstractEventLoop | None = None,
                 **kwargs: Any) -> None:
        super().__init__(transport, loop=loop, **kwargs)
        if self.threaded_producer is None:  # a threaded producer has a queue of its own
            buffer = StreamProducerBuffer(loop=self.loop, beacon=self.beacon)
            buffer.app = self.app
            self.buffer = buffer


async def _no_decode_error(exc: Exception, message: Message) -> None:
    pass  # raw bytes always decode


class RawSchema(faust.Schema[bytes, bytes]):
    """Keys and values as the broker holds them, made into events without looking up a
    codec for each key and value (faust's own schema does, even for raw bytes)."""

    def compile(self, app: AppT, *,
                on_key_decode_error: OnKeyDecodeErrorFun = _no_decode_error,
                on_value_decode_error: OnValueDecodeErrorFun = _no_decode_error,
                default_propagate: bool = False) -> DecodeFunction:
        make_event = cast(Callable[..., EventT[bytes]], app.conf.Event)

        async def decode(message: Message, *, propagate: bool = default_propagate
                         ) -> EventT[bytes]:
            return make_event(app, message.key, message.value, message.headers, message)

        return decode


class StreamTransport(faust_aiokafka.Transport):
    Consumer = StreamConsumer
    Producer = StreamProducer


class StreamApp(faust.App):
    """A faust app with the tuned consumer, and without the monitor sensor."""

    def _new_transport(self) -> TransportT:
        return StreamTransport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        dependencies = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        return dependencies


def _spare_the_collector() -> None:
    """Keep the garbage collector's passes from walking what lives as long as the app.

    Every batch allocates thousands of objects (messages, parsed events), and each pass
    of the cyclic collector over the older generations also walks every object of the
    faust app, the schemas and the modules: about a quarter of the projector's CPU per
    event. What exists once the app has started is moved out of the collector's sight
    (``gc.freeze``) until the app stops; reference counting still frees it.
    """
    gc.collect()
    gc.freeze()


class BatchApplier:
    """Applies taken batches one after another in a helper thread while the stream keeps
    taking: what is taken meanwhile waits, and becomes the next batch."""

    def __init__(self, projector: Projector, stream: faust.StreamT[bytes],
                 halt: threading.Event, failures: list[BaseException],
                 after_batch: Callable[[list[ReceivedMessage]], None],
                 max_batch: int = MAX_BATCH_SIZE) -> None:
        self.projector = projector
        self.stream = stream
        self.halt = halt
        self.failures = failures
        self.after_batch = after_batch
        self.max_batch = max_batch
        self.waiting: list[EventT[bytes]] = []
        self.task: asyncio.Task[None] | None = None
        self.progress = asyncio.Condition()

    async def add(self, events: Iterable[EventT[bytes]]) -> None:
        """Queue ``events`` for applying; waits while a full batch is already waiting."""
        self.waiting.extend(events)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._apply_waiting())
        task = self.task
        async with self.progress:
            await self.progress.wait_for(
                lambda: len(self.waiting) < self.max_batch or task.done()
            )

    async def settle(self) -> None:
        """Wait until the batch being applied, if any, is applied or failed."""
        if self.task is not None:
            await asyncio.wait([self.task])

    async def _apply_waiting(self) -> None:
        try:
            while self.waiting and not self.halt.is_set():
                events = self.waiting[:self.max_batch]
                del self.waiting[:self.max_batch]
                async with self.progress:
                    self.progress.notify_all()  # there is room for more
                if not await self._apply(events):
                    return
        finally:
            async with self.progress:
                self.progress.notify_all()

    async def _apply(self, events: list[EventT[bytes]]) -> bool:
        messages = [ReceivedMessage.of(event.message) for event in events]
        try:
            await asyncio.to_thread(self.projector.project, messages, self.halt)
        except Exception as exc:
            # Nothing of this batch or after it is acknowledged: it is all read again by
            # the projector that replaces this one.
            if not isinstance(exc, Interrupted):
                log.exception("projector batch failed")
                self.failures.append(exc)
            self.halt.set()
            return False
        for event in events:
            await self.stream.ack(event)
        self.after_batch(messages)
        return True


class ProjectionStream:
    """The faust application around a ``Projector``, run by one worker thread."""

    def __init__(self, settings: Settings, projector: Projector, group_id: str,
                 batch_size: int = BATCH_SIZE, batch_wait: float = BATCH_WAIT_SECONDS,
                 max_batch: int = MAX_BATCH_SIZE):
        self.settings = settings
        self.projector = projector
        self.group_id = group_id
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.max_batch = max_batch
        self.topics = [settings.topic(t) for t in CONSUMED_TOPICS]
        self.lag = StreamLag(group_id)

    def run(self, stop: threading.Event, catch_up: CatchUp | None = None) -> None:
        """Project until ``stop`` is set (or, with ``catch_up``, until it is done)."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(stop, catch_up))
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self, stop: threading.Event, catch_up: CatchUp | None) -> None:
        with tempfile.TemporaryDirectory(prefix="ates-analytics-") as datadir:
            await self._serve_in(Path(datadir), stop, catch_up)

    async def _serve_in(self, datadir: Path, stop: threading.Event,
                        catch_up: CatchUp | None) -> None:
        halt = threading.Event()
        failures: list[BaseException] = []
        app = self._app(datadir, halt, failures, catch_up)
        log.info("projector starting", group=self.group_id, topics=self.topics)
        try:
            await app.start()
            _spare_the_collector()
            while not (stop.is_set() or halt.is_set() or app.crashed):
                if catch_up is not None and catch_up.done():
                    break
                await asyncio.sleep(0.05)
        finally:
            halt.set()
            await app.stop()
            gc.unfreeze()  # what this app leaves behind may be collected again
            self.lag.clear()
            log.info("projector stopped", group=self.group_id)
        if failures or app.crashed:
            # Raised so that the worker's supervisor starts a fresh projector, which
            # reads again whatever was not acknowledged.
            cause = failures[0] if failures else app.crash_reason
            raise RuntimeError("the projector failed") from cause

    def _app(self, datadir: Path, halt: threading.Event, failures: list[BaseException],
             catch_up: CatchUp | None) -> faust.App:
        app = self._faust_app(datadir)
        source = app.topic(*self.topics, schema=RawSchema(key_type=bytes, value_type=bytes))

        def after_batch(messages: list[ReceivedMessage]) -> None:
            self.lag.saw(app.consumer, messages)
            if catch_up is not None:
                catch_up.saw(messages)

        @app.agent(source, name=f"{self.group_id}.project")
        async def project(stream: faust.StreamT[bytes]) -> None:
            applier = BatchApplier(self.projector, stream, halt, failures, after_batch,
                                   self.max_batch)
            # The agent's stream is a faust.Stream; noack_take yields its events, so that
            # they are acknowledged only once applied.
            taken = cast(faust.Stream[bytes], stream).noack_take(
                self.batch_size, within=self.batch_wait)
            try:
                async for events in cast(AsyncIterator[Sequence[EventT[bytes]]], taken):
                    if halt.is_set():
                        return
                    await applier.add(events)
            finally:
                await applier.settle()

        return app

    def _faust_app(self, datadir: Path) -> faust.App:
        session_timeout = self.settings.kafka_session_timeout_ms / 1000
        return StreamApp(
            self.group_id,
            # Nothing is stored there (tables live in memory), but faust makes the folder.
            datadir=datadir,
            broker=[f"kafka://{server}" for server in self.settings.kafka_bootstrap.split(",")],
            key_serializer="raw",
            value_serializer="raw",
            store="memory://",
            web_enabled=False,
            topic_allow_declare=True,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=session_timeout,
            broker_heartbeat_interval=max(0.1, session_timeout / 6),
            broker_rebalance_timeout=max(session_timeout, 2.0),
            stream_wait_empty=False,
            stream_buffer_maxsize=STREAM_BUFFER_SIZE,
            loop=asyncio.get_running_loop(),
        )


def live_group_id(settings: Settings) -> str:
    return settings.topic_prefix + CONSUMER_NAME


def run_projector(engine: Engine, settings: Settings, stop: threading.Event) -> None:
    """The ``stream`` worker: keep the projection up to date until ``stop`` is set."""
    projector = Projector.create(engine, settings)
    ProjectionStream(settings, projector, live_group_id(settings)).run(stop)


def rebuild(engine: Engine, settings: Settings, timeout: float = 600.0,
            progress: Progress | None = None) -> int:
    """Empty the projection, then replay every topic from its beginning until the ends
    they had at the start; returns the messages read.

    A live projector may keep running meanwhile: what it applies after the reset is in
    the inbox, so the replay skips it, and every effect commutes. ``progress`` (like a
    tqdm bar: ``total``, ``update(n)``) is told the messages to read and those read.
    """
    AnalyticsService(make_session_factory(engine), ZoneInfo(settings.timezone)).reset()
    topics = [settings.topic(t) for t in CONSUMED_TOPICS]
    catch_up = CatchUp(end_offsets(settings, topics), progress=progress)
    group_id = f"{live_group_id(settings)}-rebuild-{uuid.uuid4().hex[:12]}"
    projector = Projector.create(engine, settings)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            replay(projector, settings, group_id, catch_up, stop)
        except Interrupted:
            pass  # stopped at the timeout while a transient failure was retried
        except BaseException as exc:
            failures.append(exc)

    # A thread of its own, so that the caller gets its answer at the timeout.
    thread = threading.Thread(target=run, name="analytics-replay", daemon=True)
    thread.start()
    thread.join(timeout)
    stop.set()
    thread.join()
    if failures:
        raise failures[0]
    if not catch_up.done():
        raise TimeoutError(f"the replay did not reach the end of the topics in {timeout}s")
    return catch_up.seen


def replay(projector: Projector, settings: Settings, group_id: str, catch_up: CatchUp,
           stop: threading.Event, batch_size: int = REPLAY_BATCH_SIZE) -> None:
    """Apply the partitions ``catch_up`` waits for, from their first message, until it is
    done or ``stop`` is set.

    The partitions are assigned to the consumer, not shared out by a consumer group: a
    replay has no one to share them with and no offset to commit, so it reads at once
    instead of after a group join (seconds), and it reads with a plain client, which
    fetches the next messages while a batch is applied.
    """
    consumer = Consumer(consumer_config(settings, group_id))
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)
                         for topic, partition in list(catch_up.pending)])
        while not (stop.is_set() or catch_up.done()):
            messages = [m for m in consumer.consume(batch_size, REPLAY_POLL_SECONDS)
                        if usable(m, CONSUMER_NAME)]
            if messages:
                projector.process(messages, stop)
                catch_up.saw(messages)
    finally:
        consumer.close()
