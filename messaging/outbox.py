"""Transactional outbox: events are stored in the same transaction as the change.

A row holds one event, or stands for many (a *deferred* row, written by ``Outbox.defer``):
their payloads are rendered when the relay publishes them, by a renderer the service
registers with its relay, from data that never changes once the row is committed. A
change touching a hundred thousand accounts then stores one row instead of rendering and
storing a hundred thousand events in its transaction, and its events still leave in
order: the relay publishes nothing written after a deferred row before that row's events.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, insert, text
from sqlalchemy.orm import Session

from event_schemas import Event, SchemaRegistry, default_registry
from messaging.db import array_literal
from messaging.settings import Settings
from messaging.tables import outbox
from messaging.tracing import current_traceparent

CONTENT_TYPE = "application/cloudevents+json"
_COPY_SQL = (
    "COPY outbox (event_id, topic, event_type, dataversion, key, payload, headers)"
    " FROM STDIN (FORMAT BINARY)"
)

# (event_id, event_type, key, dataversion, payload): an event already serialised.
PreparedEvent = tuple[str, str, str, int, bytes]


class RenderedEvent(NamedTuple):
    key: str
    event_type: str
    dataversion: int
    payload: bytes


# Renders a deferred row's events, in order, from its arguments. It must render the same
# events (ids included) every time: a relay that dies while publishing renders them again.
Renderer = Callable[[Connection, dict[str, Any]], Iterable[RenderedEvent]]


class UnknownRenderer(LookupError):
    """A deferred row names a renderer its relay was not given."""


def events_of(
    conn: Connection, row, renderers: Mapping[str, Renderer]
) -> Iterable[RenderedEvent]:
    """The events an outbox row stands for: its own, or those its renderer renders."""
    if row.renderer is None:
        return [RenderedEvent(row.key, row.event_type, row.dataversion, bytes(row.payload))]
    render = renderers.get(row.renderer)
    if render is None:
        raise UnknownRenderer(row.renderer)
    return render(conn, json.loads(row.payload))


def event_headers(traceparent: str | None) -> dict[str, str]:
    headers = {"content-type": CONTENT_TYPE}
    if traceparent:
        headers["traceparent"] = traceparent
    return headers


_ARRAY_COLUMNS = ("event_id", "topic", "key", "event_type", "dataversion", "payload", "headers")
_TEXT_COLUMNS = tuple(c for c in _ARRAY_COLUMNS if c != "payload")  # bound as literals
# One statement over arrays, in their order: a multi-row VALUES list of a whole batch costs
# more to build and send than the insert itself.
_INSERT_FROM_ARRAYS = text(
    f"INSERT INTO {outbox.name} (event_id, topic, key, event_type, dataversion, payload, headers) "
    "SELECT r.event_id, r.topic, r.key, r.event_type, r.dataversion, r.payload, r.headers "
    "FROM unnest(CAST(:event_id AS uuid[]), CAST(:topic AS text[]), CAST(:key AS text[]), "
    "CAST(:event_type AS text[]), CAST(:dataversion AS int[]), CAST(:payload AS bytea[]), "
    "CAST(:headers AS jsonb[])) WITH ORDINALITY "
    "AS r(event_id, topic, key, event_type, dataversion, payload, headers, position) "
    "ORDER BY r.position"
)


def _traced(event: Event, traceparent: str | None) -> Event:
    if event.traceparent is None and traceparent is not None:
        return dataclasses.replace(event, traceparent=traceparent)
    return event


class Outbox:
    """Writes validated events into the caller's transaction; the relay publishes them."""

    def __init__(self, settings: Settings, registry: SchemaRegistry | None = None):
        self.settings = settings
        self.registry = registry or default_registry()

    def row(self, event: Event, validate: bool = True) -> dict:
        if validate:
            self.registry.validate(event.type, event.dataversion, event.data)
        headers = event_headers(event.traceparent)
        return {
            "event_id": event.id,
            "topic": self.settings.topic(self.registry.topic_of(event.type)),
            "key": self.registry.key_of(event),
            "event_type": event.type,
            "dataversion": event.dataversion,
            "payload": event.to_json(),
            "headers": headers,
        }

    def publish(self, session: Session, event: Event) -> None:
        """Validate ``event`` and add it to the outbox inside ``session``'s transaction."""
        self.publish_many(session, [event])

    def publish_many(self, session: Session, events: Iterable[Event]) -> int:
        """Bulk form of :meth:`publish`; rows keep the order of ``events``.

        An event without a trace context gets the active span's, if there is one.
        """
        active = current_traceparent()
        rows = [self.row(_traced(event, active)) for event in events]
        if rows:
            columns = {name: [row[name] for row in rows] for name in _ARRAY_COLUMNS}
            columns["headers"] = [json.dumps(headers) for headers in columns["headers"]]
            for name in _TEXT_COLUMNS:
                columns[name] = array_literal(columns[name])
            session.execute(_INSERT_FROM_ARRAYS, columns)
        return len(rows)

    def defer(
        self,
        session: Session,
        renderer: str,
        event_type: str,
        arguments: dict[str, Any],
        traceparent: str | None = None,
    ) -> None:
        """Add a deferred row to ``session``'s transaction: its events, of ``event_type``'s
        topic, are rendered by ``renderer`` from ``arguments`` when published.

        The caller validates what the renderer renders before committing (for instance
        one event of each kind), as for ``copy_prepared``.
        """
        session.execute(
            insert(outbox).values(
                event_id=str(uuid.uuid4()),
                topic=self.settings.topic(self.registry.topic_of(event_type)),
                key=renderer,
                event_type=renderer,
                dataversion=0,
                payload=json.dumps(arguments).encode(),
                headers=event_headers(traceparent),
                renderer=renderer,
            )
        )

    def copy_prepared(
        self,
        session: Session,
        events: Iterable[PreparedEvent],
        traceparent: str | None = None,
        rows_per_write: int = 1000,
    ) -> int:
        """Bulk-load already serialised events with ``COPY``, inside ``session``'s transaction.

        For batches far too large for :meth:`publish_many` (hundreds of thousands of events).
        Payloads are NOT validated here: the caller guarantees that every payload is a valid
        event of its type and version, e.g. by building them from constrained data and
        validating a representative of each batch. Rows keep the order of ``events``. They
        are sent in COPY's binary format (no escaping, payloads as they are) from a
        background thread, so the caller keeps building while the server stores.
        """
        connection = session.connection().connection.driver_connection
        rows = _BinaryCopyRows(self, traceparent)
        with connection.cursor() as cursor:
            with cursor.copy(_COPY_SQL, writer=QueuedLibpqWriter(cursor)) as copy:
                for chunk in rows.chunks(events, rows_per_write):
                    copy.write(chunk)
        return rows.count


