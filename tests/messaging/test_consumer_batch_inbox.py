"""A batch through the event processor: each event id recorded once in the inbox, however
it is spelled or repeated, and its effect applied once."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import select

from event_schemas import default_registry
from messaging.consumer import EventProcessor, HandlerRegistry
from messaging.dlq import DeadLetterPublisher
from messaging.tables import inbox
from tests.messaging.conftest import account_event, effect_rows, record_effect


@dataclass
class Message:
    """What the processor reads of a consumed Kafka message."""

    payload: bytes
    at: int

    def topic(self) -> str:
        return "accounts-stream"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes:
        return self.payload

    def headers(self) -> list[tuple[str, bytes]]:
        return []


class NoProducer:
    """Dead letters are not expected here: producing one fails the test."""

    def produce(self, *args, **kwargs):
        raise AssertionError("unexpected dead letter")

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=0):
        return 0

    def __len__(self) -> int:
        return 0


def processor(sessions, handlers: HandlerRegistry) -> EventProcessor:
    return EventProcessor("consumer", sessions, handlers,
                          DeadLetterPublisher(NoProducer(), "consumer"))  # type: ignore[arg-type]


def messages(events, start: int = 0) -> list[Message]:
    return [Message(event.to_json(), start + n) for n, event in enumerate(events)]


def test_a_batch_records_each_id_once_and_applies_each_event_once(sessions, engine):
    handlers = HandlerRegistry()
    handlers.register("account.updated", [1], record_effect)
    events = [account_event(str(uuid.uuid4()), version=n + 1) for n in range(5)]
    batch = messages([*events, events[1], events[3]])

    processor(sessions, handlers).process(batch, threading.Event())
    processor(sessions, handlers).process(messages(events, 10), threading.Event())

    ids = {e.id for e in events}
    assert sorted(row.event_id for row in effect_rows(engine) if row.event_id in ids) == sorted(ids)
    with engine.connect() as connection:
        recorded = connection.execute(
            select(inbox.c.event_id, inbox.c.event_type).where(inbox.c.consumer == "consumer")
        ).all()
    assert sorted((str(i), t) for i, t in recorded if str(i) in ids) == sorted(
        (i, "account.updated") for i in ids
    )


def test_an_id_in_capitals_is_the_same_event_as_in_small_letters(sessions, engine):
    handlers = HandlerRegistry()
    handlers.register("account.updated", [1], record_effect)
    event = account_event(str(uuid.uuid4()))
    shouting = replace(event, id=event.id.upper())

    processor(sessions, handlers).process(messages([shouting]), threading.Event())
    processor(sessions, handlers).process(messages([event], 1), threading.Event())

    assert [row.event_id for row in effect_rows(engine)
            if row.event_id.lower() == event.id] == [shouting.id]


def created(account_id: str):
    updated = account_event(account_id)
    return default_registry().build("account.created", updated.data, source="test")


def test_handlers_whose_effects_commute_run_once_a_batch_whatever_the_keys(sessions, engine):
    calls: list[list[str]] = []

    def batch_of(label: str):
        def handle(session, events) -> None:
            calls.append([label, *(e.data["account_id"] for e in events)])
        return handle

    handlers = HandlerRegistry()
    handlers.register_batch("account.updated", [1], batch_of("updated"))
    handlers.register_batch("account.created", [1], batch_of("created"))
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    # Alternating types of one account: in key order, four runs.
    events = [created(a), account_event(a, version=2), created(b), account_event(b, version=2)]
    commuting = EventProcessor("consumer", sessions, handlers,
                               DeadLetterPublisher(NoProducer(), "consumer"),  # type: ignore[arg-type]
                               effects_commute=True)

    commuting.process(messages(events), threading.Event())

    assert calls == [["created", a, b], ["updated", a, b]]
