"""The one guard every text input passes: no NUL character, no lone surrogate.

PostgreSQL cannot store a NUL character in text, and a lone UTF-16 surrogate (which a
JSON ``\\ud800`` escape produces) cannot be encoded as UTF-8; either would fail deep in a
request as a 500. The guard refuses them at the edge with a readable message instead:

- :data:`Text` (and :data:`OptionalText`) for the fields of request bodies (pydantic);
- :func:`first_problem` for form fields (and :func:`displayable` to show them back);
- :class:`StorableQueryAndPath`, an ASGI middleware, for every path and query string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import parse_qsl

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Receive, Scope, Send

BAD_REQUEST = 400
UNSTORABLE_MESSAGE = "must not contain NUL characters or lone surrogates"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def first_problem(fields: Mapping[str, str]) -> str | None:
    """What is wrong with the first unstorable field of a form (``title must not ...``),
    or None when every field is fine."""
    for name, value in fields.items():
        if not is_storable(value) or not is_storable(name):
            return f"{displayable(name)} {UNSTORABLE_MESSAGE}"
    return None


def displayable(value: str) -> str:
    """``value`` with unstorable characters replaced, safe to show back on a form."""
    return _UNSTORABLE.sub("\ufffd", value)


def _storable(value: str) -> str:
    if not is_storable(value):
        raise PydanticCustomError("unstorable_text", UNSTORABLE_MESSAGE)
    return value


Text = Annotated[str, AfterValidator(_storable)]
OptionalText = Text | None


class StorableQueryAndPath:
    """Pure ASGI middleware: a path or query string with a NUL character (``%00``) or a
    lone surrogate answers 400 before any route sees it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _query_and_path_storable(scope):
            await _refuse(send, f"The address {UNSTORABLE_MESSAGE}.")
            return
        await self.app(scope, receive, send)


def _query_and_path_storable(scope: Scope) -> bool:
    query = scope.get("query_string", b"").decode("latin-1")
    decoded = (part for pair in parse_qsl(query, keep_blank_values=True) for part in pair)
    return is_storable(scope.get("path", "")) and all(is_storable(part) for part in decoded)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": BAD_REQUEST, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
