"""Structured logs: one JSON object per line, for structlog and standard-library loggers.

Every line carries what the code bound to the context (``request_id`` during an HTTP
request, ``event_id`` while an event is handled) and, when a span is active, its
``trace_id`` and ``span_id``, so logs and traces can be joined.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger


def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def configure_logging(service: str | None = None, level: str | None = None,
                      stream: TextIO | None = None, cache: bool = True) -> None:
    """JSON lines on ``stream`` (stdout) at ``level`` (``ATES_LOG_LEVEL``, default INFO),
    each naming ``service`` when given.

    ``cache=False`` keeps loggers re-reading the configuration (so it can be changed
    again later in the same process).
    """
    level = (level or os.environ.get("ATES_LOG_LEVEL") or "INFO").upper()
    stream = stream or sys.stdout
    shared: list[Processor] = [
        *([_Service(service)] if service else []),
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=cache,
    )
    _route_standard_logging(shared, level, stream)


class _Service:
    def __init__(self, name: str):
        self.name = name

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", self.name)
        return event_dict


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so configuring again replaces it."""


def _route_standard_logging(shared: list[Processor], level: str, stream: TextIO) -> None:
    handler = _JsonHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared,
                               structlog.processors.format_exc_info],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
