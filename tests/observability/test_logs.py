"""Structured JSON logs that name the request, the event and the span they belong to."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
import structlog
from fastapi.testclient import TestClient

from messaging.outbox import Outbox
from messaging.relay import Relay
from platform_kit.db import make_session_factory
from platform_kit.logs import configure_logging
from platform_kit.service_app import create_service_app
from tests.messaging.conftest import account_event, handlers_recording, make_runtime, poll_until
from tests.observability.conftest import Spans

log = structlog.get_logger("tests.observability")


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict]]]:
    """Logs configured as ``ates serve`` does, written to a buffer; each line parsed."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging(service="observed", level="INFO", stream=buffer, cache=False)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


def lines_saying(lines: list[dict], event: str) -> list[dict]:
    return [line for line in lines if line.get("event") == event]


def test_request_logs_carry_the_request_id_and_the_server_span(json_logs, spans: Spans):
    app = create_service_app("observed", {})

    @app.get("/work")
    def work() -> dict:
        log.info("working", step=1)
        return {}

    with TestClient(app) as client:
        named = client.get("/work", headers={"X-Request-ID": "req-1"})
        unnamed = client.get("/work")

    first, second = lines_saying(json_logs(), "working")
    server = spans.named("GET /work")
    assert first["request_id"] == "req-1" == named.headers["x-request-id"]
    assert second["request_id"] == unnamed.headers["x-request-id"] != "req-1"
    assert first["trace_id"] == format(server[0].context.trace_id, "032x")
    assert first["span_id"] == format(server[0].context.span_id, "016x")
    assert first["level"] == "info" and first["service"] == "observed" and first["step"] == 1
    assert first["timestamp"].endswith("Z")


def test_logs_written_while_an_event_is_handled_carry_its_id_and_span(
    json_logs, spans: Spans, outbox_engine, settings
):
    def handle(_session, event):
        log.info("applying")

    event = account_event(str(uuid.uuid4()))
    with make_session_factory(outbox_engine)() as session, session.begin():
        Outbox(settings).publish(session, event)
    while Relay(outbox_engine, settings).run_once():
        pass
    runtime = make_runtime(outbox_engine, settings, handlers_recording(handler=handle))
    try:
        poll_until(runtime, lambda: lines_saying(json_logs(), "applying"))
    finally:
        runtime.close()

    [line] = lines_saying(json_logs(), "applying")
    [processing] = spans.named("process account.updated")
    assert line["event_id"] == event.id and line["event_type"] == "account.updated"
    assert line["trace_id"] == format(processing.context.trace_id, "032x")
    assert line["span_id"] == format(processing.context.span_id, "016x")
    assert "request_id" not in line


def test_standard_library_logs_are_json_lines_too(json_logs):
    logging.getLogger("some.library").warning("disk %s is full", "sda")
    logging.getLogger("some.library").debug("below the level")
    log.info("outside any request")

    library, ours = json_logs()
    assert library["event"] == "disk sda is full"
    assert library["logger"] == "some.library" and library["level"] == "warning"
    assert library["service"] == "observed"
    assert ours["event"] == "outside any request"
    assert not {"trace_id", "span_id", "request_id", "event_id"} & set(ours)
