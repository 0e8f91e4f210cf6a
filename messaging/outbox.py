"""Transactional outbox: events are stored in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert
from sqlalchemy.orm import Session

from event_schemas import Event, SchemaRegistry, default_registry
from messaging.settings import Settings
from messaging.tables import outbox


class Outbox:
    """Writes validated events into the caller's transaction; the relay publishes them."""

    def __init__(self, settings: Settings, registry: SchemaRegistry | None = None):
        self.settings = settings
        self.registry = registry or default_registry()

    def row(self, event: Event, validate: bool = True) -> dict:
        if validate:
            self.registry.validate(event.type, event.dataversion, event.data)
        headers = {"content-type": "application/cloudevents+json"}
        if event.traceparent:
            headers["traceparent"] = event.traceparent
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
        session.execute(insert(outbox), [self.row(event)])

    def publish_many(self, session: Session, events: Iterable[Event]) -> int:
        """Bulk form of :meth:`publish`; rows keep the order of ``events``."""
        rows = [self.row(event) for event in events]
        if rows:
            session.execute(insert(outbox), rows)
        return len(rows)
