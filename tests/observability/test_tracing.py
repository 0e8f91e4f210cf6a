"""One trace from an HTTP request through every service its events reach."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import uuid

import httpx
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from accounting import app as accounting_app
from accounting.ledger_sql import Books
from accounting.settings import AccountingSettings
from deploy.embedded import free_port
from event_schemas import default_registry
from messaging.outbox import Outbox
from messaging.relay import Relay
from messaging.tables import inbox, outbox
from platform_kit import tracing
from platform_kit.db import make_session_factory
from tests.accounting.conftest import poll_until
from tests.analytics.conftest import RunningProjector
from tests.analytics.conftest import poll_until as wait_until
from tests.auth.support import People
from tests.helpers import engine_of, migrated_database
from tests.messaging.conftest import account_event
from tests.observability.conftest import Spans
from tests.tasks.support import feed_replica, running_provider_for_board, running_tasks_app


def ids(traceparent: str | None) -> tuple[int, int]:
    """The trace id and parent span id of a W3C ``traceparent``."""
    _version, trace_id, span_id, _flags = (traceparent or "").split("-")
    return int(trace_id, 16), int(span_id, 16)


def stored(engine, event_type: str) -> list:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.payload, outbox.c.headers)
                            .where(outbox.c.event_type == event_type)
                            .order_by(outbox.c.id)).all()
    return [(default_registry().parse(bytes(row.payload)), row.headers) for row in rows]


def handled_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return {str(event_id) for event_id in conn.scalars(select(inbox.c.event_id))}


def drain(relay: Relay) -> None:
    while relay.run_once():
        pass


def test_a_task_created_over_http_is_one_trace_across_tasks_accounting_and_analytics(
    settings, postgres_server, kafka_broker, spans: Spans
):
    board_port = free_port()
    with (
        migrated_database(postgres_server.url, "tasks") as tasks_url,
        migrated_database(postgres_server.url, "accounting") as accounting_url,
        migrated_database(postgres_server.url, "analytics") as analytics_url,
        engine_of(tasks_url) as tasks_engine,
        engine_of(accounting_url) as accounting_engine,
        engine_of(analytics_url) as analytics_engine,
        running_provider_for_board(postgres_server.url, kafka_broker.bootstrap,
                                   board_port) as provider,
    ):
        platform = settings.with_(service_database_urls={
            "tasks": tasks_url, "accounting": accounting_url, "analytics": analytics_url})
        people = People.create(provider)
        feed_replica(make_session_factory(tasks_engine), people.worker)

        with running_tasks_app(provider, platform, board_port) as tasks:
            created = httpx.post(f"{tasks}/api/tasks", json={"title": "Feed the parrots"},
                                 headers=people.worker.headers)
        assert created.status_code == 201, created.text
        [(assigned, _headers)] = stored(tasks_engine, "task.assigned")
        drain(Relay(tasks_engine, platform))

        books = Books.create(AccountingSettings(platform))
        consumer = accounting_app.consumer_runtime(accounting_engine, books)
        try:
            poll_until(consumer, lambda: stored(accounting_engine, "transaction.applied"))
        finally:
            consumer.close()
        drain(Relay(accounting_engine, platform))
        [(applied, applied_headers)] = stored(accounting_engine, "transaction.applied")
        with RunningProjector(analytics_engine, platform):
            wait_until(lambda: applied.id in handled_ids(analytics_engine), timeout=60,
                       what="analytics to handle transaction.applied")

    request = spans.one("POST /api/tasks")
    trace_id = request.context.trace_id
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert ids(assigned.traceparent) == (trace_id, request.context.span_id)

    published = spans.one("publish task.assigned")
    processed = next(span for span in spans.named("process task.assigned")
                     if span.attributes["messaging.consumer.group.name"] == "accounting")
    assert published.kind == SpanKind.PRODUCER
    assert published.parent.span_id == request.context.span_id
    assert processed.kind == SpanKind.CONSUMER
    assert processed.parent.span_id == published.context.span_id

    # What accounting's handler wrote continues from its processing span.
    assert applied.traceparent == applied_headers["traceparent"]
    assert ids(applied.traceparent) == (trace_id, processed.context.span_id)
    priced = next(span for span in spans.named("process task.priced")
                  if span.attributes["messaging.consumer.group.name"] == "analytics")
    projected = next(span for span in spans.named("process transaction.applied")
                     if span.attributes["messaging.message.id"] == applied.id)
    assert projected.attributes["messaging.consumer.group.name"] == "analytics"
    assert projected.parent.span_id == spans.one("publish transaction.applied").context.span_id
    for span in (published, processed, priced, projected):
        assert span.context.trace_id == trace_id, span.name


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_configured():
    assert tracing.configure_tracing("tasks", {}) is False
    assert not tracing.enabled()
    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    try:
        assert tracing.configure_tracing("tasks", {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        assert tracing.enabled()
        name = f"exported-{uuid.uuid4().hex[:8]}"
        tracing.start_span(name, None, SpanKind.INTERNAL).end()
        provider = tracing.use_tracer_provider(None)
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        tracing.use_tracer_provider(None)
        server.shutdown()
    [(path, content_type, body)] = _Collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert name.encode() in body and b"ates-tasks" in body


def test_events_written_while_a_span_is_active_carry_its_context(
    outbox_engine, settings, spans: Spans
):
    untraced = account_event(str(uuid.uuid4()))
    own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = dataclasses.replace(account_event(str(uuid.uuid4())), traceparent=own)
    span = tracing.start_span("writing", None, SpanKind.INTERNAL)
    with tracing.span_in_use(span), make_session_factory(outbox_engine)() as session:
        with session.begin():
            Outbox(settings).publish_many(session, [untraced, traced])
    span.end()
    with make_session_factory(outbox_engine)() as session, session.begin():
        Outbox(settings).publish(session, account_event(str(uuid.uuid4())))

    [(first, first_headers), (second, _), (outside, outside_headers)] = stored(
        outbox_engine, "account.updated")
    assert ids(first.traceparent) == (span.context.trace_id, span.context.span_id)
    assert first_headers["traceparent"] == first.traceparent
    assert second.traceparent == own
    assert outside.traceparent is None and "traceparent" not in outside_headers
