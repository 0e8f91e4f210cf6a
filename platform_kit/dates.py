"""Dates as people type them into aTES (API parameters, dashboard forms, commands):
``YYYY-MM-DD`` and nothing else.

``date.fromisoformat`` alone also reads ``20261122`` and week dates, and pydantic's date
parser reads a number as Unix time (``0`` is 1970-01-01): both are refused here.
"""

from __future__ import annotations

import re
from datetime import date

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EXAMPLE = "2026-11-22"


def is_iso_date(value: object) -> bool:
    """Whether ``value`` is a string of the ``YYYY-MM-DD`` form (not whether that day exists)."""
    return isinstance(value, str) and ISO_DATE.fullmatch(value) is not None


def parse_iso_date(raw: str) -> date | None:
    """The day ``raw`` names in the ``YYYY-MM-DD`` form; ``None`` for anything else (another
    form, or a day that does not exist)."""
    if not is_iso_date(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None
