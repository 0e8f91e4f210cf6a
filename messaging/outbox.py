"""Transactional outbox: events are stored in the same transaction as the change.

A row holds one event, or stands for many (a *deferred* row, written by ``Outbox.defer``):
their payloads are rendered when the relay publishes them, by a renderer the service
registers with its relay, from data that never changes once the row is committed. A
change touching a hundred thousand accounts then stores one row instead of rendering and
storing a hundred thousand events in its transaction, and its events still leave in
order: the relay publishes nothing written after a deferred row before that row's events.

The outbox's event columns, the envelope rendered in bulk and the ``COPY`` of rendered
events live in ``messaging.bulk_events``, with the other ways of writing events in bulk.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, insert, text
from sqlalchemy.orm import Session

from event_schemas import Event, SchemaRegistry, default_registry
from messaging.bulk_events import (
    COLUMN_TYPES,
    COLUMNS,
    PreparedEvent,
    copy_events,
    event_headers,
    insert_from_select,
)
from messaging.tables import outbox
from platform_kit.db import array_literal
from platform_kit.settings import Settings
from platform_kit.tracing import current_traceparent


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


class OutboxRow(Protocol):
    """An outbox row as the relay reads it (a row of ``messaging.tables.outbox``)."""

    @property
    def id(self) -> int: ...

    @property
    def topic(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def payload(self) -> bytes: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def event_type(self) -> str: ...

    @property
    def dataversion(self) -> int: ...

    # the renderer of a deferred row; None for a row holding one event
    @property
    def renderer(self) -> str | None: ...


def events_of(
    conn: Connection, row: OutboxRow, renderers: Mapping[str, Renderer]
) -> Iterable[RenderedEvent]:
    """The events an outbox row stands for: its own, or those its renderer renders."""
    if row.renderer is None:
        return [RenderedEvent(row.key, row.event_type, row.dataversion, bytes(row.payload))]
    render = renderers.get(row.renderer)
    if render is None:
        raise UnknownRenderer(row.renderer)
    return render(conn, json.loads(row.payload))


_TEXT_COLUMNS = tuple(c for c in COLUMNS if c != "payload")  # bound as literals
# One statement over arrays, in their order: a multi-row VALUES list of a whole batch costs
# more to build and send than the insert itself. Its parameters are ``Outbox.arrays``; a
# service may run it as a CTE of its own statement, to store a change and its events in
# one round trip.
INSERT_FROM_ARRAYS = insert_from_select(
    {column: f"r.{column}" for column in COLUMNS},
    "unnest("
    + ", ".join(f"CAST(:{column} AS {kind}[])" for column, kind in COLUMN_TYPES.items())
    + f") WITH ORDINALITY AS r({', '.join(COLUMNS)}, position) ORDER BY r.position",
)
_INSERT_FROM_ARRAYS = text(INSERT_FROM_ARRAYS)


def _traced(event: Event, traceparent: str | None) -> Event:
    if event.traceparent is None and traceparent is not None:
        return dataclasses.replace(event, traceparent=traceparent)
    return event


class Outbox:
    """Writes validated events into the caller's transaction; the relay publishes them."""

    def __init__(self, settings: Settings, registry: SchemaRegistry | None = None):
        self.settings = settings
        self.registry = registry or default_registry()

    def row(self, event: Event, validate: bool = True) -> dict[str, Any]:
        """The outbox columns of ``event``, by name."""
        if validate:
            self.registry.validate(event.type, event.dataversion, event.data)
        headers = event_headers(event.traceparent)
        return {
            "event_id": event.id,
            "topic": self._topic_of(event.type),
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
        columns, count = self._arrays(events)
        if count:
            session.execute(_INSERT_FROM_ARRAYS, columns)
        return count

    def arrays(self, events: Iterable[Event]) -> dict[str, Any]:
        """The parameters of ``INSERT_FROM_ARRAYS`` writing ``events`` (validated, and
        traced as by :meth:`publish_many`), for a statement that embeds it."""
        return self._arrays(events)[0]

    def _arrays(self, events: Iterable[Event]) -> tuple[dict[str, Any], int]:
        active = current_traceparent()
        rows = [self.row(_traced(event, active)) for event in events]
        # one array per column, bound as text or a list
        columns: dict[str, Any] = {name: [row[name] for row in rows] for name in COLUMNS}
        columns["headers"] = [json.dumps(headers) for headers in columns["headers"]]
        for name in _TEXT_COLUMNS:
            columns[name] = array_literal(columns[name])
        return columns, len(rows)

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
                topic=self._topic_of(event_type),
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
        return copy_events(session, events, self._topic_of, traceparent, rows_per_write)

    def _topic_of(self, event_type: str) -> str:
        return self.settings.topic(self.registry.topic_of(event_type))
