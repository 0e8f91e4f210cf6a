"""The messaging runtime against real PostgreSQL and the real broker."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Producer
from sqlalchemy import func, select

from event_schemas import default_registry
from messaging.consumer import PermanentError, TransientError
from messaging.dlq import read_dead_letters, redrive
from messaging.relay import Relay
from messaging.tables import inbox
from messaging.tables import outbox as outbox_table
from tests.messaging.conftest import (
    account_event,
    consume_until,
    effect_count,
    effect_rows,
    handlers_recording,
    make_runtime,
    poll_until,
    read_topic,
    record_effect,
)


def publish_committed(sessions, outbox, *events):
    with sessions() as session, session.begin():
        for event in events:
            outbox.publish(session, event)


def drain(relay: Relay) -> int:
    total = 0
    while published := relay.run_once():
        total += published
    return total


def test_event_of_rolled_back_transaction_is_never_published(engine, sessions, outbox, settings):
    kept, discarded = account_event(str(uuid.uuid4())), account_event(str(uuid.uuid4()))
    with sessions() as session:
        with session.begin():
            outbox.publish(session, kept)
        session.begin()
        outbox.publish(session, discarded)
        session.rollback()

    assert drain(Relay(engine, settings)) == 1

    ids = [
        json.loads(m.value())["id"] for m in read_topic(settings, settings.topic("accounts-stream"))
    ]
    assert ids == [kept.id]


def test_published_message_carries_key_headers_and_envelope(engine, sessions, outbox, settings):
    account_id = str(uuid.uuid4())
    event = default_registry().build(
        "account.created",
        account_event(account_id).data,
        source="auth",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    publish_committed(sessions, outbox, event)
    drain(Relay(engine, settings))

    [message] = read_topic(settings, settings.topic("accounts-stream"))
    assert message.key().decode() == account_id
    headers = dict(message.headers())
    assert headers["traceparent"] == event.traceparent.encode()
    parsed = default_registry().parse(message.value())
    assert (parsed.id, parsed.type, parsed.dataversion, parsed.data) == (
        event.id,
        "account.created",
        1,
        event.data,
    )


def test_invalid_event_is_refused_by_the_outbox_and_nothing_is_stored(sessions, outbox, engine):
    bad = account_event(str(uuid.uuid4()))
    bad = type(bad)(**{**bad.__dict__, "data": {**bad.data, "role": "emperor"}})
    with pytest.raises(Exception, match="role"), sessions() as session, session.begin():
        outbox.publish(session, bad)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox_table)).scalar() == 0


class CrashBeforeMarkingSent(Relay):
    def _mark_sent(self, conn, ids):
        raise SystemExit("relay killed after the broker acknowledged, before marking sent")


def test_relay_killed_between_produce_and_mark_sent_republishes_and_effect_applies_once(
    engine, sessions, outbox, settings
):
    event = account_event(str(uuid.uuid4()))
    publish_committed(sessions, outbox, event)

    with pytest.raises(SystemExit):
        CrashBeforeMarkingSent(engine, settings).run_once()
    with engine.connect() as conn:
        unsent = conn.execute(select(func.count()).where(outbox_table.c.sent_at.is_(None))).scalar()
    assert unsent == 1

    assert drain(Relay(engine, settings)) == 1
    copies = read_topic(settings, settings.topic("accounts-stream"))
    assert [json.loads(m.value())["id"] for m in copies] == [event.id, event.id]

    runtime = make_runtime(engine, settings, handlers_recording())
    try:
        poll_until(runtime, lambda: effect_count(engine) >= 1)
        runtime.poll_once(1.0)  # the duplicate, if not yet consumed
        assert [r.event_id for r in effect_rows(engine)] == [event.id]
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(inbox)).scalar() == 1
    finally:
        runtime.close()


def test_order_per_key_is_preserved_with_two_relays_racing(engine, sessions, outbox, settings):
    keys = [str(uuid.uuid4()) for _ in range(5)]
    for version in range(1, 41):
        publish_committed(sessions, outbox, *[account_event(k, version) for k in keys])

    stop = threading.Event()
    relays = [Relay(engine, settings, batch_size=17) for _ in range(2)]
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in relays]
    for t in threads:
        t.start()
    runtime = make_runtime(engine, settings, handlers_recording())
    try:
        poll_until(runtime, lambda: effect_count(engine) == 200)
    finally:
        stop.set()
        for t in threads:
            t.join()
        runtime.close()

    seen: dict[str, list[int]] = defaultdict(list)
    for message in read_topic(settings, settings.topic("accounts-stream")):
        data = json.loads(message.value())["data"]
        seen[data["account_id"]].append(data["version"])
    for key in keys:
        versions = [v for i, v in enumerate(seen[key]) if v not in seen[key][:i]]
        assert versions == list(range(1, 41)), f"events of {key} overtook each other: {seen[key]}"


def produce_raw(settings, key: str, value: bytes):
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.topic("accounts-stream"), key=key.encode(), value=value)
    assert producer.flush(10) == 0


def test_invalid_event_is_dead_lettered_and_later_events_on_the_partition_still_apply(
    engine, sessions, outbox, settings
):
    account_id = str(uuid.uuid4())
    broken = account_event(account_id, 1).envelope()
    broken["data"]["email"] = "not an email"
    produce_raw(settings, account_id, json.dumps(broken).encode())
    produce_raw(settings, account_id, b"{this is not json")
    later = account_event(account_id, 2)
    publish_committed(sessions, outbox, later)
    drain(Relay(engine, settings))

    consume_until(engine, settings, handlers_recording(), lambda: effect_count(engine) == 1)
    assert [r.event_id for r in effect_rows(engine)] == [later.id]

    letters = read_dead_letters(settings, settings.dlq_topic("accounts-stream"))
    assert len(letters) == 2
    assert letters[0].event_id == broken["id"]
    assert "InvalidEventData" in letters[0].error and "email" in letters[0].error
    assert "InvalidEnvelope" in letters[1].error
    assert {letter.consumer for letter in letters} == {"consumer"}
    assert letters[0].topic == settings.topic("accounts-stream")


def test_an_event_id_in_upper_case_is_applied_once_whatever_its_spelling(
    engine, sessions, outbox, settings
):
    account_id = str(uuid.uuid4())
    event = account_event(account_id, 1)
    shouted = event.envelope() | {"id": event.id.upper()}
    produce_raw(settings, account_id, json.dumps(shouted).encode())
    produce_raw(settings, account_id, account_event(account_id, 2).to_json())
    runtime = make_runtime(engine, settings, handlers_recording())
    try:
        poll_until(runtime, lambda: effect_count(engine) == 2)
        produce_raw(settings, account_id, event.to_json())  # the same id, in lower case
        for _ in range(4):
            runtime.poll_once(0.3)
    finally:
        runtime.close()
    assert sorted(r.seq for r in effect_rows(engine)) == [1, 2]


def test_unknown_version_is_dead_lettered_then_redrive_applies_it_once_support_is_added(
    engine, sessions, outbox, settings
):
    account_id = str(uuid.uuid4())
    event = account_event(account_id, 1)
    publish_committed(sessions, outbox, event)
    drain(Relay(engine, settings))

    letters_topic = settings.dlq_topic("accounts-stream")
    consume_until(engine, settings, handlers_recording(versions=(2,)),
                  lambda: len(read_dead_letters(settings, letters_topic)) == 1)
    [letter] = read_dead_letters(settings, letters_topic)
    assert "UnknownEventVersion" in letter.error and letter.event_id == event.id
    assert effect_count(engine) == 0

    upgraded = make_runtime(engine, settings, handlers_recording(versions=(1, 2)))
    try:
        assert [x.event_id for x in redrive(settings, letters_topic).redriven] == [event.id]
        poll_until(upgraded, lambda: effect_count(engine) == 1)
        redrive(settings, letters_topic, event_id=event.id)  # a second redrive is harmless
        poll_until(upgraded, lambda: upgraded.poll_once(0.5) == 0)
    finally:
        upgraded.close()
    assert [r.event_id for r in effect_rows(engine)] == [event.id]


def test_transient_failures_are_retried_until_they_pass(engine, sessions, outbox, settings):
    failures = {"left": 3}

    def flaky(session, event):
        if failures["left"]:
            failures["left"] -= 1
            raise TransientError("database briefly unavailable")
        record_effect(session, event)

    event = account_event(str(uuid.uuid4()))
    publish_committed(sessions, outbox, event)
    drain(Relay(engine, settings))
    consume_until(engine, settings, handlers_recording(handler=flaky),
                  lambda: effect_count(engine) == 1, max_attempts=2)
    assert failures["left"] == 0
    assert read_dead_letters(settings, settings.dlq_topic("accounts-stream")) == []


def test_a_handler_bug_is_retried_then_dead_lettered_and_its_partial_effects_rolled_back(
    engine, sessions, outbox, settings
):
    calls = []

    def buggy(session, event):
        calls.append(event.id)
        record_effect(session, event)  # must be rolled back with the failure
        if event.data["version"] == 1:
            raise KeyError("bug in handler")

    first, second = account_event(str(uuid.uuid4()), 1), account_event(str(uuid.uuid4()), 2)
    publish_committed(sessions, outbox, first, second)
    drain(Relay(engine, settings))
    dlq = settings.dlq_topic("accounts-stream")
    consume_until(engine, settings, handlers_recording(handler=buggy),
                  lambda: effect_count(engine) == 1 and read_dead_letters(settings, dlq),
                  max_attempts=3)

    assert [r.event_id for r in effect_rows(engine)] == [second.id]
    assert calls.count(first.id) == 1 + 3  # the failed batch, then three attempts alone
    [letter] = read_dead_letters(settings, dlq)
    assert letter.event_id == first.id and "KeyError" in letter.error
    with engine.connect() as conn:
        handled = conn.execute(select(inbox.c.event_id)).scalars().all()
    assert [str(x) for x in handled] == [second.id]


def test_permanent_error_goes_to_the_dead_letter_topic_without_retries(
    engine, sessions, outbox, settings
):
    calls = []

    def refuse(session, event):
        calls.append(event.id)
        raise PermanentError("account belongs to another universe")

    event = account_event(str(uuid.uuid4()))
    publish_committed(sessions, outbox, event)
    drain(Relay(engine, settings))
    dlq = settings.dlq_topic("accounts-stream")
    consume_until(engine, settings, handlers_recording(handler=refuse),
                  lambda: len(read_dead_letters(settings, dlq)) == 1, max_attempts=5)
    assert calls == [event.id, event.id]  # once in the batch, once alone


def test_offsets_are_committed_so_a_restarted_consumer_does_not_reapply(
    engine, sessions, outbox, settings
):
    events = [account_event(str(uuid.uuid4()), 1) for _ in range(10)]
    publish_committed(sessions, outbox, *events)
    drain(Relay(engine, settings))
    consume_until(engine, settings, handlers_recording(), lambda: effect_count(engine) == 10)

    calls = []
    second = make_runtime(
        engine, settings, handlers_recording(handler=lambda session, event: calls.append(event.id))
    )
    try:
        for _ in range(6):
            second.poll_once(0.5)
    finally:
        second.close()
    assert calls == []
    assert effect_count(engine) == 10


def test_events_of_types_without_handler_are_skipped_quietly(engine, sessions, outbox, settings):
    account_id = str(uuid.uuid4())
    deleted = default_registry().build(
        "account.deleted", {"account_id": account_id, "version": 2}, source="auth"
    )
    publish_committed(sessions, outbox, deleted, account_event(account_id, 3))
    drain(Relay(engine, settings))
    consume_until(engine, settings, handlers_recording(), lambda: effect_count(engine) == 1)
    assert read_dead_letters(settings, settings.dlq_topic("accounts-stream")) == []


def test_relay_backlog_reports_unsent_events(engine, sessions, outbox, settings):
    relay = Relay(engine, settings)
    assert relay.backlog().unsent == 0
    publish_committed(sessions, outbox, *[account_event(str(uuid.uuid4())) for _ in range(3)])
    backlog = relay.backlog()
    assert backlog.unsent == 3 and backlog.oldest_age_seconds >= 0
    drain(relay)
    assert relay.backlog().unsent == 0
