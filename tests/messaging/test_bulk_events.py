"""The bulk-event paths write what ``Outbox.publish`` writes: the same envelope, byte for
byte, and the same outbox columns and headers, which consumers parse and validate."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import delete, select, text

from event_schemas import Event, InvalidEventData, default_registry
from messaging.bulk_events import (
    COLUMNS,
    EventsOfRows,
    constant,
    event_template,
    number,
    quoted,
    random_event_ids,
    text_value,
)
from messaging.tables import outbox as outbox_table

ACCOUNT_ID = "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e12"
EVENT_ID = "5f0c2a9e-7b1d-4c3e-9a8f-0d1e2f3a4b5c"
TIME = "2026-11-22T10:15:00.123456Z"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# Quotes, a backslash, a percent sign, a colon, a tab and letters beyond ASCII: every
# way a value can need escaping in JSON, in SQL or in a %-template.
TRICKY_NAME = 'Kesha "Popug" Popugaev \\ 100%: \tüñï 🦜'


def reference_event(traceparent: str | None, full_name: str = TRICKY_NAME) -> Event:
    data = {
        "account_id": ACCOUNT_ID,
        "email": "kesha@popug.inc",
        "full_name": full_name,
        "role": "worker",
        "active": True,
        "version": 7,
    }
    return default_registry().build(
        "account.updated", data, source="test", id=EVENT_ID, time=TIME, traceparent=traceparent
    )


# One row per event, as a bulk statement sees the rows it renders events from.
ROWS = """(SELECT CAST(:event_id AS uuid) AS event_id, CAST(:account_id AS uuid) AS account_id,
                  CAST(:full_name AS text) AS full_name, CAST(:version AS int) AS version,
                  CAST(:time AS text) AS time, CAST(:traceparent AS text) AS traceparent
          ) AS r"""

EVENTS_OF_ROWS = EventsOfRows(
    "account.updated",
    1,
    "test",
    event_id="r.event_id",
    key="CAST(r.account_id AS text)",
    time="r.time",
    data={
        "account_id": quoted("r.account_id"),
        "email": constant("kesha@popug.inc"),
        "full_name": text_value("r.full_name"),
        "role": constant("worker"),
        "active": constant(True),
        "version": number("r.version"),
    },
    traceparent="r.traceparent",
)


def row_values(traceparent: str | None, full_name: str = TRICKY_NAME) -> dict:
    return {"event_id": EVENT_ID, "account_id": ACCOUNT_ID, "full_name": full_name,
            "version": 7, "time": TIME, "traceparent": traceparent}


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
def test_the_database_renders_the_envelope_event_to_json_writes(sessions, traceparent):
    with sessions() as session:
        payload = session.scalar(
            text(f"SELECT {EVENTS_OF_ROWS.payload()} FROM {ROWS}"), row_values(traceparent)
        )
    reference = reference_event(traceparent)
    assert bytes(payload) == reference.to_json()
    assert default_registry().parse(bytes(payload)) == reference


def test_a_rendered_envelope_that_breaks_its_schema_is_refused_by_the_consumers(sessions):
    with sessions() as session:
        payload = session.scalar(
            text(f"SELECT {EVENTS_OF_ROWS.payload()} FROM {ROWS}"), row_values(None, "")
        )
    with pytest.raises(InvalidEventData, match="full_name"):
        default_registry().parse(bytes(payload))


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
def test_a_template_renders_the_json_event_to_json_writes(traceparent):
    placeholders = reference_event(traceparent, "@full_name@").data | {
        "account_id": "@account_id@", "version": "@version@"}
    shape = reference_event(traceparent)
    template = event_template(
        Event(shape.type, shape.dataversion, placeholders, shape.source, "@event_id@",
              shape.time, shape.traceparent),
        json_slots=["full_name"],
        number_slots=["version"],
    )
    rendered = template % {
        "event_id": EVENT_ID,
        "account_id": ACCOUNT_ID,
        "full_name": json.dumps(TRICKY_NAME, ensure_ascii=False),
        "version": 7,
    }
    assert rendered.encode() == shape.to_json()
    assert default_registry().parse(rendered) == shape


def stored_row(sessions, write) -> dict:
    """The outbox row ``write`` stores (then removed, so that the next path can store the
    same event)."""
    with sessions() as session, session.begin():
        write(session)
    with sessions() as session, session.begin():
        row = session.execute(
            select(*(outbox_table.c[name] for name in COLUMNS), outbox_table.c.renderer)
        ).one()._asdict()
        session.execute(delete(outbox_table))
    row["payload"] = bytes(row["payload"])
    return row


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
def test_every_path_stores_the_row_publish_stores(sessions, outbox, settings, traceparent):
    event = reference_event(traceparent)
    published = stored_row(sessions, lambda session: outbox.publish(session, event))

    def insert_from_select(session):
        statement = text(EVENTS_OF_ROWS.insert_from(ROWS))
        session.execute(statement, row_values(traceparent) | {
            "topic": settings.topic("accounts-stream")})

    def copy(session):
        prepared = (event.id, event.type, ACCOUNT_ID, event.dataversion, event.to_json())
        assert outbox.copy_prepared(session, [prepared], traceparent=traceparent) == 1

    assert published["topic"] == settings.topic("accounts-stream")
    assert published["key"] == ACCOUNT_ID
    assert published["headers"]["content-type"] == "application/cloudevents+json"
    assert published["headers"].get("traceparent") == traceparent
    assert stored_row(sessions, insert_from_select) == published
    assert stored_row(sessions, copy) == published


def test_copy_keeps_the_order_of_many_events_across_writes(sessions, outbox):
    ids = list(random_event_ids(25))
    events = [
        dataclasses.replace(reference_event(None, f"Popug {number}"), id=event_id)
        for number, event_id in enumerate(ids)
    ]
    prepared = [(e.id, e.type, ACCOUNT_ID, e.dataversion, e.to_json()) for e in events]
    with sessions() as session, session.begin():
        assert outbox.copy_prepared(session, prepared, rows_per_write=4) == len(events)
    with sessions() as session:
        stored = session.scalars(select(outbox_table.c.payload).order_by(outbox_table.c.id))
        names = [default_registry().parse(bytes(p)).data["full_name"] for p in stored]
    assert names == [f"Popug {number}" for number in range(len(ids))]
    assert len(set(ids)) == len(ids)
