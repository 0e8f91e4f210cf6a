"""Deferred outbox rows: events rendered by the relay, in order with the rows around them."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select, text

from event_schemas import default_registry
from messaging.outbox import RenderedEvent
from messaging.relay import Relay
from messaging.tables import outbox as outbox_table
from tests.messaging.conftest import account_event, read_topic
from tests.messaging.test_outbox_relay_consumer import CrashBeforeMarkingSent, drain

RENDERER = "test.accounts"


def render_accounts(_conn, arguments):
    """account.updated of each account in ``arguments``, with ids derived from them."""
    for account_id in arguments["accounts"]:
        event = account_event(account_id, arguments["version"])
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{account_id}/{arguments['version']}"))
        rendered = default_registry().build(
            event.type, event.data, source="test", id=event_id, time=arguments["time"]
        )
        yield RenderedEvent(account_id, event.type, event.dataversion, rendered.to_json())


RENDERERS = {RENDERER: render_accounts}


def defer(sessions, outbox, accounts, version=2):
    arguments = {"accounts": accounts, "version": version, "time": "2026-11-22T00:00:01Z"}
    with sessions() as session, session.begin():
        outbox.defer(session, RENDERER, "account.updated", arguments)


def publish(sessions, outbox, *events):
    with sessions() as session, session.begin():
        outbox.publish_many(session, events)


def messages(settings):
    return read_topic(settings, settings.topic("accounts-stream"))


def published(settings):
    """(key, account version) of every message on the accounts topic, in order."""
    return [(m.key().decode(), json.loads(m.value())["data"]["version"])
            for m in messages(settings)]


def versions_of(account: str, settings) -> list[int]:
    """The account versions published under ``account``'s key, in the order published."""
    return [version for key, version in published(settings) if key == account]


def unsent(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).where(outbox_table.c.sent_at.is_(None)))


@pytest.fixture
def accounts():
    return sorted(str(uuid.uuid4()) for _ in range(3))


def test_a_deferred_row_is_published_as_its_events_between_the_rows_around_it(
    engine, sessions, outbox, settings, accounts
):
    publish(sessions, outbox, *[account_event(a, 1) for a in accounts])
    defer(sessions, outbox, accounts)
    publish(sessions, outbox, account_event(accounts[0], 3))

    assert drain(Relay(engine, settings, renderers=RENDERERS)) == 7

    assert versions_of(accounts[0], settings) == [1, 2, 3]
    assert versions_of(accounts[1], settings) == [1, 2]
    assert versions_of(accounts[2], settings) == [1, 2]
    assert unsent(engine) == 0


def test_a_relay_without_the_renderer_holds_the_row_and_everything_after_it(
    engine, sessions, outbox, settings, accounts
):
    other = str(uuid.uuid4())
    publish(sessions, outbox, account_event(other, 1))
    defer(sessions, outbox, accounts)
    publish(sessions, outbox, account_event(other, 2))

    assert drain(Relay(engine, settings)) == 1
    assert published(settings) == [(other, 1)]
    assert unsent(engine) == 2

    assert drain(Relay(engine, settings, renderers=RENDERERS)) == 4
    assert versions_of(other, settings) == [1, 2]
    assert all(versions_of(a, settings) == [2] for a in accounts)


def test_a_later_row_waits_while_another_relay_holds_a_deferred_row(
    engine, sessions, outbox, settings, accounts
):
    other = str(uuid.uuid4())
    defer(sessions, outbox, accounts)
    publish(sessions, outbox, account_event(other, 1))

    with engine.connect() as holder, holder.begin():
        holder.execute(text("SELECT id FROM outbox WHERE renderer IS NOT NULL FOR UPDATE"))
        assert Relay(engine, settings, renderers=RENDERERS).run_once() == 0
    assert published(settings) == []

    assert drain(Relay(engine, settings, renderers=RENDERERS)) == 4
    assert versions_of(other, settings) == [1]


def test_a_relay_dying_before_marking_sent_renders_the_same_events_again(
    engine, sessions, outbox, settings, accounts
):
    defer(sessions, outbox, accounts)
    with pytest.raises(SystemExit):
        CrashBeforeMarkingSent(engine, settings, renderers=RENDERERS).run_once()
    assert unsent(engine) == 1

    assert drain(Relay(engine, settings, renderers=RENDERERS)) == 3
    ids = [json.loads(m.value())["id"] for m in messages(settings)]
    assert sorted(Counter(ids).values()) == [2, 2, 2]


def test_a_deferred_row_rendering_nothing_is_marked_sent(engine, sessions, outbox, settings):
    defer(sessions, outbox, [])
    assert drain(Relay(engine, settings, renderers=RENDERERS)) == 0
    assert unsent(engine) == 0
