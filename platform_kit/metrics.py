"""Prometheus metrics every service shares: HTTP, events, outboxes, consumer lag.

Metric objects live here once per process (the default registry refuses a name twice),
whatever number of apps, relays or consumers the process builds. Gauges read from a
service's database at scrape time are kept by name, so an app built later replaces the
reading of one built earlier instead of clashing with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger("platform_kit.metrics")

HTTP_REQUESTS = Counter(
    "ates_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "ates_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["method", "route", "status"],
)

EVENTS_PUBLISHED = Counter(
    "ates_events_published_total",
    "Events the outbox relay published and the broker acknowledged.",
    ["topic", "type", "version"],
)
EVENTS_CONSUMED = Counter(
    "ates_events_consumed_total",
    "Events a consumer received and settled (applied, skipped as duplicate or ignored).",
    ["consumer", "type", "version"],
)
EVENTS_FAILED = Counter(
    "ates_events_failed_total",
    "Failed attempts to handle one event (each is retried or dead-lettered).",
    ["consumer", "type", "version"],
)
EVENTS_DEAD_LETTERED = Counter(
    "ates_events_dead_lettered_total",
    "Events sent to the dead-letter topic.",
    ["consumer", "type", "version"],
)

OUTBOX_UNSENT = Gauge(
    "ates_outbox_unsent_events",
    "Events stored in the outbox and not yet published.",
    ["outbox"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "ates_outbox_oldest_unsent_age_seconds",
    "Age of the oldest event not yet published (0 when none is waiting).",
    ["outbox"],
)
CONSUMER_LAG = Gauge(
    "ates_consumer_lag",
    "Messages between a consumer group's position and the end of a partition.",
    ["group", "topic", "partition"],
)

DEPENDENCY_UP = Gauge(
    "ates_dependency_up",
    "1 when the last readiness check reached the dependency, 0 when it did not.",
    ["dependency"],
)

INVALID = "invalid"


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method, route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def record_backlog(outbox: str, unsent: int, oldest_age_seconds: float) -> None:
    OUTBOX_UNSENT.labels(outbox).set(unsent)
    OUTBOX_OLDEST_AGE.labels(outbox).set(oldest_age_seconds)


class Every:
    """Paces a reading that runs inside a busy loop: ``due()`` is true at most once per
    ``seconds`` (and on the first call)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True


class LagGauge:
    """The lag of the partitions one consumer holds; partitions it lost are dropped."""

    def __init__(self, group: str):
        self.group = group
        self.partitions: set[tuple[str, int]] = set()

    def update(self, lags: dict[tuple[str, int], int]) -> None:
        for topic, partition in self.partitions - set(lags):
            CONSUMER_LAG.remove(self.group, topic, str(partition))
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lag)
        self.partitions = set(lags)


# -- gauges read from a database at scrape time --------------------------------------------


@dataclass(frozen=True)
class QueriedGauge:
    name: str
    documentation: str
    read: Callable[[], float]


class _QueriedGauges(Collector):
    def __init__(self) -> None:
        self.gauges: dict[str, QueriedGauge] = {}
        self.lock = threading.Lock()

    def put(self, gauge: QueriedGauge) -> None:
        with self.lock:
            self.gauges[gauge.name] = gauge

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.lock:
            gauges = list(self.gauges.values())
        for gauge in gauges:
            try:
                value = gauge.read()
            except Exception as error:
                # /metrics still answers; /readyz is where a database outage shows.
                log.warning("gauge not read", gauge=gauge.name, error=str(error))
                continue
            yield GaugeMetricFamily(gauge.name, gauge.documentation, value=value)

    def describe(self) -> list[Metric]:
        # Names come and go at run time: nothing to check when registering.
        return []


_QUERIED = _QueriedGauges()
REGISTRY.register(_QUERIED)


def scrape_gauge(name: str, documentation: str, read: Callable[[], float]) -> None:
    """Expose what ``read`` returns (e.g. a count in the service's database) as the gauge
    ``name``, read on every scrape. Registering a name again replaces the earlier reading
    (the app built last wins)."""
    _QUERIED.put(QueriedGauge(name, documentation, read))


# -- worker processes -----------------------------------------------------------------------


def serve_metrics(port: int, host: str = "0.0.0.0") -> WSGIServer:
    """Serve the default registry on ``http://host:port/metrics`` from a daemon thread
    (for processes without a web app); returns the HTTP server."""
    server, _thread = start_http_server(port, addr=host)
    log.info("metrics served", port=port)
    return server
