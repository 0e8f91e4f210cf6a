"""Writing many events at once: the outbox's event columns and the CloudEvents envelope,
rendered in bulk, each defined here only.

Three paths, from the smallest batch to the largest:

- **insert from select** (``EventsOfRows.insert_from``): the database renders one event
  per row of a query, inside the statement that makes the change (the ledger's bookings);
- **COPY of rendered events** (``event_template``, ``copy_events``): Python fills the
  template of an event and streams the rows with ``COPY`` (a reshuffle's hundreds of
  thousands of events);
- **deferred rows** (``messaging.outbox.Outbox.defer``): one row stands for the events
  its renderer renders when the relay publishes them (a day's close), typically by a
  query whose payloads are ``EventsOfRows.payload``.

The envelope follows ``Event.envelope()`` (member order, constants) whichever path
renders it, so a payload is byte for byte what ``Event.to_json`` makes of the same event.
Bulk payloads are not validated one by one: callers parse one rendered event of each
kind through the schema registry before committing.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.orm import Session

from event_schemas import Event
from messaging.tables import outbox
from platform_kit.db import driver_of

CONTENT_TYPE = "application/cloudevents+json"

# The outbox columns an event fills, with their SQL types, in the order every bulk path
# writes them (COPY's binary rows depend on it).
COLUMN_TYPES = {
    "event_id": "uuid",
    "topic": "text",
    "event_type": "text",
    "dataversion": "int",
    "key": "text",
    "payload": "bytea",
    "headers": "jsonb",
}
COLUMNS = tuple(COLUMN_TYPES)

# (event_id, event_type, key, dataversion, payload): an event already serialised.
PreparedEvent = tuple[str, str, str, int, bytes]


def event_headers(traceparent: str | None) -> dict[str, str]:
    """The Kafka headers of an event (stored with it in the outbox)."""
    headers = {"content-type": CONTENT_TYPE}
    if traceparent:
        headers["traceparent"] = traceparent
    return headers


def insert_from_select(values: Mapping[str, str], rows: str) -> str:
    """SQL inserting an event per row of ``rows`` (what follows ``FROM``, ``ORDER BY``
    included), ``values`` giving the SQL expression of each of ``COLUMNS``."""
    expressions = ", ".join(values[column] for column in COLUMNS)
    return f"INSERT INTO {outbox.name} ({', '.join(COLUMNS)})\n SELECT {expressions}\n FROM {rows}"


# -- envelopes rendered by the database -----------------------------------------------


def sql_literal(value: str) -> str:
    """An SQL string literal for ``text()`` statements, which would otherwise read a
    ``:name`` inside it (as in ``"dataversion":1``) as a bind parameter."""
    return "'" + value.replace("'", "''").replace(":", "\\:") + "'"


@dataclass(frozen=True)
class Json:
    """A JSON text to be built by SQL: fixed pieces and SQL expressions, in order.

    ``sql()`` joins them with one ``concat()``, which copies each piece once (a chain of
    ``||`` copies the text built so far at every step): several times faster than
    ``jsonb_build_object``. ``concat`` skips NULLs, so every expression must be NOT NULL,
    or be an optional member of ``json_object`` (joined with ``||``, which makes the
    member NULL, and so left out, when its value is).
    """

    parts: tuple[tuple[bool, str], ...]  # (is fixed text, text or SQL expression)

    def __add__(self, other: Json) -> Json:
        return Json(self.parts + other.parts)

    def sql(self, null_if_any_null: bool = False) -> str:
        pieces = self._pieces()
        if null_if_any_null:
            return "(" + " || ".join(pieces) + ")"
        return f"concat({', '.join(pieces)})"

    def _pieces(self) -> list[str]:
        """Adjacent fixed parts merged into one literal."""
        pieces: list[str] = []
        fixed = ""
        for is_fixed, part in self.parts:
            if is_fixed:
                fixed += part
                continue
            if fixed:
                pieces.append(sql_literal(fixed))
                fixed = ""
            pieces.append(part)
        if fixed:
            pieces.append(sql_literal(fixed))
        return pieces


def _fixed(text: str) -> Json:
    return Json(((True, text),))


def _expression(sql: str) -> Json:
    return Json(((False, sql),))


def constant(value: str | int | None) -> Json:
    return _fixed(json.dumps(value))


def quoted(expression: str) -> Json:
    """A string needing no escaping: the text of a uuid, a date, a timestamp we format."""
    return _fixed('"') + _expression(expression) + _fixed('"')


def number(expression: str) -> Json:
    return _expression(expression)


def text_value(expression: str) -> Json:
    """Any text, escaped as JSON requires."""
    return _expression(f"CAST(to_json(CAST({expression} AS text)) AS text)")


def json_object(fields: Mapping[str, Json], optional: Mapping[str, Json] | None = None) -> Json:
    """A JSON object; an ``optional`` member is left out when its value is NULL."""
    built = _fixed("{")
    for position, (key, value) in enumerate(fields.items()):
        built += _fixed(("," if position else "") + json.dumps(key) + ":") + value
    for key, value in (optional or {}).items():
        member = _fixed("," + json.dumps(key) + ":") + value
        built += _expression(f"coalesce({member.sql(null_if_any_null=True)}, '')")
    return built + _fixed("}")


def headers_sql(traceparent: str) -> str:
    """SQL for the outbox headers (jsonb) of an event with the trace context
    ``traceparent`` (SQL text or NULL)."""
    plain = sql_literal(json.dumps(event_headers(None)))
    return (
        f"(CASE WHEN {traceparent} IS NULL THEN CAST({plain} AS jsonb) ELSE jsonb_build_object("
        f"'content-type', '{CONTENT_TYPE}', 'traceparent', {traceparent}) END)"
    )


@dataclass(frozen=True)
class EventsOfRows:
    """Events of one type and version rendered by the database, one per row of a query.

    ``event_id`` (a uuid), ``key`` (text), ``time`` (RFC 3339 text), the ``data`` values
    and ``traceparent`` (text or NULL) are SQL expressions over the row.
    """

    event_type: str
    dataversion: int
    source: str
    event_id: str
    key: str
    time: str
    data: Mapping[str, Json]
    traceparent: str = "NULL"

    def payload(self) -> str:
        """SQL for the event's CloudEvents JSON (bytea), as ``Event.to_json`` writes it."""
        members = {
            name: self._member(name, value) for name, value in self._envelope_shape().items()
        }
        envelope = json_object(members, optional={"traceparent": text_value(self.traceparent)})
        return f"convert_to({envelope.sql()}, 'UTF8')"

    def headers(self) -> str:
        return headers_sql(self.traceparent)

    def insert_from(self, rows: str, topic: str = ":topic") -> str:
        """SQL inserting the event of each row of ``rows`` into the outbox, to ``topic``
        (an SQL expression: the name depends on the deployment's settings)."""
        return insert_from_select(
            {
                "event_id": self.event_id,
                "topic": topic,
                "event_type": sql_literal(self.event_type),
                "dataversion": str(self.dataversion),
                "key": self.key,
                "payload": self.payload(),
                "headers": self.headers(),
            },
            rows,
        )

    def _envelope_shape(self) -> dict[str, Any]:
        return Event(self.event_type, self.dataversion, {}, self.source, "", "").envelope()

    def _member(self, name: str, value: Any) -> Json:
        if name == "id":
            return quoted(self.event_id)
        if name == "time":
            return quoted(self.time)
        if name == "data":
            return json_object(self.data)
        return constant(value)


