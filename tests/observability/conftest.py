"""Helpers of the observability tests: metric readings, recorded spans, an outbox database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from messaging.tables import create_messaging_tables
from platform_kit import tracing


def reading(name: str, **labels: str) -> float:
    """The current value of a sample of the process's default registry (0 if absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(exposition: str) -> dict[tuple[str, frozenset], float]:
    """Samples of a ``/metrics`` page, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


class Spans:
    """Spans recorded in this process while the fixture is active."""

    def __init__(self, exporter: InMemorySpanExporter):
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.all() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (name, [span.name for span in self.all()])
        return found[0]


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use_tracer_provider(provider)
    try:
        yield Spans(exporter)
    finally:
        tracing.use_tracer_provider(previous)
        provider.shutdown()


@pytest.fixture
def outbox_engine(make_database):
    """A database with only the messaging tables (outbox, inbox)."""
    engine = make_database("observed")
    create_messaging_tables(engine)
    return engine
