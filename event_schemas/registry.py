"""The event contract at run time: build, validate and parse CloudEvents.

Producers call ``build`` (which validates ``data`` against its schema) and write
``event.to_json()`` to the outbox, keyed by ``key_of(event)``; consumers call ``parse``
on what they receive, which checks the envelope and then the data.
"""

from __future__ import annotations

import copy
import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from jsonschema.protocols import Validator

from event_schemas import _loader

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class EventSchemaError(Exception):
    """Base of every error of this package; the message is meant for humans."""


class UnknownEventType(EventSchemaError):
    """No schema exists for this event type."""


class UnknownEventVersion(EventSchemaError):
    """The event type is known but not in this ``dataversion``."""


class InvalidEnvelope(EventSchemaError):
    """The CloudEvents envelope is malformed."""


class InvalidEventData(EventSchemaError):
    """``data`` does not match its schema; the message names each failing JSON path."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors: list[str] = errors or []


@dataclass(frozen=True)
class Event:
    """A CloudEvent whose ``data`` follows schema ``type`` version ``dataversion``."""

    type: str
    dataversion: int
    data: dict[str, Any]
    source: str
    id: str
    time: str
    traceparent: str | None = None

    def envelope(self) -> dict[str, Any]:
        """The CloudEvents 1.0 structured-mode representation."""
        envelope: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": DATACONTENTTYPE,
            "dataversion": self.dataversion,
            "data": self.data,
        }
        if self.traceparent is not None:
            envelope["traceparent"] = self.traceparent
        return envelope

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON of ``envelope()``."""
        return orjson.dumps(self.envelope())