_pack_length = struct.Struct("!i").pack
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_BINARY_TRAILER = struct.pack("!h", -1)
_FIELDS_PER_ROW = struct.pack("!h", 7)
_UUID_LENGTH = _pack_length(16)
_JSONB_FORMAT = b"\x01"


def _binary_field(value: bytes) -> bytes:
    return _pack_length(len(value)) + value


class _BinaryCopyRows:
    """Prepared events as rows of COPY's binary format, in chunks.

    The fields follow ``_COPY_SQL``'s column list and the column types of ``outbox``
    (uuid, text, text, int4, text, bytea, jsonb); a mismatch makes the server refuse
    the whole COPY.
    """

    def __init__(self, outbox: Outbox, traceparent: str | None):
        self.outbox = outbox
        headers = json.dumps(event_headers(traceparent)).encode()
        self.headers = _binary_field(_JSONB_FORMAT + headers)
        self.routing: dict[tuple[str, int], bytes] = {}
        self.count = 0

    def chunks(self, events: Iterable[PreparedEvent], rows_per_write: int) -> Iterator[bytes]:
        rows: list[bytes] = [_BINARY_HEADER]
        for event_id, event_type, key, dataversion, payload in events:
            key_bytes = key.encode()
            rows.append(
                b"".join(
                    (
                        _FIELDS_PER_ROW,
                        _UUID_LENGTH,
                        bytes.fromhex(event_id.replace("-", "")),
                        self._routing(event_type, dataversion),
                        _pack_length(len(key_bytes)),
                        key_bytes,
                        _pack_length(len(payload)),
                        payload,
                        self.headers,
                    )
                )
            )
            if len(rows) >= rows_per_write:
                yield self._flush(rows)
        self.count += len(rows) - 1
        rows.append(_BINARY_TRAILER)
        yield b"".join(rows)

    def _routing(self, event_type: str, dataversion: int) -> bytes:
        """The topic, event type and data version fields."""
        fields = self.routing.get((event_type, dataversion))
        if fields is None:
            topic = self.outbox.settings.topic(self.outbox.registry.topic_of(event_type))
            fields = self.routing[(event_type, dataversion)] = b"".join(
                (
                    _binary_field(topic.encode()),
                    _binary_field(event_type.encode()),
                    _binary_field(_pack_length(dataversion)),
                )
            )
        return fields

    def _flush(self, rows: list[bytes]) -> bytes:
        self.count += len(rows)
        chunk = b"".join(rows)
        rows.clear()
        return chunk
