"""CSV cells that a spreadsheet cannot mistake for a formula (OWASP's CSV injection advice).

A cell starting with ``= + - @``, a tab or a carriage return would be evaluated when the
export is opened; a leading ``'`` makes it plain text and keeps it readable. Numbers stay
numbers: a negative amount (``-1500``) is not a formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def neutralised(cell: str) -> str:
    if cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """Each row as one line of CSV with formula-safe cells, one at a time: a long export
    is streamed in constant memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([neutralised(cell) for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