def utc_now() -> str:
    """Current time as RFC 3339 UTC with microseconds, e.g. ``2026-11-22T10:15:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _load_json_object(raw: bytes | str | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(raw, dict):
        return copy.deepcopy(raw)
    if raw is None:
        raise InvalidEnvelope("event is not valid JSON: the message has no value")
    try:
        envelope = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise InvalidEnvelope(f"event is not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise InvalidEnvelope("event must be a JSON object")
    return envelope


_ENVELOPE_RULES: tuple[tuple[str, Any, str], ...] = (
    ("id", _loader.is_canonical_uuid, "a UUID string"),
    ("source", _is_text, "a non-empty string"),
    ("type", _is_text, "a non-empty string"),
    ("time", _loader.is_rfc3339, "an RFC 3339 timestamp"),
    ("dataversion", _is_positive_int, "an integer >= 1"),
    ("data", lambda v: isinstance(v, dict), "a JSON object"),
)


def _check_envelope(envelope: dict[str, Any]) -> None:
    if not _is_sound_envelope(envelope):
        _explain_envelope(envelope)


def _is_sound_envelope(envelope: dict[str, Any]) -> bool:
    """Every rule of ``_explain_envelope``, checked at once on the path of every event.

    It may be stricter than the rules (exact types, as parsed JSON has them), never laxer:
    an envelope it doubts is judged by ``_explain_envelope``.
    """
    get = envelope.get
    event_id, source, event_type = get("id"), get("source"), get("type")
    version = get("dataversion")
    return (
        get("specversion") == SPECVERSION
        and type(event_id) is str
        and _loader.CANONICAL_UUID.fullmatch(event_id) is not None
        and type(source) is str
        and source != ""
        and type(event_type) is str
        and event_type != ""
        and type(version) is int
        and version >= 1
        and type(get("data")) is dict
        and get("datacontenttype", DATACONTENTTYPE) == DATACONTENTTYPE
        and _loader.is_rfc3339(get("time"))
    )


def _explain_envelope(envelope: dict[str, Any]) -> None:
    """Raise ``InvalidEnvelope`` naming the first rule the envelope breaks."""
    if envelope.get("specversion") != SPECVERSION:
        found = envelope.get("specversion", "missing")
        raise InvalidEnvelope(f"specversion must be {SPECVERSION!r} (got {found!r})")
    for name, is_valid, expected in _ENVELOPE_RULES:
        if name not in envelope:
            raise InvalidEnvelope(f"envelope attribute {name!r} is missing")
        if not is_valid(envelope[name]):
            raise InvalidEnvelope(f"envelope attribute {name!r} must be {expected}")
    content_type = envelope.get("datacontenttype", DATACONTENTTYPE)
    if content_type != DATACONTENTTYPE:
        raise InvalidEnvelope(f"datacontenttype must be {DATACONTENTTYPE!r}")


def _received_traceparent(value: object) -> str | None:
    """A malformed incoming trace context is dropped (W3C Trace Context), not an error."""
    if isinstance(value, str) and _TRACEPARENT.match(value):
        return value
    return None


class SchemaRegistry:
    """Every schema of a tree, compiled once, plus the catalog that routes the events."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = _loader.resolve_root(root)
        self._schemas: dict[str, dict[int, dict[str, Any]]] = {}
        self._validators: dict[tuple[str, int], Validator] = {}
        self._acceptors: dict[tuple[str, int], Callable[[Any], bool]] = {}
        try:
            self._catalog = _loader.read_catalog(self._root)
            self._load_schemas()
        except _loader.TreeError as exc:
            raise EventSchemaError(f"schema tree {self._root}: {exc}") from exc

    def _load_schemas(self) -> None:
        files, problems = _loader.discover(self._root)
        problems += _loader.catalog_problems(self._catalog, files)
        if problems:
            raise _loader.TreeError("; ".join(problems))
        for file in files:
            schema, validator = _loader.load_schema(file)
            self._schemas.setdefault(file.event_type, {})[file.version] = schema
            self._validators[(file.event_type, file.version)] = validator
            self._acceptors[(file.event_type, file.version)] = _loader.compile_fast_acceptor(schema)

    @property
    def root(self) -> Path:
        return self._root

    def types(self) -> list[str]:
        """Every known event type, sorted."""
        return sorted(self._schemas)

    def versions(self, event_type: str) -> list[int]:
        """Sorted schema versions of ``event_type``."""
        if event_type not in self._schemas:
            raise UnknownEventType(f"unknown event type {event_type!r}")
        return sorted(self._schemas[event_type])

    def latest_version(self, event_type: str) -> int:
        return self.versions(event_type)[-1]

    def catalog_entry(self, event_type: str) -> dict[str, Any]:
        """A copy of the catalog entry: domain, topic, kind, key, producer, consumers..."""
        return copy.deepcopy(self._entry(event_type))

    def _entry(self, event_type: str) -> dict[str, Any]:
        self.versions(event_type)
        return self._catalog[event_type]

    def topic_of(self, event_type: str) -> str:
        """The logical topic (e.g. ``tasks-stream``) that carries ``event_type``."""
        return str(self._entry(event_type)["topic"])

    def key_of(self, event: Event) -> str:
        """The Kafka key of ``event``: the value of its catalog key field in ``data``."""
        field = self._entry(event.type)["key"]
        value = event.data.get(field)
        if not isinstance(value, str) or not value:
            raise InvalidEventData(f"{event.type}: data has no key field {field!r}")
        return value

    def schema(self, event_type: str, version: int) -> dict[str, Any]:
        """A copy of the JSON Schema of ``event_type`` version ``version``."""
        self._check_version(event_type, version)
        return copy.deepcopy(self._schemas[event_type][version])

    def _check_version(self, event_type: str, version: int) -> None:
        known = self.versions(event_type)
        if version not in known:
            listed = ", ".join(str(v) for v in known)
            raise UnknownEventVersion(
                f"{event_type} has no schema version {version!r} (known: {listed})"
            )

    def validate(self, event_type: str, version: int, data: dict[str, Any]) -> None:
        """Raise ``InvalidEventData`` unless ``data`` matches the schema."""
        accepts = self._acceptors.get((event_type, version))
        if accepts is None:
            self._check_version(event_type, version)  # raises: no such type or version
            raise UnknownEventVersion(f"{event_type} has no schema version {version!r}")
        if accepts(data):
            return
        errors = _loader.data_errors(self._validators[(event_type, version)], data)
        if errors:
            raise InvalidEventData(
                f"invalid {event_type} v{version} data: " + "; ".join(errors), errors
            )

    def build(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        source: str,
        version: int | None = None,
        traceparent: str | None = None,
        id: str | None = None,
        time: str | None = None,
    ) -> Event:
        """A validated event; ``version=None`` means the latest schema version."""
        version = self.latest_version(event_type) if version is None else version
        self.validate(event_type, version, data)
        event = Event(
            type=event_type,
            dataversion=version,
            data=copy.deepcopy(data),
            source=source,
            id=str(uuid.uuid4()) if id is None else id,
            time=utc_now() if time is None else time,
            traceparent=traceparent,
        )
        _check_envelope(event.envelope())
        if traceparent is not None and _received_traceparent(traceparent) is None:
            raise InvalidEnvelope(f"traceparent {traceparent!r} is not a W3C trace context")
        return event

    def parse(self, raw: bytes | str | dict[str, Any] | None) -> Event:
        """An event from its structured JSON form, with envelope and data validated
        (``None``, a message without value, is no event: ``InvalidEnvelope``)."""
        envelope = _load_json_object(raw)
        _check_envelope(envelope)
        event = Event(
            type=envelope["type"],
            dataversion=envelope["dataversion"],
            data=envelope["data"],
            source=envelope["source"],
            id=envelope["id"],
            time=envelope["time"],
            traceparent=_received_traceparent(envelope.get("traceparent")),
        )
        self.validate(event.type, event.dataversion, event.data)
        return event


@functools.cache
def default_registry() -> SchemaRegistry:
    """The registry of the installed ``event_schemas`` package, loaded once per process."""
    return SchemaRegistry()
