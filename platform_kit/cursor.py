"""The one codec of page cursors: opaque, URL-safe tokens naming where a keyset page ends.

A cursor packs fixed-width fields (``struct`` format) and is base64url without padding.
Each list names its layout once, as a :class:`CursorCodec`; a token that does not decode
to that layout raises :class:`InvalidCursor`, which the HTTP edge answers with a 4xx.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from datetime import date
from typing import Any


class InvalidCursor(ValueError):
    """The cursor was not issued by this list."""

    def __init__(self, message: str = "invalid cursor") -> None:
        super().__init__(message)


def _b64decode(cursor: str) -> bytes:
    """Strict base64url: a character outside the alphabet is an error, not skipped."""
    return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)


def _b64encode(raw: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _pack(layout: struct.Struct, values: tuple[Any, ...]) -> str:
    return _b64encode(layout.pack(*values))


def _unpack(layout: struct.Struct, cursor: str) -> tuple[Any, ...]:
    try:
        return layout.unpack(_b64decode(cursor))
    except (ValueError, binascii.Error, struct.error):
        raise InvalidCursor() from None


class CursorCodec:
    """Encodes and decodes one list's cursor: a tuple of ints and UUIDs, in order.

    ``fields`` is a string of ``"u"`` (a UUID) and ``"q"`` (a signed 64-bit integer),
    e.g. ``CursorCodec("qu")`` for ``(balance, account_id)``.
    """

    def __init__(self, fields: str) -> None:
        if not fields or set(fields) - {"u", "q"}:
            raise ValueError(f"cursor fields are 'u' and 'q', not {fields!r}")
        self.fields = fields
        self._layout = struct.Struct(">" + fields.replace("u", "16s"))

    def encode(self, *values: int | uuid.UUID) -> str:
        if len(values) != len(self.fields):
            raise ValueError(f"a {self.fields!r} cursor takes {len(self.fields)} values")
        packed = tuple(v.bytes if f == "u" and isinstance(v, uuid.UUID) else v
                       for f, v in zip(self.fields, values, strict=True))
        return _pack(self._layout, packed)

    def decode(self, cursor: str) -> tuple[Any, ...]:
        unpacked = _unpack(self._layout, cursor)
        return tuple(uuid.UUID(bytes=v) if f == "u" else v
                     for f, v in zip(self.fields, unpacked, strict=True))


ID_CURSOR = CursorCodec("u")


def encode_id(last_id: uuid.UUID) -> str:
    """The cursor of a list ordered by a public id: that of its last item."""
    return ID_CURSOR.encode(last_id)


def decode_id(cursor: str) -> uuid.UUID:
    (last_id,) = ID_CURSOR.decode(cursor)
    assert isinstance(last_id, uuid.UUID)
    return last_id


def encode_text(last_key: str) -> str:
    """The cursor of a list ordered by a text key (an email): that of its last item."""
    return _b64encode(last_key.encode())


def decode_text(cursor: str) -> str:
    try:
        return _b64decode(cursor).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None


def encode_day(last_day: date) -> str:
    """The cursor of a list of days: the last day shown, in ISO form."""
    return last_day.isoformat()


def decode_day(cursor: str) -> date:
    try:
        return date.fromisoformat(cursor)
    except ValueError:
        raise InvalidCursor() from None
