"""What every HTTP request leaves behind: a request id, a server span, metrics.

- ``X-Request-ID``: taken from the request when it is a sane token, else generated; echoed
  in the response and bound to the logs of the request;
- a server span named after the route template, child of the incoming ``traceparent``
  (operations routes are not traced: probes would drown the traces);
- ``ates_http_requests_total`` and ``ates_http_request_duration_seconds`` by route
  template (not the raw path, which would make one series per task id), method, status.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_kit import metrics, tracing

REQUEST_ID_HEADER = "x-request-id"
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
UNMATCHED = "unmatched"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(value: str | None) -> str:
    return value if value and _REQUEST_ID.match(value) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class RequestTelemetry:
    """Pure ASGI middleware (it leaves the body streaming untouched)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        request_id = request_id_from(headers.get(REQUEST_ID_HEADER))
        method = scope["method"]
        status = 500
        span = None
        if scope["path"] not in UNTRACED_PATHS:
            span = tracing.start_span(
                f"{method} {scope['path']}", headers.get(tracing.TRACEPARENT), SpanKind.SERVER,
                {"http.request.method": method, "url.path": scope["path"]},
            )

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        started = time.perf_counter()
        try:
            with (
                structlog.contextvars.bound_contextvars(request_id=request_id),
                tracing.span_in_use(span),
            ):
                await self.app(scope, receive, send_with_request_id)
        finally:
            route = route_template(scope)
            metrics.record_request(method, route, status, time.perf_counter() - started)
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                tracing.end_span(span, f"HTTP {status}" if status >= 500 else None)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])}
