"""What every service's web app records of each request: metrics, request id, server span."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from platform_kit.service_app import create_service_app
from platform_kit.tracing import current_traceparent
from tests.observability.conftest import Spans, reading, scraped

ITEM = "/items/{item_id}"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def observed_app() -> FastAPI:
    app = create_service_app("observed", {})

    @app.get(ITEM)
    def item(item_id: int) -> dict:
        # What an endpoint would stamp on the events it writes.
        return {"id": item_id, "traceparent": current_traceparent()}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app


def requests_of(route: str, status: int, method: str = "GET") -> float:
    return reading("ates_http_requests_total", method=method, route=route, status=str(status))


def test_requests_are_counted_and_timed_by_route_template_method_and_status():
    before = {
        "ok": requests_of(ITEM, 200), "invalid": requests_of(ITEM, 422),
        "unmatched": requests_of("unmatched", 404), "failed": requests_of("/boom", 500),
        "timed": reading("ates_http_request_duration_seconds_count", method="GET", route=ITEM,
                         status="200"),
    }
    with TestClient(observed_app(), raise_server_exceptions=False) as client:
        assert client.get("/items/1").status_code == 200
        assert client.get("/items/2").status_code == 200
        assert client.get("/items/two").status_code == 422
        assert client.get("/nowhere/3").status_code == 404
        assert client.get("/boom").status_code == 500
        page = client.get("/metrics").text

    assert requests_of(ITEM, 200) - before["ok"] == 2
    assert requests_of(ITEM, 422) - before["invalid"] == 1
    assert requests_of("unmatched", 404) - before["unmatched"] == 1
    assert requests_of("/boom", 500) - before["failed"] == 1
    timed = reading("ates_http_request_duration_seconds_count", method="GET", route=ITEM,
                    status="200")
    assert timed - before["timed"] == 2
    samples = scraped(page)
    routes = {dict(labels).get("route") for name, labels in samples
              if name == "ates_http_requests_total"}
    assert ITEM in routes and "/items/1" not in routes and "/nowhere/3" not in routes


def test_the_request_id_is_taken_or_generated_and_echoed():
    with TestClient(observed_app()) as client:
        given = client.get("/items/1", headers={"X-Request-ID": "req-42.a"})
        generated = client.get("/items/1")
        again = client.get("/items/1")
        hostile = client.get("/items/1", headers={"X-Request-ID": "a b\tc" + "x" * 200})

    assert given.headers["x-request-id"] == "req-42.a"
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-request-id"] != again.headers["x-request-id"]
    assert hostile.headers["x-request-id"] not in ("", "a b\tc" + "x" * 200)
    assert len(hostile.headers["x-request-id"]) == 32


def test_a_server_span_per_request_continues_the_callers_trace(spans: Spans):
    with TestClient(observed_app()) as client:
        continued = client.get("/items/7", headers={"traceparent": TRACEPARENT}).json()
        started = client.get("/items/8").json()
        client.get("/healthz")

    first, second = spans.named(f"GET {ITEM}")
    assert first.kind == SpanKind.SERVER
    assert format(first.context.trace_id, "032x") == TRACE_ID
    assert format(first.parent.span_id, "016x") == CALLER_SPAN
    assert first.attributes["http.route"] == ITEM
    assert first.attributes["http.response.status_code"] == 200
    # Events written while handling the request carry the server span's context.
    assert continued["traceparent"] == (
        f"00-{TRACE_ID}-{format(first.context.span_id, '016x')}-01")
    assert second.parent is None
    assert started["traceparent"].split("-")[1] == format(second.context.trace_id, "032x")
    assert not spans.named("GET /healthz"), "probes are not traced"


def test_without_a_tracer_the_incoming_context_is_handed_on_unchanged():
    with TestClient(observed_app()) as client:
        continued = client.get("/items/7", headers={"traceparent": TRACEPARENT}).json()
        alone = client.get("/items/8").json()
        garbage = client.get("/items/9", headers={"traceparent": "garbage"}).json()

    assert continued["traceparent"] == TRACEPARENT
    assert alone["traceparent"] is None and garbage["traceparent"] is None
