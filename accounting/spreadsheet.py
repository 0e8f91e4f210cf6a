"""CSV cells that a spreadsheet cannot mistake for a formula (OWASP's CSV injection advice).

A cell starting with ``= + - @``, a tab or a carriage return would be evaluated when the
export is opened; a leading ``'`` makes it plain text and keeps it readable. Numbers stay
numbers: a negative amount (``-1500``) is not a formula.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def neutralised(cell: str) -> str:
    if cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