# -- events rendered in Python and copied -----------------------------------------------

_PLACEHOLDER = re.compile(r"@([a-z_]+)@")


def event_template(
    event: Event, json_slots: Iterable[str] = (), number_slots: Iterable[str] = ()
) -> str:
    """A ``%``-template of ``event``'s JSON (``Event.to_json``), whose ``@name@`` string
    placeholders become ``%(name)s`` slots.

    A slot in ``json_slots`` takes a JSON-encoded value in place of the quoted
    placeholder, one in ``number_slots`` an integer; any other stays inside its quotes
    and takes a string that needs no escaping (a uuid, a timestamp).
    """
    template = event.to_json().decode().replace("%", "%%")
    for name in json_slots:
        template = template.replace(f'"@{name}@"', f"%({name})s")
    for name in number_slots:
        template = template.replace(f'"@{name}@"', f"%({name})d")
    return _PLACEHOLDER.sub(r"%(\1)s", template)


_VERSION_4 = bytes((byte & 0x0F) | 0x40 for byte in range(256))
_RFC_4122_VARIANT = bytes((byte & 0x3F) | 0x80 for byte in range(256))


def random_event_ids(count: int) -> Iterator[str]:
    """``count`` random (version 4) UUIDs, from one read of the system's randomness:
    ``uuid.uuid4()`` reads it once per id, which costs more than rendering the event."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_RFC_4122_VARIANT)
    digits = raw.hex()
    for start in range(0, 32 * count, 32):
        h = digits[start : start + 32]
        yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_COPY_SQL = f"COPY {outbox.name} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def copy_events(
    session: Session,
    events: Iterable[PreparedEvent],
    topic_of: Callable[[str], str],
    traceparent: str | None = None,
    rows_per_write: int = 1000,
) -> int:
    """Load serialised events into the outbox with ``COPY``, inside ``session``'s
    transaction, in the order of ``events``; ``topic_of`` names an event type's topic.

    Rows are sent in COPY's binary format (no escaping, payloads as they are) from a
    background thread, so the caller keeps building while the server stores.
    """
    connection = driver_of(session)
    rows = _BinaryCopyRows(topic_of, traceparent)
    with connection.cursor() as cursor:
        with cursor.copy(_COPY_SQL, writer=QueuedLibpqWriter(cursor)) as copy:
            for chunk in rows.chunks(events, rows_per_write):
                copy.write(chunk)
    return rows.count


_pack_length = struct.Struct("!i").pack
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_BINARY_TRAILER = struct.pack("!h", -1)
_FIELDS_PER_ROW = struct.pack("!h", len(COLUMNS))
_UUID_LENGTH = _pack_length(16)
_JSONB_FORMAT = b"\x01"


def _binary_field(value: bytes) -> bytes:
    return _pack_length(len(value)) + value


class _BinaryCopyRows:
    """Prepared events as rows of COPY's binary format, in chunks.

    The fields follow ``COLUMNS`` and their types; a mismatch makes the server refuse
    the whole COPY.
    """

    def __init__(self, topic_of: Callable[[str], str], traceparent: str | None):
        self.topic_of = topic_of
        headers = json.dumps(event_headers(traceparent)).encode()
        self.headers = _binary_field(_JSONB_FORMAT + headers)
        self.routing: dict[tuple[str, int], bytes] = {}
        self.count = 0

    def chunks(self, events: Iterable[PreparedEvent], rows_per_write: int) -> Iterator[bytes]:
        rows: list[bytes] = [_BINARY_HEADER]
        for event_id, event_type, key, dataversion, payload in events:
            key_bytes = key.encode()
            rows.append(
                b"".join(
                    (
                        _FIELDS_PER_ROW,
                        _UUID_LENGTH,
                        bytes.fromhex(event_id.replace("-", "")),
                        self._routing(event_type, dataversion),
                        _pack_length(len(key_bytes)),
                        key_bytes,
                        _pack_length(len(payload)),
                        payload,
                        self.headers,
                    )
                )
            )
            if len(rows) >= rows_per_write:
                yield self._flush(rows)
        self.count += len(rows) - 1
        rows.append(_BINARY_TRAILER)
        yield b"".join(rows)

    def _routing(self, event_type: str, dataversion: int) -> bytes:
        """The topic, event type and data version fields."""
        fields = self.routing.get((event_type, dataversion))
        if fields is None:
            fields = self.routing[(event_type, dataversion)] = b"".join(
                (
                    _binary_field(self.topic_of(event_type).encode()),
                    _binary_field(event_type.encode()),
                    _binary_field(_pack_length(dataversion)),
                )
            )
        return fields

    def _flush(self, rows: list[bytes]) -> bytes:
        self.count += len(rows)
        chunk = b"".join(rows)
        rows.clear()
        return chunk
