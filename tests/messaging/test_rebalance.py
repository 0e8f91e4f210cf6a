"""Two consumer runtimes of one group while events flow: one joins, then the other leaves.

Real ``ConsumerRuntime``s (each in its own thread, as ``ates serve --only consumer`` runs
one per process) against the real broker and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict

from confluent_kafka import Producer

from messaging.kafka import producer_config
from tests.messaging.conftest import (
    account_event,
    effect_rows,
    handlers_recording,
    make_runtime,
    record_effect,
)

PARTITIONS = 3


class EventSource:
    """Produces a burst of ``account.updated`` events every 50 ms until stopped, and
    remembers the partition each event landed on."""

    def __init__(self, settings):
        self.producer = Producer(producer_config(settings, **{"linger.ms": 0}))
        self.topic = settings.topic("accounts-stream")
        self.partition_of: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            for _ in range(12):
                event = account_event(str(uuid.uuid4()))
                self.producer.produce(
                    self.topic, event.to_json(), key=event.data["account_id"],
                    on_delivery=self._delivered(event.id))
            self.producer.flush(10)
            self.stop.wait(0.05)

    def _delivered(self, event_id: str):
        def callback(error, message) -> None:
            assert error is None, error
            self.partition_of[event_id] = message.partition()

        return callback

    def __enter__(self) -> EventSource:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


class RunningConsumer:
    """A ``ConsumerRuntime`` in a thread; records which event ids its handler applied."""

    def __init__(self, label: str, engine, settings):
        self.label = label
        self.applied: list[str] = []

        def handler(session, event) -> None:
            record_effect(session, event)
            self.applied.append(event.id)

        self.handlers = handlers_recording(handler=handler)
        self.engine, self.settings = engine, settings
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        # Built here: a runtime joins its group as soon as it subscribes.
        make_runtime(self.engine, self.settings, self.handlers, batch_size=50).run(self.stop)

    def start(self) -> RunningConsumer:
        self.thread.start()
        return self

    def leave(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def partitions(self, source: EventSource) -> set[int]:
        return {source.partition_of[e] for e in list(self.applied) if e in source.partition_of}


def wait_until(condition, state=lambda: "", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not reached in time {state()}"
        time.sleep(0.05)


def test_consumer_joining_and_leaving_the_group_moves_partitions_and_loses_nothing(
    engine, settings
):
    first = RunningConsumer("first", engine, settings)
    second = RunningConsumer("second", engine, settings)
    try:
        with EventSource(settings) as source:
            first.start()
            wait_until(lambda: first.partitions(source) == set(range(PARTITIONS)),
                       lambda: f"{len(first.applied)} applied, {len(source.partition_of)} sent, "
                       f"{first.partitions(source)}, {set(source.partition_of.values())}")

            # The second member joins: the group splits the partitions between the two.
            second.start()
            wait_until(lambda: second.applied and len(first.applied) > 0)
            first_before = len(first.applied)
            wait_until(lambda: len(second.applied) >= 50 and len(first.applied) > first_before)
            split = (first.partitions(source), second.partitions(source))

            # The first member leaves: the second takes over every partition.
            first.leave()
            left_at = len(second.applied)
            # (and traffic goes on past 300 events: a cluster that rebalances in a blink
            # must still see a real flow through the three phases)
            wait_until(lambda: {source.partition_of[e] for e in second.applied[left_at:]
                                if e in source.partition_of} == set(range(PARTITIONS))
                       and len(source.partition_of) > 300)
        produced = set(source.partition_of)
        wait_until(lambda: len(effect_rows(engine)) >= len(produced))
        time.sleep(1.0)  # a late duplicate would show up now
    finally:
        for consumer in (first, second):
            if consumer.thread.is_alive():
                consumer.leave()

    assert split[1] and split[1] != set(range(PARTITIONS)), f"no split while both ran: {split}"
    by_partition: dict[int, set[str]] = defaultdict(set)
    for consumer in (first, second):
        for event_id in consumer.applied:
            by_partition[source.partition_of[event_id]].add(consumer.label)
    assert {p: by_partition[p] for p in range(PARTITIONS)} == {
        p: {"first", "second"} for p in range(PARTITIONS)
    }, "every partition was handled by both members at some point"

    applied = Counter(row.event_id for row in effect_rows(engine))
    assert set(applied) == produced, "nothing lost"
    assert max(applied.values()) == 1, "nothing applied twice"
    assert len(produced) > 300
