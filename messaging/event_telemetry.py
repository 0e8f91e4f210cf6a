"""Telemetry of event handling: a span per handled event, logs bound to it, counters.

Shared by every consumer of the platform through ``messaging.consumer.EventProcessor``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import structlog
from opentelemetry.trace import Span, SpanKind
from prometheus_client import Counter

from event_schemas import Event
from messaging.kafka import ConsumedMessage, received_headers
from platform_kit import metrics, tracing


def header_traceparent(message: ConsumedMessage) -> str | None:
    for key, value in received_headers(message):
        if key == tracing.TRACEPARENT and value:
            return value.decode("ascii", "replace")
    return None


def start_processing(consumer: str, message: ConsumedMessage, event: Event
                     ) -> tuple[Span, Event]:
    """The span of handling ``event``, and the event stamped with it so that whatever its
    handler publishes continues the trace. The parent is the message's header (the
    relay's publish span), else the event's own context. Only called while tracing is on
    (``tracing.enabled()``, which the caller looks up once per batch)."""
    span = tracing.start_span(
        f"process {event.type}",
        header_traceparent(message) or event.traceparent,
        SpanKind.CONSUMER,
        {
            "messaging.system": "kafka",
            "messaging.consumer.group.name": consumer,
            "messaging.destination.name": message.topic() or "",  # a delivered one has it
            "messaging.message.id": event.id,
        },
    )
    return span, dataclasses.replace(event, traceparent=tracing.traceparent_of(span))


@contextmanager
def handling(event: Event, span: Span | None) -> Iterator[None]:
    """Logs within name the event; the span (if any) is the active one."""
    with (
        structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type),
        tracing.span_in_use(span),
    ):
        yield


def labels_of(event: Event | None) -> tuple[str, str]:
    if event is None:
        return metrics.INVALID, ""
    return event.type, str(event.dataversion)


def count(counter: Counter, consumer: str, events: Iterable[Event | None]) -> None:
    """Add ``events`` to ``counter`` by type and version (one update per label set)."""
    for (event_type, version), n in Tally(labels_of(e) for e in events).items():
        counter.labels(consumer, event_type, version).inc(n)
