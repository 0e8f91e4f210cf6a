"""OpenTelemetry tracing: one trace from an HTTP request through every event it causes.

The W3C ``traceparent`` travels in the events (envelope and Kafka header). HTTP requests,
relay publications and event handling each get a span, child of the context they were
given, so a request's trace goes on in every service its events reach.

Off by default: without ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``ATES_TRACING=otlp`` only the
API's no-op tracer runs, which still hands an incoming context on unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "ates"
TRACEPARENT = "traceparent"

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Export spans over OTLP/HTTP when the environment asks for it; True if it does.

    The endpoint is ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else the collector's default on
    localhost; the exporter reads its other ``OTEL_EXPORTER_OTLP_*`` settings itself.
    """
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else None
    )
    if not (endpoint or env.get("ATES_TRACING", "").lower() == "otlp"):
        return False
    if _provider is None:
        use_tracer_provider(_otlp_provider(env.get("OTEL_SERVICE_NAME") or f"ates-{service}",
                                           endpoint))
    return True


def _otlp_provider(service_name: str, endpoint: str | None) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkTracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def use_tracer_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Send this process's spans to ``provider`` (None: back to the global one); returns
    the provider used before. Unlike OpenTelemetry's global, it can be set again."""
    global _provider
    previous, _provider = _provider, provider
    return previous


def tracer() -> Tracer:
    return (_provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)


def enabled() -> bool:
    """Whether spans are recorded (otherwise the cost of making them is skipped)."""
    if _provider is not None:
        return True
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


def context_of(traceparent: str | None) -> Context | None:
    """The context a ``traceparent`` names; None for a missing or malformed one."""
    if not traceparent:
        return None
    context = _propagator.extract({TRACEPARENT: traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def traceparent_of(span: Span) -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def current_traceparent() -> str | None:
    """The W3C trace context of the active span, for the events written now."""
    return traceparent_of(trace.get_current_span())


def start_span(name: str, traceparent: str | None, kind: SpanKind,
               attributes: Mapping[str, str | int] | None = None) -> Span:
    """A span (not made current) child of ``traceparent``, or a new trace's root."""
    return tracer().start_span(
        name, context=context_of(traceparent) or Context(), kind=kind, attributes=attributes
    )


@contextmanager
def span_in_use(span: Span | None) -> Iterator[None]:
    """Make ``span`` the active one for the block (nothing when there is none)."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False):
        yield


def end_span(span: Span, error: str | None = None) -> None:
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()
